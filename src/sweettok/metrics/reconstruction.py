"""Scoring reconstructions of held-out clips, and the baselines they are scored against.

Methods are plain callables ``clip batch (B, C, T, H, W) -> reconstruction`` so that
tokenizers and trivial baselines are scored by the same code on the same clips. A method
that knows what it stored per clip sets ``last_bits`` (a ``(B,)`` tensor) on each call
(:class:`FirstFrameThumbnail`, :class:`FirstFrameCodec`); :func:`score_reconstructions`
reports the mean in its ``bits`` column.

Every table scores two frame ranges (:func:`frame_ranges`): frames ``1..T-1``, which leave
out frame 0 so that a method that copies the first frame cannot live off it, and all
frames. ``psnr`` is the PSNR of each clip's MSE over the selected frames (then the mean
over clips); ``psnr_frame_mean`` is the mean of per-frame PSNRs (each floored at
``PSNR_MAX_DB``), the older convention, where an exact frame 0 counts as 100 dB.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from sweettok.metrics.image_codec import codec_label, default_codec, encode_frame_within
from sweettok.metrics.image_quality import frame_mse, psnr_of_mse, ssim

Reconstructor = Callable[[torch.Tensor], torch.Tensor]

SCORE_COLUMNS = ["method", "frames", "tokens", "bits", "psnr", "psnr_frame_mean", "ssim", "lpips",
                 "flat_fallback_clips"]
"""Columns of :func:`score_reconstructions`' long table."""


def frame_ranges(frames: int) -> dict[str, slice]:
    """The scored frame ranges of ``frames``-frame clips: ``"1-<T-1>"`` (without frame 0) and ``"all"``.

    One-frame clips (images) have only ``"all"``; two-frame clips name the first range ``"1"``.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    ranges: dict[str, slice] = {}
    if frames >= 2:
        ranges["1" if frames == 2 else f"1-{frames - 1}"] = slice(1, frames)
    ranges["all"] = slice(0, frames)
    return ranges


def first_frame_baseline(clip: torch.Tensor) -> torch.Tensor:
    """Every frame is the clip's first frame."""
    return clip[:, :, :1].expand_as(clip)


def mean_frame_baseline(clip: torch.Tensor) -> torch.Tensor:
    """Every frame is the clip's mean frame."""
    return clip.mean(dim=2, keepdim=True).expand_as(clip)


def _quantize8(x: torch.Tensor) -> torch.Tensor:
    """Values in [-0.5, 0.5] rounded to the 8-bit grid ``k / 255 - 0.5``."""
    return ((x + 0.5) * 255.0).round().clamp(0, 255) / 255.0 - 0.5


