"""Node of the `reconstruction` pipeline: score SweetTok against the proxy tokenizer and trivial baselines."""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch

from sweettok.data.clips import ClipDataset
from sweettok.metrics.reconstruction import first_frame_baseline, mean_frame_baseline, score_reconstructions
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.training.proxy_training import load_proxy
from sweettok.training.tokenizer_training import load_pixel_tokenizer

log = logging.getLogger(__name__)

FIRST_FRAME = "every frame = first frame"
MEAN_FRAME = "every frame = mean frame"


def _methods(tokenizer_model: dict, proxy_model: dict, codebook: CodebookPrior, frames: int, res: int):
    sweettok = load_pixel_tokenizer(tokenizer_model["checkpoint"], codebook)
    proxy = load_proxy(proxy_model["checkpoint"])
    methods = {"SweetTok": sweettok, "proxy tokenizer": lambda x: proxy(x).reconstruction,
               FIRST_FRAME: first_frame_baseline, MEAN_FRAME: mean_frame_baseline}
    tokens = {"SweetTok": sweettok.sweettok.cfg.num_latent_tokens(frames),
              "proxy tokenizer": proxy.num_tokens(frames, res, res), FIRST_FRAME: None, MEAN_FRAME: None}
    return methods, tokens


def evaluate_reconstruction(clip_index: pd.DataFrame, tokenizer_model: dict, proxy_model: dict,
                            language_codebook: CodebookPrior, patchify: dict, params: dict) -> tuple[pd.DataFrame, plt.Figure]:
    """PSNR / SSIM / LPIPS on the test clips for SweetTok, the proxy tokenizer and two trivial baselines,
    and a figure of a few reconstructions."""
    clips = ClipDataset(clip_index, patchify["shard_dir"], split="test")
    methods, tokens = _methods(tokenizer_model, proxy_model, language_codebook, patchify["frames"],
                               patchify["resolution"])
    table = score_reconstructions(methods, clips, tokens, batch_size=params.get("batch_size", 8))
    for row in table.itertuples(index=False):
        log.info("reconstruction %-26s tokens %5s  PSNR %6.2f  SSIM %.4f  LPIPS %.4f", row.method,
                 "-" if pd.isna(row.tokens) else int(row.tokens), row.psnr, row.ssim, row.lpips)
    return table, reconstruction_figure(methods, clips, params.get("figure_clips", 3))


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
