"""AdamW with the usual weight-decay exemptions, and cosine decay after linear warm-up.

SPEC Table 3 in these terms:
- video tokenizer: ``OptimizerConfig(lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)``,
  ``ScheduleConfig(warmup_steps=10_000, total_steps=1_000_000)``;
- image fine-tune: betas ``(0.9, 0.99)``, eps ``1e-8``, 500K steps;
- LM: betas ``(0.9, 0.96)``, weight decay ``0.03``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from sweettok.typed_params import ParamError

__all__ = [
    "OptimizerConfig",
    "ScheduleConfig",
    "WarmupCosine",
    "WarmupCosineLR",
    "build_adamw",
    "build_scheduler",
    "weight_decay_groups",
]

# Parameters that act as lookup tables or learned positions/queries are not shrunk.
DEFAULT_NO_DECAY_KEYWORDS: tuple[str, ...] = (
    "pos_embed",
    "position",
    "queries",
    "query_embed",
    "mask_token",
    "codebook",
)
_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.RMSNorm)


def _number(
    owner: str,
    name: str,
    value: Any,
    lo: float,
    lo_inclusive: bool = True,
    hi: float | None = None,
    hi_inclusive: bool = False,
) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ParamError(name, f"must be a number, got {value!r}", owner=owner)
    too_low = value < lo or (not lo_inclusive and value == lo)
    too_high = hi is not None and (value > hi or (not hi_inclusive and value == hi))
    if too_low or too_high:
        bound = f"{'[' if lo_inclusive else '('}{lo}, {hi if hi is not None else 'inf'}{']' if hi_inclusive else ')'}"
        raise ParamError(name, f"must be in {bound}, got {value!r}", owner=owner)
    return float(value)


OPTIMIZER_IMPLEMENTATIONS = ("auto", "fused", "foreach", "loop")
# devices with a fused AdamW kernel in torch
FUSED_ADAMW_DEVICES = frozenset({"cpu", "cuda"})


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW hyper-parameters.

    Attributes:
        lr: peak learning rate (reached at the end of warm-up).
        betas: Adam's ``(beta1, beta2)``.
        eps: Adam's epsilon.
        weight_decay: decoupled weight decay of the decayed group.
        no_decay_keywords: parameter-name fragments exempt from decay, on top of all
            biases, 1-D tensors, norm layers and ``nn.Embedding`` tables.
        implementation: how torch runs the update: ``fused`` (one kernel over every tensor),
            ``foreach`` (batched per-op kernels), ``loop`` (one tensor at a time), or ``auto``:
            fused where torch has the kernel for the parameters' device (CPU, CUDA), else torch's
            own choice. The same update up to float rounding (``sweettok bench optimizer``).
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    no_decay_keywords: tuple[str, ...] = field(default=DEFAULT_NO_DECAY_KEYWORDS)
    implementation: str = "auto"

    def __post_init__(self) -> None:
        if self.implementation not in OPTIMIZER_IMPLEMENTATIONS:
            raise ParamError("implementation", f"must be one of {list(OPTIMIZER_IMPLEMENTATIONS)}, "
                             f"got {self.implementation!r}", owner="OptimizerConfig")
        object.__setattr__(self, "lr", _number("OptimizerConfig", "lr", self.lr, 0.0, lo_inclusive=False))
        object.__setattr__(self, "eps", _number("OptimizerConfig", "eps", self.eps, 0.0, lo_inclusive=False))
        object.__setattr__(self, "weight_decay", _number("OptimizerConfig", "weight_decay", self.weight_decay, 0.0))
        betas = self.betas
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise ParamError("betas", f"must be two numbers, got {betas!r}", owner="OptimizerConfig")
        betas = tuple(_number("OptimizerConfig", "betas", b, 0.0, hi=1.0) for b in betas)
        object.__setattr__(self, "betas", betas)
        kws = self.no_decay_keywords
        if isinstance(kws, str) or not all(isinstance(k, str) for k in kws):
            raise ParamError("no_decay_keywords", f"must be a list of strings, got {kws!r}", owner="OptimizerConfig")
        object.__setattr__(self, "no_decay_keywords", tuple(kws))


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule: linear warm-up to the peak, then cosine to ``min_lr_ratio * peak``.

    Attributes:
        total_steps: optimiser steps of the whole run (the cosine ends here).
        warmup_steps: steps of linear warm-up (SPEC: 10K).
        min_lr_ratio: final learning rate as a fraction of the peak.
    """

    total_steps: int
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        for name, minimum in (("total_steps", 1), ("warmup_steps", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ParamError(name, f"must be an integer >= {minimum}, got {value!r}", owner="ScheduleConfig")
        if self.warmup_steps > self.total_steps:
            raise ParamError(
                "warmup_steps", f"must not exceed total_steps ({self.total_steps}), got {self.warmup_steps}",
                owner="ScheduleConfig",
            )
        object.__setattr__(
            self,
            "min_lr_ratio",
            _number("ScheduleConfig", "min_lr_ratio", self.min_lr_ratio, 0.0, hi=1.0, hi_inclusive=True),
        )


class WarmupCosine:
    """Learning-rate multiplier after ``step`` completed optimiser steps.

    ``(step + 1) / warmup`` during warm-up, then
    ``min + (1 - min) * (1 + cos(pi * progress)) / 2`` with progress going 0 -> 1 over the
    remaining steps, then ``min``. A plain object (not a closure) so that ``LambdaLR`` can
    save and restore it through its ``__dict__`` of numbers.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_lr_ratio = float(min_lr_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def weight_decay_groups(
    model: nn.Module, weight_decay: float, no_decay_keywords: Sequence[str] = DEFAULT_NO_DECAY_KEYWORDS
) -> list[dict[str, Any]]:
    """Split trainable parameters into a decayed and a non-decayed group.

    Not decayed: biases and all tensors of fewer than 2 dims, parameters of norm layers
    and ``nn.Embedding``, and names containing any of ``no_decay_keywords``.

    Returns:
        Two AdamW parameter groups (each with a ``"names"`` list, used for logging).
    """
    exempt: set[int] = set()
    for module in model.modules():
        if isinstance(module, (*_NORM_TYPES, nn.Embedding)):
            exempt.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or id(p) in exempt or any(k in name for k in no_decay_keywords):
            no_decay.append(p)
            no_decay_names.append(name)
        else:
            decay.append(p)
            decay_names.append(name)
    return [
        {"params": decay, "weight_decay": weight_decay, "names": decay_names},
        {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names},
    ]


def build_adamw(model: nn.Module | Iterable[nn.Module], cfg: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model`` (or of several modules)."""
    modules = [model] if isinstance(model, nn.Module) else list(model)
    groups = [weight_decay_groups(m, cfg.weight_decay, cfg.no_decay_keywords) for m in modules]
    merged = [
        {"params": [p for g in groups for p in g[i]["params"]], "weight_decay": groups[0][i]["weight_decay"]}
        for i in range(2)
    ]
    merged = [g for g in merged if g["params"]]
    if not merged:
        raise ValueError("build_adamw: the model has no trainable parameters")
    # auto: the fused kernel where torch has one for the parameters' device. On 2 CPU threads the
    # base SweetTok's AdamW step takes 6.5 ms fused against 36.7 ms one tensor at a time, which is
    # what torch picks on the CPU by default (about 5% of a phase-1 step)
    kind = cfg.implementation
    if kind == "auto":
        devices = {p.device.type for g in merged for p in g["params"]}
        kind = "fused" if devices <= FUSED_ADAMW_DEVICES else None
    chosen = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}.get(kind, {})
    return torch.optim.AdamW(merged, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             **chosen)


class WarmupCosineLR(LambdaLR):
    """``LambdaLR`` driven by ``WarmupCosine`` whose saved state is only the step count.

    The schedule's shape (warm-up, total steps, floor) always comes from the current
    config, so a run resumed with a longer ``total_steps`` stretches its cosine instead of
    silently keeping the old one; the checkpoint supplies where along it the run is.
    """

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("lr_lambdas", None)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        state.pop("lr_lambdas", None)
        self.__dict__.update(state)
        # The learning rates follow the restored step under the current schedule.
        for group, base, fn in zip(self.optimizer.param_groups, self.base_lrs, self.lr_lambdas, strict=True):
            group["lr"] = base * fn(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig) -> WarmupCosineLR:
    """Per-step warm-up + cosine scheduler; call ``.step()`` after each optimiser step."""
    return WarmupCosineLR(optimizer, WarmupCosine(cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio))
