"""Deterministic, real-looking test clips for the I3D reference check.

Each clip is a virtual camera moving over a ``skimage.data`` photograph (pan, zoom, tilt)
with a shaded ball crossing the frame, so that the network sees natural image statistics
and motion. Only numpy and ``skimage.data`` are used (no torch, no jax) so that the same
clips are built by ``scripts/make_i3d_reference.py`` in its scratch jax environment and by
the project's tests; :func:`clips_digest` lets the test confirm that it rebuilt exactly the
clips the reference was computed on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from skimage import data as skdata

SIZE = 224
FRAMES = 16


@dataclass(frozen=True)
class Shot:
    """A camera path over one photograph and a ball's path through the frame.

    Camera centres and half-widths are in source pixels at the first and last frame (linear
    in between); ball positions are fractions of the output frame.
    """

    image: str
    centre_start: tuple[float, float]  # (row, col)
    centre_end: tuple[float, float]
    half_start: float
    half_end: float
    ball_start: tuple[float, float]  # (row, col) in [0, 1]
    ball_end: tuple[float, float]
    ball_radius: float  # fraction of the frame
    ball_rgb: tuple[int, int, int]


SHOTS: tuple[Shot, ...] = (
    Shot("astronaut", (200, 170), (230, 330), 170, 170, (0.8, 0.1), (0.3, 0.9), 0.07, (220, 40, 30)),
    Shot("coffee", (200, 300), (210, 320), 190, 110, (0.2, 0.2), (0.7, 0.6), 0.06, (40, 90, 220)),
    Shot("chelsea", (150, 160), (150, 290), 140, 140, (0.5, 0.95), (0.55, 0.05), 0.08, (250, 210, 40)),
    Shot("rocket", (140, 320), (280, 330), 120, 140, (0.1, 0.5), (0.9, 0.45), 0.05, (240, 240, 240)),
)


def _photo(name: str) -> np.ndarray:
    img = getattr(skdata, name)()
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"skimage.data.{name} is not an RGB image")
    return img.astype(np.float64)


def _crop_bilinear(img: np.ndarray, centre: tuple[float, float], half: float, size: int) -> np.ndarray:
    """Square window of half-width ``half`` around ``centre`` resampled to ``size`` pixels."""
    h, w = img.shape[:2]
    offsets = ((np.arange(size) + 0.5) / size * 2.0 - 1.0) * half
    rows = np.clip(centre[0] + offsets - 0.5, 0.0, h - 1.0)
    cols = np.clip(centre[1] + offsets - 0.5, 0.0, w - 1.0)
    r0 = np.minimum(np.floor(rows).astype(np.int64), h - 2)
    c0 = np.minimum(np.floor(cols).astype(np.int64), w - 2)
    fr = (rows - r0)[:, None, None]
    fc = (cols - c0)[None, :, None]
    top = img[r0][:, c0] * (1 - fc) + img[r0][:, c0 + 1] * fc
    bottom = img[r0 + 1][:, c0] * (1 - fc) + img[r0 + 1][:, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def _draw_ball(frame: np.ndarray, centre: tuple[float, float], radius: float, rgb: tuple[int, int, int]) -> np.ndarray:
    """Shaded ball with an anti-aliased edge (radius and centre in pixels)."""
    size = frame.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dist = np.hypot(yy - centre[0], xx - centre[1])
    alpha = np.clip(radius - dist + 0.5, 0.0, 1.0)[..., None]
    # Light from the upper left: brighter towards (-0.4, -0.4) of the radius.
    shade = 1.0 - 0.45 * np.clip(np.hypot(yy - centre[0] + 0.4 * radius, xx - centre[1] + 0.4 * radius)
                                 / (1.6 * radius), 0.0, 1.0)
    ball = np.asarray(rgb, dtype=np.float64) * shade[..., None]
    return frame * (1 - alpha) + ball * alpha


def make_clip(shot: Shot, frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """One clip, ``(frames, size, size, 3)`` uint8 RGB."""
    img = _photo(shot.image)
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        a = t / max(frames - 1, 1)
        centre = tuple((1 - a) * s + a * e for s, e in zip(shot.centre_start, shot.centre_end, strict=True))
        half = (1 - a) * shot.half_start + a * shot.half_end
        frame = _crop_bilinear(img, centre, half, size)
        ball = tuple(((1 - a) * s + a * e) * size for s, e in zip(shot.ball_start, shot.ball_end, strict=True))
        frame = _draw_ball(frame, ball, shot.ball_radius * size, shot.ball_rgb)
        out[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return out


def make_clips(frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """All shots, ``(len(SHOTS), frames, size, size, 3)`` uint8 RGB (the original FVD's layout)."""
    return np.stack([make_clip(s, frames, size) for s in SHOTS])


def clips_digest(clips: np.ndarray) -> str:
    """sha256 of the clips' bytes and shape."""
    a = np.ascontiguousarray(clips)
    return hashlib.sha256(repr((a.shape, str(a.dtype))).encode() + a.tobytes()).hexdigest()
