"""Build the language codebook prior from the vocabulary table, captions and an encoder."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd
import torch

from sweettok.language.graph import cooccurrence_edges
from sweettok.language.text_encoders import TextEncoder
from sweettok.models.codebook_prior import BOOK_POS, CodebookPrior, WordGraph

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class LanguageCodebook(CodebookPrior):
    """A ``CodebookPrior`` with the record of what made it.

    ``metadata`` (JSON-able) holds ``format_version``, ``encoder`` (``name``, ``dim``),
    ``parameters_sha256``, ``code_version``, ``captions_sha256``, ``word_lists_sha256``
    and ``counts`` (per book: words per part of speech and source, undirected edges).
    """

    metadata: dict[str, Any] = field(default_factory=dict)


def code_version() -> str:
    """The installed sweettok version (the package metadata), or ``unknown``."""
    try:
        return version("sweettok")
    except PackageNotFoundError:
        return "unknown"


def _book_rows(words: pd.DataFrame, book: str) -> pd.DataFrame:
    rows = words.loc[words["book"] == book].sort_values("index", kind="stable")
    if rows.empty:
        raise ValueError(f"codebook_words: the {book} book has no words")
    expected = np.arange(len(rows))
    if not np.array_equal(rows["index"].to_numpy(), expected):
        raise ValueError(f"codebook_words: the {book} book's 'index' must be 0..{len(rows) - 1} without gaps")
    if rows["word"].duplicated().any():
        dup = rows.loc[rows["word"].duplicated(), "word"].iloc[0]
        raise ValueError(f"codebook_words: {dup!r} appears twice in the {book} book")
    return rows


def book_counts(words: pd.DataFrame, book: str, edge_index: torch.Tensor) -> dict[str, Any]:
    """Summary counts of one book: words per POS and per source, undirected edges."""
    rows = words.loc[words["book"] == book]
    return {
        "words": int(len(rows)),
        "by_pos": {pos: int((rows["pos"] == pos).sum()) for pos in BOOK_POS[book]},
        "by_source": {src: int((rows["source"] == src).sum()) for src in ("captions", "general", "both")},
        "edges": int(edge_index.shape[1] // 2),
    }


def build_language_codebook(
    words: pd.DataFrame,
    tagged_captions: Sequence[str],
    encoder: TextEncoder,
    provenance: dict[str, Any] | None = None,
) -> LanguageCodebook:
    """Embed the vocabulary and link co-occurring words.

    Args:
        words: the vocabulary table (``word``, ``pos``, ``book``, ``index``,
            ``caption_count``, ``source``), as ``build_vocabulary`` makes it.
        tagged_captions: the training captions as ``word/POS`` strings.
        encoder: the frozen text encoder; each distinct word is embedded once even if
            both books hold it.
        provenance: extra metadata (parameter hash, caption and word-list checksums).

    Returns:
        the prior: per book ``(n, E)`` float32 embeddings, symmetric int64 edges without
        self-loops, float32 co-occurrence counts; ``metadata`` filled in.
    """
    start = time.perf_counter()
    books = {book: _book_rows(words, book) for book in BOOK_POS}
    unique_words = sorted(set().union(*(set(rows["word"]) for rows in books.values())))
    vectors = encoder.encode(unique_words)
    if vectors.shape != (len(unique_words), encoder.dim) or vectors.dtype != np.float32:
        raise ValueError(
            f"{encoder.name} returned {vectors.shape} {vectors.dtype}, expected ({len(unique_words)}, {encoder.dim}) float32"
        )
    if not np.isfinite(vectors).all():
        raise ValueError(f"{encoder.name} returned non-finite embeddings")
    row_of = {w: i for i, w in enumerate(unique_words)}
    captions = list(tagged_captions)

    graphs: dict[str, WordGraph] = {}
    counts: dict[str, Any] = {}
    for book, rows in books.items():
        book_words = rows["word"].tolist()
        book_pos = rows["pos"].tolist()
        emb = torch.from_numpy(vectors[[row_of[w] for w in book_words]].copy())
        edge_index, edge_weight = cooccurrence_edges(captions, book_words, book_pos, BOOK_POS[book])
        graphs[book] = WordGraph(book_words, book_pos, emb, edge_index, edge_weight)
        counts[book] = book_counts(words, book, edge_index)

    metadata = {
        "format_version": FORMAT_VERSION,
        "encoder": {"name": encoder.name, "dim": int(encoder.dim)},
        "code_version": code_version(),
        "n_training_captions": len(captions),
        "counts": counts,
        **(provenance or {}),
    }
    codebook = LanguageCodebook(spatial=graphs["spatial"], temporal=graphs["temporal"], metadata=metadata)
    elapsed = time.perf_counter() - start
    for book, c in counts.items():
        log.info(
            "codebook %s: %d words (%s), from captions only %d, general only %d, both %d; %d edges",
            book, c["words"], ", ".join(f"{n} {p}" for p, n in c["by_pos"].items()),
            c["by_source"]["captions"], c["by_source"]["general"], c["by_source"]["both"], c["edges"],
        )
    log.info("codebook embedded %d distinct words with %s (E=%d) in %.1f s",
             len(unique_words), encoder.name, encoder.dim, elapsed)
    return codebook
