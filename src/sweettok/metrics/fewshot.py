"""Few-shot action recognition from the words of a clip's tokens.

Every SweetTok id names one word (adjective / noun for the spatial tokens, adverb / verb for
the temporal ones; id layout in :mod:`sweettok.models.quantizer`). If the words carry the
action, a learner that sees nothing but word counts should tell actions apart from a few
labelled clips. This module measures that on the "id table" (one row per clip, columns
:data:`ID_TABLE_COLUMNS`, ``ids`` a 1-D int64 array of the same length in every row):

- :func:`bag_of_words`: per clip, the count of every id in the positions of one view
  (``spatial``: the first ``spatial_ids`` positions, ``temporal``: the rest, ``both``: all),
  each row l2-normalised.
- :func:`episodes`: ``ways``-way ``shots``-shot episodes with ``queries`` query clips per
  class, support and query disjoint (and, through ``groups``, never from the same video).
- :func:`run_fewshot`: a nearest-centroid learner (cosine similarity) on every view over
  *the same* episodes, so the views are compared on identical tasks; mean accuracy with a
  t confidence interval per (view, ways, shots), the table :data:`FEWSHOT_COLUMNS`
  (:data:`FewShotSchema`), and plain-text prompts of the first episodes for an external
  language model (:func:`write_prompts`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from sweettok.data.token_ids import id_matrix as ids_matrix
from sweettok.schemas import FEWSHOT_LEARNERS, FEWSHOT_VIEWS, FewShotSchema
from sweettok.typed_params import FieldChecks, from_mapping

log = logging.getLogger(__name__)

__all__ = [
    "ANSWER_MARKER", "FEWSHOT_COLUMNS", "ID_TABLE_COLUMNS", "LEARNER", "VIEWS", "Episode", "FewShotConfig",
    "FewShotResult", "FewShotSchema", "SkippedSetting", "bag_of_words", "eligible_classes", "episode_accuracy",
    "episode_prompt", "episodes", "ids_matrix", "mean_confidence_interval", "predict_nearest_centroid",
    "prompts_text", "run_fewshot", "select_split", "view_slice", "write_prompts",
]

VIEWS = FEWSHOT_VIEWS
"""Which ids of a clip a feature counts: the spatial tokens', the temporal tokens', or all."""

LEARNER = FEWSHOT_LEARNERS[0]

ID_TABLE_COLUMNS = ["clip_id", "video_id", "label", "label_index", "split", "ids"]
"""Columns of the id table the functions here read (more columns are ignored)."""

FEWSHOT_COLUMNS = ["view", "ways", "shots", "queries", "episodes", "accuracy", "ci_low", "ci_high", "chance",
                   "learner"]
"""Columns of :attr:`FewShotResult.table`: one row per (view, ways, shots)."""

SPLIT_CHOICES = ("train", "test", "all")

ANSWER_MARKER = "----- answer key (not part of the prompt) -----"
"""Line that separates a prompt from its answer key (the line ``ANSWERS: ...`` after it)."""


# ---------------------------------------------------------------------------- id table helpers
def select_split(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``table`` in ``split`` (``train``, ``test``, or ``all`` for every row), index reset."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {list(SPLIT_CHOICES)}, got {split!r}")
    missing = [c for c in ID_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"id table lacks columns {missing} (has {list(table.columns)})")
    rows = table if split == "all" else table[table["split"] == split]
    return rows.reset_index(drop=True)


def view_slice(view: str, spatial_ids: int) -> slice:
    """Positions of ``view`` in a clip's ids: spatial ``[0, spatial_ids)``, temporal ``[spatial_ids, L)``, both all."""
    if view == "spatial":
        return slice(0, spatial_ids)
    if view == "temporal":
        return slice(spatial_ids, None)
    if view == "both":
        return slice(None)
    raise ValueError(f"view must be one of {list(VIEWS)}, got {view!r}")


def _check_ids(ids: np.ndarray, spatial_ids: int, n_words: int) -> None:
    if ids.ndim != 2:
        raise ValueError(f"ids must be (N, L), got shape {ids.shape}")
    if spatial_ids < 0 or (ids.shape[0] > 0 and spatial_ids > ids.shape[1]):
        raise ValueError(f"spatial_ids={spatial_ids} must lie in [0, {ids.shape[1]}] (ids per clip)")
    if ids.size and (ids.min() < 0 or ids.max() >= n_words):
        raise ValueError(f"ids must lie in [0, {n_words}) (the vocabulary), got [{ids.min()}, {ids.max()}]")


