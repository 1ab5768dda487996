"""Scores of generated clips: does a sample show its class, and how far is it from real clips.

- :class:`IdClassifier`: a per-position naive Bayes classifier over token ids, fitted on real
  training clips; it names the class of a clip from its ids alone, so it can judge the LM's
  samples without decoding them. Its accuracy on real held-out clips says how much to trust it.
- :func:`nearest_centroid_accuracy`: the class of each generated clip's I3D embedding by the
  nearest class mean of real clips' embeddings (cosine), the decoder-side check.
- gFVD itself is :func:`sweettok.metrics.fvd.fvd` on generated vs real training clips.

Also what the ``lm`` pipeline needs around sampling: :class:`GenerationConfig`, decoding ids to
clips, MP4 files (:class:`PendingVideos`) and figures (a sample grid, a confusion matrix).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from sweettok.typed_params import FieldChecks, from_mapping

__all__ = ["GenerationConfig", "IdClassifier", "binomial_summary", "PendingVideos", "confusion_figure", "confusion_matrix", "confusion_title", "decode_ids",
           "leave_one_out_centroid_accuracy", "nearest_centroid_accuracy", "sample_grid", "to_uint8_frames"]


@dataclass
class IdClassifier:
    """Naive Bayes over positions: ``log p(c | ids) = log p(c) + sum_i log p(ids_i | c, position i)``.

    Per-position word probabilities are smoothed with ``alpha`` over the ``n_words`` words.
    Ids ``(N, L)`` int in ``[0, n_words)``; labels ``(N,)`` in ``[0, classes)``. Where a table of
    ``classes x L x n_words`` would pass ``max_table`` entries (a paper-scale vocabulary), the
    words are counted per class regardless of position (``positional`` is then False).
    """

    n_words: int
    classes: int
    alpha: float = 0.5
    max_table: int = 50_000_000

    def _check(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_words):
            raise ValueError(f"ids must lie in [0, {self.n_words}) (the classifier's words), got "
                             f"[{ids.min()}, {ids.max()}]")
        return ids

    def fit(self, ids: np.ndarray, labels: np.ndarray) -> IdClassifier:
        ids, labels = self._check(ids), np.asarray(labels, np.int64)
        n, length = ids.shape
        self.positional = self.classes * length * self.n_words <= self.max_table
        if not self.positional:  # one position holding every id
            ids = ids.reshape(-1, 1)
            labels = np.repeat(labels, length)
        counts = np.zeros((self.classes, ids.shape[1], self.n_words), np.float32)
        np.add.at(counts, (labels[:, None], np.arange(ids.shape[1])[None, :], ids), 1.0)
        if not self.positional:
            labels = labels[::length]
        per_class = np.bincount(labels, minlength=self.classes).astype(np.float64)
        self.log_word = np.log(counts + self.alpha) - np.log(per_class + self.alpha * self.n_words)[:, None, None]
        self.log_prior = np.log((per_class + 1.0) / (n + self.classes))
        return self

    def log_posterior(self, ids: np.ndarray) -> np.ndarray:
        """Unnormalised ``(N, classes)`` log posteriors."""
        ids = self._check(ids)
        if not self.positional:
            return (self.log_word[:, 0][:, ids].sum(-1) + self.log_prior[:, None]).T
        pos = np.arange(ids.shape[1])
        # (classes, N, L) gathered, summed over positions
        return (self.log_word[:, pos[None, :], ids].sum(-1) + self.log_prior[:, None]).T

    def predict(self, ids: np.ndarray) -> np.ndarray:
        return self.log_posterior(ids).argmax(1)

    def accuracy(self, ids: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(ids) == np.asarray(labels)).mean()) if len(labels) else float("nan")


def binomial_summary(hits: int, n: int, chance: float, confidence: float = 0.95) -> dict[str, float]:
    """Accuracy ``hits / n`` with its Wilson interval and the one-sided binomial p-value of getting
    at least ``hits`` right by guessing with probability ``chance``."""
    from statistics import NormalDist

    if n < 1:
        return {"accuracy": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan")}
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    tail = sum(math.comb(n, k) * chance**k * (1 - chance) ** (n - k) for k in range(hits, n + 1))
    return {"accuracy": p, "ci_low": max(0.0, centre - half), "ci_high": min(1.0, centre + half),
            "p_value": min(1.0, tail)}


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_centroid_accuracy(real: np.ndarray, real_labels: np.ndarray, query: np.ndarray,
                              query_labels: np.ndarray) -> tuple[float, np.ndarray]:
    """(accuracy, predictions) of ``query`` embeddings by the nearest class mean of ``real`` (cosine)."""
    real, query = _unit(real), _unit(query)
    real_labels = np.asarray(real_labels)
    classes = np.unique(real_labels)
    centroids = _unit(np.stack([real[real_labels == c].mean(0) for c in classes]))
    pred = classes[(query @ centroids.T).argmax(1)]
    return float((pred == np.asarray(query_labels)).mean()), pred


def leave_one_out_centroid_accuracy(real: np.ndarray, labels: np.ndarray) -> float:
    """Nearest-class-mean accuracy of each real embedding against centroids of the others (cosine);
    how well the embedding separates the classes at all. Classes of one clip are skipped."""
    x, labels = _unit(real), np.asarray(labels)
    classes = np.unique(labels)
    sums = np.stack([x[labels == c].sum(0) for c in classes])
    counts = np.array([(labels == c).sum() for c in classes], np.float64)
    hits, scored = 0, 0
    for i, c in enumerate(labels):
        k = int(np.searchsorted(classes, c))
        if counts[k] < 2:
            continue
        cent = sums.copy()
        cent[k] -= x[i]
        n = counts.copy()
        n[k] -= 1
        cent = _unit(cent / n[:, None])
        hits += int(classes[(cent @ x[i]).argmax()] == c)
        scored += 1
    return hits / scored if scored else float("nan")


# ---------------------------------------------------------------------- sampling, decoding, files
@dataclass(frozen=True)
class GenerationConfig(FieldChecks):
    """What the ``lm`` pipeline generates and how it is scored (``lm.generation``).

    Attributes:
        samples_per_class: clips drawn per class (decoded, written, and judged by the id classifier).
        fvd_per_class: the first this many samples of each class go into gFVD and the I3D check
            (``None``: all); I3D costs ~0.5 s per clip on a CPU, sampling and the id classifier little.
        real_clips_per_class: real training clips per class on gFVD's real side (``None``: as many
            as the generated side).
        seed: seeds the sampler's generator.
        grid_per_class: samples per class in the PNG grid.
        grid_frames: frames per sample in the grid (evenly spaced).
        fps: frame rate of the MP4 files.
        batch_size: clips per decoder / I3D pass.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        guidance_sweep: guidance scales at which ``sweep_per_class`` more samples per class are
            drawn (ids only, not decoded) and judged by the id classifier: how the class shows in
            the samples as guidance grows (``[]``: no sweep).
        sweep_per_class: samples per class and scale in that sweep.
    """

    samples_per_class: int = 10
    fvd_per_class: int | None = 4
    real_clips_per_class: int | None = None
    seed: int = 0
    grid_per_class: int = 2
    grid_frames: int = 6
    fps: float = 8.0
    batch_size: int = 8
    device: str = "auto"
    guidance_sweep: list = field(default_factory=lambda: [1.0, 2.0, 4.0])
    sweep_per_class: int = 20

    def __post_init__(self) -> None:
        sweep = self.guidance_sweep
        if not isinstance(sweep, (list, tuple)) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in sweep):
            self._fail("guidance_sweep", f"must be a list of guidance scales >= 0, got {sweep!r}")
        object.__setattr__(self, "guidance_sweep", [float(v) for v in sweep])
        for name in ("samples_per_class", "grid_frames", "batch_size", "sweep_per_class"):
            self._check_int(name, 1)
        for name in ("seed", "grid_per_class"):
            self._check_int(name, 0)
        for name in ("fvd_per_class", "real_clips_per_class"):
            if getattr(self, name) is not None:
                self._check_int(name, 1)
        self._check_float("fps", 0.0, inclusive=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "lm.generation") -> GenerationConfig:
        return from_mapping(cls, d, where)


def to_uint8_frames(clip: torch.Tensor) -> np.ndarray:
    """A clip ``(C, T, H, W)`` in [-0.5, 0.5] (clamped) -> uint8 frames ``(T, H, W, C)``."""
    return ((clip.clamp(-0.5, 0.5) + 0.5) * 255.0).round().byte().permute(1, 2, 3, 0).cpu().numpy()


@torch.no_grad()
def decode_ids(tokenizer: torch.nn.Module, ids: np.ndarray, frames: int, batch_size: int = 8,
               device: torch.device | str = "cpu", progress: bool = True) -> torch.Tensor:
    """Tokenizer ids ``(N, L)`` -> clips ``(N, C, T, H, W)`` float on the CPU, clamped to [-0.5, 0.5]."""
    from tqdm.auto import tqdm

    tokenizer = tokenizer.to(device).eval()
    out = []
    for start in tqdm(range(0, len(ids), batch_size), desc="decode samples", disable=not progress):
        chunk = torch.as_tensor(np.asarray(ids[start : start + batch_size]), dtype=torch.long, device=device)
        out.append(tokenizer.decode_ids(chunk, frames).float().clamp(-0.5, 0.5).cpu())
    return torch.cat(out)


@dataclass
class PendingVideos:
    """Generated clips to write as MP4 files with an ``index.csv`` (what ``VideoFolderDataset`` saves)."""

    clips: torch.Tensor  # (N, C, T, H, W) in [-0.5, 0.5]
    index: pd.DataFrame  # one row per clip: sample_id, label, label_index
    fps: float = 8.0

    def write_to(self, directory: Path) -> None:
        from sweettok.data.video_writer import write_mp4

        files = []
        for clip, sample_id in zip(self.clips, self.index["sample_id"], strict=True):
            name = f"{sample_id}.mp4"
            write_mp4(Path(directory) / name, to_uint8_frames(clip), fps=self.fps)
            files.append(name)
        self.index.assign(file=files)[["file", *self.index.columns]].to_csv(Path(directory) / "index.csv",
                                                                            index=False)


def sample_grid(clips: torch.Tensor, labels: list[str], per_class: int, frames: int) -> Figure:
    """A PNG-able grid: for each class, ``per_class`` samples as rows of ``frames`` evenly spaced frames."""
    classes = list(dict.fromkeys(labels))
    rows = [(c, i) for c in classes for i in [k for k, lab in enumerate(labels) if lab == c][:per_class]]
    t = clips.shape[2]
    cols = np.linspace(0, t - 1, min(frames, t)).round().astype(int)
    fig = Figure(figsize=(1.1 * len(cols) + 1.6, 1.1 * max(len(rows), 1)), dpi=100)
    if not rows:
        return fig
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for r, (label, i) in enumerate(rows):
        frames_u8 = to_uint8_frames(clips[i])
        for c, f in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(frames_u8[f], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {f}", fontsize=8)
            if c == 0:
                ax.set_ylabel(label[:16], fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("LM samples per class (decoded by the tokenizer)", fontsize=10)
    fig.subplots_adjust(left=0.16, right=0.99, top=0.93, bottom=0.01, wspace=0.04, hspace=0.06)
    return fig


def confusion_matrix(true: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """Counts ``(classes, classes)``: rows the intended class, columns the recognised one."""
    m = np.zeros((classes, classes), int)
    np.add.at(m, (np.asarray(true, int), np.asarray(pred, int)), 1)
    return m


def confusion_title(accuracy: float, classes: int) -> str:
    return f"generated clips: class recognised from their ids ({accuracy:.0%}; chance {1 / classes:.0%})"


def confusion_figure(matrix: np.ndarray, names: list[str], title: str) -> Figure:
    """Confusion matrix (rows: intended class, columns: recognised class), counts in the cells."""
    m = np.asarray(matrix, int)
    k = len(names)
    fig = Figure(figsize=(1.0 + 0.45 * k, 1.0 + 0.42 * k), dpi=100)
    ax = fig.subplots()
    ax.imshow(m, cmap="Blues")
    for i in range(k):
        for j in range(k):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(k), [n[:14] for n in names], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), [n[:14] for n in names], fontsize=7)
    ax.set_xlabel("recognised class")
    ax.set_ylabel("intended class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
