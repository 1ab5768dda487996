"""Reading and probing video files: frames exactly where their index says they are.

Frame ``i`` of a video is the ``i``-th frame a decoder gives when it reads the file from
the start (sequential decoding, PyAV). That is the reference everything here is checked
against, because random access is not always right: for MPEG-4 Part 2 with B-frames in an
AVI, decord's seek lands on the wrong frame and returns it without an error.

`probe_file` classifies a file before any decoder touches it (empty, container
signature, box structure), then decodes every frame in order to count them (a header's
frame count is not trusted) and to take a digest of each one, and finally asks decord for a
spread of frames (`is_check_position`) by random access. If decord opens the file, counts the same frames and
returns exactly the same pixels, the probe names ``decord`` as the file's reader; otherwise
``pyav`` (sequential reading). `read_frames` reads with either; a clip cache holds the same
bytes whichever reader filled it.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweettok.files import sha256_file

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv",
                  ".3gp", ".ts", ".gif"}
READERS = ("decord", "pyav", "pil")

# Random access is trusted only where it gives exactly the frames sequential decoding gives:
# decord and PyAV both decode with libavcodec and agree bit for bit on most files, but not
# on all (odd sizes, full-range JPEG, 10-bit: their colour conversions differ by a few
# levels). Demanding equality keeps the clip cache the same whichever reader filled it.
#
# PyAV is imported first on purpose: decord loads its own bundled FFmpeg libraries into the
# process's global symbol scope, and when that happens before PyAV's are loaded, PyAV's VP9
# encoder fails to open ('avcodec_open2("libvpx-vp9") returned 22'), so `sweettok decode -o
# x.webm` failed. PyAV first, both work (tests/api/test_cli_tokenize.py checks it in a fresh process).
try:
    import av
except ImportError:  # pragma: no cover
    av = None

try:  # decord has x86_64 wheels only
    import decord

    decord.bridge.set_bridge("native")
    _DECORD_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, decord._ffi.base.DECORDError)
except ImportError:  # pragma: no cover - exercised on machines without decord
    decord = None
    _DECORD_ERRORS = (RuntimeError,)

# what reading a file that changed or broke after ingest can raise
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    (*_DECORD_ERRORS, av.error.FFmpegError, OSError) if av is not None else (*_DECORD_ERRORS, OSError))


class ProbeError(Exception):
    """A file that cannot be used, with a machine-readable ``reason`` (see `schemas.REJECT_REASONS`)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Probe:
    """What a file holds: frame count (decoded, not from the header), frame rate (0 for images),
    size in pixels, and the reader that returns its frames correctly (`READERS`)."""

    kind: str  # "video" or "image"
    frames: int
    fps: float
    width: int
    height: int
    size_bytes: int
    sha256: str
    reader: str
    note: str = ""  # why the reader is not decord, when it is not


def container_of(head: bytes) -> str | None:
    """The container a file's first bytes announce, or None."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:6] in (b"GIF87a", b"GIF89a"):  # an animated GIF is a video; one frame is a one-frame video
        return "gif"
    if head[:3] == b"FLV":
        return "flv"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg"
    if head[:4] == b"\x30\x26\xb2\x75":
        return "asf"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # MPEG-TS: a sync byte every 188
        return "mpegts"
    return None


def mp4_boxes_complete(path: Path, size: int) -> tuple[bool, str]:
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


def frame_digest(frame: np.ndarray) -> bytes:
    """A 16-byte digest of a decoded frame's shape and pixels (equal digests: equal frames)."""
    frame = np.ascontiguousarray(frame)
    return hashlib.blake2b(repr(frame.shape).encode() + frame.tobytes(), digest_size=16).digest()


def _video_stream(container: "av.container.InputContainer") -> "av.VideoStream":  # noqa: F821
    """The first video stream. PyAV's default slice threading is kept: frame threading measured
    20-30% slower here, on small files and on 720p alike."""
    if not container.streams.video:
        raise ProbeError("not_a_video", "the container holds no video stream")
    return container.streams.video[0]