def bag_of_words(ids_matrix: np.ndarray, view: str, spatial_ids: int, n_words: int) -> np.ndarray:
    """Word-count features of one view, each row l2-normalised.

    Raw counts with no idf weighting: an idf needs document frequencies from some corpus, and
    the only fair one in an episode (its few support clips) is too small to estimate them,
    while the whole table would let query clips shape the features. The l2 normalisation makes
    a dot product a cosine similarity, so clips of different lengths (or views of different
    sizes) compare by the mix of their words, not by how many ids they have. A row whose view
    is empty stays all zeros.

    Args:
        ids_matrix: ``(N, L)`` int ids in ``[0, n_words)``, one clip per row.
        view: one of :data:`VIEWS`.
        spatial_ids: how many leading ids of a clip are spatial (``ids_per_token * Ls``).
        n_words: vocabulary size (``Ns + Nt``).

    Returns:
        ``(N, n_words)`` float64, rows of unit l2 norm (or zero).
    """
    ids = np.asarray(ids_matrix)
    _check_ids(ids, spatial_ids, n_words)
    part = ids[:, view_slice(view, spatial_ids)]
    n = part.shape[0]
    # one bincount over row-offset ids counts every row at once
    flat = (part + (np.arange(n, dtype=np.int64) * n_words)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n * n_words).reshape(n, n_words).astype(np.float64)
    norms = np.linalg.norm(counts, axis=1, keepdims=True)
    return np.divide(counts, norms, out=np.zeros_like(counts), where=norms > 0)


# ---------------------------------------------------------------------------- configuration
def _int_list(value: Any, minimum: int) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) > 0 and len(set(value)) == len(value)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value))


@dataclass(frozen=True)
class FewShotConfig(FieldChecks):
    """Parameters of the few-shot evaluation.

    Attributes:
        ways: classes per episode, each setting >= 2 (the paper-style defaults: 5 and 10).
        shots: labelled support clips per class, each >= 1.
        queries: query clips per class and episode (>= 1).
        episodes: episodes per (ways, shots) setting (>= 1; the CI needs >= 2 to be finite).
        split: the rows of the id table episodes draw from: ``test`` (default), ``train`` or ``all``.
        seed: seeds the episode sampler (per setting, see :func:`run_fewshot`).
        confidence: level of the two-sided confidence interval of the mean accuracy, in (0, 1).
        prompt_episodes: how many episodes of each (ways, shots) setting become prompts (>= 0).
        prompt_words: most frequent words listed per view and clip in a prompt (>= 1).
    """

    ways: list = field(default_factory=lambda: [5, 10])
    shots: list = field(default_factory=lambda: [1, 5])
    queries: int = 3
    episodes: int = 600
    split: str = "test"
    seed: int = 0
    confidence: float = 0.95
    prompt_episodes: int = 5
    prompt_words: int = 12

    def __post_init__(self) -> None:
        if not _int_list(self.ways, 2):
            self._fail("ways", f"must be a non-empty list of distinct integers >= 2, got {self.ways!r}")
        if not _int_list(self.shots, 1):
            self._fail("shots", f"must be a non-empty list of distinct integers >= 1, got {self.shots!r}")
        object.__setattr__(self, "ways", list(self.ways))
        object.__setattr__(self, "shots", list(self.shots))
        self._check_int("queries", 1)
        self._check_int("episodes", 1)
        if self.split not in SPLIT_CHOICES:
            self._fail("split", f"must be one of {list(SPLIT_CHOICES)}, got {self.split!r}")
        self._check_int("seed", 0)
        self._check_float("confidence", 0.0, inclusive=False)
        if self.confidence >= 1.0:
            self._fail("confidence", f"must be < 1, got {self.confidence}")
        self._check_int("prompt_episodes", 0)
        self._check_int("prompt_words", 1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "fewshot") -> FewShotConfig:
        return from_mapping(cls, d, where)


# ---------------------------------------------------------------------------- episodes
@dataclass(frozen=True, eq=False)
class Episode:
    """One few-shot task: row positions into the (split-selected) id table.

    Attributes:
        classes: the ``ways`` labels, sorted; class ``i`` of ``support`` / ``query`` is ``classes[i]``.
        support: ``(ways, shots)`` int row positions of the labelled clips.
        query: ``(ways, queries)`` int row positions of the clips to classify.
    """

    classes: tuple[str, ...]
    support: np.ndarray
    query: np.ndarray


