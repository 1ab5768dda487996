"""Training the proxy tokenizer, and writing its code ids for every cached clip.

Loss: ``l2_weight * MSE + colour_weight * patch-colour MSE + lpips_weight * LPIPS + vq_loss``
on the clip cache's training split (the colour term: :mod:`sweettok.training.losses`). LPIPS runs on ``lpips_frames`` randomly chosen frames per clip (all frames when 0),
which keeps the perceptual term affordable on a CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sweettok.data.clips import ClipDataset
from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig
from sweettok.training.ema import EMA
from sweettok.training.losses import patch_colour_mse
from sweettok.training.loop import StepContext, StepOutput, TrainingSections, TrainResult, train
from sweettok.training.rng import seed_everything
from sweettok.training.schedule import build_adamw, build_scheduler
from sweettok.typed_params import ParamError, from_mapping, nested_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProxyTrainingConfig(TrainingSections):
    """Parameters of the ``proxy`` pipeline (``conf/*/parameters_proxy.yml``).

    Attributes:
        model: `ProxyTokenizerConfig` fields.
        optimizer: `OptimizerConfig` fields.
        schedule: ``warmup_steps`` and ``min_lr_ratio`` (the cosine ends at ``loop.total_steps``).
        loop: `LoopConfig` fields.
        l2_weight, lpips_weight: weights of the reconstruction terms.
        colour_weight: weight of the MSE of the mean colours of the proxy's patch squares
            (`sweettok.training.losses.patch_colour_mse`; 0: off).
        lpips_frames: frames per clip scored by LPIPS during training (0: all).
        ema_decay: EMA of the weights (``null``: none; the codes are written with the EMA
            weights when there is one).
        run_dir: checkpoints, log and loss curve.
        encode_batch_size: clips per forward pass when writing codes.
    """

    model: dict = field(default_factory=dict)
    optimizer: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=dict)
    loop: dict = field(default_factory=lambda: {"total_steps": 100})
    l2_weight: float = 1.0
    lpips_weight: float = 0.1
    lpips_frames: int = 4
    colour_weight: float = 0.0
    ema_decay: float | None = None
    run_dir: str = "data/06_models/proxy"
    encode_batch_size: int = 16

    def __post_init__(self) -> None:
        # build every typed part now, so a bad key fails before any work starts
        self.model_config
        self.loop_config
        self.optimizer_config
        self.schedule_config
        for name in ("l2_weight", "lpips_weight", "lpips_frames", "colour_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ParamError(name, f"must be a number >= 0, got {value!r}", owner="ProxyTrainingConfig")
        decay = self.ema_decay
        if decay is not None and not (isinstance(decay, (int, float)) and 0.0 < decay < 1.0):
            raise ParamError("ema_decay", f"must be in (0, 1) or null, got {decay!r}", owner="ProxyTrainingConfig")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "proxy") -> "ProxyTrainingConfig":
        """Build from the parameters at key path ``where``; errors name the full path (``proxy.loop.seed``)."""
        return from_mapping(cls, d, where)

    @property
    def model_config(self) -> ProxyTokenizerConfig:
        return nested_config(self, ProxyTokenizerConfig, self.model, "model")



def frame_subset(frames: int, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Sorted indices of ``n`` random frames out of ``frames`` (all of them when ``n`` is 0 or too large)."""
    if n == 0 or n >= frames:
        return torch.arange(frames, device=device)
    return torch.randperm(frames)[:n].sort().values.to(device)


def train_proxy(clips: ClipDataset, cfg: ProxyTrainingConfig, provenance: Mapping[str, Any] | None = None) -> TrainResult:
    """Train the proxy tokenizer on ``clips``; checkpoints go to ``cfg.run_dir``."""
    from sweettok.metrics import LPIPS

    seed_everything(cfg.loop_config.seed)  # the initial weights follow the seed too
    model = ProxyTokenizer(cfg.model_config)
    optimizer = build_adamw(model, cfg.optimizer_config)
    scheduler = build_scheduler(optimizer, cfg.schedule_config)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
    lpips = LPIPS() if cfg.lpips_weight > 0 else None

    def step_fn(batch: dict, ctx: StepContext) -> StepOutput:
        if lpips is not None:
            lpips.to(ctx.device)
        clip = batch["clip"]
        out = ctx.modules["model"](clip)
        mse = F.mse_loss(out.reconstruction, clip)
        loss = cfg.l2_weight * mse + out.vq_loss
        logs = {"mse": mse.detach(), "vq": out.vq_loss.detach(), "perplexity": out.perplexity,
                "usage": out.usage_fraction}
        if cfg.colour_weight > 0:
            colour = patch_colour_mse(out.reconstruction, clip, cfg.model_config.patch_size)
            loss = loss + cfg.colour_weight * colour
            logs["colour"] = colour.detach()
        if lpips is not None:
            idx = frame_subset(clip.shape[2], cfg.lpips_frames, clip.device)
            perceptual = lpips(out.reconstruction.index_select(2, idx), clip.index_select(2, idx)).mean()
            loss = loss + cfg.lpips_weight * perceptual
            logs["lpips"] = perceptual.detach()
        return StepOutput(losses={"model": loss}, logs=logs)

    return train(step_fn, model, optimizer, scheduler, ema, clips, cfg.loop_config, run_dir=cfg.run_dir,
                 model_config={"kind": "proxy_tokenizer", **cfg.model_config.to_dict()}, provenance=provenance)


@torch.no_grad()
def encode_clips(model: ProxyTokenizer, clips: ClipDataset, batch_size: int = 16,
                 device: torch.device | str = "cpu", progress: bool = True) -> Iterator[tuple[str, str, np.ndarray]]:
    """Yield ``(clip_id, split, ids (1+k, h, w))`` for every clip, in dataset order."""
    from tqdm.auto import tqdm

    model = model.to(device).eval()
    splits = clips.index["split"].tolist()
    for start in tqdm(range(0, len(clips), batch_size), desc="proxy codes", disable=not progress):
        rows = range(start, min(start + batch_size, len(clips)))
        items = [clips[i] for i in rows]
        ids = model.encode(torch.stack([it["clip"] for it in items]).to(device)).cpu().numpy()
        for i, it, grid in zip(rows, items, ids):
            yield it["clip_id"], splits[i], grid


def proxy_code_items(model: ProxyTokenizer, clips: ClipDataset, cfg: ProxyTrainingConfig,
                     device: torch.device | str = "cpu") -> Iterator[tuple[str, str, np.ndarray]]:
    """``(clip_id, split, ids (1+k, h, w))`` of every clip; logs code usage at the end."""
    counts = np.zeros(model.cfg.codebook_size, np.int64)
    n, grid = 0, ()
    for clip_id, split, ids in encode_clips(model, clips, cfg.encode_batch_size, device):
        counts += np.bincount(ids.ravel(), minlength=len(counts))
        n, grid = n + 1, ids.shape
        yield clip_id, split, ids
    p = counts / max(counts.sum(), 1)
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    log.info("proxy codes: %d clips, grid %s, %d of %d codes used, perplexity %.1f", n, tuple(grid),
             int((counts > 0).sum()), len(counts), perplexity)
