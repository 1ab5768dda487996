"""The image set for image fine-tuning and image evaluation, and its cache.

Images are square crops at the model's resolution, stored like clips: raw uint8
``(1, H, W, 3)`` arrays appended to ``shard_NNNNN.bin`` files (:class:`ShardWriter`), with
an index (one row per image: where it came from, which split, shard, byte offset,
checksum) validated by ``sweettok.schemas.ImageIndexSchema``. It is a sibling of the clip
cache (``data/03_primary/image_cache``), so nothing that reads clips sees images.

Where images come from (:func:`build_image_cache`):

- **Photographs shipped with scikit-image** (``skimage.data``; only files inside the wheel,
  nothing is downloaded). They are split by photograph, never by crop: the training split
  takes random crops (:attr:`ImageSetConfig.crops_per_photo` per photograph, the shorter
  edge first resized to a random multiple of the resolution) of
  :data:`TRAIN_PHOTOS`; the held-out split tiles :data:`HELDOUT_PHOTOS`
  (the shorter edge resized to each of :attr:`ImageSetConfig.heldout_scales` times the
  resolution, then every whole non-overlapping tile). No held-out photograph is a
  background of the embedded videos either (those are ``sweettok.data.synthetic.PHOTOS``),
  so the video tokenizer has not seen them.
- **Frames of the training clips** in the clip cache (:attr:`ImageSetConfig.video_frames`
  of each clip, duplicates dropped): the training split only, since test videos are the
  video tokenizer's held-out set.
- **Images already in the clip cache** (an ImageNet-style root ingested by ``ingest``): each
  goes to its own split.

Values: the dataset's items are float ``(C, H, W)`` in [-0.5, 0.5] (``uint8 / 255 - 0.5``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from sweettok.data.clips import ClipCache, ShardWriter, clip_checksum, resize_and_crop, resize_shorter_edge
from sweettok.typed_params import FieldChecks, ParamError, from_mapping

log = logging.getLogger(__name__)

__all__ = ["HELDOUT_PHOTOS", "IMAGE_INDEX_COLUMNS", "TRAIN_PHOTOS", "ImageCache", "ImageDataset", "ImageSetConfig",
           "PendingImageCache", "build_image_cache", "load_photograph", "tile_offsets"]

# Real photographs inside the scikit-image wheel (loaded without a download). The first nine are
# the backgrounds of the embedded videos (the silhouette `horse` is no photograph and is left out).
TRAIN_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "moon", "page", "rocket", "text",
                "brick", "cell", "grass", "microaneurysms", "retina")
# Held out: no training crop and no video background comes from these.
HELDOUT_PHOTOS = ("clock", "gravel", "hubble_deep_field", "immunohistochemistry", "stereo_motorcycle")
KNOWN_PHOTOS = TRAIN_PHOTOS + HELDOUT_PHOTOS

IMAGE_INDEX_COLUMNS = ["image_id", "source", "origin", "split", "scale", "top", "left", "height", "width",
                       "shard", "offset", "checksum"]
SOURCES = ("photo", "video_frame", "image")
INDEX_FILE = "index.parquet"


def load_photograph(name: str) -> np.ndarray:
    """A scikit-image photograph as uint8 ``(H, W, 3)`` (grey ones repeated over RGB; the left
    view of ``stereo_motorcycle``)."""
    from skimage import data as skdata

    if name not in KNOWN_PHOTOS:
        raise ValueError(f"unknown photograph {name!r}; known: {', '.join(KNOWN_PHOTOS)}")
    img = getattr(skdata, name)()
    if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
        img = img[0]
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise TypeError(f"skimage.data.{name}: expected uint8 pixels, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


@dataclass(frozen=True)
class ImageSetConfig(FieldChecks):
    """What goes into the image cache (``image_finetune.images`` in the parameters).

    Attributes:
        embedded_photos: use the scikit-image photographs (:data:`TRAIN_PHOTOS` /
            :data:`HELDOUT_PHOTOS` unless given).
        train_photos, heldout_photos: which photographs train and which are held out (disjoint).
        crops_per_photo: random training crops per training photograph.
        train_scales: ``[lo, hi]``: a training crop's photograph is first resized so that its
            shorter edge is ``s * resolution``, ``s`` uniform in ``[lo, hi]`` (1 = the whole
            shorter edge in one crop; larger = closer views).
        heldout_scales: the held-out photographs are resized to each ``s * resolution``
            (shorter edge) and cut into every whole non-overlapping tile.
        video_frames: frame indices (negative from the end) taken from every training clip.
        flip: random horizontal flips of training images while fine-tuning.
        seed: seeds the random crops.
    """

    embedded_photos: bool = True
    train_photos: list = field(default_factory=lambda: list(TRAIN_PHOTOS))
    heldout_photos: list = field(default_factory=lambda: list(HELDOUT_PHOTOS))
    crops_per_photo: int = 48
    train_scales: list = field(default_factory=lambda: [1.0, 4.0])
    heldout_scales: list = field(default_factory=lambda: [1.0, 2.0, 3.0, 4.0])
    video_frames: list = field(default_factory=lambda: [0, -1])
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_int("crops_per_photo", 0)
        self._check_int("seed", 0)
        for name in ("embedded_photos", "flip"):
            if not isinstance(getattr(self, name), bool):
                self._fail(name, f"must be true or false, got {getattr(self, name)!r}")
        for name in ("train_photos", "heldout_photos"):
            names = getattr(self, name)
            if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
                self._fail(name, f"must be a list of photograph names, got {names!r}")
            unknown = [n for n in names if n not in KNOWN_PHOTOS]
            if unknown:
                self._fail(name, f"unknown photograph(s) {unknown}; known: {', '.join(KNOWN_PHOTOS)}")
        both = sorted(set(self.train_photos) & set(self.heldout_photos))
        if both:
            self._fail("heldout_photos", f"{both} also in train_photos: a held-out photograph gives no training crop")
        lo_hi = self.train_scales
        if (not isinstance(lo_hi, (list, tuple)) or len(lo_hi) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in lo_hi)
                or not 1.0 <= lo_hi[0] <= lo_hi[1]):
            self._fail("train_scales", f"must be [lo, hi] with 1 <= lo <= hi, got {lo_hi!r}")
        scales = self.heldout_scales
        if (not isinstance(scales, (list, tuple)) or not scales
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1.0 for v in scales)):
            self._fail("heldout_scales", f"must be a non-empty list of numbers >= 1, got {scales!r}")
        frames = self.video_frames
        if not isinstance(frames, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                            for i in frames):
            self._fail("video_frames", f"must be a list of frame indices, got {frames!r}")

    @classmethod
    def from_dict(cls, params: dict, where: str = "image_finetune.images") -> "ImageSetConfig":
        return from_mapping(cls, params, where)


def tile_offsets(height: int, width: int, side: int) -> list[tuple[int, int]]:
    """``(top, left)`` of every whole ``side x side`` tile of an ``height x width`` frame, the
    grid centred (the remainder split evenly between the edges)."""
    rows, cols = height // side, width // side
    top0, left0 = (height - rows * side) // 2, (width - cols * side) // 2
    return [(top0 + r * side, left0 + c * side) for r in range(rows) for c in range(cols)]


def _row(image_id: str, source: str, origin: str, split: str, scale: int, top: int, left: int,
         image: np.ndarray, writer: ShardWriter) -> dict:
    shard, offset = writer.write(image)
    return {"image_id": image_id, "source": source, "origin": origin, "split": split, "scale": int(scale),
            "top": int(top), "left": int(left), "height": int(image.shape[1]), "width": int(image.shape[2]),
            "shard": shard, "offset": int(offset), "checksum": clip_checksum(image)}


def _photo_rows(cfg: ImageSetConfig, resolution: int, writer: ShardWriter, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    rows = []
    rng = np.random.default_rng(cfg.seed)
    lo, hi = cfg.train_scales
    names = [(n, "train") for n in cfg.train_photos] + [(n, "test") for n in cfg.heldout_photos]
    for name, split in tqdm(names, desc="cutting photographs", disable=not progress):
        photo = load_photograph(name)[None]  # (1, H, W, 3)
        if split == "train":
            h, w = photo.shape[1:3]
            for k in range(cfg.crops_per_photo):
                side = round(resolution * float(rng.uniform(lo, hi)))
                # the crop of the photograph resized to shorter edge `side`, cut from the original
                # first (resizing the whole photograph per crop would cost ~50x more)
                f = min(h, w) / side  # original pixels per resized pixel
                top = int(rng.integers(0, round(h / f) - resolution + 1))
                left = int(rng.integers(0, round(w / f) - resolution + 1))
                y0, x0, size = min(round(top * f), h - 1), min(round(left * f), w - 1), max(round(resolution * f), 1)
                region = photo[:, y0:y0 + size, x0:x0 + size]
                crop = resize_and_crop(region, resolution)
                rows.append(_row(f"photo:{name}#{k}", "photo", name, split, side, top, left, crop, writer))
        else:
            for s in cfg.heldout_scales:
                side = round(resolution * float(s))
                big = resize_shorter_edge(photo, side)
                for top, left in tile_offsets(big.shape[1], big.shape[2], resolution):
                    crop = big[:, top:top + resolution, left:left + resolution]
                    rows.append(_row(f"photo:{name}@{side}/{top},{left}", "photo", name, split, side, top, left,
                                     crop, writer))
    return rows


def _clip_cache_rows(cfg: ImageSetConfig, clip_cache: ClipCache, writer: ShardWriter, progress: bool) -> list[dict]:
    """Frames of the training video clips, and the cache's own images (each in its own split)."""
    from tqdm.auto import tqdm

    rows = []
    seen: set[str] = set()
    clips = clip_cache.dataset()
    index = clips.index
    wanted = index[(index["frames"] == 1) | (index["split"] == "train")]
    for i in tqdm(wanted.index, desc="frames of the clip cache", disable=not progress):
        row = index.loc[i]
        clip = clips.read_uint8(int(i))  # (T, H, W, 3)
        if int(row.frames) == 1:
            picks, source = [0], "image"
        else:
            picks, source = sorted({f % clip.shape[0] for f in cfg.video_frames}), "video_frame"
        for f in picks:
            frame = np.ascontiguousarray(clip[f : f + 1])
            key = clip_checksum(frame)
            if source == "video_frame" and key in seen:  # overlapping windows share frames
                continue
            seen.add(key)
            image_id = row.clip_id if source == "image" else f"frame:{row.clip_id}#{f}"
            rows.append(_row(image_id, source, row.video_id, row.split, int(row.height), 0, 0, frame, writer))
    return rows


