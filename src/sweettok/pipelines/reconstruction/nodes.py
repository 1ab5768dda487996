"""Node of the `reconstruction` pipeline: score SweetTok against the proxy tokenizer and baselines.

``reconstruction_metrics`` (long format, one row per method and frame range: frames
``1..T-1`` and all frames) holds SweetTok, the proxy tokenizer, the two trivial baselines
and, for each tokenizer, two first-frame baselines that spend at most the tokenizer's bits
per clip: the largest 8-bit thumbnail and frame 0 through WebP (:func:`equal_bits_baselines`).
``reconstruction_budget`` puts quality against bits per clip for thumbnails of several
sizes, the tokenizers and the codec rows, with a plot. All methods are scored in one pass
over the test clips (:func:`sweettok.metrics.reconstruction.score_reconstructions`).
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
from sweettok.metrics.reconstruction import (FirstFrameCodec, FirstFrameThumbnail, equal_bits_baselines,
                                             first_frame_baseline, frame_ranges, mean_frame_baseline,
                                             score_reconstructions, thumbnail_name)
from sweettok.models.proxy import ProxyTokenizer
from sweettok.models.sweettok import SweetTok
from sweettok.models.tokenizer import VideoTokenizer

log = logging.getLogger(__name__)

FIRST_FRAME = "every frame = first frame"
MEAN_FRAME = "every frame = mean frame"
TOKENIZERS = ("SweetTok", "proxy tokenizer")


def sweettok_bits(model: SweetTok, frames: int) -> float:
    """Bits per clip that SweetTok's ids can carry at most (:meth:`SweetTok.id_bits`)."""
    return model.id_bits(frames)


def proxy_bits(proxy: ProxyTokenizer, frames: int, height: int, width: int) -> float:
    """Bits per clip of the proxy tokenizer's ids: ``tokens * log2(codebook size)``."""
    return proxy.num_tokens(frames, height, width) * math.log2(proxy.cfg.codebook_size)


def tokenizer_methods(sweettok: VideoTokenizer, proxy: ProxyTokenizer, frames: int, res: int):
    """SweetTok and the proxy tokenizer as reconstructors, with their tokens and bits per clip by name."""
    methods = {"SweetTok": sweettok, "proxy tokenizer": lambda x: proxy(x).reconstruction}
    tokens = {"SweetTok": sweettok.cfg.num_latent_tokens(frames), "proxy tokenizer": proxy.num_tokens(frames, res, res)}
    bits = {"SweetTok": sweettok_bits(sweettok.sweettok, frames), "proxy tokenizer": proxy_bits(proxy, frames, res, res)}
    return methods, tokens, bits


def reconstruction_methods(sweettok: VideoTokenizer, proxy: ProxyTokenizer, frames: int, res: int, params: dict):
    """Main methods (tokenizers, trivial baselines, equal-bits rows), budget-only thumbnails, tokens, bits."""
    channels = sweettok.cfg.in_channels
    methods, tokens, bits = tokenizer_methods(sweettok, proxy, frames, res)
    methods.update({FIRST_FRAME: first_frame_baseline, MEAN_FRAME: mean_frame_baseline})
    # each is one stored 8-bit frame
    bits.update({FIRST_FRAME: float(res * res * channels * 8), MEAN_FRAME: float(res * res * channels * 8)})
    codec = params.get("codec", "auto")
    for label in TOKENIZERS:
        methods.update(equal_bits_baselines(bits[label], label, channels, max_side=res,
                                            codec=None if codec == "auto" else codec,
                                            scales=params.get("codec_scales", [1, 2, 4])))
    thumbs = {thumbnail_name(s, channels): FirstFrameThumbnail(s) for s in params.get("thumbnail_sizes", [])}
    return methods, thumbs, tokens, bits


