"""Fréchet Video Distance with the original FVD's network, embedding and preprocessing.

Protocol of the original (``frechet_video_distance.py`` of Unterthiner et al.):

- **Preprocessing**: frames resized to 224x224 with TensorFlow 1's ``resize_bilinear``
  (``align_corners=False`` and no half-pixel centres: output pixel ``i`` samples source
  coordinate ``i * in / out``; no antialiasing), then ``[0, 255] -> [-1, 1]``.
  :func:`preprocess` does the same by default (``interpolation="tf-bilinear"``) so that our
  numbers are computed like published FVDs; ``"bilinear"`` (torch's half-pixel-centred
  bilinear, also without antialiasing) is available for comparison with torch-based FVD code.
- **Embedding**: the original embeds each clip with the tensor ``RGB/inception_i3d/Mean:0`` of
  the TF-Hub ``i3d-kinetics-400/1`` module, i.e. the 400 Kinetics logits averaged over time
  (before softmax), which is also the module's default output. :func:`fvd` uses those
  (``embedding="logits"``); ``embedding="features"`` uses the 1024-d pooled features instead
  (not comparable with published FVD values).
- **Distance**: Fréchet distance of Gaussians fitted to the two embedding sets, in float64
  (:mod:`sweettok.metrics.frechet`). FVD from few clips is biased upwards, so the clip counts
  are part of every result.

Clip layouts accepted here: the project's float clips ``(B, C, T, H, W)`` in ``[-0.5, 0.5]``
(``C = 3``), or ``uint8`` clips ``(B, T, H, W, C)`` in ``[0, 255]`` (the original FVD's layout,
handy for frames read straight from video files). Single clips without the batch dimension
are accepted where an iterable of clips is. The I3D needs at least 9 frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sweettok.metrics.frechet import FeatureStats, frechet_distance
from sweettok.metrics.i3d import FEATURE_DIM, I3D, INPUT_SIZE, NUM_CLASSES, load_i3d

__all__ = ["FVDResult", "preprocess", "tf_resize_bilinear", "i3d_features", "fvd", "load_i3d", "DEFAULT_EMBEDDING"]

Embedding = Literal["logits", "features"]
Interpolation = Literal["tf-bilinear", "bilinear"]
DEFAULT_EMBEDDING: Embedding = "logits"
_EMBEDDING_DIM = {"logits": NUM_CLASSES, "features": FEATURE_DIM}


@dataclass(frozen=True)
class FVDResult:
    """An FVD value with the number of clips on each side (small counts bias it upwards).

    Attributes:
        value: the Fréchet distance (>= 0, unitless, in squared embedding units).
        real_clips: clips (or feature vectors) behind the real statistics.
        fake_clips: the same for the generated / reconstructed side.
        embedding: ``"logits"`` (400-d, the original FVD) or ``"features"`` (1024-d); for
            precomputed features, the one their dimension implies (``"other"`` if neither).
    """

    value: float
    real_clips: int
    fake_clips: int
    embedding: str = DEFAULT_EMBEDDING

    def __str__(self) -> str:
        return f"FVD {self.value:.2f} ({self.real_clips} real / {self.fake_clips} fake clips, I3D {self.embedding})"


# ---------------------------------------------------------------------------- resizing
def _tf_axis_weights(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices ``lo``, ``hi`` and weight of ``hi`` for TF1 legacy bilinear along one axis."""
    scale = n_in / n_out
    src = torch.arange(n_out, dtype=torch.float64, device=device) * scale
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo, hi, (src - lo).to(torch.float32)


