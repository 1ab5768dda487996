"""One frame through a real image codec under a bit budget: WebP via Pillow (JPEG where Pillow lacks WebP).

This is the yardstick "what would a standard still-image codec make of the same number of
bits": the frame is encoded at the highest quality whose *whole encoded file* (container
and headers included) fits the budget, at several encode scales, and the encoder keeps the
candidate with the lowest error against its own source (a rate-distortion choice any
encoder may make, since it sees the frame it encodes).

Frames are float ``(C, H, W)`` in ``[-0.5, 0.5]`` with ``C`` 1 or 3; they are stored as
8-bit pixels ``round((x + 0.5) * 255)``, which is exact for frames read from the clip cache.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, features

QUALITY_RANGE = (0, 100)
"""Pillow's quality scale for both WebP and JPEG."""


def default_codec() -> str:
    """``"WEBP"`` when Pillow was built with WebP support, else ``"JPEG"``."""
    return "WEBP" if features.check("webp") else "JPEG"


def codec_label(codec: str) -> str:
    """Human name of a Pillow format for tables: ``WebP``, ``JPEG (Pillow lacks WebP)``."""
    codec = codec.upper()
    if codec == "WEBP":
        return "WebP"
    if codec == "JPEG":
        return "JPEG" if features.check("webp") else "JPEG (Pillow lacks WebP)"
    raise ValueError(f"unsupported codec {codec!r}: use WEBP or JPEG")


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` in ``[-0.5, 0.5]`` -> ``(H, W, C)`` uint8 (``(H, W)`` for one channel)."""
    if frame.ndim != 3 or frame.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) frame with 1 or 3 channels, got shape {tuple(frame.shape)}")
    u = ((frame.float() + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return u[..., 0] if u.shape[-1] == 1 else u


def from_uint8(image: np.ndarray, channels: int) -> torch.Tensor:
    """``(H, W[, C])`` uint8 -> ``(C, H, W)`` float in ``[-0.5, 0.5]``."""
    t = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).float() / 255.0 - 0.5
    t = t[..., None] if t.ndim == 2 else t
    return t.permute(2, 0, 1)[:channels].contiguous()


def encode(image: np.ndarray, codec: str, quality: int) -> bytes:
    """The whole encoded file of a uint8 image. WebP uses Pillow's slowest, best ``method=6``; JPEG
    optimises its Huffman tables."""
    buf = io.BytesIO()
    codec = codec.upper()
    if codec == "WEBP":
        Image.fromarray(image).save(buf, format="WEBP", quality=int(quality), method=6)
    elif codec == "JPEG":
        Image.fromarray(image).save(buf, format="JPEG", quality=int(quality), optimize=True)
    else:
        raise ValueError(f"unsupported codec {codec!r}: use WEBP or JPEG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    """Encoded file -> uint8 ``(H, W[, C])`` as Pillow decodes it."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L" if im.mode == "L" else "RGB"))


def highest_quality_within(encode_at: Callable[[int], bytes], max_bytes: int,
                           qualities: tuple[int, int] = QUALITY_RANGE) -> tuple[int, bytes] | None:
    """Binary search for the highest quality whose encoding is at most ``max_bytes``.

    The search assumes size grows with quality (true of WebP and JPEG up to small wiggles);
    whatever it returns was measured to fit, so a wiggle can only cost quality, never the
    budget.

    Returns:
        ``(quality, data)``, or None when even the lowest quality is over budget.
    """
    lo, hi = qualities
    data = encode_at(lo)
    if len(data) > max_bytes:
        return None
    best = (lo, data)
    a, b = lo + 1, hi
    while a <= b:
        mid = (a + b) // 2
        data = encode_at(mid)
        if len(data) <= max_bytes:
            best, a = (mid, data), mid + 1
        else:
            b = mid - 1
    return best


@dataclass(frozen=True)
class EncodedFrame:
    """One frame as the receiver gets it.

    Attributes:
        frame: decoded ``(C, H, W)`` float in ``[-0.5, 0.5]`` at the source size.
        bits: size of what was sent (the whole encoded file; ``8 * C`` for a flat colour).
        scale: encode side divisor (1 = full size); 0 for the flat-colour fallback.
        quality: codec quality, None for the fallback.
        mse: squared error against the source frame.
    """

    frame: torch.Tensor
    bits: int
    scale: int
    quality: int | None
    mse: float

    @property
    def flat(self) -> bool:
        return self.scale == 0


def flat_frame(frame: torch.Tensor, max_bits: float) -> EncodedFrame:
    """The frame's mean colour as 8 bits a channel (``8 * C`` bits), or mid-grey (0 bits) below that."""
    c = frame.shape[0]
    if max_bits >= 8 * c:
        mean = ((frame.float().mean(dim=(1, 2)) + 0.5) * 255.0).round().clamp(0, 255) / 255.0 - 0.5
        bits = 8 * c
    else:
        mean, bits = torch.zeros(c), 0
    out = mean[:, None, None].expand_as(frame).contiguous()
    return EncodedFrame(out, bits, 0, None, float((out - frame.float()).pow(2).mean()))


def encode_frame_within(frame: torch.Tensor, max_bits: float, codec: str | None = None,
                        scales: Sequence[int] = (1, 2, 4)) -> EncodedFrame:
    """The best reconstruction of ``frame`` that the codec can send in at most ``max_bits``.

    For each scale ``s`` the frame is area-averaged to ``round(H / s) x round(W / s)``,
    stored as 8-bit, encoded at the highest quality that fits, decoded and upsampled
    bilinearly to ``H x W``; the candidate with the lowest MSE against ``frame`` wins. When
    no scale fits even at the lowest quality, the frame's mean colour is sent instead
    (:func:`flat_frame`).

    Args:
        frame: ``(C, H, W)``, ``C`` 1 or 3, in ``[-0.5, 0.5]``.
        max_bits: budget for the whole encoded file.
        codec: ``"WEBP"`` or ``"JPEG"``; None for :func:`default_codec`.
        scales: side divisors to try.
    """
    codec = (codec or default_codec()).upper()
    frame = frame.float().clamp(-0.5, 0.5)
    c, h, w = frame.shape
    max_bytes = int(max_bits // 8)
    best: EncodedFrame | None = None
    tried: set[tuple[int, int]] = set()
    for s in scales:
        if s < 1:
            raise ValueError(f"encode scales are side divisors >= 1, got {s}")
        size = (max(1, round(h / s)), max(1, round(w / s)))
        if size in tried:
            continue
        tried.add(size)
        small = frame if size == (h, w) else F.adaptive_avg_pool2d(frame[None], size)[0]
        image = to_uint8(small)
        found = highest_quality_within(lambda q: encode(image, codec, q), max_bytes)
        if found is None:
            continue
        quality, data = found
        out = from_uint8(decode(data), c)
        if size != (h, w):
            out = F.interpolate(out[None], size=(h, w), mode="bilinear", align_corners=False)[0].clamp(-0.5, 0.5)
        mse = float((out - frame).pow(2).mean())
        if best is None or mse < best.mse:
            best = EncodedFrame(out, 8 * len(data), s, quality, mse)
    return best if best is not None else flat_frame(frame, max_bits)
