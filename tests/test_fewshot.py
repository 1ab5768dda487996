"""Few-shot action recognition from token words: features, episodes, learner, intervals, prompts, schema."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from sweettok.metrics import fewshot
from sweettok.metrics.fewshot import (ANSWER_MARKER, FEWSHOT_COLUMNS, FewShotConfig, FewShotSchema, SkippedSetting,
                                      bag_of_words, episode_prompt, episodes, mean_confidence_interval, run_fewshot,
                                      write_prompts)
from sweettok.typed_params import ParamError

N_ADJ, N_NOUN, N_ADV, N_VERB = 20, 20, 20, 20
NS = N_ADJ + N_NOUN
TOPK = 2
N = TOPK + 1
TOKENS = 8  # spatial and temporal tokens per clip
SPATIAL_IDS = N * TOKENS


def vocabulary() -> list[tuple[str, str]]:
    return ([(f"adj{i}", "ADJ") for i in range(N_ADJ)] + [(f"noun{i}", "NOUN") for i in range(N_NOUN)]
            + [(f"adv{i}", "ADV") for i in range(N_ADV)] + [(f"verb{i}", "VERB") for i in range(N_VERB)])


def token_ids(rng, modifiers: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """``TOKENS`` tokens as (mod1, mod2, head) triples, flattened token-major."""
    return np.stack([modifiers[:, 0], modifiers[:, 1], heads], axis=1).ravel()


def synthetic_table(classes: int = 12, clips: int = 10, seed: int = 0) -> pd.DataFrame:
    """Class identity only in the temporal ids: each class has its own verb and adverb that most
    temporal tokens use; spatial ids are uniformly random."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(classes):
        for k in range(clips):
            adj = rng.integers(0, N_ADJ, size=(TOKENS, TOPK))
            noun = rng.integers(N_ADJ, NS, size=TOKENS)
            adv = rng.integers(NS, NS + N_ADV, size=(TOKENS, TOPK))
            adv[rng.random(TOKENS) < 0.6, 0] = NS + c
            verb = rng.integers(NS + N_ADV, NS + N_ADV + N_VERB, size=TOKENS)
            verb[rng.random(TOKENS) < 0.6] = NS + N_ADV + c
            ids = np.concatenate([token_ids(rng, adj, noun), token_ids(rng, adv, verb)]).astype(np.int64)
            split = "train" if k == 0 else "test"
            rows.append(dict(clip_id=f"c{c}_v{k}", video_id=f"c{c}_v{k}", label=f"action{c:02d}", label_index=c,
                             split=split, ids=ids))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_table()


def test_bag_of_words_counts_the_views_positions_and_normalises_rows():
    ids = np.array([[0, 0, 1, 3, 3, 3],
                    [2, 2, 2, 2, 4, 4]])
    spatial = bag_of_words(ids, "spatial", 3, 5)
    assert spatial.shape == (2, 5)
    np.testing.assert_allclose(spatial[0], np.array([2, 1, 0, 0, 0]) / np.sqrt(5))
    np.testing.assert_allclose(spatial[1], [0, 0, 1, 0, 0])
    temporal = bag_of_words(ids, "temporal", 3, 5)
    np.testing.assert_allclose(temporal[0], [0, 0, 0, 1, 0])
    np.testing.assert_allclose(temporal[1], np.array([0, 0, 1, 0, 2]) / np.sqrt(5))
    both = bag_of_words(ids, "both", 3, 5)
    np.testing.assert_allclose(both[1], np.array([0, 0, 4, 0, 2]) / np.sqrt(20))
    # an empty view gives zero rows, not NaN
    assert not bag_of_words(ids, "temporal", 6, 5).any()
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        bag_of_words(ids, "both", 3, 4)
    with pytest.raises(ValueError, match="view"):
        bag_of_words(ids, "audio", 3, 5)


