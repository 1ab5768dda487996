"""The words of clips' tokens, for people to read.

- :func:`clip_words`: encode one clip and read its phrases (:class:`ClipWords`).
- :func:`words_table`: from the id table (one row per clip, ``ids`` a 1-D int64 array; see
  :mod:`sweettok.metrics.fewshot`), one row per (clip, latent token) with its modifiers, head
  word and phrase (:data:`TokenWordsSchema`).
- :func:`class_words`: per class, view and part of speech, the words that are most
  distinctive of the class (:data:`ClassWordsSchema`).
- :func:`words_figure`: like the SweetTok paper's supplementary Figure 4: frames of clips
  beside the most frequent words of their tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from sweettok.metrics.fewshot import ids_matrix, select_split
from sweettok.models.tokenizer import VideoTokenizer
from sweettok.report.figures import new_figure
from sweettok.schemas import WORD_VIEWS, ClassWordsSchema, TokenWordsSchema  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class ClipWords:
    """The words of one clip's tokens.

    Attributes:
        spatial: one phrase per spatial token: ``topk`` adjectives (nearest first) then a noun.
        temporal: one phrase per temporal token: ``topk`` adverbs then a verb (cell-major, as in
            the id layout of :mod:`sweettok.models.quantizer`).
        ids: the clip's token ids ``(topk + 1) * tokens``.
    """

    spatial: list[str]
    temporal: list[str]
    ids: list[int]

    def most_common(self, n: int = 8) -> list[tuple[str, int]]:
        """The ``n`` most frequent words over all tokens, with their counts."""
        return Counter(w for phrase in self.spatial + self.temporal for w in phrase.split()).most_common(n)


@torch.no_grad()
def clip_words(model: VideoTokenizer, clip: torch.Tensor) -> ClipWords:
    """Encode one clip ``(C, T, H, W)`` in [-0.5, 0.5] (on the model's device) and read its words."""
    device = next(model.parameters()).device
    _, ids = model.encode(clip[None].to(device))
    ids = ids[0].cpu()
    words = model.sweettok.ids_to_words(ids)
    n = model.cfg.ids_per_token
    phrases = [" ".join(w for w, _ in words[i : i + n]) for i in range(0, len(words), n)]
    spatial = model.cfg.spatial_queries
    return ClipWords(spatial=phrases[:spatial], temporal=phrases[spatial:], ids=[int(i) for i in ids])


# ---------------------------------------------------------------------------- the words table
VIEW_POS = {"spatial": ("ADJ", "NOUN"), "temporal": ("ADV", "VERB")}
"""Part of speech of a view's (modifiers, head) words (the id layout of :mod:`sweettok.models.quantizer`)."""
POS_ORDER = ("ADJ", "NOUN", "ADV", "VERB")
POS_NAMES = {"ADJ": "adjectives", "NOUN": "nouns", "ADV": "adverbs", "VERB": "verbs"}

TOKEN_WORDS_COLUMNS = ["clip_id", "label", "view", "token", "modifiers", "head", "phrase"]
CLASS_WORDS_COLUMNS = ["label", "view", "pos", "word", "count", "share", "lift"]

def _check_layout(ids: np.ndarray, id_words: Sequence[tuple[str, str]], spatial_ids: int, ids_per_token: int) -> None:
    """Ids in range, views made of whole tokens, and each position's id of the expected part of speech."""
    n = ids_per_token
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"ids_per_token must be an integer >= 1, got {n!r}")
    length = ids.shape[1]
    if not 0 <= spatial_ids <= length or spatial_ids % n or (length - spatial_ids) % n:
        raise ValueError(f"spatial_ids={spatial_ids} and the {length - spatial_ids} temporal ids of a clip "
                         f"({length} ids) must both be multiples of ids_per_token={n}")
    if ids.min() < 0 or ids.max() >= len(id_words):
        raise ValueError(f"ids must lie in [0, {len(id_words)}) (the vocabulary), got [{ids.min()}, {ids.max()}]")
    pos = np.array([p for _, p in id_words], dtype=object)
    for view, part in (("spatial", ids[:, :spatial_ids]), ("temporal", ids[:, spatial_ids:])):
        modifier, head = VIEW_POS[view]
        found = pos[part.reshape(len(part), part.shape[1] // n, n)]
        for where, wrong in (("modifier", (found[..., :-1] != modifier).any(-1)), ("head", found[..., -1] != head)):
            if wrong.any():
                clip, token = np.argwhere(wrong)[0]
                expected = modifier if where == "modifier" else head
                raise ValueError(f"{view} token {token} of clip row {clip}: a {where} id is not {expected}; "
                                 f"spatial_ids={spatial_ids} or ids_per_token={n} do not match the ids' layout")


def words_table(table: pd.DataFrame, id_words: Sequence[tuple[str, str]], spatial_ids: int, ids_per_token: int,
                split: str = "test") -> pd.DataFrame:
    """The words of every latent token of the clips of ``split``, one row per (clip, token).

    Args:
        table: the id table (columns ``clip_id``, ``video_id``, ``label``, ``label_index``,
            ``split``, ``ids``: 1-D int64 arrays of one length ``L``).
        id_words: ``(word, pos)`` of every id, indexed by id.
        spatial_ids: how many leading ids of a clip are spatial (``ids_per_token * Ls``).
        ids_per_token: ``topk + 1``: the ids of one token, modifiers (nearest first) then head.
        split: ``train``, ``test`` or ``all``.

    Returns:
        :data:`TOKEN_WORDS_COLUMNS` (:data:`TokenWordsSchema`): clips in the table's order,
        each clip's spatial tokens then its temporal tokens, ``token`` counting from 0 in each view.

    Raises:
        ValueError: ids outside the vocabulary, views that are not whole tokens, or a position
            whose word is of the wrong part of speech (a wrong ``spatial_ids`` / ``ids_per_token``).
    """
    rows = select_split(table, split)
    ids = ids_matrix(rows)
    if not len(rows):
        return TokenWordsSchema.validate(pd.DataFrame({c: pd.Series(dtype=object) for c in TOKEN_WORDS_COLUMNS}))
    _check_layout(ids, id_words, spatial_ids, ids_per_token)
    words = np.array([w for w, _ in id_words], dtype=object)
    clip_ids = rows["clip_id"].astype(str).to_numpy()
    labels = rows["label"].astype(str).to_numpy()
    parts = []
    for view, part in (("spatial", ids[:, :spatial_ids]), ("temporal", ids[:, spatial_ids:])):
        tokens = part.shape[1] // ids_per_token
        if tokens == 0:
            continue
        flat = words[part.reshape(-1, ids_per_token)]  # (clips * tokens, ids_per_token), clip-major
        modifiers = [" ".join(r[:-1]) for r in flat]
        parts.append(pd.DataFrame({
            "clip_id": np.repeat(clip_ids, tokens),
            "label": np.repeat(labels, tokens),
            "view": view,
            "token": np.tile(np.arange(tokens), len(rows)),
            "modifiers": modifiers,
            "head": flat[:, -1],
            "phrase": [f"{m} {h}" if m else h for m, h in zip(modifiers, flat[:, -1])],
            "_clip": np.repeat(np.arange(len(rows)), tokens),
        }))
    out = pd.concat(parts, ignore_index=True)
    # stable sort on the clip only: the views are already spatial first, tokens in order
    out = out.sort_values("_clip", kind="stable").drop(columns="_clip").reset_index(drop=True)
    return TokenWordsSchema.validate(out)


def token_pos_words(words: pd.DataFrame) -> pd.DataFrame:
    """One row per word occurrence of a :func:`words_table`: columns ``clip_id``, ``label``,
    ``view``, ``pos``, ``word`` (modifiers are split on spaces: a codebook word has none)."""
    modifiers = words[["clip_id", "label", "view"]].assign(word=words["modifiers"].str.split()).explode("word")
    modifiers = modifiers.dropna(subset=["word"])
    modifiers["pos"] = modifiers["view"].map(lambda v: VIEW_POS[v][0])
    heads = words[["clip_id", "label", "view"]].assign(word=words["head"])
    heads["pos"] = heads["view"].map(lambda v: VIEW_POS[v][1])
    return pd.concat([modifiers, heads], ignore_index=True)[["clip_id", "label", "view", "pos", "word"]]


def class_words(words: pd.DataFrame, top: int = 5, min_count: int = 2) -> pd.DataFrame:
    """The words most distinctive of each class, per view and part of speech.

    For a class ``c`` and a part of speech ``p`` (adjective, noun, adverb or verb):
    ``share = count(word in c's tokens) / count(all p-words in c's tokens)`` and
    ``lift = share / (count(word in every class's tokens) / count(all p-words in every class's tokens))``.
    The pooled share counts every token of the table alike, so a class with more clips weighs
    more in it. Words seen fewer than ``min_count`` times in the class are left out (one
    chance occurrence of a rare word would otherwise top the list with a huge lift); of the
    rest, the ``top`` of highest lift are kept, ties by higher count, then alphabetically.

    Args:
        words: a :func:`words_table`.
        top: words kept per (label, view, pos), >= 1.
        min_count: least count in the class, >= 1.

    Returns:
        :data:`CLASS_WORDS_COLUMNS` (:data:`ClassWordsSchema`), sorted by label, view
        (spatial first), part of speech (:data:`POS_ORDER`), then rank.
    """
    if top < 1 or min_count < 1:
        raise ValueError(f"top and min_count must be >= 1, got top={top}, min_count={min_count}")
    occurrences = token_pos_words(words)
    counts = occurrences.groupby(["label", "view", "pos", "word"]).size().rename("count").reset_index()
    if counts.empty:
        return ClassWordsSchema.validate(pd.DataFrame({c: pd.Series(dtype=object) for c in CLASS_WORDS_COLUMNS}))
    counts["share"] = counts["count"] / counts.groupby(["label", "view", "pos"])["count"].transform("sum")
    pooled = (counts.groupby(["view", "pos", "word"])["count"].transform("sum")
              / counts.groupby(["view", "pos"])["count"].transform("sum"))
    counts["lift"] = counts["share"] / pooled
    kept = counts[counts["count"] >= min_count].copy()
    kept["_view"] = kept["view"].map(WORD_VIEWS.index)
    kept["_pos"] = kept["pos"].map(POS_ORDER.index)
    kept = kept.sort_values(["label", "_view", "_pos", "lift", "count", "word"],
                            ascending=[True, True, True, False, False, True], kind="stable")
    kept = kept.groupby(["label", "view", "pos"], sort=False).head(top)
    return ClassWordsSchema.validate(kept[CLASS_WORDS_COLUMNS].reset_index(drop=True))


# ---------------------------------------------------------------------------- the figure
def _frame_indices(frames: int) -> list[int]:
    """First, middle and last frame (repeated when the clip has fewer than 3)."""
    return [0, (frames - 1) // 2, frames - 1]


def clip_frames(clips, clip_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """uint8 frames ``(T, H, W, 3)`` of ``clip_ids`` from a :class:`~sweettok.data.clips.ClipDataset`, by id
    (what :func:`words_figure` shows)."""
    row_of = {cid: i for i, cid in enumerate(clips.index["clip_id"])}
    return {cid: clips.read_uint8(row_of[cid]) for cid in clip_ids}


def words_figure(frames: Mapping[str, np.ndarray], words: pd.DataFrame, clip_ids: Sequence[str],
                 top: int = 4) -> Figure:
    """Clips beside the words of their tokens (the SweetTok paper's supplementary Figure 4).

    One row per clip: its first, middle and last frame, then a text panel with the clip's
    label and its ``top`` most frequent adjectives and nouns (spatial tokens) and adverbs and
    verbs (temporal tokens), each with its count over the clip's tokens (ties alphabetical).

    Args:
        frames: clip id -> uint8 frames ``(T, H, W, 3)`` (or ``(T, H, W)`` grey), ``T >= 1``.
        words: a :func:`words_table` holding the clips.
        clip_ids: the clips to show, top to bottom.
        top: words listed per part of speech.

    Returns:
        A Figure on an Agg canvas (no pyplot state) with ``4 * len(clip_ids)`` axes: per clip
        three frame axes, then the text axis.
    """
    if not clip_ids:
        raise ValueError("words_figure needs at least one clip id")
    occurrences = token_pos_words(words[words["clip_id"].isin(list(clip_ids))])
    rows = len(clip_ids)
    fig = new_figure(9.5, 1.55 * rows)
    grid = fig.add_gridspec(rows, 4, width_ratios=[1, 1, 1, 3.6], wspace=0.05, hspace=0.15,
                            left=0.01, right=0.99, top=1 - 0.25 / rows, bottom=0.02)
    for r, clip_id in enumerate(clip_ids):
        if clip_id not in frames:
            raise ValueError(f"words_figure: no frames for clip {clip_id!r}")
        clip = np.asarray(frames[clip_id])
        if clip.dtype != np.uint8 or clip.ndim not in (3, 4) or clip.shape[0] < 1 or (
                clip.ndim == 4 and clip.shape[-1] not in (1, 3)):
            raise ValueError(f"words_figure: frames of clip {clip_id!r} must be uint8 (T, H, W, 3) or (T, H, W), "
                             f"got {clip.dtype} {clip.shape}")
        mine = occurrences[occurrences["clip_id"] == clip_id]
        if mine.empty:
            raise ValueError(f"words_figure: the words table has no tokens of clip {clip_id!r}")
        for c, t in enumerate(_frame_indices(clip.shape[0])):
            ax = fig.add_subplot(grid[r, c])
            image = clip[t][..., 0] if clip.ndim == 4 and clip.shape[-1] == 1 else clip[t]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"frame {t}", fontsize=7, pad=2)
        ax = fig.add_subplot(grid[r, 3])
        ax.set_axis_off()
        label = str(mine["label"].iloc[0])
        lines = []
        for pos in POS_ORDER:
            counts = Counter(mine.loc[mine["pos"] == pos, "word"])
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
            listed = ", ".join(f"{w} x{n}" for w, n in ranked) or "-"
            lines.append(f"{POS_NAMES[pos]}: {listed}")
        ax.text(0.02, 0.95, f"{label}  ({clip_id})", transform=ax.transAxes, fontsize=9, fontweight="bold",
                va="top", ha="left")
        ax.text(0.02, 0.72, "\n".join(lines), transform=ax.transAxes, fontsize=8, va="top", ha="left",
                linespacing=1.5)
    return fig
