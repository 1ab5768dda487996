"""Co-occurrence edges of a codebook's word graph.

Two words of a book are linked when a training caption contains both, one of them a
modifier of the book (adjective / adverb) and the other a head word (noun / verb), each
tagged in the caption with the part of speech its codebook entry has ("light/ADJ" does not
count for a book whose "light" is a noun). The weight of an edge is the number
of captions in which the pair co-occurs (a caption counts a pair once however often it
repeats the words). Edges are stored in both directions and never as self-loops (the
GCN adds those).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from sweettok.language.tagging import parse_tagged


def cooccurrence_edges(
    tagged_captions: Iterable[str],
    words: Sequence[str],
    pos: Sequence[str],
    book_pos: tuple[str, str],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count modifier-head co-occurrences of one book's words over tagged captions.

    Args:
        tagged_captions: ``word/POS`` strings (training captions only).
        words: the book's words, ``n`` of them (ids are positions in this list).
        pos: the book's part of speech per word, ``book_pos[0]`` entries first.
        book_pos: the book's (modifier, head) tags: ``("ADJ", "NOUN")`` or ``("ADV", "VERB")``.

    Returns:
        ``edge_index`` ``(2, 2m)`` int64 and ``edge_weight`` ``(2m,)`` float32 for ``m``
        distinct pairs: the pairs (modifier, head) sorted, then the same pairs reversed.
        Weights are counts >= 1.
    """
    if len(words) != len(pos):
        raise ValueError(f"cooccurrence_edges: {len(words)} words but {len(pos)} tags")
    modifier, _ = book_pos
    stray = sorted(set(pos) - set(book_pos))
    if stray:
        raise ValueError(f"cooccurrence_edges: tags {stray} are not the book's {book_pos}")
    word_id = {w: i for i, w in enumerate(words)}
    is_modifier = [p == modifier for p in pos]
    pairs: Counter[tuple[int, int]] = Counter()
    for tagged in tagged_captions:
        ids = {word_id[w] for w, p in parse_tagged(tagged) if w in word_id and pos[word_id[w]] == p}
        mods = [i for i in ids if is_modifier[i]]
        heads = [i for i in ids if not is_modifier[i]]
        pairs.update((m, h) for m in mods for h in heads)
    if not pairs:
        return torch.zeros(2, 0, dtype=torch.int64), torch.zeros(0, dtype=torch.float32)
    ordered = sorted(pairs)
    forward = torch.tensor(ordered, dtype=torch.int64).T  # (2, m) modifier -> head
    counts = torch.tensor([pairs[p] for p in ordered], dtype=torch.float32)
    edge_index = torch.cat([forward, forward.flip(0)], dim=1)
    edge_weight = torch.cat([counts, counts])
    return edge_index, edge_weight
