"""Clip sampling and the clip cache.

Clips are cut from the manifest's videos once, resized (shorter edge to the configured
resolution, then a centre crop) and stored as raw uint8 ``(T, H, W, 3)`` arrays appended
to shard files ``shard_NNNNN.bin``. The clip index (one row per clip: shard, byte offset,
shape, checksum) says where each clip lives, so reading a clip is one memory-mapped slice
instead of a video decode.

Sampling follows the paper's protocol: training videos give several evenly spaced
windows of ``frames`` frames (``1 + 4k``); test videos give one centre window.

Frames are read with the reader ingest found right for each file (`sweettok.data.video`).
Where that is decord's random access, the first and last frame of every window are checked
against sequential decoding as well (``verify_random_access``); on any disagreement the
whole video is read again sequentially. The clip index records the reader of each clip.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sweettok.data.video import DECODE_ERRORS, ProbeError, read_frames, read_image_rgb, verify_random_access
from sweettok.schemas import check_split_names, empty_splits
from sweettok.typed_params import from_mapping

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["clip_id", "video_id", "label", "label_index", "split", "start_frame", "frames",
                 "height", "width", "reader", "shard", "offset", "checksum"]


@dataclass(frozen=True)
class ClipCacheConfig:
    """How clips are cut and stored.

    Attributes:
        frames: frames per clip; ``1 + 4k`` (17 in the paper). Images always give 1.
        resolution: side of the square clips in pixels.
        frame_stride: step between sampled frames.
        train_clips_per_video: evenly spaced windows per training video.
        shard_size_mb: a new shard starts when the current one would pass this size.
        verify_random_access: check the first and last frame of every window read by random
            access against sequential decoding (costs one sequential decode per such video).
        allow_empty_splits: splits that may end with no clip; any other empty split stops the run.
    """

    frames: int = 17
    resolution: int = 64
    frame_stride: int = 1
    train_clips_per_video: int = 3
    shard_size_mb: int = 256
    verify_random_access: bool = True
    allow_empty_splits: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.frames < 1 or (self.frames - 1) % 4:
            raise ValueError(f"patchify.frames={self.frames}: clips have 1 + 4k frames (1, 5, 9, 13, 17, ...)")
        if self.resolution < 8:
            raise ValueError(f"patchify.resolution={self.resolution}: must be at least 8")
        if self.frame_stride < 1:
            raise ValueError(f"patchify.frame_stride={self.frame_stride}: must be at least 1")
        if self.train_clips_per_video < 1:
            raise ValueError(f"patchify.train_clips_per_video={self.train_clips_per_video}: must be at least 1")
        if self.shard_size_mb < 1:
            raise ValueError(f"patchify.shard_size_mb={self.shard_size_mb}: must be at least 1")
        if not isinstance(self.verify_random_access, bool):
            raise ValueError(f"patchify.verify_random_access={self.verify_random_access!r}: must be true or false")
        check_split_names(self.allow_empty_splits, "patchify.allow_empty_splits")

    @classmethod
    def from_dict(cls, params: dict) -> "ClipCacheConfig":
        return from_mapping(cls, params, "patchify")


def window_starts(n_frames: int, frames: int, stride: int, split: str, train_clips: int) -> list[int]:
    """Start frames of the clips cut from a video of ``n_frames`` frames.

    Test: one centre window. Train: ``train_clips`` evenly spaced windows (fewer when the
    video is too short for distinct ones). Empty when the video is shorter than one clip.
    """
    span = (frames - 1) * stride + 1
    if n_frames < span:
        return []
    last = n_frames - span
    if split == "test":
        return [last // 2]
    starts = np.linspace(0, last, num=train_clips).round().astype(int)
    return sorted(set(int(s) for s in starts))


def _resize_shorter_edge(frames: np.ndarray, side: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> float (T, 3, H', W') with ``min(H', W') = side`` (antialiased bilinear)."""
    t, h, w, _ = frames.shape
    scale = side / min(h, w)
    new_h, new_w = max(side, round(h * scale)), max(side, round(w * scale))
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    return x