def build_image_cache(cfg: ImageSetConfig, clip_cache: ClipCache, directory: str | Path,
                      progress: bool = True) -> pd.DataFrame:
    """Write every image (see the module docstring) as shards into ``directory``; return the index.

    The resolution is the clip cache's, so images fit the model the clips trained.

    Raises:
        ValueError: a split ends with no image (the held-out split needs held-out photographs
            or test images in the clip cache; the training split needs anything).
    """
    from sweettok.schemas import ImageIndexSchema

    resolution = clip_cache.resolution
    writer = ShardWriter(Path(directory), 256 * 1024 * 1024)
    try:
        rows = _photo_rows(cfg, resolution, writer, progress) if cfg.embedded_photos else []
        rows += _clip_cache_rows(cfg, clip_cache, writer, progress)
    finally:
        writer.close()
    index = pd.DataFrame(rows, columns=IMAGE_INDEX_COLUMNS)
    for split in ("train", "test"):
        if not (index["split"] == split).any():
            raise ValueError(f"image set: no {split} image (embedded_photos={cfg.embedded_photos}, "
                             f"{'held-out photographs ' + str(cfg.heldout_photos) if split == 'test' else ''}); "
                             "enable the embedded photographs or give the clip cache images of that split")
    counts = index.groupby(["split", "source"]).size()
    log.info("image cache: %s", ", ".join(f"{split} {source} {n}" for (split, source), n in counts.items()))
    return ImageIndexSchema.validate(index, lazy=True)


