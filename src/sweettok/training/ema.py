"""Exponential moving average of a model's weights (SPEC: decay 0.999).

The shadow copy has exactly the keys of ``model.state_dict()``, so it is saved as
``ema.safetensors`` and loads straight into a fresh model of the same config.
Floating-point parameters and buffers are averaged; integer/bool buffers (counters,
flags) are copied, since averaging them means nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["EMA", "EMAConfig"]


@dataclass(frozen=True)
class EMAConfig:
    """Attributes:
    decay: weight of the old average per update, in [0, 1).
    enabled: keep an EMA at all.
    """

    decay: float = 0.999
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.decay, (int, float)) or not 0.0 <= self.decay < 1.0:
            raise ValueError(f"EMAConfig.decay: must be in [0, 1), got {self.decay!r}")


class EMA:
    """Shadow weights ``s <- decay * s + (1 - decay) * w`` updated after each optimiser step.

    Args:
        model: the (unwrapped) model to track; its current weights start the average.
        decay: see ``EMAConfig``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        EMAConfig(decay=decay)  # validates
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        return self

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average."""
        state = model.state_dict()
        if state.keys() != self.shadow.keys():
            raise KeyError(_key_diff("EMA.update", self.shadow.keys(), state.keys()))
        for k, v in state.items():
            s = self.shadow[k]
            if s.device != v.device:
                s = self.shadow[k] = s.to(v.device)
            if torch.is_floating_point(s):
                s.lerp_(v.detach().to(s.dtype), 1.0 - self.decay)
            else:
                s.copy_(v)
        self.num_updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The shadow weights (keys of the model's state dict)."""
        return dict(self.shadow)

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Replace the shadow weights; keys must match exactly."""
        if state.keys() != self.shadow.keys():
            raise KeyError(_key_diff("EMA.load_state_dict", self.shadow.keys(), state.keys()))
        for k, v in state.items():
            if v.shape != self.shadow[k].shape:
                raise ValueError(
                    f"EMA.load_state_dict: {k} has shape {tuple(v.shape)}, expected {tuple(self.shadow[k].shape)}"
                )
            self.shadow[k] = v.detach().to(device=self.shadow[k].device, dtype=self.shadow[k].dtype).clone()

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (strictly)."""
        model.load_state_dict(self.shadow, strict=True)


def _key_diff(where: str, expected, got) -> str:
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    return f"{where}: missing keys {missing}, unexpected keys {unexpected}"