class FirstFrameThumbnail:
    """Every frame is the clip's first frame stored at ``size x size`` and upsampled again.

    The thumbnail is the area average of the first frame (adaptive average pooling, so any
    size up to the frame's side works), rounded to 8 bits a channel; decoding is bilinear.
    It takes ``size * size * C * 8`` bits per clip (:meth:`bits`, and ``last_bits`` after
    each call), which makes it a yardstick for what a given number of bits of the first
    frame is worth.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"thumbnail size must be >= 1, got {size}")
        self.size = size
        self.last_bits: torch.Tensor | None = None

    def bits(self, channels: int = 3) -> int:
        return self.size * self.size * channels * 8

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        first = clip[:, :, 0].float()
        height, width = first.shape[-2:]
        if self.size > min(height, width):
            raise ValueError(f"thumbnail size {self.size} exceeds the frame size {height} x {width}")
        small = _quantize8(F.adaptive_avg_pool2d(first, self.size))
        up = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
        self.last_bits = torch.full((clip.shape[0],), float(self.bits(clip.shape[1])))
        return up.unsqueeze(2).expand_as(clip)


def thumbnail_size_for_bits(bits: float, channels: int = 3, max_side: int | None = None) -> int:
    """Largest ``s`` with ``s * s * channels * 8 <= bits`` (at most ``max_side``); 0 when not even 1 x 1 fits."""
    # s * s <= floor(bits / (8 C)) exactly when s * s * 8 C <= bits, since s * s is an integer
    s = math.isqrt(max(int(bits // (channels * 8)), 0))
    return min(s, max_side) if max_side is not None else s


class FirstFrameCodec:
    """Every frame is the clip's first frame sent through a real image codec within ``max_bits``.

    Per clip, :func:`sweettok.metrics.image_codec.encode_frame_within`: the highest quality
    whose whole file fits, at each of ``scales`` (side divisors, upsampled bilinearly after
    decoding), keeping the scale with the lowest frame-0 MSE; the mean colour (``8 * C``
    bits) when nothing fits. After each call ``last_bits`` (``(B,)``, the bits actually
    sent) and ``last_flat`` (``(B,)`` bool, the clips that got the flat colour) describe the
    batch; ``choices`` counts ``(scale, quality)`` over all calls (scale 0 = flat colour).
    """

    def __init__(self, max_bits: float, codec: str | None = None, scales: Sequence[int] = (1, 2, 4)) -> None:
        if max_bits <= 0:
            raise ValueError(f"max_bits must be > 0, got {max_bits}")
        self.max_bits = float(max_bits)
        self.codec = (codec or default_codec()).upper()
        self.label = codec_label(self.codec)
        self.scales = tuple(scales)
        self.last_bits: torch.Tensor | None = None
        self.last_flat: torch.Tensor | None = None
        self.choices: Counter = Counter()

    @torch.no_grad()
    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        encoded = [encode_frame_within(clip[i, :, 0], self.max_bits, self.codec, self.scales)
                   for i in range(clip.shape[0])]
        self.last_bits = torch.tensor([float(e.bits) for e in encoded])
        self.last_flat = torch.tensor([e.flat for e in encoded])
        self.choices.update((e.scale, e.quality) for e in encoded)
        frames = torch.stack([e.frame for e in encoded]).to(clip.dtype)
        return frames.unsqueeze(2).expand_as(clip)


def thumbnail_name(size: int, channels: int = 3, label: str | None = None) -> str:
    """``thumbnail 8x8 @ 1536 bits``, with `` (= <label>)`` for an equal-bits row."""
    name = f"thumbnail {size}x{size} @ {size * size * channels * 8} bits"
    return f"{name} (= {label})" if label else name


def equal_bits_baselines(bits: float, label: str, channels: int = 3, max_side: int | None = None,
                         codec: str | None = None, scales: Sequence[int] = (1, 2, 4)) -> dict[str, Reconstructor]:
    """First-frame baselines that may spend at most ``bits`` per clip, named after ``label``.

    Args:
        bits: the budget per clip, e.g. a tokenizer's id information.
        label: what the budget equals, e.g. ``"SweetTok"``.
        channels: channels of the clips.
        max_side: the frame's shorter side (caps the thumbnail).
        codec, scales: as for :class:`FirstFrameCodec`.

    Returns:
        name -> reconstructor: the largest 8-bit first-frame thumbnail within ``bits``
        (``thumbnail 9x9 @ 1944 bits (= SweetTok)``; left out if not even 1 x 1 fits) and
        frame 0 through the codec (``WebP frame 0 @ <=2116 bits (= SweetTok)``), each
        repeated over all frames. Both set ``last_bits``.
    """
    out: dict[str, Reconstructor] = {}
    size = thumbnail_size_for_bits(bits, channels, max_side)
    if size >= 1:
        out[thumbnail_name(size, channels, label)] = FirstFrameThumbnail(size)
    codec_method = FirstFrameCodec(bits, codec, scales)
    out[f"{codec_method.label} frame 0 @ <={int(bits)} bits (= {label})"] = codec_method
    return out


@torch.no_grad()
def score_reconstructions(methods: Mapping[str, Reconstructor],
                          clips: Sequence[torch.Tensor] | torch.utils.data.Dataset,
                          tokens: Mapping[str, int | None] | None = None,
                          bits: Mapping[str, float | None] | None = None, *, batch_size: int = 8,
                          lpips_net: str = "alex", lpips: torch.nn.Module | None = None,
                          progress: bool = True) -> pd.DataFrame:
    """Scores of each method over all clips, on each frame range, in one pass over the clips.

    Args:
        methods: name -> reconstructor ``(B, C, T, H, W) -> (B, C, T, H, W)``.
        clips: clips ``(C, T, H, W)`` in [-0.5, 0.5], or a dataset whose items have ``clip``;
            all of one length ``T``.
        tokens: latent tokens per clip of each method (missing / None for non-tokenizers).
        bits: bits per clip of each method; a method's measured ``last_bits`` take precedence.
        lpips: an LPIPS module to reuse (else one ``LPIPS(lpips_net)`` is built).

    Returns:
        the long table :data:`SCORE_COLUMNS`: one row per method and frame range
        (:func:`frame_ranges`, ``1-<T-1>`` first), methods in the given order. ``psnr``:
        mean over clips of the PSNR of the clip's MSE over the range; ``psnr_frame_mean``:
        mean of per-frame PSNRs; ``ssim``, ``lpips``: means over frames and clips;
        ``flat_fallback_clips``: clips a codec sent as a flat colour (else empty).
        Reconstructions are clamped to [-0.5, 0.5] before scoring, as a decoded video would be.
    """
    from tqdm.auto import tqdm

    if lpips is None:
        from sweettok.metrics.perceptual import LPIPS

        lpips = LPIPS(lpips_net)
    tokens, bits = dict(tokens or {}), dict(bits or {})
    ranges: dict[str, slice] | None = None
    sums: dict[tuple[str, str], torch.Tensor] = {}
    measured = {name: [0.0, 0] for name in methods}
    flat: dict[str, int | None] = {name: None for name in methods}
    n = 0
    for start in tqdm(range(0, len(clips), batch_size), desc="scoring reconstructions", disable=not progress):
        items = [clips[i] for i in range(start, min(start + batch_size, len(clips)))]
        batch = torch.stack([it["clip"] if isinstance(it, Mapping) else it for it in items]).float()
        b, c, t, h, w = batch.shape
        if ranges is None:
            ranges = frame_ranges(t)
            sums = {(name, r): torch.zeros(4, dtype=torch.float64) for name in methods for r in ranges}
        ref_frames = batch.transpose(1, 2).reshape(b * t, c, h, w)
        # the test clips' LPIPS features once per batch, for every method (a plain module: none)
        ref_lpips = {"reference": lpips.reference(ref_frames)} if hasattr(lpips, "reference") else {}
        for name, method in methods.items():
            recon = method(batch).clamp(-0.5, 0.5)
            if recon.shape != batch.shape:
                raise ValueError(f"{name}: reconstruction shape {tuple(recon.shape)} != clip shape {tuple(batch.shape)}")
            used = getattr(method, "last_bits", None)
            if used is not None:
                measured[name][0] += float(used.double().sum())
                measured[name][1] += len(used)
            if getattr(method, "last_flat", None) is not None:
                flat[name] = (flat[name] or 0) + int(method.last_flat.sum())
            frames = recon.transpose(1, 2).reshape(b * t, c, h, w)
            mse = frame_mse(recon, batch).double()  # (B, T)
            per_frame_ssim = ssim(frames, ref_frames).double().reshape(b, t)
            per_frame_lpips = lpips(frames, ref_frames, **ref_lpips).double().reshape(b, t)
            for r, sl in ranges.items():
                scores = torch.stack([psnr_of_mse(mse[:, sl].mean(dim=1)), psnr_of_mse(mse[:, sl]).mean(dim=1),
                                      per_frame_ssim[:, sl].mean(dim=1), per_frame_lpips[:, sl].mean(dim=1)])
                sums[name, r] += scores.sum(dim=1)
        n += b
    if n == 0:
        raise ValueError("no clips to score")
    rows = []
    for r in ranges:
        for name in methods:
            s = sums[name, r] / n
            total, count = measured[name]
            rows.append({"method": name, "frames": r, "tokens": tokens.get(name),
                         "bits": total / count if count else bits.get(name),
                         "psnr": float(s[0]), "psnr_frame_mean": float(s[1]), "ssim": float(s[2]),
                         "lpips": float(s[3]), "flat_fallback_clips": flat[name]})
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    table["tokens"] = table["tokens"].astype("Int64")
    table["bits"] = table["bits"].astype(float)
    table["flat_fallback_clips"] = table["flat_fallback_clips"].astype("Int64")
    return table
