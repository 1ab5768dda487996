"""Writing frames to video files (H.264 through PyAV)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["write_mp4"]


def write_mp4(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float = 8.0,
              crf: int = 10) -> tuple[int, int, int]:
    """Write uint8 RGB frames ``(H, W, 3)`` (an array ``(T, H, W, 3)`` or any iterable of frames,
    streamed) as near-lossless H.264 (``crf``); the container follows the suffix (``.mp4``, ``.mkv``, ...).

    Odd frame sizes are stored as yuv444p (yuv420p needs even sides). Returns
    ``(frames, width, height)``; nothing is written for no frames beyond an empty container.
    """
    import av

    n = width = height = 0
    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"expected uint8 frames (H, W, 3), got {frame.dtype} {frame.shape}")
            if stream is None:
                height, width = frame.shape[:2]
                stream = container.add_stream("libx264", rate=max(1, round(fps or 25)))
                stream.width, stream.height = width, height
                stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
                stream.options = {"crf": str(crf), "preset": "medium"}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
            n += 1
        if stream is not None:
            container.mux(stream.encode())
    return n, width, height
