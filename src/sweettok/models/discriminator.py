"""3-D PatchGAN discriminator, hinge losses and LeCam regularisation (SweetTok phase 2).

The discriminator scores overlapping space-time patches of a clip: input
``(B, C, T, H, W)`` in ``[-0.5, 0.5]``, output logits ``(B, 1, T, H / 2**n, W / 2**n)`` for
``n = num_downsamples``. Time is never strided (kernel 3, padding 1), so one-frame clips
(images) work and every frame gets scores. GroupNorm rather than BatchNorm: batch
statistics would differ between real and fake batches and across DDP ranks.

Losses (Lim & Ye 2017, "Geometric GAN"):
- discriminator: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``
- generator: ``-mean(D(fake))``

LeCam regularisation (Tseng et al. 2021) keeps the discriminator's outputs near the
running means of the opposite class:
``mean(relu(D(real) - ema_fake)^2) + mean(relu(ema_real - D(fake))^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sweettok.typed_params import ParamError, from_mapping

__all__ = [
    "DiscriminatorConfig",
    "LeCamEMA",
    "PatchDiscriminator3D",
    "hinge_d_loss",
    "hinge_g_loss",
]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Shape of the 3-D PatchGAN.

    Attributes:
        in_channels: colour channels.
        base_channels: channels after the first layer; doubled per downsampling, capped
            at ``8 * base_channels``.
        num_downsamples: spatial stride-2 layers (frame sides must be multiples of ``2**n``).
        norm_groups: GroupNorm groups (must divide ``base_channels``).
        negative_slope: LeakyReLU slope.
    """

    in_channels: int = 3
    base_channels: int = 64
    num_downsamples: int = 3
    norm_groups: int = 8
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        for name, minimum in (("in_channels", 1), ("base_channels", 1), ("num_downsamples", 1), ("norm_groups", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ParamError(name, f"must be an integer >= {minimum}, got {value!r}", owner="DiscriminatorConfig")
        if self.base_channels % self.norm_groups:
            raise ParamError(
                "base_channels", f"must be divisible by norm_groups ({self.norm_groups}), got {self.base_channels}",
                owner="DiscriminatorConfig",
            )
        if not isinstance(self.negative_slope, (int, float)) or not 0 <= self.negative_slope < 1:
            raise ParamError("negative_slope", f"must be in [0, 1), got {self.negative_slope!r}",
                             owner="DiscriminatorConfig")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "discriminator") -> DiscriminatorConfig:
        """Build from the mapping at key path ``where``; errors name ``<where>.<field>``."""
        return from_mapping(cls, d, where)


class PatchDiscriminator3D(nn.Module):
    """PatchGAN over space-time; see the module docstring for shapes."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        slope = cfg.negative_slope
        ch = cfg.base_channels
        # First layer without norm (as in pix2pix): normalising raw pixels discards contrast.
        layers: list[nn.Module] = [
            nn.Conv3d(cfg.in_channels, ch, kernel_size=(3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)),
            nn.LeakyReLU(slope),
        ]
        for _ in range(cfg.num_downsamples - 1):
            out = min(2 * ch, 8 * cfg.base_channels)
            layers += [
                nn.Conv3d(ch, out, kernel_size=(3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1), bias=False),
                nn.GroupNorm(cfg.norm_groups, out),
                nn.LeakyReLU(slope),
            ]
            ch = out
        layers += [
            nn.Conv3d(ch, ch, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(cfg.norm_groups, ch),
            nn.LeakyReLU(slope),
            nn.Conv3d(ch, 1, kernel_size=3, padding=1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Patch logits.

        Args:
            clip: ``(B, C, T, H, W)`` or image ``(B, C, H, W)`` in ``[-0.5, 0.5]``;
                ``H, W`` multiples of ``2**num_downsamples``.

        Returns:
            ``(B, 1, T, H / 2**n, W / 2**n)`` unbounded logits (real > 0 after training).
        """
        if clip.ndim == 4:
            clip = clip.unsqueeze(2)
        if clip.ndim != 5 or clip.shape[1] != self.cfg.in_channels:
            raise ValueError(f"expected (B, {self.cfg.in_channels}, T, H, W), got {tuple(clip.shape)}")
        f = 2**self.cfg.num_downsamples
        if clip.shape[-1] % f or clip.shape[-2] % f:
            raise ValueError(f"frame sides must be multiples of {f}, got {tuple(clip.shape[-2:])}")
        return self.net(clip)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator (scalar); 0 once real > 1 and fake < -1 everywhere."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial loss (scalar): ``-mean(D(fake))``."""
    return -fake_logits.mean()


class LeCamEMA(nn.Module):
    """Running means of the discriminator's real and fake logits, and the LeCam penalty.

    The means are buffers, so they are checkpointed with the module and synchronised by
    DDP like any buffer. Call ``update`` once per discriminator step (with detached
    logits), then add ``weight * penalty(real, fake)`` to the discriminator loss.

    Args:
        decay: EMA decay (Tseng et al.: 0.99).
    """

    def __init__(self, decay: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"LeCamEMA.decay: must be in [0, 1), got {decay}")
        self.decay = decay
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        """Fold the batch means of the logits into the running means (first call copies)."""
        real, fake = real_logits.detach().float().mean(), fake_logits.detach().float().mean()
        if not bool(self.initialised):
            self.ema_real.copy_(real)
            self.ema_fake.copy_(fake)
            self.initialised.fill_(True)
            return
        self.ema_real.mul_(self.decay).add_((1 - self.decay) * real)
        self.ema_fake.mul_(self.decay).add_((1 - self.decay) * fake)

    def penalty(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """LeCam regulariser (scalar, >= 0), differentiable in the logits."""
        return F.relu(real_logits - self.ema_fake).pow(2).mean() + F.relu(self.ema_real - fake_logits).pow(2).mean()