class ImageDataset(Dataset):
    """Images of the cache as float tensors.

    Each item is a dict: ``image`` (float32 ``(C, H, W)`` in [-0.5, 0.5]) and ``image_id`` (str).

    Args:
        index: the image index (rows of one split, or all).
        shard_dir: folder of the shard files.
        flip: random horizontal flip with probability 0.5 (training augmentation).
    """

    def __init__(self, index: pd.DataFrame, shard_dir: str | Path, flip: bool = False) -> None:
        self.index = index.reset_index(drop=True)
        self.shard_dir = Path(shard_dir)
        self.flip = flip
        self._maps: dict[str, np.memmap] = {}
        for shard in self.index["shard"].unique():
            if not (self.shard_dir / shard).is_file():
                raise FileNotFoundError(f"image index names shard {shard!r}, not found in {self.shard_dir}")

    def __len__(self) -> int:
        return len(self.index)

    def read_uint8(self, i: int) -> np.ndarray:
        """Image ``i`` as stored: uint8 ``(H, W, 3)``."""
        row = self.index.iloc[i]
        mm = self._maps.get(row.shard)
        if mm is None:  # opened lazily so that each DataLoader worker maps its own
            mm = self._maps[row.shard] = np.memmap(self.shard_dir / row.shard, dtype=np.uint8, mode="r")
        n = int(row.height) * int(row.width) * 3
        return np.asarray(mm[int(row.offset) : int(row.offset) + n]).reshape(int(row.height), int(row.width), 3)

    def __getitem__(self, i: int) -> dict:
        image = torch.from_numpy(self.read_uint8(i).copy()).permute(2, 0, 1)  # (C, H, W)
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        return {"image": image.float() / 255.0 - 0.5, "image_id": self.index.iloc[i].image_id}

    def tensor(self) -> torch.Tensor:
        """Every image, unflipped, as one float ``(N, C, H, W)`` tensor in [-0.5, 0.5]."""
        return torch.stack([torch.from_numpy(self.read_uint8(i).copy()).permute(2, 0, 1)
                            for i in range(len(self))]).float() / 255.0 - 0.5


