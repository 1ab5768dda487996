"""SweetTok's two training phases (SPEC section 4).

Phase 1 ("with proxy code"): the decoder predicts the proxy tokenizer's code ids;
loss = cross-entropy + ``mlc_weight`` * MLC loss (which includes the optional code-diversity
term, ``SweetTokConfig.code_diversity_weight``; logged as ``diversity``, before its weight).

Phase 2 ("without proxy code"): patch embedding, encoder (trunks and queries) and the
quantizer are frozen; the decoder's logits go through a softmax, a weighted sum of the
proxy codebook and the proxy's pixel decoder (trained) to pixels. Loss = L2 (+ the MSE of
patch mean colours, ``colour_weight``) + LPIPS +
a hinge 3-D PatchGAN term (the discriminator starts at ``disc_start`` with its own
optimiser) + LeCam regularisation of the discriminator.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from sweettok.models.discriminator import DiscriminatorConfig, LeCamEMA, PatchDiscriminator3D, hinge_d_loss, hinge_g_loss
from sweettok.models.sweettok import SweetTok
from sweettok.models.tokenizer import VideoTokenizer
from sweettok.training.ema import EMA
from sweettok.training.losses import patch_colour_mse
from sweettok.training.loop import StepContext, StepOutput, TrainingSections, TrainPart, TrainResult, train
from sweettok.training.proxy_training import frame_subset
from sweettok.training.rng import seed_everything
from sweettok.training.schedule import OptimizerConfig, build_adamw, build_scheduler
from sweettok.typed_params import ParamError, from_mapping, nested_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseConfig(TrainingSections):
    """Parameters of one training phase (``conf/*/parameters_tokenizer.yml``).

    Attributes:
        optimizer, schedule, loop: `OptimizerConfig`, warm-up/min-ratio, `LoopConfig` fields.
        ema_decay: EMA of the trained weights (SPEC: 0.999); evaluation uses the EMA weights.
        run_dir: checkpoints, log, loss curve.
        mlc_weight: phase 1: weight of the MLC loss next to the cross-entropy.
        l2_weight, lpips_weight, lpips_frames: phase 2 reconstruction terms.
        colour_weight: phase 2: weight of the MSE of the mean colours of the model's patch
            squares (`sweettok.training.losses.patch_colour_mse`; 0: off).
        gan_weight, disc_start, lecam_weight: phase 2 adversarial terms.
        discriminator, disc_optimizer: phase 2 discriminator architecture and AdamW.
    """

    optimizer: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=dict)
    loop: dict = field(default_factory=lambda: {"total_steps": 100})
    ema_decay: float | None = 0.999
    run_dir: str = "data/06_models/phase1"
    mlc_weight: float = 1.0
    l2_weight: float = 1.0
    lpips_weight: float = 0.1
    lpips_frames: int = 4
    colour_weight: float = 0.0
    gan_weight: float = 0.01
    disc_start: int = 20000
    lecam_weight: float = 0.001
    discriminator: dict = field(default_factory=dict)
    disc_optimizer: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # build every typed part now: a bad key fails before any work, named by its full path
        self.loop_config
        self.optimizer_config
        self.schedule_config
        self.discriminator_config
        self.disc_optimizer_config
        decay = self.ema_decay
        if decay is not None and not (isinstance(decay, (int, float)) and 0.0 < decay < 1.0):
            raise ParamError("ema_decay", f"must be in (0, 1) or null, got {self.ema_decay!r}", owner="PhaseConfig")
        for name in ("mlc_weight", "l2_weight", "lpips_weight", "gan_weight", "lecam_weight", "lpips_frames",
                     "disc_start", "colour_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ParamError(name, f"must be a number >= 0, got {value!r}", owner="PhaseConfig")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "tokenizer") -> "PhaseConfig":
        """Build from the parameters at key path ``where`` (``tokenizer_phase1``/``tokenizer_phase2``);
        errors name the full path, e.g. ``tokenizer_phase2.loop.batch_size``."""
        return from_mapping(cls, d, where)


    @property
    def disc_optimizer_config(self) -> OptimizerConfig:
        return nested_config(self, OptimizerConfig, self.disc_optimizer, "disc_optimizer")

    @property
    def discriminator_config(self) -> DiscriminatorConfig:
        return nested_config(self, DiscriminatorConfig, self.discriminator, "discriminator")


# ---------------------------------------------------------------------------- phase 1


def train_phase1(model: SweetTok, dataset, cfg: PhaseConfig, provenance: Mapping[str, Any] | None = None) -> TrainResult:
    """Train SweetTok to predict proxy code ids; ``dataset`` items carry ``clip`` and ``codes``."""
    optimizer = build_adamw(model, cfg.optimizer_config)
    scheduler = build_scheduler(optimizer, cfg.schedule_config)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None

    def step_fn(batch: dict, ctx: StepContext) -> StepOutput:
        out = ctx.modules["model"](batch["clip"])
        logits, mlc_loss, stats = out.logits, out.mlc_loss, out.stats
        ce = F.cross_entropy(logits, batch["codes"])
        accuracy = (logits.argmax(1) == batch["codes"]).float().mean()
        logs = {"ce": ce.detach(), "mlc": mlc_loss.detach(), "accuracy": accuracy, "diversity": stats["diversity"],
                **{k: v for k, v in stats.items() if k.endswith(("perplexity", "used"))}}
        return StepOutput(losses={"model": ce + cfg.mlc_weight * mlc_loss}, logs=logs)

    return train(step_fn, model, optimizer, scheduler, ema, dataset, cfg.loop_config, run_dir=cfg.run_dir,
                 model_config={"kind": "sweettok", **model.cfg.to_dict()}, provenance=provenance)


# ---------------------------------------------------------------------------- phase 2


def train_phase2(model: VideoTokenizer, dataset, cfg: PhaseConfig,
                 provenance: Mapping[str, Any] | None = None) -> TrainResult:
    """Train the decoders for pixels with L2 + LPIPS + PatchGAN (+ LeCam)."""
    from sweettok.metrics import LPIPS

    optimizer = build_adamw(model, cfg.optimizer_config)
    scheduler = build_scheduler(optimizer, cfg.schedule_config)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
    lpips = LPIPS() if cfg.lpips_weight > 0 else None
    seed_everything(cfg.loop_config.seed)  # the discriminator's initial weights follow the seed
    disc = PatchDiscriminator3D(cfg.discriminator_config)
    disc_opt = build_adamw(disc, cfg.disc_optimizer_config)
    lecam = LeCamEMA()
    use_gan = cfg.gan_weight > 0 and cfg.disc_start < cfg.loop_config.total_steps

    def step_fn(batch: dict, ctx: StepContext) -> StepOutput:
        raw_model = ctx.raw["model"]
        raw_model.freeze_modes()
        clip = batch["clip"]
        recon = ctx.modules["model"](clip)
        mse = F.mse_loss(recon, clip)
        loss = cfg.l2_weight * mse
        logs: dict[str, Any] = {"mse": mse.detach()}
        if cfg.colour_weight > 0:
            colour = patch_colour_mse(recon, clip, raw_model.cfg.patch_size)
            loss = loss + cfg.colour_weight * colour
            logs["colour"] = colour.detach()
        if lpips is not None:
            lpips.to(ctx.device)
            idx = frame_subset(clip.shape[2], cfg.lpips_frames, clip.device)
            perceptual = lpips(recon.index_select(2, idx), clip.index_select(2, idx)).mean()
            loss = loss + cfg.lpips_weight * perceptual
            logs["lpips"] = perceptual.detach()
        losses = {}
        if use_gan and ctx.step >= cfg.disc_start:
            g_loss = hinge_g_loss(ctx.raw["discriminator"](recon))
            loss = loss + cfg.gan_weight * g_loss
            real_logits = ctx.modules["discriminator"](clip)
            fake_logits = ctx.modules["discriminator"](recon.detach())
            d_loss = hinge_d_loss(real_logits, fake_logits)
            if cfg.lecam_weight > 0:
                lecam.to(ctx.device)
                d_loss = d_loss + cfg.lecam_weight * lecam.penalty(real_logits, fake_logits)
                lecam.update(real_logits.detach(), fake_logits.detach())
            losses["discriminator"] = d_loss
            logs.update(g_loss=g_loss.detach(), d_loss=d_loss.detach())
        losses["model"] = loss
        return StepOutput(losses=losses, logs=logs)

    return train(step_fn, model, optimizer, scheduler, ema, dataset, cfg.loop_config, run_dir=cfg.run_dir,
                 model_config={"kind": "sweettok_pixel", "sweettok": model.sweettok.cfg.to_dict(),
                               "proxy": model.proxy.cfg.to_dict()},
                 extra_parts={"discriminator": TrainPart(disc, disc_opt, None)}, provenance=provenance)
