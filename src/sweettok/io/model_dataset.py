"""Kedro dataset of an exported model checkpoint directory (see :mod:`sweettok.io.directory`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from sweettok.io.directory import writes_artifacts


class ModelDataset(AbstractDataset):
    """A model checkpoint directory (``config.json``, ``model.safetensors``, the prior if any).

    Args:
        filepath: the directory.
        kind: the model kind it must hold (``proxy_tokenizer``, ``sweettok``, ``sweettok_pixel``).
    """

    def __init__(self, filepath: str, kind: str, metadata: dict[str, Any] | None = None) -> None:
        from sweettok.models.tokenizer import KINDS

        if kind not in KINDS:
            raise ValueError(f"ModelDataset kind={kind!r}: must be one of {KINDS}")
        self._filepath = Path(filepath)
        self._kind = kind
        self.metadata = metadata

    def load(self):
        from sweettok.models.checkpoint import read_checkpoint_config
        from sweettok.models.tokenizer import load_model

        model = load_model(self._filepath, kind=self._kind)
        # where it came from, with the sha256 of every file (checked by load_model): for reports
        model.checkpoint = {"path": self._filepath.as_posix(),
                            "files": dict(read_checkpoint_config(self._filepath).get("files") or {})}
        return model

    def save(self, data) -> None:
        from sweettok.models.tokenizer import describe_model, save_model

        if not writes_artifacts():
            return
        got = describe_model(data)[0]["kind"]
        if got != self._kind:
            raise TypeError(f"ModelDataset({self._filepath}) holds {self._kind!r} models, got a {got!r}")
        save_model(data, self._filepath)

    def _exists(self) -> bool:
        from sweettok.models.checkpoint import is_complete

        return is_complete(self._filepath)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "kind": self._kind}
