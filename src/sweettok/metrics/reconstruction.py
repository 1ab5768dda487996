"""Scoring reconstructions of held-out clips: PSNR, SSIM and LPIPS per method.

Methods are plain callables ``clip batch (B, C, T, H, W) -> reconstruction`` so that
tokenizers and trivial baselines are scored by the same code on the same clips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import torch

from sweettok.metrics.image_quality import psnr, ssim

Reconstructor = Callable[[torch.Tensor], torch.Tensor]


def first_frame_baseline(clip: torch.Tensor) -> torch.Tensor:
    """Every frame is the clip's first frame."""
    return clip[:, :, :1].expand_as(clip)


def mean_frame_baseline(clip: torch.Tensor) -> torch.Tensor:
    """Every frame is the clip's mean frame."""
    return clip.mean(dim=2, keepdim=True).expand_as(clip)


class FirstFrameThumbnail:
    """Every frame is the clip's first frame stored at ``size x size`` and upsampled again.

    The thumbnail is the area average of the first frame; decoding is bilinear. Stored as
    8-bit RGB it takes ``size * size * C * 8`` bits per clip (:meth:`bits`), which makes it
    a yardstick for what a given number of bits of the first frame is worth.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"thumbnail size must be >= 1, got {size}")
        self.size = size

    def bits(self, channels: int = 3) -> int:
        return self.size * self.size * channels * 8

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        first = clip[:, :, 0]
        height, width = first.shape[-2:]
        if self.size > min(height, width):
            raise ValueError(f"thumbnail size {self.size} exceeds the frame size {height} x {width}")
        small = F.adaptive_avg_pool2d(first, self.size)
        up = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
        return up.unsqueeze(2).expand_as(clip)


@torch.no_grad()
def score_reconstructions(methods: Mapping[str, Reconstructor], clips: Sequence[torch.Tensor] | torch.utils.data.Dataset,
                          tokens: Mapping[str, int | None], batch_size: int = 8, lpips_net: str = "alex",
                          progress: bool = True) -> pd.DataFrame:
    """Mean PSNR / SSIM / LPIPS of each method over all clips.

    Args:
        methods: name -> reconstructor.
        clips: clips ``(C, T, H, W)`` in [-0.5, 0.5], or a dataset whose items have ``clip``.
        tokens: latent tokens per clip of each method (None for methods that are no tokenizer).

    Returns:
        one row per method: ``method, tokens, psnr, ssim, lpips`` (reconstructions are
        clamped to [-0.5, 0.5] before scoring, as a decoded video would be).
    """
    from tqdm.auto import tqdm

    from sweettok.metrics.perceptual import LPIPS

    lpips = LPIPS(lpips_net)
    sums = {name: torch.zeros(3, dtype=torch.float64) for name in methods}
    n = 0
    for start in tqdm(range(0, len(clips), batch_size), desc="scoring reconstructions", disable=not progress):
        items = [clips[i] for i in range(start, min(start + batch_size, len(clips)))]
        batch = torch.stack([it["clip"] if isinstance(it, Mapping) else it for it in items])
        for name, method in methods.items():
            recon = method(batch).clamp(-0.5, 0.5)
            scores = torch.stack([psnr(recon, batch), ssim(recon, batch), lpips(recon, batch)], dim=1)
            sums[name] += scores.double().sum(0)
        n += len(items)
    rows = [{"method": name, "tokens": tokens.get(name), "psnr": float(s[0] / n), "ssim": float(s[1] / n),
             "lpips": float(s[2] / n)} for name, s in sums.items()]
    table = pd.DataFrame(rows, columns=["method", "tokens", "psnr", "ssim", "lpips"])
    table["tokens"] = table["tokens"].astype("Int64")
    return table