class ImageCache:
    """An image cache directory: ``index.parquet`` (``ImageIndexSchema``) and its shards.

    What the ``image_cache`` catalog entry loads (``sweettok.io.image_cache_dataset``).
    """

    def __init__(self, root: str | Path) -> None:
        from sweettok.schemas import ImageIndexSchema

        self.root = Path(root)
        path = self.root / INDEX_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{self.root}: not an image cache (no {INDEX_FILE}); run the image_finetune "
                                    "pipeline")
        self.index = ImageIndexSchema.validate(pd.read_parquet(path), lazy=True)

    def __len__(self) -> int:
        return len(self.index)

    def dataset(self, split: str | None = None, flip: bool = False) -> ImageDataset:
        """The images of ``split`` (``train`` or ``test``; all when None)."""
        if split is not None and split not in ("train", "test"):
            raise ParamError("split", f"must be 'train' or 'test', got {split!r}", owner="ImageCache.dataset")
        rows = self.index if split is None else self.index[self.index["split"] == split]
        return ImageDataset(rows, self.root, flip=flip)

    @property
    def resolution(self) -> int:
        return int(self.index["height"].iloc[0])

    def fingerprint(self) -> str:
        """sha256 of the index (ids, origins, shard offsets and image checksums)."""
        return hashlib.sha256(pd.util.hash_pandas_object(self.index, index=False).values.tobytes()).hexdigest()

    def describe(self) -> dict:
        """Counts per split and source, and the held-out origins: for logs and reports."""
        counts = self.index.groupby(["split", "source"]).size()
        return {"images": {f"{s}/{src}": int(n) for (s, src), n in counts.items()},
                "heldout_origins": sorted(self.index.loc[self.index["split"] == "test", "origin"].unique())}


@dataclass
class PendingImageCache:
    """An image cache not built yet (what the node returns); written when the catalog saves it."""

    cfg: ImageSetConfig
    clip_cache: ClipCache
    progress: bool = True

    def write_to(self, directory: Path) -> None:
        index = build_image_cache(self.cfg, self.clip_cache, directory, progress=self.progress)
        index.to_parquet(Path(directory) / INDEX_FILE, index=False)