def resize_shorter_edge(frames: np.ndarray, side: int) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 frames so the shorter edge is ``side`` (aspect kept, antialiased
    bilinear); returns uint8 (T, H', W', 3)."""
    x = _resize_shorter_edge(frames, side)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def resize_and_crop(frames: np.ndarray, resolution: int) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 frames so the shorter edge is ``resolution``, centre-crop to a square.

    Antialiased bilinear resampling; returns uint8 (T, resolution, resolution, 3).
    """
    x = _resize_shorter_edge(frames, resolution)
    new_h, new_w = x.shape[-2:]
    top, left = (new_h - resolution) // 2, (new_w - resolution) // 2
    x = x[:, :, top : top + resolution, left : left + resolution]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def clip_checksum(clip: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(clip).tobytes(), digest_size=16).hexdigest()


class ShardWriter:
    """Appends raw arrays to ``shard_NNNNN.bin`` files, starting a new one past the size limit.

    The bytes are written as they are (C order, the array's own dtype); the reader's index
    holds the shape and dtype.
    """

    def __init__(self, shard_dir: Path, shard_bytes: int):
        self.dir = shard_dir
        self.limit = shard_bytes
        self.index = -1
        self.offset = 0
        self.file = None
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("shard_*.bin"):
            stale.unlink()

    def _next(self) -> None:
        if self.file is not None:
            self.file.close()
        self.index += 1
        self.offset = 0
        self.file = open(self.dir / self.name, "wb")

    @property
    def name(self) -> str:
        return f"shard_{self.index:05d}.bin"

    def write(self, array: np.ndarray) -> tuple[str, int]:
        data = np.ascontiguousarray(array).tobytes()
        if self.file is None or (self.offset and self.offset + len(data) > self.limit):
            self._next()
        offset = self.offset
        self.file.write(data)
        self.offset += len(data)
        return self.name, offset

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _load_image(path: Path) -> np.ndarray:
    return read_image_rgb(path)[None]


def read_windows(path: Path, reader: str, starts: list[int], frames: int, stride: int,
                 verify: bool = True) -> tuple[list[tuple[int, np.ndarray]], str]:
    """The uint8 (T, H, W, 3) windows starting at ``starts``, and the reader that produced them.

    ``reader`` is the manifest's choice for the file. With ``decord`` and ``verify``, the first
    and last frame of each window are compared with sequential decoding; if any differs, the
    video is read again sequentially and the reader returned is ``pyav``.
    """
    offsets = np.arange(frames) * stride
    wanted = sorted({int(s + o) for s in starts for o in offsets})
    decoded = dict(zip(wanted, read_frames(path, wanted, reader)))
    if reader == "decord" and verify:
        ends = {int(s) for s in starts} | {int(s + offsets[-1]) for s in starts}
        wrong = verify_random_access(path, {i: decoded[i] for i in ends})
        if wrong:
            log.warning("%s: random access returned other frames than sequential decoding at %s; "
                        "reading it sequentially", path, wrong[:5])
            reader = "pyav"
            decoded = dict(zip(wanted, read_frames(path, wanted, reader)))
    return [(int(s), np.stack([decoded[int(s + o)] for o in offsets])) for s in starts], reader


