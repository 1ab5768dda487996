"""Loss terms shared by the training stages.

``patch_colour_mse``: the MSE between the mean colours of the ``patch`` x ``patch`` squares of
every frame. Plain MSE already contains this term once (a square's error is its mean error plus
what is left around the mean); ``colour_weight`` counts it that many more times. At the CPU
length the perceptual term and the common textures otherwise take the codes, and flat saturated
backgrounds came back in another colour (a flat yellow as orange, magenta as grey).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["patch_colour_mse"]


def patch_colour_mse(recon: torch.Tensor, target: torch.Tensor, patch: int) -> torch.Tensor:
    """MSE between the per-channel means of every frame's ``patch`` x ``patch`` squares.

    Args:
        recon, target: clips ``(B, C, T, H, W)`` or images ``(B, C, H, W)`` of the same shape.
        patch: side of the squares; ``H`` and ``W`` must be multiples of it.
    """
    if recon.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(recon.shape)} vs {tuple(target.shape)}")
    if recon.ndim not in (4, 5):
        raise ValueError(f"expected (B, C, H, W) or (B, C, T, H, W), got {tuple(recon.shape)}")
    h, w = recon.shape[-2:]
    if patch < 1 or h % patch or w % patch:
        raise ValueError(f"patch {patch} does not divide the {h} x {w} frames")

    def means(x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 5:  # (B, C, T, H, W) -> (B*T, C, H, W)
            x = x.transpose(1, 2).flatten(0, 1)
        return F.avg_pool2d(x.float(), patch)

    return F.mse_loss(means(recon), means(target))