def test_words_carry_the_class_only_in_the_temporal_view(table):
    cfg = FewShotConfig(ways=[5], shots=[1, 5], queries=3, episodes=300, prompt_episodes=0)
    result = run_fewshot(table, vocabulary(), SPATIAL_IDS, cfg)
    assert list(result.table.columns) == FEWSHOT_COLUMNS and len(result.table) == 6 and not result.skipped
    acc = result.table.set_index(["view", "shots"])["accuracy"]
    for shots in (1, 5):
        assert acc["temporal", shots] > 0.9
        assert abs(acc["spatial", shots] - 0.2) < 0.05  # uniform spatial ids: chance for 5 ways
        assert acc["both", shots] > acc["spatial", shots] + 0.3
    # more shots give better centroids of the class's words
    assert acc["both", 5] > acc["both", 1]
    assert (result.table["chance"] == 0.2).all() and (result.table["learner"] == "nearest_centroid").all()
    assert (result.table["episodes"] == 300).all() and (result.table["queries"] == 3).all()


def test_episodes_are_seeded_disjoint_and_keep_videos_apart():
    labels = np.repeat(["a", "b", "c", "d"], 6)
    groups = np.array([f"{label}{i // 2}" for label, i in zip(labels, np.tile(np.arange(6), 4))])  # 3 videos each
    first = episodes(labels, 3, 1, 2, 50, np.random.default_rng(7), groups)
    again = episodes(labels, 3, 1, 2, 50, np.random.default_rng(7), groups)
    other = episodes(labels, 3, 1, 2, 50, np.random.default_rng(8), groups)
    assert all(a.classes == b.classes and (a.support == b.support).all() and (a.query == b.query).all()
               for a, b in zip(first, again))
    assert any(a.classes != b.classes or (a.support != b.support).any() for a, b in zip(first, other))
    for ep in first:
        assert ep.support.shape == (3, 1) and ep.query.shape == (3, 2) and list(ep.classes) == sorted(ep.classes)
        rows = np.concatenate([ep.support.ravel(), ep.query.ravel()])
        assert len(set(rows)) == len(rows)
        assert len(set(groups[rows])) == len(rows)  # no two picks share a video
        for c, label in enumerate(ep.classes):
            assert (labels[ep.support[c]] == label).all() and (labels[ep.query[c]] == label).all()
    # 3 videos per class cannot give 1 + 3 clips from distinct videos
    with pytest.raises(ValueError, match="3-way 1-shot"):
        episodes(labels, 3, 1, 3, 1, np.random.default_rng(0), groups)


def test_every_view_is_scored_on_the_same_episodes(table, monkeypatch):
    sampled, scored = [], []
    real_episodes, real_accuracy = fewshot.episodes, fewshot.episode_accuracy

    def recording_episodes(*args, **kwargs):
        sampled.append(real_episodes(*args, **kwargs))
        return sampled[-1]

    def recording_accuracy(features, episode):
        scored.append((id(features), episode))
        return real_accuracy(features, episode)

    monkeypatch.setattr(fewshot, "episodes", recording_episodes)
    monkeypatch.setattr(fewshot, "episode_accuracy", recording_accuracy)
    cfg = FewShotConfig(ways=[4], shots=[2], episodes=20, prompt_episodes=0)
    run_fewshot(table, vocabulary(), SPATIAL_IDS, cfg)
    assert len(sampled) == 1 and len(scored) == 3 * 20
    by_view = [scored[i * 20:(i + 1) * 20] for i in range(3)]
    assert len({features for view in by_view for features, _ in view}) == 3  # three feature matrices
    for view in by_view:
        assert [ep for _, ep in view] == sampled[0]
    # the same seed gives the same table; the episodes draw from the chosen split only
    one = run_fewshot(table, vocabulary(), SPATIAL_IDS, cfg).table
    two = run_fewshot(table, vocabulary(), SPATIAL_IDS, cfg).table
    pd.testing.assert_frame_equal(one, two)
    test_rows = fewshot.select_split(table, "test")
    assert all(test_rows.loc[ep.support.ravel(), "split"].eq("test").all() for ep in sampled[0])