@dataclass(frozen=True)
class SkippedSetting:
    """A (ways, shots) setting that could not be run: fewer than ``ways`` classes have
    ``needed`` clips from distinct videos (``eligible`` of them do)."""

    ways: int
    shots: int
    needed: int
    eligible: int

    def __str__(self) -> str:
        return (f"{self.ways}-way {self.shots}-shot: needs {self.ways} classes with >= {self.needed} clips "
                f"from distinct videos, {self.eligible} have them")


def _class_groups(labels: Sequence[str], groups: Sequence[str] | None) -> dict[str, list[np.ndarray]]:
    """label -> the row positions of each of its groups (videos), groups in sorted order."""
    labels = np.asarray(labels).astype(str)
    keys = np.arange(len(labels)).astype(str) if groups is None else np.asarray(groups).astype(str)
    by_class: dict[str, dict[str, list[int]]] = {}
    for row, (label, key) in enumerate(zip(labels, keys)):
        by_class.setdefault(label, {}).setdefault(key, []).append(row)
    return {label: [np.asarray(rows[k]) for k in sorted(rows)] for label, rows in sorted(by_class.items())}


def eligible_classes(labels: Sequence[str], needed: int, groups: Sequence[str] | None = None) -> list[str]:
    """Sorted labels with at least ``needed`` distinct groups (videos; rows when ``groups`` is None)."""
    return [label for label, gs in _class_groups(labels, groups).items() if len(gs) >= needed]


def episodes(labels: Sequence[str], ways: int, shots: int, queries: int, count: int,
             rng: np.random.Generator, groups: Sequence[str] | None = None) -> list[Episode]:
    """Sample ``count`` episodes.

    Each episode draws ``ways`` classes (without replacement) among those with at least
    ``shots + queries`` groups, then per class ``shots + queries`` distinct groups and one row of
    each: the first ``shots`` are the support, the rest the queries. Support and query of an
    episode therefore never share a row, nor a group: with ``groups`` = video ids, two
    overlapping training windows of one video cannot sit on both sides.

    Args:
        labels: ``(N,)`` class label of each row.
        ways, shots, queries: the setting (``ways >= 1``, ``shots >= 1``, ``queries >= 1``).
        count: number of episodes.
        rng: the sampler; the same generator state gives the same episodes.
        groups: ``(N,)`` group (video) of each row, or None (every row its own group).

    Raises:
        ValueError: fewer than ``ways`` classes are eligible.
    """
    by_class = _class_groups(labels, groups)
    needed = shots + queries
    eligible = [label for label, gs in by_class.items() if len(gs) >= needed]
    if ways > len(eligible):
        raise ValueError(str(SkippedSetting(ways, shots, needed, len(eligible))))
    out = []
    for _ in range(count):
        chosen = np.sort(rng.choice(len(eligible), size=ways, replace=False))
        classes = tuple(eligible[i] for i in chosen)
        picks = np.empty((ways, needed), dtype=np.int64)
        for c, label in enumerate(classes):
            class_groups = by_class[label]
            for k, g in enumerate(rng.choice(len(class_groups), size=needed, replace=False)):
                rows = class_groups[g]
                picks[c, k] = rows[rng.integers(len(rows))]
        out.append(Episode(classes=classes, support=picks[:, :shots], query=picks[:, shots:]))
    return out


def predict_nearest_centroid(features: np.ndarray, episode: Episode) -> np.ndarray:
    """Class index (into ``episode.classes``) of every query, ``(ways, queries)`` int.

    Each class's centroid is the mean of its support features; a query goes to the centroid of
    highest cosine similarity. Ties (e.g. a query with no words in the view) go to the class
    that sorts first, so a prediction never depends on anything but the episode.
    """
    ways, shots = episode.support.shape
    centroids = features[episode.support].mean(axis=1)  # (ways, V)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    centroids = np.divide(centroids, norms, out=np.zeros_like(centroids), where=norms > 0)
    queries = features[episode.query.ravel()]  # (ways * queries, V), rows unit or zero
    similarity = queries @ centroids.T
    # argmax returns the first maximum, i.e. the class that sorts first among tied ones
    return similarity.argmax(axis=1).reshape(episode.query.shape)


def episode_accuracy(features: np.ndarray, episode: Episode) -> float:
    """Fraction (0..1) of the episode's queries the nearest-centroid learner labels correctly.

    Args:
        features: ``(N, V)`` row-normalised features (:func:`bag_of_words`) of the table's rows.
    """
    predicted = predict_nearest_centroid(features, episode)
    truth = np.arange(len(episode.classes))[:, None]
    return float((predicted == truth).mean())


