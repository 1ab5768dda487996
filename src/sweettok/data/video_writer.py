"""Writing frames to video files: H.264 or VP9 (WebM) through PyAV, GIF through Pillow."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["write_mp4"]


def write_mp4(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float = 8.0,
              crf: int = 10) -> tuple[int, int, int]:
    """Write uint8 RGB frames ``(H, W, 3)`` (an array ``(T, H, W, 3)`` or any iterable of frames,
    streamed) as near-lossless video (``crf``); the container follows the suffix: H.264 in
    ``.mp4``, ``.mkv``, ``.mov``, ``.avi``, VP9 in ``.webm`` (WebM holds no H.264); ``.gif`` is an
    animated GIF with a 256-colour palette of its own per frame (Pillow, frames held in memory;
    GIF delays are whole hundredths of a second).

    Odd frame sizes are stored as yuv444p (yuv420p needs even sides). Returns
    ``(frames, width, height)``; nothing is written for no frames beyond an empty container.
    """
    if Path(path).suffix.lower() == ".gif":
        return _write_gif(path, frames, fps)
    import av

    n = width = height = 0
    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            frame = _rgb_frame(frame)
            if stream is None:
                height, width = frame.shape[:2]
                stream = _add_stream(container, Path(path).suffix.lower(), width, height, fps, crf)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            n += 1
        if stream is not None:
            container.mux(stream.encode())
    return n, width, height


def _add_stream(container, suffix: str, width: int, height: int, fps: float, crf: int):
    rate = max(1, round(fps or 25))
    yuv = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    if suffix == ".webm":
        stream = container.add_stream("libvpx-vp9", rate=rate)
        stream.options = {"crf": str(crf), "b": "0"}  # constant quality
    else:
        stream = container.add_stream("libx264", rate=rate)
        stream.options = {"crf": str(crf), "preset": "medium"}
    stream.pix_fmt = yuv
    stream.width, stream.height = width, height
    return stream


def _rgb_frame(frame) -> np.ndarray:
    """``frame`` as a C-contiguous uint8 array ``(H, W, 3)``, or a ValueError saying what it is."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (H, W, 3), got {frame.dtype} {frame.shape}")
    return np.ascontiguousarray(frame)


def _write_gif(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float) -> tuple[int, int, int]:
    from PIL import Image

    images = []
    for frame in frames:
        images.append(Image.fromarray(_rgb_frame(frame)).quantize(256, method=Image.Quantize.MEDIANCUT,
                                                                             dither=Image.Dither.NONE))
    if not images:
        raise ValueError(f"{path}: no frames to write")
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / (fps or 25)), loop=0)
    return len(images), images[0].width, images[0].height