def build_clip_cache(manifest: pd.DataFrame, cfg: ClipCacheConfig, shard_dir: str | Path,
                     progress: bool = True) -> pd.DataFrame:
    """Cut, resize and store every clip of the manifest as shards in ``shard_dir``; return the clip index.

    Videos too short for one clip are skipped with a warning (ingestion rejects them
    already when its ``min_frames`` matches ``frames``).
    """
    from tqdm.auto import tqdm

    writer = ShardWriter(Path(shard_dir), cfg.shard_size_mb * 1024 * 1024)
    rows = []
    skipped = failed = 0
    readers: Counter = Counter()
    try:
        for video in tqdm(manifest.itertuples(index=False), total=len(manifest), desc="caching clips",
                          disable=not progress):
            path = Path(video.root) / video.path
            if video.kind == "image":
                windows, reader = [(0, _load_image(path))], "pil"
            else:
                starts = window_starts(int(video.frames), cfg.frames, cfg.frame_stride, video.split,
                                       cfg.train_clips_per_video)
                if not starts:
                    skipped += 1
                    log.warning("%s: %d frames, shorter than one clip; skipped", video.path, video.frames)
                    continue
                try:
                    windows, reader = read_windows(path, video.reader, starts, cfg.frames, cfg.frame_stride,
                                                   cfg.verify_random_access)
                except (ProbeError, *DECODE_ERRORS) as exc:  # changed on disk since ingest
                    failed += 1
                    log.warning("%s: cannot be read any more (%s); skipped", video.path, exc)
                    continue
                readers[reader] += 1
            for start, frames in windows:
                clip = resize_and_crop(frames, cfg.resolution)  # uint8
                shard, offset = writer.write(clip)
                rows.append({
                    "clip_id": f"{video.video_id}@{start}",
                    "video_id": video.video_id,
                    "label": video.label,
                    "label_index": int(video.label_index),
                    "split": video.split,
                    "start_frame": int(start),
                    "frames": int(clip.shape[0]),
                    "height": int(clip.shape[1]),
                    "width": int(clip.shape[2]),
                    "reader": reader,
                    "shard": shard,
                    "offset": int(offset),
                    "checksum": clip_checksum(clip),
                })
    finally:
        writer.close()
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    size = sum(p.stat().st_size for p in Path(shard_dir).glob("shard_*.bin"))
    notes = (f"; {skipped} videos too short" if skipped else "") + (f"; {failed} unreadable" if failed else "")
    log.info("clip cache: %s clips in %d shard(s), %.1f MB%s; videos read by %s",
             ", ".join(f"{s} {n}" for s, n in index["split"].value_counts().sort_index().items()) or "no",
             writer.index + 1, size / 1e6, notes, ", ".join(f"{r} {n}" for r, n in sorted(readers.items())) or "none")
    for split in empty_splits(index["split"], cfg.allow_empty_splits)[:1]:
        videos = int((manifest["split"] == split).sum())
        why = f"{videos} {split} video(s) in the manifest"
        if skipped:
            why += f"; {skipped} video(s) shorter than one clip ({cfg.frames} frames at stride {cfg.frame_stride})"
        raise ValueError(f"patchify: the {split} split has no clips ({why}). "
                         "Add videos to that split, or add it to patchify.allow_empty_splits.")
    return index


