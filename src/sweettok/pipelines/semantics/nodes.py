"""Nodes of the `semantics` pipeline: the words of the test clips' tokens, and few-shot recognition from them.

Parameters (``semantics`` in ``conf/*/parameters_semantics.yml``): ``words`` (``split``,
``figure_clips``, ``top``) and ``fewshot`` (:class:`~sweettok.metrics.fewshot.FewShotConfig`).
"""

from __future__ import annotations

import logging

import pandas as pd
import torch
from matplotlib.figure import Figure

from sweettok.data.clips import ClipCache
from sweettok.metrics.fewshot import FewShotConfig, prompts_text, run_fewshot
from sweettok.models.tokenizer import VideoTokenizer
from sweettok.report.figures import fewshot_figure
from sweettok.report.words import class_words, clip_frames, words_figure, words_table

log = logging.getLogger(__name__)


def _vocabulary(tokenizer: VideoTokenizer) -> tuple[list[tuple[str, str]], int, int]:
    """``(word, pos)`` of every id, the number of spatial ids per clip, ids per latent token."""
    q, cfg = tokenizer.sweettok.quantizer, tokenizer.cfg
    id_words = tokenizer.sweettok.ids_to_words(torch.arange(q.n_spatial + q.n_temporal))
    return id_words, cfg.ids_per_token * cfg.spatial_queries, cfg.ids_per_token


def read_token_words(token_ids: pd.DataFrame, tokenizer: VideoTokenizer, clip_cache: ClipCache,
                     params: dict) -> tuple[pd.DataFrame, pd.DataFrame, Figure]:
    """The words of every token of the chosen split's clips, each class's distinctive words, and a
    figure of a few clips beside their words (one clip of each of the first classes)."""
    cfg = params.get("words", {})
    split, top, shown = cfg.get("split", "test"), int(cfg.get("top", 5)), int(cfg.get("figure_clips", 4))
    id_words, spatial_ids, per_token = _vocabulary(tokenizer)
    words = words_table(token_ids, id_words, spatial_ids, per_token, split=split)
    distinctive = class_words(words, top=top)
    firsts = words.drop_duplicates("label")["clip_id"].tolist()[:shown]
    figure = words_figure(clip_frames(clip_cache.dataset(), firsts), words, firsts, top=4)
    for view in ("spatial", "temporal"):
        mine = distinctive[distinctive["view"] == view]
        if len(mine):
            best = mine.sort_values("lift", ascending=False).iloc[0]
            log.info("most distinctive %s word: %r for class %s (lift %.1f, %d times)", view, best.word, best.label,
                     best.lift, best["count"])
    return words, distinctive, figure


def _verdict(acc: dict, low: dict, high: dict, chance: float) -> str:
    """Temporal against spatial words, saying first whether either is above chance at all."""
    above = [v for v in ("spatial", "temporal") if low[v] > chance]
    if not above:
        return (f"neither spatial ({acc['spatial']:.3f}) nor temporal words ({acc['temporal']:.3f}) recognise the "
                f"class above chance ({chance:.3f})")
    if low["temporal"] > high["spatial"]:
        return "temporal words beat spatial words"
    if low["spatial"] > high["temporal"]:
        return "spatial words beat temporal words"
    return f"{' and '.join(above)} words are above chance; the two are not told apart (intervals overlap)"


def recognise_few_shot(token_ids: pd.DataFrame, tokenizer: VideoTokenizer,
                       params: dict) -> tuple[pd.DataFrame, str, Figure, dict]:
    """N-way K-shot accuracy from the words of spatial tokens, temporal tokens and both, with
    confidence intervals; the first episodes as plain-text prompts; a figure; a summary."""
    cfg = FewShotConfig.from_dict(params.get("fewshot", {}), where="semantics.fewshot")
    id_words, spatial_ids, _ = _vocabulary(tokenizer)
    result = run_fewshot(token_ids, id_words, spatial_ids, cfg)
    prompts = prompts_text(result.prompts)
    table = result.table
    summary = {"split": cfg.split, "episodes": cfg.episodes, "skipped": [str(s) for s in result.skipped],
               "settings": []}
    for (ways, shots), rows in table.groupby(["ways", "shots"], sort=False):
        acc = dict(zip(rows["view"], rows["accuracy"], strict=True))
        low = dict(zip(rows["view"], rows["ci_low"], strict=True))
        high = dict(zip(rows["view"], rows["ci_high"], strict=True))
        verdict = _verdict(acc, low, high, 1.0 / ways)
        summary["settings"].append({"ways": int(ways), "shots": int(shots), "verdict": verdict,
                                    **{f"{v}_accuracy": float(a) for v, a in acc.items()}})
        log.info("few-shot %d-way %d-shot: spatial %.3f, temporal %.3f, both %.3f: %s", ways, shots,
                 acc["spatial"], acc["temporal"], acc["both"], verdict)
    figure = fewshot_figure(table)
    return table, prompts, figure, summary