def _t_quantile(q: float, df: int) -> float:
    """Quantile ``q`` of Student's t with ``df`` degrees of freedom; the normal quantile when
    scipy (a dependency of scikit-image, not of this project directly) is not installed."""
    try:
        from scipy.stats import t
    except ImportError:  # pragma: no cover - scipy comes with scikit-image
        return NormalDist().inv_cdf(q)
    return float(t.ppf(q, df))


def mean_confidence_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Mean of per-episode accuracies with its two-sided ``confidence`` t interval, clipped to [0, 1].

    ``mean ± t_{(1+confidence)/2, n-1} * std(ddof=1) / sqrt(n)``. One value gives no spread
    estimate: the interval is then all of [0, 1].

    Returns:
        ``(mean, low, high)``.
    """
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    n = values.size
    if n < 2:
        return mean, 0.0, 1.0
    half = _t_quantile((1.0 + confidence) / 2.0, n - 1) * float(values.std(ddof=1)) / math.sqrt(n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


# ---------------------------------------------------------------------------- prompts
def _word_counts(ids: np.ndarray, id_words: Sequence[tuple[str, str]], limit: int) -> str:
    """``"walk x12, run x3"``: the ``limit`` most frequent words (ties alphabetical)."""
    counts = Counter(id_words[int(i)][0] for i in ids)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ", ".join(f"{w} x{c}" for w, c in ranked) if ranked else "(none)"


def episode_prompt(episode: Episode, ids: np.ndarray, id_words: Sequence[tuple[str, str]], spatial_ids: int,
                   title: str, words_per_view: int = 12, rng: np.random.Generator | None = None) -> str:
    """A plain-text prompt asking a language model to label an episode's queries, with its answer key.

    Lines: ``=== <title> ===``; an explanation of the words; the candidate classes; one line
    ``Example k (class: <label>): spatial words: ...; temporal words: ...`` per support clip
    (grouped by class); one line ``Query q: spatial words: ...; temporal words: ...`` per query
    (in an order shuffled by ``rng``, so the order does not give the classes away); the
    instruction; then :data:`ANSWER_MARKER` and ``ANSWERS: <label of query 1>; <label of query 2>; ...``.
    A prompt holds no blank line, so a file of prompts can separate them by blank lines.

    Args:
        ids: ``(N, L)`` ids of the table's rows (``episode`` holds row positions into it).
        words_per_view: most frequent words listed per view and clip.
        rng: shuffles the queries; None keeps them grouped by class.
    """
    def describe(row: int) -> str:
        spatial = _word_counts(ids[row, :spatial_ids], id_words, words_per_view)
        temporal = _word_counts(ids[row, spatial_ids:], id_words, words_per_view)
        return f"spatial words: {spatial}; temporal words: {temporal}"

    ways, shots = episode.support.shape
    lines = [
        f"=== {title} ===",
        "Each line below describes one short video clip by the words of its video tokens: spatial words "
        "(adjectives and nouns) describe what the clip shows, temporal words (adverbs and verbs) describe "
        "how it moves; 'walk x12' means the word 'walk' occurs 12 times.",
        f"Classes: {', '.join(episode.classes)}.",
    ]
    k = 0
    for c, label in enumerate(episode.classes):
        for row in episode.support[c]:
            k += 1
            lines.append(f"Example {k} (class: {label}): {describe(int(row))}")
    query_rows = [(int(row), label) for c, label in enumerate(episode.classes) for row in episode.query[c]]
    order = np.arange(len(query_rows)) if rng is None else rng.permutation(len(query_rows))
    answers = []
    for q, i in enumerate(order, start=1):
        row, label = query_rows[int(i)]
        lines.append(f"Query {q}: {describe(row)}")
        answers.append(label)
    lines.append(f"Answer with one class name per query, one line each, as 'Query <number>: <class>', "
                 f"choosing from: {', '.join(episode.classes)}.")
    lines.append(ANSWER_MARKER)
    lines.append("ANSWERS: " + "; ".join(answers))
    return "\n".join(lines)


def prompts_text(prompts: Sequence[str]) -> str:
    """The prompts file: a header, then ``prompts`` separated by blank lines.

    Each prompt ends with its answer key after :data:`ANSWER_MARKER`; cut it off before
    sending a prompt to a model.
    """
    header = (f"# {len(prompts)} few-shot action recognition prompts from SweetTok token words.\n"
              f"# Prompts are separated by blank lines; each starts with a '=== ... ===' title line and ends\n"
              f"# with its answer key below the line '{ANSWER_MARKER}' (not part of the prompt).")
    return "\n\n".join([header, *prompts]) + "\n"


def write_prompts(prompts: Sequence[str], path: str | Path) -> Path:
    """Write :func:`prompts_text` to one UTF-8 text file (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prompts_text(prompts), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- the evaluation
@dataclass(frozen=True)
class FewShotResult:
    """What :func:`run_fewshot` gives.

    Attributes:
        table: :data:`FEWSHOT_COLUMNS`, validated by :data:`FewShotSchema`; rows by setting
            (``cfg.ways`` x ``cfg.shots`` order), then view in :data:`VIEWS` order.
        prompts: plain-text prompts with answer keys (:func:`episode_prompt`).
        skipped: the settings that had too few eligible classes.
    """

    table: pd.DataFrame
    prompts: list[str]
    skipped: list[SkippedSetting]


def run_fewshot(table: pd.DataFrame, id_words: Sequence[tuple[str, str]], spatial_ids: int,
                cfg: FewShotConfig) -> FewShotResult:
    """Few-shot action recognition on the words of the clips' tokens, for every view.

    For each (ways, shots) of ``cfg`` the episodes come from
    ``np.random.default_rng([cfg.seed, ways, shots])``: a setting's episodes do not depend on
    which other settings run. The same episodes are scored for every view. A setting whose
    ``ways`` exceeds the classes having ``shots + queries`` clips from distinct videos is
    skipped with a warning and listed in :attr:`FewShotResult.skipped`.

    Args:
        table: the id table (:data:`ID_TABLE_COLUMNS`); rows of ``cfg.split`` are used.
        id_words: ``(word, pos)`` of every id, indexed by id (length ``Ns + Nt``).
        spatial_ids: how many leading ids of a clip are spatial.
        cfg: the setting.
    """
    rows = select_split(table, cfg.split)
    ids = ids_matrix(rows)
    n_words = len(id_words)
    _check_ids(ids, spatial_ids, n_words)
    labels = rows["label"].astype(str).to_numpy()
    groups = rows["video_id"].astype(str).to_numpy()
    if len(rows) and spatial_ids in (0, ids.shape[1]):
        log.warning("few-shot: one view is empty (spatial_ids=%d of %d ids per clip); its clips have no words "
                    "and its accuracy is that of always answering the first class", spatial_ids, ids.shape[1])
    features = {view: bag_of_words(ids, view, spatial_ids, n_words) for view in VIEWS} if len(rows) else {}
    records: list[dict[str, Any]] = []
    prompts: list[str] = []
    skipped: list[SkippedSetting] = []
    for ways in cfg.ways:
        for shots in cfg.shots:
            needed = shots + cfg.queries
            eligible = len(eligible_classes(labels, needed, groups))
            if ways > eligible:
                skip = SkippedSetting(ways, shots, needed, eligible)
                log.warning("few-shot (%s split): skipping %s", cfg.split, skip)
                skipped.append(skip)
                continue
            rng = np.random.default_rng([cfg.seed, ways, shots])
            tasks = episodes(labels, ways, shots, cfg.queries, cfg.episodes, rng, groups)
            for view in VIEWS:
                accuracies = np.array([episode_accuracy(features[view], ep) for ep in tasks])
                mean, low, high = mean_confidence_interval(accuracies, cfg.confidence)
                records.append(dict(view=view, ways=ways, shots=shots, queries=cfg.queries, episodes=len(tasks),
                                    accuracy=mean, ci_low=low, ci_high=high, chance=1.0 / ways, learner=LEARNER))
                log.info("few-shot %s %d-way %d-shot: accuracy %.3f [%.3f, %.3f] over %d episodes (chance %.3f)",
                         view, ways, shots, mean, low, high, len(tasks), 1.0 / ways)
            # the query order of a prompt has its own generator, so prompts leave the episodes unchanged
            order_rng = np.random.default_rng([cfg.seed, ways, shots, 1])
            for e, ep in enumerate(tasks[: cfg.prompt_episodes], start=1):
                title = f"{ways}-way {shots}-shot, episode {e} of {len(tasks)}"
                prompts.append(episode_prompt(ep, ids, id_words, spatial_ids, title, cfg.prompt_words, order_rng))
    frame = pd.DataFrame.from_records(records, columns=FEWSHOT_COLUMNS)
    return FewShotResult(table=FewShotSchema.validate(frame), prompts=prompts, skipped=skipped)
