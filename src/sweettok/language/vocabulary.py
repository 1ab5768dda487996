"""The codebook vocabulary: words by part of speech from captions plus general English.

The vocabulary is a table with one row per codebook entry (columns ``word``, ``pos``,
``book``, ``index``, ``caption_count``, ``source``; the ``codebook_words`` schema):

- spatial book: adjectives, then nouns; temporal book: adverbs, then verbs. ``index`` is
  the entry's id within its book (the quantizer's codebook id).
- Within each part of speech: the caption words first (``caption_count`` descending, then
  alphabetical), then the general words in the shipped lists' order (most frequent
  first) that are not already in the book.
- A word is in a book at most once. A caption word tagged with both of a book's parts of
  speech ("left" as ADJ and ADV is not a conflict, two books; "light" as ADJ and NOUN is)
  takes the one it is tagged with more often (the modifier on a tie); its
  ``caption_count`` is its occurrences under either tag.
- ``source``: ``captions`` (reached ``min_caption_count``, not among the general top-N),
  ``general`` (only from the general list; ``caption_count`` still says how often it
  occurred), ``both``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import pandas as pd

from sweettok.language.config import POS_TAGS, CodebookConfig
from sweettok.language.tagging import CODEBOOK_WORD_RE, parse_tagged
from sweettok.models.codebook_prior import BOOK_POS

BOOK_OF_POS = {pos: book for book, pair in BOOK_POS.items() for pos in pair}
WORD_LIST_FILES = {"ADJ": "adjectives.txt", "NOUN": "nouns.txt", "ADV": "adverbs.txt", "VERB": "verbs.txt"}
VOCABULARY_COLUMNS = ["word", "pos", "book", "index", "caption_count", "source"]


def word_list_path(pos: str) -> Path:
    """Path of the shipped general word list of ``pos`` (``ADJ``/``NOUN``/``ADV``/``VERB``)."""
    if pos not in WORD_LIST_FILES:
        raise ValueError(f"no general word list for part of speech {pos!r}; known: {list(WORD_LIST_FILES)}")
    return Path(str(resources.files("sweettok") / "resources" / "words" / WORD_LIST_FILES[pos]))


def load_word_list(pos: str) -> list[str]:
    """The general words of ``pos``, most frequent first (see ``scripts/make_word_lists.py``).

    Raises:
        ValueError: naming the file and line, if a line is not one lower-case word.
    """
    path = word_list_path(pos)
    words = path.read_text(encoding="ascii").split("\n")
    if words and words[-1] == "":
        words.pop()
    for i, word in enumerate(words, 1):
        if not CODEBOOK_WORD_RE.match(word):
            raise ValueError(f"{path}:{i}: {word!r} is not one lower-case word")
    return words


def word_list_checksums() -> dict[str, str]:
    """sha256 (hex) of each shipped word-list file, keyed by file name."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (word_list_path(pos) for pos in POS_TAGS)
    }


def count_caption_words(tagged_captions: Iterable[str]) -> Counter[tuple[str, str]]:
    """Occurrences of ``(word, POS)`` over tagged captions, for ADJ/NOUN/ADV/VERB only."""
    counts: Counter[tuple[str, str]] = Counter()
    for tagged in tagged_captions:
        counts.update((w, p) for w, p in parse_tagged(tagged) if p in BOOK_OF_POS)
    return counts


def build_vocabulary(
    tagged_captions: Iterable[str],
    config: CodebookConfig,
    general_words: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Build the codebook vocabulary table (see the module docstring for the rules).

    Args:
        tagged_captions: training captions as ``word/POS`` strings.
        config: ``min_caption_count`` and ``general_words`` (top-N per part of speech).
        general_words: general word lists per POS, most frequent first; the shipped lists
            when None.

    Returns:
        the vocabulary table, rows ordered by book (spatial, temporal) then ``index``.

    Raises:
        ValueError: if a general list is shorter than the number of words asked of it,
            or a book ends up without one of its two parts of speech.
    """
    counts = count_caption_words(tagged_captions)
    if general_words is None:
        general_words = {pos: load_word_list(pos) for pos in POS_TAGS if config.general_count(pos) > 0}

    rows = []
    for book, (modifier, head) in BOOK_POS.items():
        # Per word of this book: its count under each of the book's tags.
        per_word: dict[str, dict[str, int]] = {}
        for (word, pos), n in counts.items():
            if pos in (modifier, head):
                per_word.setdefault(word, {modifier: 0, head: 0})[pos] += n
        caption_pos = {w: (head if c[head] > c[modifier] else modifier) for w, c in per_word.items()}
        caption_total = {w: c[modifier] + c[head] for w, c in per_word.items()}

        general_pos: dict[str, str] = {}
        for pos in (modifier, head):
            n = config.general_count(pos)
            available = general_words.get(pos, [])
            if n > len(available):
                raise ValueError(
                    f"codebook.general_words asks for {n} {pos} words but the list has {len(available)}"
                )
            for word in available[:n]:
                # A word listed under both of a book's parts of speech keeps the first (modifier).
                general_pos.setdefault(word, pos)

        index = 0
        for pos in (modifier, head):
            from_captions = sorted(
                (w for w, p in caption_pos.items() if p == pos and caption_total[w] >= config.min_caption_count),
                key=lambda w: (-caption_total[w], w),
            )
            in_book = set(from_captions)
            entries = [(w, "both" if w in general_pos else "captions") for w in from_captions]
            for word in general_words.get(pos, [])[: config.general_count(pos)]:
                # Caption words that reached the threshold keep their caption POS, wherever listed.
                if word in in_book or general_pos[word] != pos or (
                    word in caption_pos and caption_total[word] >= config.min_caption_count
                ):
                    continue
                in_book.add(word)
                entries.append((word, "general"))
            for word, source in entries:
                rows.append((word, pos, book, index, caption_total.get(word, 0), source))
                index += 1
        got = {pos for _, pos, b, *_ in rows if b == book}
        for pos in (modifier, head):
            if pos not in got:
                raise ValueError(
                    f"the {book} codebook has no {pos} word: no training caption word tagged {pos} "
                    f"occurs {config.min_caption_count}+ times and codebook.general_words adds none"
                )

    table = pd.DataFrame(rows, columns=VOCABULARY_COLUMNS)
    return table.astype({"index": "int64", "caption_count": "int64"})
