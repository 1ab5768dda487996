"""Writing frames to video files (H.264 in MP4 through PyAV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_mp4"]


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 8.0, crf: int = 10) -> Path:
    """Write uint8 frames ``(T, H, W, 3)`` RGB to an H.264 MP4 (near-lossless ``crf`` by default).

    Odd frame sizes are stored as yuv444p (yuv420p needs even sides).
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=max(1, round(fps)))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p" if frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0 else "yuv444p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path
