"""Co-occurrence edges: counted per caption, symmetric, no self-loops, modifier-head only."""

from __future__ import annotations

import pytest
import torch

from sweettok.language.graph import cooccurrence_edges


def as_dict(edge_index: torch.Tensor, edge_weight: torch.Tensor) -> dict[tuple[int, int], float]:
    return {(int(a), int(b)): float(w) for (a, b), w in zip(edge_index.T.tolist(), edge_weight.tolist())}


def test_adjective_noun_pairs_counted_once_per_caption_and_symmetric():
    words = ["red", "big", "square", "circle"]
    pos = ["ADJ", "ADJ", "NOUN", "NOUN"]
    captions = [
        "a/DET red/ADJ big/ADJ square/NOUN",
        "red/ADJ square/NOUN and/CCONJ red/ADJ square/NOUN",  # repeated pair: one co-occurrence
        "red/ADJ circle/NOUN",
        "square/NOUN near/ADP circle/NOUN",  # noun-noun: no edge
        "red/ADJ big/ADJ",  # adjective-adjective: no edge
        "big/VERB circle/NOUN",  # "big" tagged otherwise than its entry: no edge
        "green/ADJ square/NOUN",  # a word outside the book: ignored
    ]
    edge_index, edge_weight = cooccurrence_edges(captions, words, pos, ("ADJ", "NOUN"))
    assert edge_index.dtype == torch.int64 and edge_weight.dtype == torch.float32
    assert edge_index.shape == (2, 6) and edge_weight.shape == (6,)
    edges = as_dict(edge_index, edge_weight)
    assert edges == {
        (0, 2): 2.0, (2, 0): 2.0,  # red-square
        (0, 3): 1.0, (3, 0): 1.0,  # red-circle
        (1, 2): 1.0, (2, 1): 1.0,  # big-square
    }
    assert bool((edge_index[0] != edge_index[1]).all())


def test_adverb_verb_edges_and_empty_graph():
    words = ["slowly", "fast", "moves", "spins"]
    pos = ["ADV", "ADV", "VERB", "VERB"]
    captions = ["it/PRON moves/VERB slowly/ADV", "spins/VERB fast/ADV", "spins/VERB fast/ADV", "moves/VERB spins/VERB"]
    edges = as_dict(*cooccurrence_edges(captions, words, pos, ("ADV", "VERB")))
    assert edges == {(0, 2): 1.0, (2, 0): 1.0, (1, 3): 2.0, (3, 1): 2.0}

    edge_index, edge_weight = cooccurrence_edges(["moves/VERB"], words, pos, ("ADV", "VERB"))
    assert edge_index.shape == (2, 0) and edge_weight.shape == (0,)


def test_tags_outside_the_book_are_rejected():
    with pytest.raises(ValueError, match="not the book's"):
        cooccurrence_edges([], ["red", "runs"], ["ADJ", "VERB"], ("ADJ", "NOUN"))