class ClipDataset(Dataset):
    """Clips from the cache as float tensors.

    Each item is a dict: ``clip`` (float32 (C, T, H, W) in [-0.5, 0.5]), ``label``
    (int class index), ``clip_id`` (str).

    Args:
        index: the clip index (DataFrame or path of its parquet file).
        shard_dir: folder of the shard files.
        split: keep only this split (``train``/``test``), or all clips when None.
        crop: side of a random square crop (training augmentation), or None.
        flip: random horizontal flip with probability 0.5.
        verify: check each clip's checksum when read.
    """

    def __init__(self, index: pd.DataFrame | str | Path, shard_dir: str | Path, split: str | None = None,
                 crop: int | None = None, flip: bool = False, verify: bool = False):
        table = pd.read_parquet(index) if isinstance(index, (str, Path)) else index
        if split is not None:
            table = table[table["split"] == split]
        self.index = table.reset_index(drop=True)
        self.shard_dir = Path(shard_dir)
        self.crop = crop
        self.flip = flip
        self.verify = verify
        self._maps: dict[str, np.memmap] = {}
        for shard in self.index["shard"].unique():
            if (self.shard_dir / shard).name != shard or not (self.shard_dir / shard).is_file():
                raise FileNotFoundError(f"clip index names shard {shard!r}, not found in {self.shard_dir}")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def labels(self) -> np.ndarray:
        return self.index["label_index"].to_numpy()

    def read_uint8(self, i: int) -> np.ndarray:
        """The stored clip ``i`` as uint8 (T, H, W, 3)."""
        return self._read(self.index.iloc[i])

    def _read(self, row: pd.Series) -> np.ndarray:
        mm = self._maps.get(row.shard)
        if mm is None:  # opened lazily so that each DataLoader worker maps its own
            mm = self._maps[row.shard] = np.memmap(self.shard_dir / row.shard, dtype=np.uint8, mode="r")
        shape = (int(row.frames), int(row.height), int(row.width), 3)
        n = int(np.prod(shape))
        clip = np.asarray(mm[int(row.offset) : int(row.offset) + n]).reshape(shape)
        if self.verify and clip_checksum(clip) != row.checksum:
            raise ValueError(f"clip {row.clip_id}: checksum mismatch in {row.shard} at {row.offset}")
        return clip

    def __getitem__(self, i: int) -> dict:
        row = self.index.iloc[i]
        clip = torch.from_numpy(self._read(row).copy()).permute(3, 0, 1, 2)  # (C, T, H, W)
        if self.crop is not None:
            _, _, h, w = clip.shape
            top = int(torch.randint(0, h - self.crop + 1, ()))
            left = int(torch.randint(0, w - self.crop + 1, ()))
            clip = clip[:, :, top : top + self.crop, left : left + self.crop]
        if self.flip and bool(torch.rand(()) < 0.5):
            clip = clip.flip(-1)
        return {"clip": clip.float() / 255.0 - 0.5, "label": int(row.label_index), "clip_id": row.clip_id}


# ---------------------------------------------------------------------- the cache as one artefact
CACHE_INDEX_FILE = "index.parquet"


class ClipCache:
    """A clip cache directory: ``index.parquet`` (the clip index, validated by
    ``sweettok.schemas.ClipIndexSchema``) and the ``shard_*.bin`` files it points into.

    It is what the ``clip_cache`` catalog entry loads (``sweettok.io.ClipCacheDataset``);
    :meth:`dataset` gives the clips of one split as a torch ``Dataset``.
    """

    def __init__(self, root: str | Path):
        from sweettok.schemas import ClipIndexSchema

        self.root = Path(root)
        index_path = self.root / CACHE_INDEX_FILE
        if not index_path.is_file():
            raise FileNotFoundError(f"{self.root}: not a clip cache (no {CACHE_INDEX_FILE}); run the patchify pipeline")
        self.index = ClipIndexSchema.validate(pd.read_parquet(index_path), lazy=True)

    def __len__(self) -> int:
        return len(self.index)

    def dataset(self, split: str | None = None, **kwargs) -> "ClipDataset":
        """The clips of ``split`` (all when None); ``kwargs`` as for :class:`ClipDataset`."""
        return ClipDataset(self.index, self.root, split=split, **kwargs)

    @property
    def frames(self) -> int:
        """Frames per video clip (the largest clip length in the cache; images have 1)."""
        return int(self.index["frames"].max())

    @property
    def resolution(self) -> int:
        return int(self.index["height"].iloc[0])

    def fingerprint(self) -> str:
        """sha256 of the clip index (ids, shapes, shard offsets and clip checksums)."""
        return hashlib.sha256(pd.util.hash_pandas_object(self.index, index=False).values.tobytes()).hexdigest()


@dataclass
class PendingClipCache:
    """A clip cache not built yet: what the ``patchify`` node returns.

    Clips are written straight into the dataset's directory when the catalog saves this
    (``write_to``), so a cache of any size is never held in memory or copied.
    """

    manifest: pd.DataFrame
    cfg: ClipCacheConfig

    def write_to(self, directory: Path) -> None:
        index = build_clip_cache(self.manifest, self.cfg, directory)
        from sweettok.schemas import ClipIndexSchema

        ClipIndexSchema.validate(index, lazy=True).to_parquet(Path(directory) / CACHE_INDEX_FILE, index=False)
