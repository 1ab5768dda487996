"""The language codebook prior: the frozen input of the MLC quantizer.

A prior holds two word graphs, one per codebook:

- spatial: adjectives then nouns (ids ``[0, n_first)`` are adjectives, ``[n_first, n)`` nouns);
- temporal: adverbs then verbs (ids ``[0, n_first)`` are adverbs, ``[n_first, n)`` verbs).

Each graph carries frozen text embeddings of its words (``(n, E)`` float32) and the
co-occurrence edges between them (``(2, n_edges)`` int64, symmetric, without self-loops;
the GCN adds those) with their counts as weights. ``sweettok.language`` builds and saves
priors; this module is pure torch so that the model layer can take one without importing
anything above it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BOOK_POS = {"spatial": ("ADJ", "NOUN"), "temporal": ("ADV", "VERB")}


@dataclass
class WordGraph:
    """Words of one codebook with their frozen embeddings and co-occurrence edges.

    Attributes:
        words: the words, the ``n_first`` modifiers (adjectives/adverbs) first.
        pos: part of speech per word (``ADJ``/``NOUN`` or ``ADV``/``VERB``).
        embeddings: ``(n, E)`` float32 frozen text embeddings.
        edge_index: ``(2, n_edges)`` int64 symmetric co-occurrence edges.
        edge_weight: ``(n_edges,)`` float32 co-occurrence counts.
    """

    words: list[str]
    pos: list[str]
    embeddings: torch.Tensor
    edge_index: torch.Tensor
    edge_weight: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.words)
        if len(self.pos) != n:
            raise ValueError(f"WordGraph: {n} words but {len(self.pos)} part-of-speech tags")
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            raise ValueError(
                f"WordGraph: embeddings must be (n_words={n}, E), got {tuple(self.embeddings.shape)}"
            )
        if self.edge_index.ndim != 2 or self.edge_index.shape[0] != 2:
            raise ValueError(f"WordGraph: edge_index must be (2, n_edges), got {tuple(self.edge_index.shape)}")
        if self.edge_weight.shape != (self.edge_index.shape[1],):
            raise ValueError("WordGraph: edge_weight must have one entry per edge")
        if self.edge_index.numel() and (int(self.edge_index.min()) < 0 or int(self.edge_index.max()) >= n):
            raise ValueError("WordGraph: edge_index refers to a word that does not exist")
        first = self.pos[0] if self.pos else None
        self.n_first = sum(1 for p in self.pos if p == first)
        if any(p != first for p in self.pos[: self.n_first]) or any(p == first for p in self.pos[self.n_first :]):
            raise ValueError("WordGraph: words must be ordered modifiers first, then head words")

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def embed_dim(self) -> int:
        return int(self.embeddings.shape[1])


@dataclass
class CodebookPrior:
    """The two word graphs (spatial and temporal) the MLC quantizer is built from."""

    spatial: WordGraph
    temporal: WordGraph

    def __post_init__(self) -> None:
        for name, graph in (("spatial", self.spatial), ("temporal", self.temporal)):
            want = BOOK_POS[name]
            got = tuple(dict.fromkeys(graph.pos))
            if got != want:
                raise ValueError(f"CodebookPrior.{name}: parts of speech must be {want} in that order, got {got}")
        if self.spatial.embed_dim != self.temporal.embed_dim:
            raise ValueError("CodebookPrior: spatial and temporal embeddings differ in width")

    @property
    def embed_dim(self) -> int:
        return self.spatial.embed_dim

    @classmethod
    def random(cls, n_adj: int = 12, n_noun: int = 20, n_adv: int = 10, n_verb: int = 16,
               embed_dim: int = 32, n_edges: int = 40, seed: int = 0) -> "CodebookPrior":
        """A small synthetic prior for tests and for models built without a real vocabulary."""
        g = torch.Generator().manual_seed(seed)

        def graph(prefix_a: str, pos_a: str, n_a: int, prefix_b: str, pos_b: str, n_b: int) -> WordGraph:
            words = [f"{prefix_a}{i}" for i in range(n_a)] + [f"{prefix_b}{i}" for i in range(n_b)]
            pos = [pos_a] * n_a + [pos_b] * n_b
            src = torch.randint(0, n_a, (n_edges,), generator=g)
            dst = torch.randint(n_a, n_a + n_b, (n_edges,), generator=g)
            pairs = torch.unique(torch.stack([src, dst], 1), dim=0)
            counts = torch.randint(1, 5, (pairs.shape[0],), generator=g).float()
            edge_index = torch.cat([pairs.T, pairs.T.flip(0)], 1)
            edge_weight = torch.cat([counts, counts])
            emb = torch.randn(n_a + n_b, embed_dim, generator=g)
            return WordGraph(words, pos, emb, edge_index, edge_weight)

        return cls(
            spatial=graph("adj", "ADJ", n_adj, "noun", "NOUN", n_noun),
            temporal=graph("adv", "ADV", n_adv, "verb", "VERB", n_verb),
        )

    # ------------------------------------------------------------------ plain form
    TENSOR_FIELDS = {"embeddings": torch.float32, "edge_index": torch.int64, "edge_weight": torch.float32}

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The prior as tensors (``spatial.embeddings``, ``spatial.edge_index``, ``spatial.edge_weight``
        and the same for ``temporal``) and a JSON-able ``{book: {"words", "pos"}}``; no pickle."""
        tensors: dict[str, torch.Tensor] = {}
        words: dict = {}
        for book in BOOK_POS:
            graph: WordGraph = getattr(self, book)
            for name, dtype in self.TENSOR_FIELDS.items():
                tensors[f"{book}.{name}"] = getattr(graph, name).detach().to("cpu", dtype).contiguous()
            words[book] = {"words": list(graph.words), "pos": list(graph.pos)}
        return tensors, words

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], words: dict) -> "CodebookPrior":
        """Inverse of :meth:`to_state`.

        Raises:
            ValueError: naming the missing, unexpected or mistyped tensor, or the inconsistent book.
        """
        expected = {f"{book}.{name}" for book in BOOK_POS for name in cls.TENSOR_FIELDS}
        missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        if missing or unexpected:
            raise ValueError(f"codebook prior: missing tensors {missing}, unexpected tensors {unexpected}")
        graphs = {}
        for book in BOOK_POS:
            entry = words.get(book) if isinstance(words, dict) else None
            if not isinstance(entry, dict) or not isinstance(entry.get("words"), list) \
                    or not isinstance(entry.get("pos"), list):
                raise ValueError(f"codebook prior: '{book}' must hold lists 'words' and 'pos'")
            for name, dtype in cls.TENSOR_FIELDS.items():
                if tensors[f"{book}.{name}"].dtype != dtype:
                    raise ValueError(f"codebook prior: {book}.{name} is {tensors[f'{book}.{name}'].dtype}, "
                                     f"expected {dtype}")
            try:
                graphs[book] = WordGraph(entry["words"], entry["pos"],
                                         *(tensors[f"{book}.{name}"] for name in cls.TENSOR_FIELDS))
            except ValueError as exc:
                raise ValueError(f"codebook prior: {book} book is inconsistent: {exc}") from exc
        return cls(spatial=graphs["spatial"], temporal=graphs["temporal"])