def tf_resize_bilinear(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1 ``tf.image.resize_bilinear`` (``align_corners=False``, legacy pixel grid).

    Args:
        frames: ``(..., H, W)`` float tensor.
        size: ``(out_h, out_w)``.

    Returns:
        ``(..., out_h, out_w)``: output pixel ``(i, j)`` interpolates the source at
        ``(i * H / out_h, j * W / out_w)`` between its floor and the next pixel (clamped at the
        last one); no antialiasing, so a 2x reduction picks every other pixel.
    """
    h, w = frames.shape[-2:]
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return frames
    r_lo, r_hi, r_w = _tf_axis_weights(h, out_h, frames.device)
    c_lo, c_hi, c_w = _tf_axis_weights(w, out_w, frames.device)
    rows = frames[..., r_lo, :] * (1 - r_w[:, None]) + frames[..., r_hi, :] * r_w[:, None]
    return rows[..., c_lo] * (1 - c_w) + rows[..., c_hi] * c_w


def preprocess(clips: torch.Tensor | np.ndarray, *, size: int = INPUT_SIZE,
               interpolation: Interpolation = "tf-bilinear") -> torch.Tensor:
    """Project clips -> I3D input.

    Args:
        clips: float ``(B, 3, T, H, W)`` in ``[-0.5, 0.5]`` (values outside are clamped, as
            writing them to an 8-bit video would; they are not rounded), or ``uint8``
            ``(B, T, H, W, 3)`` in ``[0, 255]``.
        size: output height and width (the I3D takes 224).
        interpolation: ``"tf-bilinear"`` (the original FVD's TF1 ``resize_bilinear``, default)
            or ``"bilinear"`` (torch, half-pixel centres, no antialiasing).

    Returns:
        ``(B, 3, T, size, size)`` float32 in ``[-1, 1]``, on the input's device.
    """
    x = torch.as_tensor(clips)
    if x.ndim != 5:
        raise ValueError("clips must be 5-D: float (B, C, T, H, W) or uint8 (B, T, H, W, C), "
                         f"got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        if x.shape[-1] != 3:
            raise ValueError(f"uint8 clips must be (B, T, H, W, 3), got shape {tuple(x.shape)}")
        x = x.permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5
    elif x.is_floating_point():
        if x.shape[1] != 3:
            raise ValueError(f"float clips must be (B, 3, T, H, W) in [-0.5, 0.5], got shape {tuple(x.shape)}")
        x = x.float().clamp(-0.5, 0.5)
    else:
        raise ValueError(f"clips must be float in [-0.5, 0.5] or uint8 in [0, 255], got dtype {x.dtype}")
    b, c, t, h, w = x.shape
    if (h, w) != (size, size):
        if interpolation == "tf-bilinear":
            x = tf_resize_bilinear(x, (size, size))
        elif interpolation == "bilinear":
            frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
            x = frames.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)
        else:
            raise ValueError(f"interpolation must be 'tf-bilinear' or 'bilinear', got {interpolation!r}")
    return 2.0 * x  # [-0.5, 0.5] -> [-1, 1]


# ---------------------------------------------------------------------------- features
def _as_batch(item: torch.Tensor | np.ndarray) -> torch.Tensor:
    """One clip or a batch of clips, as a 5-D tensor (layout kept)."""
    t = torch.as_tensor(item)
    if t.ndim == 4:
        return t[None]
    if t.ndim != 5:
        raise ValueError(f"expected a clip (4-D) or a batch of clips (5-D), got shape {tuple(t.shape)}")
    return t


def _batches(clips: Iterable, batch_size: int) -> Iterator[torch.Tensor]:
    """Regroup clips / batches of clips of any size into batches of ``batch_size``."""
    if isinstance(clips, (torch.Tensor, np.ndarray)):
        whole = _as_batch(clips)
        for i in range(0, whole.shape[0], batch_size):
            yield whole[i : i + batch_size]
        return
    pending: list[torch.Tensor] = []
    count = 0
    for item in clips:
        batch = _as_batch(item)
        pending.append(batch)
        count += batch.shape[0]
        while count >= batch_size:
            joined = torch.cat(pending)
            yield joined[:batch_size]
            rest = joined[batch_size:]
            pending, count = ([rest] if rest.shape[0] else []), rest.shape[0]
    if count:
        yield torch.cat(pending)


def _clip_count(clips) -> int | None:
    if isinstance(clips, (torch.Tensor, np.ndarray)):
        return _as_batch(clips).shape[0]
    try:
        return len(clips)  # a list of single clips; None for generators and loaders of batches
    except TypeError:
        return None


def i3d_features(clips: torch.Tensor | np.ndarray | Iterable, *, model: I3D | None = None, batch_size: int = 8,
                 device: str | torch.device | None = None, progress: bool = True,
                 embedding: Embedding = DEFAULT_EMBEDDING, interpolation: Interpolation = "tf-bilinear") -> np.ndarray:
    """I3D embeddings of clips.

    Args:
        clips: a tensor/array of clips, or an iterable of clips or batches of clips (e.g. a
            DataLoader), in either layout of :func:`preprocess`; any frame size, >= 9 frames.
        model: a loaded I3D (default: :func:`load_i3d` on ``device``).
        batch_size: clips per forward pass.
        device: ``None``: the model's device, else CUDA when available, else CPU.
        progress: show a progress bar over clips.
        embedding: ``"logits"`` (400-d, the original FVD's) or ``"features"`` (1024-d pooled).
        interpolation: see :func:`preprocess`.

    Returns:
        ``(N, 400)`` or ``(N, 1024)`` float32 numpy array, one row per clip, in input order.
    """
    if embedding not in _EMBEDDING_DIM:
        raise ValueError(f"embedding must be 'logits' or 'features', got {embedding!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if model is None:
        model = load_i3d(device)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    if next(model.parameters()).device != dev:
        model = model.to(dev)
    out: list[np.ndarray] = []
    with tqdm(total=_clip_count(clips), desc=f"I3D {embedding}", unit="clip", disable=not progress) as bar:
        for batch in _batches(clips, batch_size):
            x = preprocess(batch.to(dev), interpolation=interpolation)
            with torch.inference_mode():
                logits, features = model(x)
            chosen = logits if embedding == "logits" else features
            out.append(chosen.float().cpu().numpy())
            bar.update(x.shape[0])
    if not out:
        raise ValueError("no clips given")
    return np.concatenate(out)


def _embedding_of_dim(dim: int) -> str:
    return {v: k for k, v in _EMBEDDING_DIM.items()}.get(dim, "other")


def _stats(side, name: str, embed) -> FeatureStats:
    if isinstance(side, FeatureStats):
        return side
    if isinstance(side, np.ndarray) and side.ndim == 2:
        return FeatureStats.of(side)
    if isinstance(side, torch.Tensor) and side.ndim == 2:
        return FeatureStats.of(side.detach().cpu().numpy())
    feats = embed(side)
    if feats.shape[0] < 2:
        raise ValueError(f"FVD needs at least 2 {name} clips, got {feats.shape[0]}")
    return FeatureStats.of(feats)


def fvd(real, fake, *, model: I3D | None = None, batch_size: int = 8, device: str | torch.device | None = None,
        progress: bool = True, embedding: Embedding = DEFAULT_EMBEDDING,
        interpolation: Interpolation = "tf-bilinear") -> FVDResult:
    """Fréchet Video Distance between two sets of clips.

    Args:
        real, fake: each either clips (anything :func:`i3d_features` takes: 5-D tensor/array
            or an iterable), an ``(N, D)`` array/tensor of precomputed embeddings, or a
            :class:`FeatureStats`. At least 2 clips per side; use hundreds for numbers
            comparable across papers.
        model, batch_size, device, progress, embedding, interpolation: see :func:`i3d_features`.

    Returns:
        :class:`FVDResult` with the value and both clip counts.
    """
    loaded: dict[str, I3D] = {}

    def embed(clips) -> np.ndarray:
        if model is None and "m" not in loaded:
            loaded["m"] = load_i3d(device)
        net = model if model is not None else loaded["m"]
        return i3d_features(clips, model=net, batch_size=batch_size, device=device, progress=progress,
                            embedding=embedding, interpolation=interpolation)

    sr = _stats(real, "real", embed)
    sf = _stats(fake, "fake", embed)
    dim = sr.mean.shape[0]
    return FVDResult(value=frechet_distance(sr, sf), real_clips=sr.count, fake_clips=sf.count,
                     embedding=_embedding_of_dim(dim))