def frame_rgb(frame: "av.VideoFrame") -> np.ndarray:  # noqa: F821
    """A decoded frame as uint8 (H, W, 3) RGB, upright. A phone stores a portrait video's frames
    on their side with a display rotation (90 or 270 degrees) that players apply; so does this
    (PyAV's ``frame.rotation``: degrees counter-clockwise, rounded to quarter turns)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def iter_frames_sequential(path: str | Path) -> Iterator["av.VideoFrame"]:  # noqa: F821
    """Decode the first video stream from the start, in presentation order (PyAV)."""
    import av

    with av.open(str(path)) as container:
        yield from container.decode(_video_stream(container))


def is_check_position(i: int) -> bool:
    """Frames whose digests the probe keeps for the random-access check: 0, 3, 6, 12, 24, ...
    (three times powers of two, so that seeks reach every part of a long video), plus the last."""
    return i == 0 or (i % 3 == 0 and ((i // 3) & (i // 3 - 1)) == 0)


def _decode_all(path: Path) -> tuple[int, dict[int, bytes], float, int, int]:
    """Decode every frame in order: the count, digests of the check positions and the last
    frame (only those are converted to RGB), frame rate and size."""
    import av

    digests: dict[int, bytes] = {}
    n = 0
    last = None
    rate = 0
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container)
            for frame in container.decode(stream):
                if is_check_position(n):
                    digests[n] = frame_digest(frame_rgb(frame))
                last = frame
                n += 1
            rate = stream.average_rate or stream.guessed_rate or 0
        if last is not None:
            last_rgb = frame_rgb(last)
            digests[n - 1] = frame_digest(last_rgb)
    except ProbeError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        where = f"after {n} frames" if n else "at the first frame"
        raise ProbeError("undecodable", f"decoding failed {where}: {type(exc).__name__}: {exc}"[:200]) from exc
    if not n:
        raise ProbeError("undecodable", "no frames decode")
    return n, digests, float(rate), last_rgb.shape[1], last_rgb.shape[0]  # upright width, height


def _decord_agrees(path: Path, n_frames: int, digests: dict[int, bytes]) -> str:
    """Empty when decord counts ``n_frames`` and its random access returns exactly the
    sequentially decoded frames whose ``digests`` the probe kept; else why not."""
    if decord is None:
        return "decord is not installed"
    try:
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        if len(vr) != n_frames:
            return f"decord counts {len(vr)} frames, sequential decoding {n_frames}"
        positions = sorted(digests)
        # out of order on purpose: each read seeks, as a clip cache's reads do
        order = positions[len(positions) // 2 :] + positions[: len(positions) // 2]
        for i, frame in zip(order, vr.get_batch(order).asnumpy()):
            if frame_digest(frame) != digests[i]:
                return f"decord's frame {i} differs from frame {i} of sequential decoding"
    except _DECORD_ERRORS as exc:
        return f"decord cannot read it: {str(exc).splitlines()[0][:120]}"
    return ""


def read_image_rgb(path: str | Path) -> np.ndarray:
    """An image file as uint8 (H, W, 3) RGB, the way a viewer shows it.

    Pillow's plain ``convert("RGB")`` gets three common kinds of file wrong, and they are
    handled here: a 16-bit image (Pillow clips every value above 255, so a 16-bit grey
    photograph turns white) is scaled to 8 bits; transparency (RGBA, LA, a palette's or a
    colour key's) is composited over white instead of dropped, which would show whatever
    colour the transparent pixels happen to hold; and a photograph's EXIF orientation tag is
    applied, so a phone's portrait photo stands upright.

    Raises:
        PIL.UnidentifiedImageError: not an image Pillow knows.
        OSError, ValueError: truncated or otherwise unreadable.
    """
    from PIL import Image

    with Image.open(path) as im:
        return loaded_frame_rgb(im)


def loaded_frame_rgb(im) -> np.ndarray:
    """The current frame of an open PIL image (after ``seek``) as uint8 (H, W, 3) RGB: decoded,
    turned upright by its EXIF orientation, converted as `read_image_rgb` says."""
    from PIL import ImageOps

    im.load()
    return image_to_rgb(ImageOps.exif_transpose(im))


def image_to_rgb(im) -> np.ndarray:
    """A PIL image of any mode as uint8 (H, W, 3) RGB (see `read_image_rgb`)."""
    from PIL import Image

    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im).astype(np.float64)
        if im.mode == "F":
            # floating point: [0, 1] is scaled to [0, 255], anything else is taken as 8-bit levels
            a = a * 255.0 if a.size and np.nanmin(a) >= 0.0 and np.nanmax(a) <= 1.0 else a
        elif im.mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a / 257.0  # 16-bit levels: 65535 -> 255
            if a.size and a.max() > 255.0:  # 32-bit integers beyond 16 bits: their own range
                a = a * (255.0 / a.max())
        grey = np.clip(np.nan_to_num(np.rint(a)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


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
        from PIL import UnidentifiedImageError

        try:
            height, width = read_image_rgb(path).shape[:2]  # after its EXIF orientation, as the cache holds it
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ProbeError("undecodable", f"image: {exc}") from exc
        return Probe("image", 1, 0.0, width, height, size, sha256_file(path), "pil")

    with open(path, "rb") as f:
        head = f.read(512)
    container = container_of(head)
    if container is None:
        raise ProbeError("not_a_video", f"no known container signature (starts with {head[:8].hex()})")
    if container == "mp4":
        complete, why = mp4_boxes_complete(path, size)
        if not complete:
            raise ProbeError("truncated", why)
    try:
        n_frames, digests, fps, width, height = _decode_all(path)
    except ProbeError:
        raise
    except Exception as exc:  # PyAV's open() raises its own error classes
        raise ProbeError("undecodable", f"{type(exc).__name__}: {exc}"[:200]) from exc
    if n_frames < min_frames:
        raise ProbeError("too_short", f"{n_frames} frames, a clip needs {min_frames}")
    why_not = _decord_agrees(path, n_frames, digests)
    reader = "pyav" if why_not else "decord"
    return Probe("video", n_frames, fps, width, height, size, sha256_file(path), reader, why_not)


def _read_sequential(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    wanted = set(indices)
    last = max(indices)
    frames: dict[int, np.ndarray] = {}
    for i, frame in enumerate(iter_frames_sequential(path)):
        if i in wanted:
            frames[i] = frame_rgb(frame)
        if i >= last:
            break
    return frames


def read_frames(path: str | Path, indices: list[int] | np.ndarray, reader: str = "pyav") -> np.ndarray:
    """Decode the given frames of a video as uint8 (len(indices), H, W, 3).

    ``reader`` is ``decord`` (random access; use it only where `probe_file` found it right)
    or ``pyav`` (sequential decoding from the start, always right, slower for late frames).
    """
    indices = [int(i) for i in indices]
    path = Path(path)
    if reader not in ("decord", "pyav"):
        raise ValueError(f"reader={reader!r}: must be 'decord' or 'pyav'")
    if reader == "decord" and decord is not None:
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        return vr.get_batch(indices).asnumpy()
    frames = _read_sequential(path, indices)
    missing = set(indices) - set(frames)
    if missing:
        raise ProbeError("undecodable", f"{path}: frames {sorted(missing)[:5]} could not be decoded")
    return np.stack([frames[i] for i in indices])


def verify_random_access(path: str | Path, frames: dict[int, np.ndarray]) -> list[int]:
    """Indices among ``frames`` (index -> uint8 frame read by random access) that are not exactly
    the sequentially decoded frame of that index. Decodes up to the largest index."""
    sequential = _read_sequential(Path(path), sorted(frames))
    return [i for i, frame in sorted(frames.items()) if i not in sequential or not np.array_equal(frame, sequential[i])]
