"""Kedro datasets of the artefacts one pipeline hands to another (one module per dataset, so
that a DVC stage depends only on the code of the datasets it uses).

Each is a directory written atomically (:func:`sweettok.files.atomic_directory`):

- ``ClipCacheDataset``: the clip cache (``index.parquet`` + shards); loads a
  :class:`~sweettok.data.clips.ClipCache` (``.dataset(split)`` is a torch ``Dataset``).
- ``ProxyCodesDataset``: proxy code ids (``index.parquet`` + shards); loads a
  :class:`~sweettok.data.codes.CodeTable`.
- ``ModelDataset``: a model exported by :func:`sweettok.models.tokenizer.save_model`; loads it
  strictly (every file's sha256 checked, missing or unexpected keys named) in eval mode.

Large artefacts are saved from a pending object (``PendingClipCache``, ``PendingProxyCodes``)
whose ``write_to(directory)`` writes straight into the temporary directory, so nothing of
their size is held in memory or copied. The tables inside are validated by their pandera
schema on save and load.

Catalog entries::

    clip_cache:
      type: sweettok.io.clip_cache_dataset.ClipCacheDataset
      filepath: data/03_primary/clip_cache
    tokenizer:
      type: sweettok.io.model_dataset.ModelDataset
      filepath: data/06_models/tokenizer
      kind: sweettok_pixel
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from sweettok.files import atomic_directory


def writes_artifacts() -> bool:
    """Only rank 0 writes artefacts when nodes run under torchrun (every rank computes the same)."""
    return int(os.environ.get("RANK", "0")) == 0


class DirectoryDataset(AbstractDataset):
    """A directory artefact: ``save`` takes an object with ``write_to(directory)``."""

    MARKER = "index.parquet"

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata  # Kedro's free-form catalog metadata, unused here

    def save(self, data: Any) -> None:
        if not writes_artifacts():
            return
        if not callable(getattr(data, "write_to", None)):
            raise TypeError(f"{type(self).__name__} saves an object with write_to(directory), got {type(data).__name__}")
        with atomic_directory(self._filepath) as tmp:
            data.write_to(tmp)

    def _exists(self) -> bool:
        return (self._filepath / self.MARKER).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
