"""Patch embedding: a clip of ``1 + 4k`` frames -> a ``(1 + k) x H/p x W/p`` grid of features.

Frame 0 is cut into ``1 x p x p`` patches (the spatial slice); frames ``1..4k`` into
``4 x p x p`` tubes (``temporal_patch_size`` frames each, the ``k`` temporal slices). Each
patch or tube is flattened in ``(c, t, ph, pw)`` order and embedded by
LayerNorm -> Linear -> LayerNorm (the first LayerNorm is optional, ``patch_input_norm``: it
makes the embedding blind to a patch's mean and contrast). Frame 0 and the tubes have separate embedders because their
inputs differ in length. An image is a one-frame clip: it only has the spatial slice.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from sweettok.models.config import SweetTokConfig

__all__ = ["PatchEmbed", "as_clip"]


def as_clip(x: torch.Tensor, cfg: SweetTokConfig) -> torch.Tensor:
    """Bring an image batch ``(B, C, H, W)`` or a clip batch ``(B, C, T, H, W)`` to 5-D and check it.

    Args:
        x: float tensor, values in [-0.5, 0.5] (not checked: range is the data layer's job).
        cfg: the model config (channels, resolution, frame rules).

    Returns:
        ``(B, C, T, H, W)`` view of ``x`` (``T = 1`` for an image).

    Raises:
        ValueError: wrong rank, channel count, frame size, or T not ``1 + 4k``.
    """
    if x.ndim == 4:
        x = x.unsqueeze(2)
    if x.ndim != 5:
        raise ValueError(f"expected an image (B, C, H, W) or a clip (B, C, T, H, W), got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"expected a float tensor in [-0.5, 0.5], got dtype {x.dtype}")
    b, c, t, h, w = x.shape
    if c != cfg.in_channels:
        raise ValueError(f"input has C={c} channels, model expects in_channels={cfg.in_channels}")
    if h != cfg.resolution or w != cfg.resolution:
        raise ValueError(f"input frames are {h}x{w}, model expects resolution {cfg.resolution}x{cfg.resolution}")
    cfg.check_frames(t)
    return x


def _embedder(in_features: int, width: int, input_norm: bool) -> nn.Sequential:
    first = nn.LayerNorm(in_features) if input_norm else nn.Identity()
    return nn.Sequential(first, nn.Linear(in_features, width), nn.LayerNorm(width))


class PatchEmbed(nn.Module):
    """Embed frame-0 patches and later-frame tubes to width ``D``.

    Input ``(B, C, T, H, W)`` with ``T = 1 + tp * k``; output ``(B, 1 + k, H/p, W/p, D)``, slice 0
    from frame 0 and slice ``j >= 1`` from frames ``1 + tp(j-1) .. tp j``.
    """

    def __init__(self, cfg: SweetTokConfig) -> None:
        super().__init__()
        self.p = cfg.patch_size
        self.tp = cfg.temporal_patch_size
        c = cfg.in_channels
        norm = cfg.patch_input_norm
        self.first = _embedder(c * self.p * self.p, cfg.width, norm)
        self.tubes = _embedder(c * self.tp * self.p * self.p, cfg.width, norm) if cfg.has_temporal else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = rearrange(x[:, :, :1], "b c 1 (h ph) (w pw) -> b 1 h w (c ph pw)", ph=self.p, pw=self.p)
        out = self.first(first)
        if x.shape[2] > 1:
            assert self.tubes is not None  # as_clip rejects T > 1 for image-only configs
            rest = rearrange(
                x[:, :, 1:], "b c (t pt) (h ph) (w pw) -> b t h w (c pt ph pw)", pt=self.tp, ph=self.p, pw=self.p
            )
            out = torch.cat([out, self.tubes(rest)], dim=1)
        return out

    def still_tube(self, x: torch.Tensor) -> torch.Tensor:
        """The tube embedder's features of frame 0 held still for a tube: ``(B, 1, H/p, W/p, D)``.

        The reference of the first temporal difference: a clip whose frame 1..tp equal frame 0
        has a first tube with exactly these features, so its difference is zero.
        """
        assert self.tubes is not None
        still = x[:, :, :1].expand(-1, -1, self.tp, -1, -1)
        still = rearrange(still, "b c pt (h ph) (w pw) -> b 1 h w (c pt ph pw)", ph=self.p, pw=self.p)
        return self.tubes(still)
