"""Proxy code ids stored beside the clip cache.

The proxy tokenizer maps every cached clip to a grid of code ids ``(1 + k, H/p, W/p)``;
they are stored as uint16 arrays in shard files (`ShardWriter`) with an index row per clip
(``proxy_code_index``), and read back by clip id.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from sweettok.data.clips import ClipDataset, ShardWriter, clip_checksum

CODE_INDEX_COLUMNS = ["clip_id", "split", "slices", "grid_h", "grid_w", "shard", "offset", "checksum"]
CODE_DTYPE = np.uint16  # proxy vocabularies up to 65,536 codes (the paper's is 8,192)


def write_code_shards(items: Iterable[tuple[str, str, np.ndarray]], shard_dir: str | Path,
                      shard_size_mb: int = 256) -> pd.DataFrame:
    """Store ``(clip_id, split, ids (1+k, h, w))`` items; return the code index."""
    writer = ShardWriter(Path(shard_dir), shard_size_mb * 1024 * 1024)
    rows = []
    try:
        for clip_id, split, ids in items:
            if ids.ndim != 3:
                raise ValueError(f"{clip_id}: code ids must be (1+k, h, w), got shape {ids.shape}")
            if ids.min() < 0 or ids.max() > np.iinfo(CODE_DTYPE).max:
                raise ValueError(f"{clip_id}: code ids outside [0, {np.iinfo(CODE_DTYPE).max}]")
            arr = ids.astype(CODE_DTYPE)
            shard, offset = writer.write(arr)
            rows.append({"clip_id": clip_id, "split": split, "slices": arr.shape[0], "grid_h": arr.shape[1],
                         "grid_w": arr.shape[2], "shard": shard, "offset": offset, "checksum": clip_checksum(arr)})
    finally:
        writer.close()
    return pd.DataFrame(rows, columns=CODE_INDEX_COLUMNS)


class CodeTable:
    """Code ids by clip id, memory-mapped from the shards."""

    def __init__(self, index: pd.DataFrame, shard_dir: str | Path, verify: bool = False):
        self.index = index.set_index("clip_id")
        self.shard_dir = Path(shard_dir)
        self.verify = verify
        self._maps: dict[str, np.memmap] = {}

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.index.index

    def get(self, clip_id: str) -> np.ndarray:
        """int64 ids (1 + k, h, w) of a clip."""
        row = self.index.loc[clip_id]
        mm = self._maps.get(row.shard)
        if mm is None:
            path = self.shard_dir / row.shard
            if path.name != row.shard or not path.is_file():
                raise FileNotFoundError(f"code index names shard {row.shard!r}, not found in {self.shard_dir}")
            mm = self._maps[row.shard] = np.memmap(path, dtype=np.uint8, mode="r")
        shape = (int(row.slices), int(row.grid_h), int(row.grid_w))
        nbytes = int(np.prod(shape)) * np.dtype(CODE_DTYPE).itemsize
        raw = np.asarray(mm[int(row.offset) : int(row.offset) + nbytes])
        ids = raw.view(CODE_DTYPE).reshape(shape)
        if self.verify and clip_checksum(ids) != row.checksum:
            raise ValueError(f"proxy codes of {clip_id}: checksum mismatch in {row.shard}")
        return ids.astype(np.int64)


class ClipsWithCodes(Dataset):
    """`ClipDataset` items with the clip's proxy code ids added as ``codes`` (int64 (1+k, h, w))."""

    def __init__(self, clips: ClipDataset, codes: CodeTable):
        if clips.crop is not None or clips.flip:
            raise ValueError("proxy codes describe the stored clip: build the ClipDataset without crop/flip")
        missing = [c for c in clips.index["clip_id"] if c not in codes]
        if missing:
            raise ValueError(f"{len(missing)} clips have no proxy codes (first: {missing[0]}); rerun the proxy pipeline")
        self.clips = clips
        self.codes = codes

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        item = self.clips[i]
        item["codes"] = torch.from_numpy(self.codes.get(item["clip_id"]))
        return item


# ---------------------------------------------------------------------- the codes as one artefact
CODE_INDEX_FILE = "index.parquet"


def load_code_table(root: str | Path, verify: bool = False) -> CodeTable:
    """The proxy codes directory written by :class:`PendingProxyCodes` (``index.parquet`` + shards)."""
    from sweettok.schemas import ProxyCodeIndexSchema

    root = Path(root)
    if not (root / CODE_INDEX_FILE).is_file():
        raise FileNotFoundError(f"{root}: no proxy codes ({CODE_INDEX_FILE} missing); run the proxy pipeline")
    index = ProxyCodeIndexSchema.validate(pd.read_parquet(root / CODE_INDEX_FILE), lazy=True)
    return CodeTable(index, root, verify=verify)


class PendingProxyCodes:
    """Proxy code ids not computed yet: what the ``proxy`` pipeline's code node returns.

    ``items`` is a zero-argument callable giving ``(clip_id, split, ids (1+k, h, w))``;
    the ids are encoded while the catalog writes them into the dataset's directory.
    """

    def __init__(self, items, shard_size_mb: int = 256):
        self.items = items
        self.shard_size_mb = shard_size_mb

    def write_to(self, directory: Path) -> None:
        from sweettok.schemas import ProxyCodeIndexSchema

        index = write_code_shards(self.items(), directory, self.shard_size_mb)
        ProxyCodeIndexSchema.validate(index, lazy=True).to_parquet(Path(directory) / CODE_INDEX_FILE, index=False)
