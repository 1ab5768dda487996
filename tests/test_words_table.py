"""The words table of clips' tokens, the distinctive words of each class, and the clip-words figure."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from sweettok.report.words import (CLASS_WORDS_COLUMNS, TOKEN_WORDS_COLUMNS, TokenWordsSchema, class_words,
                                   words_figure, words_table)

ADJ, NOUN, ADV, VERB = ["red", "blue", "big"], ["dog", "cat", "ball"], ["fast", "slowly"], ["run", "jump", "spin"]
ID_WORDS = ([(w, "ADJ") for w in ADJ] + [(w, "NOUN") for w in NOUN] + [(w, "ADV") for w in ADV]
            + [(w, "VERB") for w in VERB])
INDEX = {w: i for i, (w, _) in enumerate(ID_WORDS)}
IDS_PER_TOKEN = 3  # two modifiers and a head
SPATIAL_IDS = 2 * IDS_PER_TOKEN  # two spatial tokens, then three temporal tokens


def clip(spatial: list[str], temporal: list[str]) -> np.ndarray:
    """Ids of phrases like ``"red blue dog"``: 2 spatial and 3 temporal tokens."""
    return np.array([INDEX[w] for phrase in spatial + temporal for w in phrase.split()], dtype=np.int64)


CLIPS = {
    "s0": ("spinner", "test", clip(["red blue dog", "red blue dog"], ["fast slowly spin"] * 3)),
    "r0": ("runner", "test", clip(["big red cat", "blue red cat"],
                                  ["slowly fast run", "slowly fast jump", "fast slowly run"])),
    "t0": ("runner", "train", clip(["big big ball", "big big ball"], ["fast fast jump"] * 3)),
    "s1": ("spinner", "test", clip(["red blue dog", "red blue dog"], ["fast slowly spin"] * 3)),
    "r1": ("runner", "test", clip(["big blue ball", "red blue cat"], ["slowly fast run"] * 3)),
}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.DataFrame([dict(clip_id=cid, video_id=f"v_{cid}", label=label, label_index=int(label == "runner"),
                              split=split, ids=ids) for cid, (label, split, ids) in CLIPS.items()])


def test_one_row_per_token_split_into_views_modifiers_and_head(table):
    words = words_table(table, ID_WORDS, SPATIAL_IDS, IDS_PER_TOKEN)
    assert list(words.columns) == TOKEN_WORDS_COLUMNS
    assert len(words) == 4 * 5  # four test clips, 2 + 3 tokens each
    assert list(dict.fromkeys(words["clip_id"])) == ["s0", "r0", "s1", "r1"]  # the table's order
    r0 = words[words["clip_id"] == "r0"]
    assert list(r0["view"]) == ["spatial"] * 2 + ["temporal"] * 3 and list(r0["token"]) == [0, 1, 0, 1, 2]
    assert list(r0["modifiers"]) == ["big red", "blue red", "slowly fast", "slowly fast", "fast slowly"]
    assert list(r0["head"]) == ["cat", "cat", "run", "jump", "run"]
    assert r0["phrase"].iloc[3] == "slowly fast jump" and (r0["label"] == "runner").all()
    everything = words_table(table, ID_WORDS, SPATIAL_IDS, IDS_PER_TOKEN, split="all")
    assert len(everything) == 25 and "t0" in set(everything["clip_id"])
    # a wrong layout is refused: 9 temporal ids are not 2-id tokens, a view cut mid-token, a shifted view
    with pytest.raises(ValueError, match="multiples of ids_per_token=2"):
        words_table(table, ID_WORDS, SPATIAL_IDS, 2)
    with pytest.raises(ValueError, match="multiples"):
        words_table(table, ID_WORDS, 4, IDS_PER_TOKEN)
    with pytest.raises(ValueError, match="temporal token 0 of clip row 0: a modifier id is not ADV"):
        words_table(table, ID_WORDS, 3, IDS_PER_TOKEN)
    empty = words_table(table[table["split"] == "train"], ID_WORDS, SPATIAL_IDS, IDS_PER_TOKEN)
    assert empty.empty and list(empty.columns) == TOKEN_WORDS_COLUMNS


def test_schema_rejects_a_phrase_that_is_not_modifiers_then_head(table):
    words = words_table(table, ID_WORDS, SPATIAL_IDS, IDS_PER_TOKEN)
    bad = words.copy()
    bad.loc[0, "phrase"] = "dog red blue"
    with pytest.raises(pandera.errors.SchemaError, match="phrase is the modifiers then the head"):
        TokenWordsSchema.validate(bad)


def test_class_words_ranks_by_lift_among_repeated_words(table):
    words = words_table(table, ID_WORDS, SPATIAL_IDS, IDS_PER_TOKEN)
    distinctive = class_words(words, top=2)
    assert list(distinctive.columns) == CLASS_WORDS_COLUMNS
    rows = distinctive.set_index(["label", "pos", "word"])
    # the planted verb: all 6 of the spinners' verbs, half of all verbs -> lift 2
    assert rows.loc[("spinner", "VERB", "spin"), ["count", "share", "lift"]].tolist() == [6, 1.0, 2.0]
    runner_verbs = distinctive[(distinctive["label"] == "runner") & (distinctive["pos"] == "VERB")]
    assert runner_verbs["word"].tolist() == ["run"]  # "jump" occurs once: below min_count
    assert runner_verbs["lift"].iloc[0] == pytest.approx((5 / 6) / (5 / 12))
    # runner adjectives: big 2, red 3, blue 3 of 8; pooled: big 2, red 7, blue 7 of 16
    runner_adj = distinctive[(distinctive["label"] == "runner") & (distinctive["pos"] == "ADJ")]
    assert runner_adj["word"].tolist() == ["big", "blue"]  # red ties blue on lift and count: alphabetical
    np.testing.assert_allclose(runner_adj["lift"], [2.0, (3 / 8) / (7 / 16)])
    np.testing.assert_allclose(runner_adj["share"], [0.25, 0.375])
    assert distinctive["label"].tolist() == sorted(distinctive["label"])
    assert distinctive[distinctive["label"] == "runner"]["pos"].tolist() == ["ADJ", "ADJ", "NOUN", "ADV", "ADV",
                                                                            "VERB"]
    assert set(distinctive.loc[distinctive["pos"].isin(["ADJ", "NOUN"]), "view"]) == {"spatial"}
    assert len(class_words(words, top=1, min_count=1).query("label == 'runner' and pos == 'VERB'")) == 1
    assert class_words(words, min_count=7).empty


def test_words_figure_shows_three_frames_and_the_words_of_each_clip(table):
    words = words_table(table, ID_WORDS, SPATIAL_IDS, IDS_PER_TOKEN)
    rng = np.random.default_rng(0)
    frames = {cid: rng.integers(0, 256, size=(9, 64, 64, 3), dtype=np.uint8) for cid in ("s0", "r0", "r1")}
    fig = words_figure(frames, words, ["s0", "r0", "r1"], top=2)
    assert len(fig.axes) == 3 * 4
    assert [ax.get_title() for ax in fig.axes[:3]] == ["frame 0", "frame 4", "frame 8"]
    np.testing.assert_array_equal(fig.axes[5].get_images()[0].get_array(), frames["r0"][4])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts[0] == "spinner  (s0)"
    assert texts[1].splitlines() == ["adjectives: blue x2, red x2", "nouns: dog x2", "adverbs: fast x3, slowly x3",
                                     "verbs: spin x3"]
    assert "verbs: run x2, jump x1" in texts[3]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(buffer.getvalue()) > 10_000
    with pytest.raises(ValueError, match="no frames for clip 's1'"):
        words_figure(frames, words, ["s1"])
    with pytest.raises(ValueError, match="no tokens of clip 't0'"):
        words_figure({"t0": frames["s0"]}, words, ["t0"])
