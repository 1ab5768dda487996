"""rFVD and per-frame FID of several reconstruction methods, in one streaming pass over the clips.

For each batch of clips every method reconstructs the batch once; I3D features of the
clips (rFVD) and Inception features of selected frames (per-frame FID) are taken from the
ground truth and from each reconstruction, and only the features are kept. So memory grows
with the number of clips times the feature width (I3D: the original FVD's 400 time-averaged
Kinetics logits, :data:`sweettok.metrics.fvd.DEFAULT_EMBEDDING`; Inception: 2,048), never with
the clips themselves: the paper profile's 3,783 UCF-101 test clips of 17 x 256 x 256
would take 50 GB per method as float tensors.

rFVD and FID are Fréchet distances (:func:`sweettok.metrics.frechet.frechet_distance`)
between the feature sets of the ground truth and of a method, on the *same* clips (the
first ``fvd_clips`` / ``fid_clips`` of the dataset). Both are biased upwards when there are
fewer samples than feature dimensions, so the counts are returned beside every value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from sweettok.metrics.frechet import frechet_distance

Reconstructor = Callable[[torch.Tensor], torch.Tensor]
FeatureFn = Callable[[torch.Tensor], np.ndarray]

DISTANCE_COLUMNS = ["method", "fvd", "fvd_clips", "fid", "fid_clips", "fid_images"]
"""Columns of :func:`score_feature_distances`."""


def select_frames(frames: int, wanted: Sequence[int] | None) -> list[int]:
    """Frame indices to score: ``wanted`` (checked against ``frames``), or all frames when None.

    Negative indices count from the end, as in Python (``-1`` is the last frame).
    """
    if wanted is None:
        return list(range(frames))
    chosen = []
    for f in wanted:
        if not isinstance(f, int) or isinstance(f, bool) or not -frames <= f < frames:
            raise ValueError(f"frame {f!r} is not a frame index of {frames}-frame clips")
        chosen.append(f % frames)
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"frames {list(wanted)} name a frame twice")
    return chosen


def i3d_feature_fn(device: torch.device | str | None = None, batch_size: int = 8) -> FeatureFn:
    """Clips ``(B, C, T, H, W)`` in [-0.5, 0.5] (at least 9 frames) -> the Kinetics-400 I3D embedding
    of :func:`sweettok.metrics.fvd.i3d_features` (its default: the original FVD's, 400-d), the
    network loaded once, on ``device``."""
    from sweettok.metrics.fvd import i3d_features, load_i3d

    model = load_i3d(device=device)
    return lambda clips: i3d_features(clips, model=model, batch_size=batch_size, device=device, progress=False)


def inception_feature_fn(device: torch.device | str | None = None, batch_size: int = 32) -> FeatureFn:
    """Images ``(N, 3, H, W)`` in [-0.5, 0.5] -> Inception pool3 features ``(N, 2048)`` (loaded once)."""
    from sweettok.metrics.fid import inception_features, load_inception

    model = load_inception(device=device)
    return lambda images: inception_features(images, model=model, batch_size=batch_size, device=device,
                                             progress=False)


@torch.no_grad()
def score_feature_distances(methods: Mapping[str, Reconstructor],
                            clips: Sequence | torch.utils.data.Dataset, *,
                            fvd_methods: Sequence[str] = (), fid_methods: Sequence[str] = (),
                            fvd_clips: int | None = None, fid_clips: int | None = None,
                            fid_frames: Sequence[int] | None = None, batch_size: int = 8,
                            video_features: FeatureFn | None = None, image_features: FeatureFn | None = None,
                            device: torch.device | str | None = None, progress: bool = True) -> pd.DataFrame:
    """rFVD and per-frame FID of ``methods`` against the ground truth clips.

    Args:
        methods: name -> reconstructor ``(B, C, T, H, W) -> (B, C, T, H, W)`` (CPU tensors in and
            out; a reconstructor on a GPU moves the batch itself). Outputs are clamped to
            [-0.5, 0.5], as a decoded video would be.
        clips: clips ``(C, T, H, W)`` in [-0.5, 0.5], or a dataset whose items have ``clip``; all
            of one shape.
        fvd_methods, fid_methods: the methods that get rFVD / FID (names of ``methods``).
        fvd_clips, fid_clips: use the first this many clips (None: all). At least 2.
        fid_frames: frame indices whose frames enter FID (None: every frame of every clip).
        video_features, image_features: feature functions (default: I3D and Inception, built on
            ``device`` when first needed); injectable for tests.

    Returns:
        :data:`DISTANCE_COLUMNS`, one row per method of ``methods`` in their order: ``fvd``
        with ``fvd_clips`` (the clips on both sides), ``fid`` with ``fid_clips`` and
        ``fid_images`` (frames on each side); NaN / missing for a method not asked for.
    """
    from tqdm.auto import tqdm

    for name in [*fvd_methods, *fid_methods]:
        if name not in methods:
            raise ValueError(f"no method named {name!r}; methods: {list(methods)}")
    n_total = len(clips)
    n_fvd = min(n_total, fvd_clips) if fvd_clips is not None else n_total
    n_fid = min(n_total, fid_clips) if fid_clips is not None else n_total
    for label, n, wanted in (("rFVD", n_fvd, fvd_methods), ("FID", n_fid, fid_methods)):
        if wanted and n < 2:
            raise ValueError(f"{label} needs at least 2 clips, have {n}")
    n_fvd = n_fvd if fvd_methods else 0
    n_fid = n_fid if fid_methods else 0
    if fvd_methods and video_features is None:
        video_features = i3d_feature_fn(device, batch_size)
    if fid_methods and image_features is None:
        image_features = inception_feature_fn(device)
    scored = [m for m in methods if m in set(fvd_methods) | set(fid_methods)]

    video: dict[str, list[np.ndarray]] = {name: [] for name in ["", *fvd_methods]}  # "" = ground truth
    image: dict[str, list[np.ndarray]] = {name: [] for name in ["", *fid_methods]}
    frames: list[int] | None = None
    n = max(n_fvd, n_fid)
    for start in tqdm(range(0, n, batch_size), desc="rFVD / FID features", disable=not progress):
        items = [clips[i] for i in range(start, min(start + batch_size, n))]
        batch = torch.stack([it["clip"] if isinstance(it, Mapping) else it for it in items]).float()
        if frames is None:
            frames = select_frames(batch.shape[2], fid_frames)
        k_fvd, k_fid = max(0, min(len(batch), n_fvd - start)), max(0, min(len(batch), n_fid - start))
        for name in ["", *scored]:
            x = batch if name == "" else methods[name](batch).float().cpu().clamp(-0.5, 0.5)
            if x.shape != batch.shape:
                raise ValueError(f"{name}: reconstruction shape {tuple(x.shape)} != clip shape {tuple(batch.shape)}")
            if k_fvd and name in video:
                video[name].append(np.asarray(video_features(x[:k_fvd]), dtype=np.float64))
            if k_fid and name in image:
                # (k, C, F, H, W) -> (k * F, C, H, W), clip-major
                sel = x[:k_fid, :, frames].transpose(1, 2).reshape(-1, *x.shape[1:2], *x.shape[3:])
                image[name].append(np.asarray(image_features(sel), dtype=np.float64))

    real_video = np.concatenate(video[""]) if n_fvd else None
    real_image = np.concatenate(image[""]) if n_fid else None
    rows = []
    for name in methods:
        row = {"method": name, "fvd": np.nan, "fvd_clips": None, "fid": np.nan, "fid_clips": None, "fid_images": None}
        if name in fvd_methods:
            row.update(fvd=frechet_distance(real_video, np.concatenate(video[name])), fvd_clips=n_fvd)
        if name in fid_methods:
            fake = np.concatenate(image[name])
            row.update(fid=frechet_distance(real_image, fake), fid_clips=n_fid, fid_images=len(fake))
        rows.append(row)
    table = pd.DataFrame(rows, columns=DISTANCE_COLUMNS)
    for col in ("fvd_clips", "fid_clips", "fid_images"):
        table[col] = table[col].astype("Int64")
    table[["fvd", "fid"]] = table[["fvd", "fid"]].astype(float)
    return table