def test_confidence_interval_contains_the_mean_and_shrinks_with_episodes(table):
    mean, low, high = mean_confidence_interval(np.array([0.6, 0.8, 0.7, 0.9, 0.5]), 0.95)
    # t_{0.975, 4} = 2.776445; std = 0.158114; half width = 2.776445 * 0.158114 / sqrt(5)
    assert mean == pytest.approx(0.7) and low == pytest.approx(0.503676, abs=1e-5)
    assert high == pytest.approx(0.896324, abs=1e-5)
    assert mean_confidence_interval(np.array([1.0, 1.0, 0.9]), 0.95)[2] == 1.0  # clipped at 1
    assert mean_confidence_interval(np.array([0.4]), 0.95) == (0.4, 0.0, 1.0)
    widths = {}
    for count in (30, 480):
        cfg = FewShotConfig(ways=[5], shots=[1], episodes=count, prompt_episodes=0)
        rows = run_fewshot(table, vocabulary(), SPATIAL_IDS, cfg).table
        assert ((rows["ci_low"] <= rows["accuracy"]) & (rows["accuracy"] <= rows["ci_high"])).all()
        spatial = rows.set_index("view").loc["spatial"]
        widths[count] = spatial["ci_high"] - spatial["ci_low"]
    # width ~ t * std / sqrt(episodes): 16 times the episodes, about a quarter of the width
    assert 0.15 < widths[480] / widths[30] < 0.4


def test_infeasible_settings_are_skipped_and_reported(caplog):
    table = synthetic_table(classes=6, clips=6)
    # class 5's clips all come from one video: it never has 1 + 3 clips from distinct videos
    table.loc[table["label"] == "action05", "video_id"] = "one_video"
    cfg = FewShotConfig(ways=[3, 6], shots=[1, 5], queries=3, episodes=10, prompt_episodes=1)
    with caplog.at_level(logging.WARNING, logger="sweettok.metrics.fewshot"):
        result = run_fewshot(table, vocabulary(), SPATIAL_IDS, cfg)
    # 5 test clips per class: only 1-shot (needs 4) is feasible, and for 5 classes
    assert result.skipped == [SkippedSetting(3, 5, 8, 0), SkippedSetting(6, 1, 4, 5), SkippedSetting(6, 5, 8, 0)]
    assert set(zip(result.table["ways"], result.table["shots"])) == {(3, 1)} and len(result.table) == 3
    assert len(result.prompts) == 1
    assert "6-way 1-shot: needs 6 classes with >= 4 clips from distinct videos, 5 have them" in caplog.text
    empty = run_fewshot(table.iloc[:0], vocabulary(), SPATIAL_IDS, cfg)
    assert empty.table.empty and list(empty.table.columns) == FEWSHOT_COLUMNS and len(empty.skipped) == 4


