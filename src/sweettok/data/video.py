"""Reading and probing video files: decord first, PyAV where decord is unavailable.

`probe_file` classifies a file before any decoder touches it (empty, container header,
box structure), then opens it and decodes its last frame, so that a truncated or corrupt
file is found at ingestion with a reason, not in the middle of training.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"}

try:  # decord has x86_64 wheels only
    import decord

    decord.bridge.set_bridge("native")
    _DECORD_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, decord._ffi.base.DECORDError)
except ImportError:  # pragma: no cover - exercised on machines without decord
    decord = None
    _DECORD_ERRORS = (RuntimeError,)


class ProbeError(Exception):
    """A file that cannot be used, with a machine-readable ``reason`` (see `schemas.REJECT_REASONS`)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Probe:
    """What a file holds: frame count, frame rate (0 for images), size in pixels."""

    kind: str  # "video" or "image"
    frames: int
    fps: float
    width: int
    height: int
    size_bytes: int
    sha256: str


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _container_of(head: bytes) -> str | None:
    """The container a file's first bytes announce, or None."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    return None


def _mp4_boxes_complete(path: Path, size: int) -> tuple[bool, str]:
    """Walk the top-level MP4 boxes; a box that runs past the end of file means truncation."""
    seen = []
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            header = f.read(16)
            if len(header) < 8:
                return False, f"{size - pos} stray bytes after box {seen[-1] if seen else 'none'}"
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if box_size == 1:
                if len(header) < 16:
                    return False, "64-bit box header cut off"
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # box extends to end of file
                box_size = size - pos
            if box_size < 8:
                return False, f"box {box_type!r} has impossible size {box_size}"
            if pos + box_size > size:
                return False, f"box {box_type.decode('latin-1')!r} needs {pos + box_size} bytes, file has {size}"
            seen.append(box_type.decode("latin-1"))
            pos += box_size
    if "moov" not in seen:
        return False, f"no 'moov' box (boxes: {seen})"
    return True, ""


def _probe_decord(path: Path) -> tuple[int, float, int, int]:
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    n = len(vr)
    if n == 0:
        raise ProbeError("undecodable", "no frames")
    last = vr[n - 1].asnumpy()  # decoding the last frame catches a broken tail
    return n, float(vr.get_avg_fps()), int(last.shape[1]), int(last.shape[0])


def _probe_pyav(path: Path) -> tuple[int, float, int, int]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        n, width, height = 0, stream.codec_context.width, stream.codec_context.height
        for frame in container.decode(stream):
            n += 1
            width, height = frame.width, frame.height
        fps = float(stream.average_rate or 0.0)
    if n == 0:
        raise ProbeError("undecodable", "no frames")
    return n, fps, width, height


def probe_file(path: Path, min_frames: int = 1) -> Probe:
    """Probe one video or image file.

    Raises:
        ProbeError: with reason ``empty_file``, ``not_a_video``, ``truncated``,
            ``undecodable`` or ``too_short`` (fewer than ``min_frames`` frames).
    """
    size = path.stat().st_size
    if size == 0:
        raise ProbeError("empty_file", "0 bytes")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.load()
                width, height = im.size
        except (UnidentifiedImageError, OSError) as exc:
            raise ProbeError("undecodable", f"image: {exc}") from exc
        return Probe("image", 1, 0.0, width, height, size, sha256_file(path))

    with open(path, "rb") as f:
        head = f.read(16)
    container = _container_of(head)
    if container is None:
        raise ProbeError("not_a_video", f"no known container signature (starts with {head[:8].hex()})")
    if container == "mp4":
        complete, why = _mp4_boxes_complete(path, size)
        if not complete:
            raise ProbeError("truncated", why)
    try:
        frames, fps, width, height = _probe_decord(path) if decord is not None else _probe_pyav(path)
    except ProbeError:
        raise
    except _DECORD_ERRORS as exc:
        raise ProbeError("undecodable", str(exc).splitlines()[0][:200]) from exc
    except Exception as exc:  # PyAV raises its own error classes
        raise ProbeError("undecodable", f"{type(exc).__name__}: {exc}"[:200]) from exc
    if frames < min_frames:
        raise ProbeError("too_short", f"{frames} frames, a clip needs {min_frames}")
    return Probe("video", frames, fps, width, height, size, sha256_file(path))


def read_frames(path: str | Path, indices: list[int] | np.ndarray) -> np.ndarray:
    """Decode the given frames of a video as uint8 (len(indices), H, W, 3)."""
    indices = [int(i) for i in indices]
    if decord is not None:
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        return vr.get_batch(indices).asnumpy()
    import av

    wanted = set(indices)
    frames: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    missing = wanted - set(frames)
    if missing:
        raise ProbeError("undecodable", f"{path}: frames {sorted(missing)[:5]} could not be decoded")
    return np.stack([frames[i] for i in indices])
