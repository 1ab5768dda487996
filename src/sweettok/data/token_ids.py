"""The id table: every cached clip encoded once to the tokenizer's ids.

One row per clip (``TokenIdsSchema`` in :mod:`sweettok.schemas`): ``clip_id``, ``video_id``,
``label``, ``label_index``, ``split``, ``tokenizer`` (sha256 of the tokenizer's weights file, so
that a table is never used with another tokenizer), and ``ids``: the clip's 1-D int64 ids in the
layout of :mod:`sweettok.models.quantizer` (spatial ids, then temporal ids). Stored as parquet
(``ids`` a list column). The LM trains on it and the semantics reports read words from it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:  # imported for annotations only: sweettok.schemas imports this module's users
    from sweettok.data.clips import ClipCache
    from sweettok.models.tokenizer import VideoTokenizer

log = logging.getLogger(__name__)

__all__ = ["TOKEN_ID_COLUMNS", "encode_id_table", "id_matrix", "tokenizer_identity"]

TOKEN_ID_COLUMNS = ["clip_id", "video_id", "label", "label_index", "split", "tokenizer", "ids"]


def tokenizer_identity(tokenizer: torch.nn.Module) -> str:
    """sha256 of the tokenizer's weights file when it was loaded from a checkpoint, else of its weights."""
    files = (getattr(tokenizer, "checkpoint", None) or {}).get("files") or {}
    digest = (files.get("model.safetensors") or {}).get("sha256")
    if digest:
        return str(digest)
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(tokenizer.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def encode_id_table(tokenizer: VideoTokenizer, clips: ClipCache, batch_size: int = 16,
                    device: torch.device | str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Encode every clip of the cache (all splits) to ids; one row per clip, in cache order."""
    dataset = clips.dataset()
    identity = tokenizer_identity(tokenizer)
    model = tokenizer.to(device).eval()
    rows = []
    index = dataset.index
    for start in tqdm(range(0, len(dataset), batch_size), desc="token ids", disable=not progress):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        _, ids = model.encode(torch.stack([it["clip"] for it in items]).to(device))
        for k, clip_ids in enumerate(ids.cpu().numpy().astype(np.int64)):
            row = index.iloc[start + k]
            rows.append({"clip_id": row.clip_id, "video_id": row.video_id, "label": row.label,
                         "label_index": int(row.label_index), "split": row.split, "tokenizer": identity,
                         "ids": clip_ids})
    table = pd.DataFrame(rows, columns=TOKEN_ID_COLUMNS)
    if len(table):
        words = np.bincount(np.concatenate(table["ids"].to_list()))
        log.info("token ids: %d clips x %d ids, %d distinct words used", len(table), len(table["ids"].iloc[0]),
                 int((words > 0).sum()))
    return table


def id_matrix(table: pd.DataFrame) -> np.ndarray:
    """The ``ids`` column stacked: ``(N, L)`` int64; every row must hold the same number of ids.

    An empty table gives ``(0, 0)``.
    """
    cells = [np.asarray(cell) for cell in table["ids"]]
    if not cells:
        return np.zeros((0, 0), dtype=np.int64)
    length = cells[0].shape
    for row, cell in enumerate(cells):
        if cell.ndim != 1 or cell.shape != length or not np.issubdtype(cell.dtype, np.integer):
            name = table["clip_id"].iloc[row] if "clip_id" in table else f"row {row}"
            raise ValueError(f"every clip's ids must be a 1-D integer array of the same length; {name!r} has shape "
                             f"{cell.shape} and dtype {cell.dtype} (the first: shape {length})")
    return np.stack(cells).astype(np.int64, copy=False)
