"""Kedro dataset of the language codebook (a directory; see ``sweettok.language.storage``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from sweettok.language.codebook import LanguageCodebook
from sweettok.language.storage import METADATA_FILE, load_language_codebook, save_language_codebook
from sweettok.models.codebook_prior import CodebookPrior


class LanguageCodebookDataset(AbstractDataset[CodebookPrior, LanguageCodebook]):
    """Saves a ``CodebookPrior`` as a codebook directory and loads it back.

    ``load`` returns a ``LanguageCodebook``: a ``CodebookPrior`` whose ``metadata`` dict
    says what made it (encoder, parameter hash, code version, caption and word-list
    checksums, counts). Saving a plain ``CodebookPrior`` records the encoder width only.
    Local filesystem paths only; the tensors go through safetensors, never pickle.

    Catalog entry::

        language_codebook:
          type: sweettok.io.codebook_dataset.LanguageCodebookDataset
          filepath: data/04_feature/language_codebook
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata  # Kedro's free-form catalog metadata, unused here

    def load(self) -> LanguageCodebook:
        return load_language_codebook(self._filepath)

    def save(self, data: CodebookPrior) -> None:
        if not isinstance(data, CodebookPrior):
            raise TypeError(f"LanguageCodebookDataset saves a CodebookPrior, got {type(data).__name__}")
        save_language_codebook(data, self._filepath)

    def _exists(self) -> bool:
        return (self._filepath / METADATA_FILE).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