def evaluate_reconstruction(clip_cache: ClipCache, tokenizer: VideoTokenizer, proxy_tokenizer: ProxyTokenizer,
                            params: dict) -> tuple[pd.DataFrame, plt.Figure, pd.DataFrame, plt.Figure]:
    """Scores on the test clips (frames 1..T-1 and all frames) for SweetTok, the proxy tokenizer, two
    trivial baselines and the equal-bits baselines; a figure of a few reconstructions; the
    bits-per-clip table with its plot."""
    clips = clip_cache.dataset("test")
    methods, thumbs, tokens, bits = reconstruction_methods(tokenizer, proxy_tokenizer, clip_cache.frames, clip_cache.resolution,
                                             params)
    scores = score_reconstructions({**methods, **thumbs}, clips, tokens, bits, batch_size=params.get("batch_size", 8))
    table = scores[scores["method"].isin(list(methods))].reset_index(drop=True)
    log_table(table)
    for name, method in methods.items():
        if isinstance(method, FirstFrameCodec):
            log.info("%s, encoder choices: %s", name, describe_choices(method.choices))
    budget_methods = [m for m in scores["method"].unique() if m not in {MEAN_FRAME}]
    budget = scores[scores["method"].isin(budget_methods)].drop(columns="tokens")
    order = {r: i for i, r in enumerate(frame_ranges(clip_cache.frames))}
    budget = (budget.assign(_r=budget["frames"].map(order)).sort_values(["_r", "bits"], kind="stable")
              .drop(columns="_r").reset_index(drop=True))
    main_range = next(iter(order))
    return (table, reconstruction_figure({k: methods[k] for k in (*TOKENIZERS, FIRST_FRAME, MEAN_FRAME)}, clips,
                                         params.get("figure_clips", 3)),
            budget, budget_figure(budget[budget["frames"] == main_range],
                                  scores[(scores["method"] == MEAN_FRAME) & (scores["frames"] == main_range)].iloc[0],
                                  main_range))


def describe_choices(choices) -> str:
    """``(scale, quality) -> clips`` counts of a :class:`FirstFrameCodec` in words."""
    by_scale: dict[int, list[int]] = {}
    for (scale, quality), k in choices.items():
        by_scale.setdefault(scale, []).extend([quality] * k)
    return "; ".join(f"flat colour {len(q)} clips" if scale == 0 else
                     f"1/{scale} side {len(q)} clips (quality {min(q)}-{max(q)}, median {sorted(q)[len(q) // 2]})"
                     for scale, q in sorted(by_scale.items()))


def log_table(table: pd.DataFrame) -> None:
    """One log line per method and frame range, grouped by range."""
    for frames, rows in table.groupby("frames", sort=False):
        log.info("reconstruction on %s of the test clips:", "all frames" if frames == "all" else f"frames {frames}")
        log.info("  %-48s %6s %8s %7s %9s %7s %7s", "method", "tokens", "bits", "PSNR", "PSNR f.m.", "SSIM", "LPIPS")
        for row in rows.itertuples(index=False):
            log.info("  %-48s %6s %8.0f %7.2f %9.2f %7.4f %7.4f%s", row.method,
                     "-" if pd.isna(row.tokens) else int(row.tokens), row.bits, row.psnr, row.psnr_frame_mean,
                     row.ssim, row.lpips,
                     "" if pd.isna(row.flat_fallback_clips) else f"  ({int(row.flat_fallback_clips)} clips flat colour)")


def budget_figure(budget: pd.DataFrame, mean_frame: pd.Series, frames: str) -> plt.Figure:
    """PSNR and LPIPS (on ``frames``) against bits per clip: thumbnails as a line, the rest as points."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    thumbs = budget[budget["method"].str.startswith("thumbnail ")].sort_values("bits")
    others = budget[~budget["method"].isin(thumbs["method"])]
    for ax, metric in zip(axes, ("psnr", "lpips")):
        ax.plot(thumbs["bits"], thumbs[metric], "o-", color="grey", label="first-frame thumbnail, repeated")
        for row in others.itertuples(index=False):
            marker = "^" if " frame 0 @ " in row.method else "s"  # codec rows: triangles; tokenizers: squares
            ax.plot(row.bits, getattr(row, metric), marker, label=row.method)
        ax.axhline(mean_frame[metric], color="black", linestyle=":", linewidth=1, label=MEAN_FRAME)
        ax.set_xscale("log")
        ax.set_xlabel("bits per clip")
        ax.set_ylabel(("PSNR (dB, whole-clip MSE)" if metric == "psnr" else "LPIPS") + f", frames {frames}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"What a clip's bits buy on the test clips (frames {frames})", fontsize=9)
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