def test_prompts_list_support_labels_words_and_the_answer_key(table, tmp_path):
    cfg = FewShotConfig(ways=[3], shots=[2], queries=2, episodes=8, prompt_episodes=3)
    result = run_fewshot(table, vocabulary(), SPATIAL_IDS, cfg)
    assert len(result.prompts) == 3
    test_rows = fewshot.select_split(table, "test")
    tasks = episodes(test_rows["label"].to_numpy(), 3, 2, 2, 3, np.random.default_rng([0, 3, 2]),
                     test_rows["video_id"].to_numpy())
    for prompt, ep in zip(result.prompts, tasks):
        lines = prompt.splitlines()
        assert "" not in lines and lines[0] == f"=== 3-way 2-shot, episode {tasks.index(ep) + 1} of 8 ==="
        examples = [line for line in lines if line.startswith("Example ")]
        assert len(examples) == 6
        for k, label in enumerate(np.repeat(ep.classes, 2), start=1):
            assert examples[k - 1].startswith(f"Example {k} (class: {label}): spatial words: ")
        queries = [line for line in lines if line.startswith("Query ")]
        assert len(queries) == 6 and "temporal words: " in queries[0]
        assert lines[-2] == ANSWER_MARKER and lines[-1].startswith("ANSWERS: ")
        answers = lines[-1].removeprefix("ANSWERS: ").split("; ")
        assert sorted(answers) == sorted(np.repeat(ep.classes, 2))
        # the query labels appear in the key only
        head = "\n".join(lines[:-2])
        assert all(head.count(f"(class: {c})") == 2 for c in ep.classes)
    # words by count, most frequent first, ties alphabetical
    ids = np.array([[1, 0, 20, 1, 0, 21, NS + 3, NS + 3, NS + 25, NS + 3, NS + 4, NS + 25]])
    one = fewshot.Episode(classes=("a",), support=np.array([[0]]), query=np.array([[0]]))
    prompt = episode_prompt(one, ids, vocabulary(), 6, "t", words_per_view=3)
    assert "Example 1 (class: a): spatial words: adj0 x2, adj1 x2, noun0 x1; temporal words: adv3 x3, verb5 x2, " \
           "adv4 x1" in prompt
    assert prompt.endswith(f"{ANSWER_MARKER}\nANSWERS: a")
    path = write_prompts(result.prompts, tmp_path / "out" / "prompts.txt")
    blocks = path.read_text(encoding="utf-8").rstrip("\n").split("\n\n")
    assert blocks[0].startswith("# 3 few-shot") and blocks[1:] == result.prompts


def test_schema_rejects_an_interval_that_misses_the_accuracy(table):
    cfg = FewShotConfig(ways=[3], shots=[1], episodes=10, prompt_episodes=0)
    good = run_fewshot(table, vocabulary(), SPATIAL_IDS, cfg).table
    FewShotSchema.validate(good)
    bad = good.copy()
    bad.loc[0, "ci_low"] = bad.loc[0, "accuracy"] + 0.01
    with pytest.raises(pandera.errors.SchemaError, match="ci_low <= accuracy <= ci_high"):
        FewShotSchema.validate(bad)
    wrong = good.copy()
    wrong["ways"] = 1
    with pytest.raises(pandera.errors.SchemaError):
        FewShotSchema.validate(wrong)


def test_config_errors_name_the_key():
    cfg = FewShotConfig.from_dict({"ways": [5], "shots": [1], "episodes": 10})
    assert cfg.queries == 3 and cfg.split == "test" and cfg.confidence == 0.95 and cfg.prompt_episodes == 5
    for params, key in [({"ways": [1, 5]}, "fewshot.ways"), ({"shots": []}, "fewshot.shots"),
                        ({"episodes": 0}, "fewshot.episodes"), ({"split": "val"}, "fewshot.split"),
                        ({"confidence": 1.0}, "fewshot.confidence"), ({"queries": 2.5}, "fewshot.queries"),
                        ({"prompt_episode": 3}, "fewshot.prompt_episode")]:
        with pytest.raises(ParamError) as info:
            FewShotConfig.from_dict(params)
        assert info.value.keys == [key]
    with pytest.raises(ParamError, match="did you mean 'prompt_episodes'"):
        FewShotConfig.from_dict({"prompt_episode": 3})


def test_verdict_says_chance_first():
    from sweettok.pipelines.semantics.nodes import _verdict

    acc = {"spatial": 0.076, "temporal": 0.092}
    low, high = {"spatial": 0.072, "temporal": 0.088}, {"spatial": 0.079, "temporal": 0.095}
    assert _verdict(acc, low, high, 0.1).startswith("neither spatial (0.076) nor temporal words (0.092)")
    acc, low, high = {"spatial": 0.2, "temporal": 0.6}, {"spatial": 0.18, "temporal": 0.55}, {"spatial": 0.22,
                                                                                            "temporal": 0.65}
    assert _verdict(acc, low, high, 0.2) == "temporal words beat spatial words"
    low["temporal"], high["spatial"] = 0.21, 0.3
    assert "not told apart" in _verdict(acc, low, high, 0.2) and _verdict(acc, low, high, 0.2).startswith("temporal")
