"""Node of the `reconstruction` pipeline: score SweetTok against the proxy tokenizer and trivial baselines.

Besides the four-row ``reconstruction_metrics`` table it writes ``reconstruction_budget``:
each tokenizer's information budget in bits per clip next to first-frame thumbnails of a
known number of bits, scored the same way, and a plot of quality against bits.
"""

from __future__ import annotations

import logging
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch

from sweettok.data.clips import ClipCache, ClipDataset
from sweettok.metrics.reconstruction import (FirstFrameThumbnail, first_frame_baseline, mean_frame_baseline,
                                             score_reconstructions)
from sweettok.models.proxy import ProxyTokenizer
from sweettok.models.sweettok import SweetTok
from sweettok.models.tokenizer import VideoTokenizer

log = logging.getLogger(__name__)

FIRST_FRAME = "every frame = first frame"
MEAN_FRAME = "every frame = mean frame"


def sweettok_bits(model: SweetTok, frames: int) -> float:
    """Bits per clip that SweetTok's ids can carry at most.

    A latent token is the mean of ``topk`` distinct modifiers (an unordered set) and one
    head word: ``log2(C(n_mod, k)) + log2(n_head)`` bits, spatial tokens from adjectives and
    nouns, temporal tokens from adverbs and verbs.
    """
    q, cfg = model.quantizer, model.cfg
    spatial = math.log2(math.comb(q.n_adj, q.topk)) + math.log2(q.n_spatial - q.n_adj)
    temporal = math.log2(math.comb(q.n_adv, q.topk)) + math.log2(q.n_temporal - q.n_adv)
    n_temporal = cfg.num_latent_tokens(frames) - cfg.spatial_queries
    return cfg.spatial_queries * spatial + n_temporal * temporal


def _methods(sweettok: VideoTokenizer, proxy: ProxyTokenizer, frames: int, res: int, thumbnail_sizes: list[int]):
    """The four scored methods, the thumbnails, tokens per clip and bits per clip by name."""
    methods = {"SweetTok": sweettok, "proxy tokenizer": lambda x: proxy(x).reconstruction,
               FIRST_FRAME: first_frame_baseline, MEAN_FRAME: mean_frame_baseline}
    tokens = {"SweetTok": sweettok.cfg.num_latent_tokens(frames),
              "proxy tokenizer": proxy.num_tokens(frames, res, res), FIRST_FRAME: None, MEAN_FRAME: None}
    channels = sweettok.cfg.in_channels
    thumbs = {f"first frame at {s}x{s}": FirstFrameThumbnail(s) for s in thumbnail_sizes}
    bits = {"SweetTok": sweettok_bits(sweettok.sweettok, frames),
            "proxy tokenizer": tokens["proxy tokenizer"] * math.log2(proxy.cfg.codebook_size),
            FIRST_FRAME: float(res * res * channels * 8),
            **{name: float(thumb.bits(channels)) for name, thumb in thumbs.items()}}
    return methods, thumbs, tokens, bits


def evaluate_reconstruction(clip_cache: ClipCache, tokenizer: VideoTokenizer, proxy_tokenizer: ProxyTokenizer,
                            params: dict) -> tuple[pd.DataFrame, plt.Figure, pd.DataFrame, plt.Figure]:
    """PSNR / SSIM / LPIPS on the test clips for SweetTok, the proxy tokenizer and two trivial baselines,
    a figure of a few reconstructions, and the bits-per-clip table with its plot."""
    clips = clip_cache.dataset("test")
    methods, thumbs, tokens, bits = _methods(tokenizer, proxy_tokenizer, clip_cache.frames, clip_cache.resolution,
                                             params.get("thumbnail_sizes", []))
    scores = score_reconstructions({**methods, **thumbs}, clips, tokens, batch_size=params.get("batch_size", 8))
    table = scores[scores["method"].isin(list(methods))].reset_index(drop=True)
    for row in table.itertuples(index=False):
        log.info("reconstruction %-26s tokens %5s  PSNR %6.2f  SSIM %.4f  LPIPS %.4f", row.method,
                 "-" if pd.isna(row.tokens) else int(row.tokens), row.psnr, row.ssim, row.lpips)
    budget = scores[scores["method"].isin(list(bits))].drop(columns="tokens")
    budget.insert(1, "bits", budget["method"].map(bits))
    budget = budget.sort_values("bits", kind="stable").reset_index(drop=True)
    return (table, reconstruction_figure(methods, clips, params.get("figure_clips", 3)), budget,
            budget_figure(budget, scores.set_index("method").loc[MEAN_FRAME]))


def budget_figure(budget: pd.DataFrame, mean_frame: pd.Series) -> plt.Figure:
    """PSNR and LPIPS against bits per clip: thumbnails as a line, tokenizers and the full first frame as points."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    thumbs = budget[budget["method"].str.startswith("first frame at ")]
    for ax, metric in zip(axes, ("psnr", "lpips")):
        ax.plot(thumbs["bits"], thumbs[metric], "o-", color="grey", label="first frame thumbnail, repeated")
        for row in budget[~budget["method"].isin(thumbs["method"])].itertuples(index=False):
            ax.plot(row.bits, getattr(row, metric), "s", label=row.method)
        ax.axhline(mean_frame[metric], color="black", linestyle=":", linewidth=1, label=MEAN_FRAME)
        ax.set_xscale("log")
        ax.set_xlabel("bits per clip")
        ax.set_ylabel(metric.upper() + (" (dB)" if metric == "psnr" else ""))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("What a clip's bits buy on the test clips", fontsize=9)
    fig.tight_layout()
    return fig


@torch.no_grad()
def reconstruction_figure(methods: dict, clips: ClipDataset, n_clips: int) -> plt.Figure:
    """Rows: original and each method for ``n_clips`` test clips; columns: first, middle and last frame."""
    picks = [round(i * (len(clips) - 1) / max(n_clips - 1, 1)) for i in range(n_clips)]
    names = ["original", *methods]
    fig, axes = plt.subplots(n_clips * len(names), 3, figsize=(6, 2 * n_clips * len(names)), squeeze=False)
    for c, i in enumerate(picks):
        clip = clips[i]["clip"][None]
        t = clip.shape[2]
        for r, name in enumerate(names):
            video = clip if name == "original" else methods[name](clip).clamp(-0.5, 0.5)
            for col, f in enumerate((0, t // 2, t - 1)):
                ax = axes[c * len(names) + r, col]
                ax.imshow((video[0, :, f].permute(1, 2, 0) + 0.5).clamp(0, 1).numpy())
                ax.set_xticks([]), ax.set_yticks([])
                if col == 0:
                    ax.set_ylabel(name, fontsize=7)
                if r == 0:
                    ax.set_title(f"{clips.index.iloc[i]['clip_id'][:28]}  frame {f}", fontsize=6)
    fig.tight_layout()
    return fig
