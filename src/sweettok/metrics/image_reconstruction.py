"""Scoring image reconstructions: PSNR, SSIM, LPIPS and rFID on held-out images, one row per method.

Methods are callables ``images (B, C, H, W) in [-0.5, 0.5] -> reconstructions (B, C, H, W)``
(a tokenizer, or a baseline). Reconstructions are clamped to [-0.5, 0.5] before scoring, as a
decoded image would be. The table has the columns of ``sweettok.schemas.ImageMetricsSchema``:

- ``psnr``: the PSNR of each image's MSE over its pixels and channels, averaged over images;
- ``ssim``: Gaussian-window SSIM (:func:`sweettok.metrics.image_quality.ssim`), averaged;
- ``lpips``: LPIPS (AlexNet), averaged;
- ``fid``: rFID, the Fréchet distance between Inception pool3 features of the held-out
  images and of their reconstructions (:func:`sweettok.metrics.fid.fid`), with ``fid_images``
  the count on each side. With a few hundred images it is biased upwards (the paper's 0.73
  is on 50,000 ImageNet images); compare methods on the same images only.

Baselines at comparable bits: :func:`image_baselines` wraps the first-frame baselines of
:mod:`sweettok.metrics.reconstruction` (the largest 8-bit thumbnail within a bit budget, and
the image through WebP/JPEG within it) for images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from sweettok.metrics.image_quality import frame_mse, psnr_of_mse, ssim
from sweettok.metrics.reconstruction import equal_bits_baselines
from sweettok.typed_params import FieldChecks, from_mapping

log = logging.getLogger(__name__)

__all__ = ["BEFORE", "AFTER", "IMAGE_METRIC_COLUMNS", "ImageEvaluationConfig", "OnImages", "image_baselines",
           "image_evaluation_methods", "image_figure", "log_image_table", "pick_examples", "reconstruct_images",
           "score_images"]

BEFORE = "SweetTok video tokenizer (before fine-tuning)"
AFTER = "SweetTok image tokenizer (after fine-tuning)"

ImageReconstructor = Callable[[torch.Tensor], torch.Tensor]

IMAGE_METRIC_COLUMNS = ["method", "kind", "tokens", "bits", "images", "psnr", "ssim", "lpips", "fid", "fid_images"]


class OnImages:
    """A clip reconstructor ``(B, C, T, H, W) -> same`` used on images ``(B, C, H, W)`` as one-frame
    clips; ``last_bits`` is the clip method's (bits it stored per image in the last call)."""

    def __init__(self, clip_method: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.clip_method = clip_method

    @property
    def last_bits(self) -> torch.Tensor | None:
        return getattr(self.clip_method, "last_bits", None)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip_method(images[:, :, None])[:, :, 0]


@dataclass(frozen=True)
class ImageEvaluationConfig(FieldChecks):
    """How held-out images are scored (``image_finetune.evaluation`` in the parameters).

    Attributes:
        batch_size: images per forward pass.
        fid: compute rFID (Inception pool3; about a second per 10 images on one CPU core).
        fid_images: rFID on this many held-out images, evenly spread over the held-out set
            (``None``: all). Inception's pass dominates the scoring time (0.2 s an image and
            method on 2 CPU cores); PSNR, SSIM and LPIPS always use every image.
        figure_images: held-out images shown in the figure (spread over the photographs).
        codec: Pillow codec of the equal-bits codec baseline (``auto``: WebP, or JPEG without WebP).
        codec_scales: side divisors the codec baseline tries (1 = full size).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``.
    """

    batch_size: int = 32
    fid: bool = True
    fid_images: int | None = None
    figure_images: int = 6
    codec: str = "auto"
    codec_scales: list = field(default_factory=lambda: [1, 2, 4])
    device: str = "auto"

    def __post_init__(self) -> None:
        self._check_int("batch_size", 1)
        self._check_int("figure_images", 1)
        if self.fid_images is not None:
            self._check_int("fid_images", 2)
        if not isinstance(self.fid, bool):
            self._fail("fid", f"must be true or false, got {self.fid!r}")
        if not isinstance(self.codec, str) or not self.codec:
            self._fail("codec", f"must be 'auto' or a Pillow format name, got {self.codec!r}")
        scales = self.codec_scales
        if (not isinstance(scales, (list, tuple)) or not scales
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in scales)):
            self._fail("codec_scales", f"must be a non-empty list of integers >= 1, got {scales!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "image_finetune.evaluation") -> "ImageEvaluationConfig":
        return from_mapping(cls, d, where)


def image_evaluation_methods(video, image, cfg: ImageEvaluationConfig, device: torch.device | str = "cpu"):
    """The scored methods: the video tokenizer on one-frame inputs (:data:`BEFORE`), the image
    tokenizer (:data:`AFTER`) and :func:`image_baselines` within their bits per image.

    Args:
        video: a ``VideoTokenizer``; image: an ``ImageTokenizer`` of the same architecture.

    Returns:
        (name -> reconstructor, name -> tokens per image, name -> bits per image).
    """
    from sweettok.models.tokenizer import ImageTokenizer, VideoTokenizer

    if not isinstance(video, VideoTokenizer) or not isinstance(image, ImageTokenizer):
        raise TypeError(f"expected a VideoTokenizer and an ImageTokenizer, got {type(video).__name__} and "
                        f"{type(image).__name__}")
    if video.cfg != image.cfg:
        raise ValueError("the image tokenizer's architecture differs from the video tokenizer's; it must be "
                         "fine-tuned from it")
    video.to(device).eval()
    image.to(device).eval()
    bits = image.sweettok.id_bits(1)
    tokens = image.cfg.num_latent_tokens(1)
    methods: dict[str, ImageReconstructor] = {BEFORE: lambda x: video(x)[:, :, 0], AFTER: image}
    methods.update(image_baselines(bits, "SweetTok", image.cfg.in_channels, image.cfg.resolution,
                                   codec=None if cfg.codec == "auto" else cfg.codec, scales=cfg.codec_scales))
    return methods, {BEFORE: tokens, AFTER: tokens}, {BEFORE: bits, AFTER: bits}


def log_image_table(table: pd.DataFrame) -> None:
    """One log line per method."""
    log.info("held-out images (%d):", int(table["images"].iloc[0]))
    log.info("  %-48s %6s %7s %7s %7s %7s %8s", "method", "tokens", "bits", "PSNR", "SSIM", "LPIPS", "rFID")
    for row in table.itertuples(index=False):
        log.info("  %-48s %6s %7.0f %7.2f %7.4f %7.4f %8s", row.method, "-" if pd.isna(row.tokens) else int(row.tokens),
                 row.bits, row.psnr, row.ssim, row.lpips, "-" if pd.isna(row.fid) else f"{row.fid:.1f}")


def image_baselines(bits: float, label: str, channels: int, side: int, codec: str | None = None,
                    scales: Sequence[int] = (1, 2, 4)) -> dict[str, OnImages]:
    """Image baselines that store at most ``bits`` per image, named after ``label``
    (``thumbnail 5x5 @ 600 bits (= SweetTok)``, ``WebP frame 0 @ <=707 bits (= SweetTok)``):
    :func:`sweettok.metrics.reconstruction.equal_bits_baselines` on one-frame clips."""
    return {name.replace("frame 0 ", "image "): OnImages(m)
            for name, m in equal_bits_baselines(bits, label, channels, max_side=side, codec=codec,
                                                scales=scales).items()}


@torch.no_grad()
def reconstruct_images(method: ImageReconstructor, images: torch.Tensor, batch_size: int = 32,
                       device: torch.device | str = "cpu") -> tuple[torch.Tensor, float | None]:
    """``method`` over ``images`` ``(N, C, H, W)`` in batches: (reconstructions ``(N, C, H, W)`` on
    the CPU, clamped to [-0.5, 0.5]; mean measured bits per image, when the method reports them)."""
    out, used = [], []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        r = method(x)
        if r.shape != x.shape:
            raise ValueError(f"reconstruction shape {tuple(r.shape)} != image shape {tuple(x.shape)}")
        out.append(r.float().clamp(-0.5, 0.5).cpu())
        bits = getattr(method, "last_bits", None)
        if bits is not None:
            used.append(bits.double().cpu())
    return torch.cat(out), (float(torch.cat(used).mean()) if used else None)


def spread_indices(n: int, k: int | None) -> torch.Tensor:
    """``min(k, n)`` distinct indices evenly spread over ``range(n)`` (all of them when ``k`` is None)."""
    if k is None or k >= n:
        return torch.arange(n)
    return torch.linspace(0, n - 1, k).round().long()


@torch.no_grad()
def score_images(methods: Mapping[str, ImageReconstructor], images: torch.Tensor, *,
                 tokens: Mapping[str, int | None] | None = None, bits: Mapping[str, float] | None = None,
                 fid: bool = True, fid_images: int | None = None, batch_size: int = 32,
                 lpips: torch.nn.Module | None = None,
                 device: torch.device | str = "cpu", inception: torch.nn.Module | None = None,
                 progress: bool = True) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """Scores of each method on ``images``.

    Args:
        methods: name -> reconstructor ``(B, C, H, W) -> (B, C, H, W)``.
        images: held-out images ``(N, C, H, W)`` float in [-0.5, 0.5], ``N >= 2`` for rFID.
        tokens: latent tokens per image of each tokenizer; a method with a count is a
            ``tokenizer`` row, one without a ``baseline`` row.
        bits: bits per image of each method (a method's measured ``last_bits`` take precedence).
        fid: compute rFID (loads the Inception network once).
        fid_images: rFID on this many images evenly spread over ``images`` (``None``: all).
        lpips: an LPIPS module to reuse (else ``LPIPS("alex")``).

    Returns:
        (the table of :data:`IMAGE_METRIC_COLUMNS`, methods in the given order; the
        reconstructions by method name, ``(N, C, H, W)`` on the CPU).
    """
    from tqdm.auto import tqdm

    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if lpips is None:
        from sweettok.metrics.perceptual import LPIPS

        lpips = LPIPS()
    lpips = lpips.to(device)
    tokens, bits = dict(tokens or {}), dict(bits or {})
    real_stats = None
    if fid:
        from sweettok.metrics.fid import inception_features, load_inception
        from sweettok.metrics.frechet import FeatureStats

        inception = inception if inception is not None else load_inception(device)
        fid_pick = spread_indices(len(images), fid_images)
        real_stats = FeatureStats.of(inception_features(images[fid_pick], model=inception, device=device,
                                                        progress=False))
    rows, recons = [], {}
    for name, method in tqdm(methods.items(), desc="scoring images", disable=not progress):
        recon, measured = reconstruct_images(method, images, batch_size, device)
        recons[name] = recon
        per_image = [[], [], []]
        for start in range(0, len(images), batch_size):
            x, r = images[start:start + batch_size].to(device), recon[start:start + batch_size].to(device)
            per_image[0].append(psnr_of_mse(frame_mse(r, x)).double().flatten().cpu())
            per_image[1].append(ssim(r, x).double().flatten().cpu())
            per_image[2].append(lpips(r, x).double().flatten().cpu())
        psnr, ssim_value, lpips_value = (float(torch.cat(v).mean()) for v in per_image)
        fid_value = fid_count = None
        if fid:
            from sweettok.metrics.fid import fid as fid_of

            result = fid_of(real_stats, recon[fid_pick], model=inception, batch_size=batch_size, device=device,
                            progress=False)
            fid_value, fid_count = result.value, result.fake_images
        n_tokens = tokens.get(name)
        rows.append({"method": name, "kind": "tokenizer" if n_tokens is not None else "baseline",
                     "tokens": n_tokens, "bits": measured if measured is not None else bits.get(name),
                     "images": len(images), "psnr": psnr, "ssim": ssim_value, "lpips": lpips_value,
                     "fid": fid_value, "fid_images": fid_count})
    table = pd.DataFrame(rows, columns=IMAGE_METRIC_COLUMNS)
    for col in ("tokens", "fid_images"):
        table[col] = table[col].astype("Int64")
    for col in ("bits", "fid"):
        table[col] = table[col].astype(float)
    return table, recons


def pick_examples(origins: Sequence[str], n: int) -> list[int]:
    """``n`` indices spread over the images, taking each origin (photograph) in turn before repeating one."""
    by_origin: dict[str, list[int]] = {}
    for i, o in enumerate(origins):
        by_origin.setdefault(o, []).append(i)
    # from each origin, its middle image first, then the rest spread out
    queues = [sorted(ix, key=lambda i, ix=ix: abs(ix.index(i) - len(ix) // 2)) for ix in by_origin.values()]
    picks: list[int] = []
    while len(picks) < min(n, len(origins)):
        for q in queues:
            if q and len(picks) < n:
                picks.append(q.pop(0))
    return picks


def image_figure(images: torch.Tensor, recons: Mapping[str, torch.Tensor], picks: Sequence[int],
                 titles: Sequence[str] | None = None):
    """Originals, each method's reconstructions and their difference maps for the images ``picks``.

    Rows: the originals, then per method its reconstructions and its per-pixel error
    ``mean over channels |reconstruction - original|`` (in [0, 1] of the 8-bit range), every
    difference map on one shared colour scale (0 to the largest error shown, one colour bar).

    Args:
        images: ``(N, C, H, W)`` in [-0.5, 0.5]; recons: name -> ``(N, C, H, W)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = list(picks)
    diffs = {name: (r[picks] - images[picks]).abs().mean(1).numpy() for name, r in recons.items()}
    vmax = float(max(np.max(d) for d in diffs.values())) if diffs else 1.0
    rows = 1 + 2 * len(recons)
    fig, axes = plt.subplots(rows, len(picks), figsize=(1.4 * len(picks) + 1.2, 1.45 * rows), squeeze=False)
    show = lambda x: (x.permute(1, 2, 0) + 0.5).clamp(0, 1).numpy()  # noqa: E731
    image_artist = None
    for c, i in enumerate(picks):
        axes[0, c].imshow(show(images[i]))
        if titles is not None:
            axes[0, c].set_title(titles[c], fontsize=6)
        for m, name in enumerate(recons):
            axes[1 + 2 * m, c].imshow(show(recons[name][i]))
            image_artist = axes[2 + 2 * m, c].imshow(diffs[name][c], cmap="magma", vmin=0.0, vmax=vmax)
    labels = ["original"] + [lab for name in recons for lab in (name, "|difference|")]
    for r, label in enumerate(labels):
        axes[r, 0].set_ylabel(label, fontsize=6, rotation=0 if label == "|difference|" else 90,
                              ha="right" if label == "|difference|" else "center")
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    if image_artist is not None:
        bar = fig.add_axes((0.92, 0.1, 0.015, 0.8))
        fig.colorbar(image_artist, cax=bar, label="mean |error| over RGB (one scale for every map)")
    return fig
