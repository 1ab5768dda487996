"""The on-disk form of a language codebook: one directory, no pickle.

::

    <dir>/tensors.safetensors   spatial.embeddings (n_s, E) float32, spatial.edge_index (2, m_s) int64,
                                spatial.edge_weight (m_s,) float32, and the same three for temporal
    <dir>/words.json            {"format_version", "spatial": {"words": [...], "pos": [...]}, "temporal": ...}
    <dir>/metadata.json         the codebook's metadata (format version, encoder, hashes, counts)
                                plus "files": sha256 of the two files above

Loading checks the format version, the tensor names (exactly the six above), dtypes and
shapes against the words, and the two files' checksums, and names the offending file in
every error. Saving goes through :func:`sweettok.files.atomic_directory` (sibling temporary, fsync, rename),
so a reader never sees a half-written codebook.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sweettok.files import atomic_directory, sha256_file
from sweettok.language.codebook import FORMAT_VERSION, LanguageCodebook
from sweettok.models.codebook_prior import BOOK_POS, CodebookPrior, WordGraph

TENSORS_FILE = "tensors.safetensors"
WORDS_FILE = "words.json"
METADATA_FILE = "metadata.json"
TENSOR_FIELDS = CodebookPrior.TENSOR_FIELDS


class CodebookFormatError(ValueError):
    """A saved codebook is missing, corrupt or inconsistent; the message names the file."""


def save_language_codebook(codebook: CodebookPrior, directory: str | Path) -> None:
    """Write ``codebook`` (its ``metadata`` too, if it is a ``LanguageCodebook``) to ``directory``.

    An existing codebook at ``directory`` is replaced.
    """
    with atomic_directory(directory) as tmp:
        tensors, words = codebook.to_state()
        words = {"format_version": FORMAT_VERSION, **words}
        save_file(tensors, str(tmp / TENSORS_FILE), metadata={"format_version": str(FORMAT_VERSION)})
        (tmp / WORDS_FILE).write_text(json.dumps(words, ensure_ascii=False) + "\n", encoding="utf-8")
        metadata = copy.deepcopy(dict(getattr(codebook, "metadata", {}) or {}))
        metadata["format_version"] = FORMAT_VERSION
        metadata.setdefault("encoder", {})["dim"] = codebook.embed_dim
        metadata["files"] = {name: sha256_file(tmp / name) for name in (TENSORS_FILE, WORDS_FILE)}
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CodebookFormatError(f"{path}: missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodebookFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CodebookFormatError(f"{path}: expected a JSON object")
    return data


def _check_version(path: Path, found: Any) -> None:
    if found != FORMAT_VERSION:
        raise CodebookFormatError(f"{path}: format version {found!r}, this code reads version {FORMAT_VERSION}")


def load_language_codebook(directory: str | Path) -> LanguageCodebook:
    """Read and validate a codebook written by ``save_language_codebook``.

    Raises:
        CodebookFormatError: naming the file, on any missing, corrupt or inconsistent part.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CodebookFormatError(f"{directory}: no language codebook directory")
    meta_path, words_path, tensors_path = (directory / n for n in (METADATA_FILE, WORDS_FILE, TENSORS_FILE))
    metadata = _read_json(meta_path)
    _check_version(meta_path, metadata.get("format_version"))
    words = _read_json(words_path)
    _check_version(words_path, words.get("format_version"))
    if not tensors_path.is_file():
        raise CodebookFormatError(f"{tensors_path}: missing")

    for name, path in ((WORDS_FILE, words_path), (TENSORS_FILE, tensors_path)):
        expected = (metadata.get("files") or {}).get(name)
        if expected is None:
            raise CodebookFormatError(f"{meta_path}: no checksum recorded for {name}")
        if sha256_file(path) != expected:
            raise CodebookFormatError(f"{path}: sha256 differs from the one recorded in {METADATA_FILE} (corrupt or replaced)")

    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CodebookFormatError(f"{tensors_path}: not a readable safetensors file ({exc})") from exc
    expected_keys = {f"{book}.{name}" for book in BOOK_POS for name in TENSOR_FIELDS}
    missing, unexpected = sorted(expected_keys - set(tensors)), sorted(set(tensors) - expected_keys)
    if missing or unexpected:
        raise CodebookFormatError(f"{tensors_path}: missing tensors {missing}, unexpected tensors {unexpected}")

    dim = (metadata.get("encoder") or {}).get("dim")
    graphs = {}
    for book in BOOK_POS:
        entry = words.get(book)
        if not isinstance(entry, dict) or not isinstance(entry.get("words"), list) or not isinstance(entry.get("pos"), list):
            raise CodebookFormatError(f"{words_path}: '{book}' must hold lists 'words' and 'pos'")
        n = len(entry["words"])
        for name, dtype in TENSOR_FIELDS.items():
            t = tensors[f"{book}.{name}"]
            if t.dtype != dtype:
                raise CodebookFormatError(f"{tensors_path}: {book}.{name} is {t.dtype}, expected {dtype}")
        emb, ei, ew = (tensors[f"{book}.{name}"] for name in TENSOR_FIELDS)
        if emb.ndim != 2 or emb.shape[0] != n or emb.shape[1] != dim:
            raise CodebookFormatError(
                f"{tensors_path}: {book}.embeddings is {tuple(emb.shape)}, expected ({n}, {dim}) "
                f"for the {n} words in {WORDS_FILE} and the encoder width in {METADATA_FILE}"
            )
        if ei.ndim != 2 or ei.shape[0] != 2 or ew.shape != (ei.shape[1],):
            raise CodebookFormatError(
                f"{tensors_path}: {book}.edge_index {tuple(ei.shape)} / edge_weight {tuple(ew.shape)} "
                "must be (2, m) / (m,)"
            )
        try:
            graphs[book] = WordGraph(entry["words"], entry["pos"], emb, ei, ew)
        except ValueError as exc:
            raise CodebookFormatError(f"{directory}: {book} book is inconsistent: {exc}") from exc
    try:
        return LanguageCodebook(spatial=graphs["spatial"], temporal=graphs["temporal"], metadata=metadata)
    except ValueError as exc:
        raise CodebookFormatError(f"{directory}: {exc}") from exc
