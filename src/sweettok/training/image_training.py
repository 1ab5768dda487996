"""Image fine-tuning of the video tokenizer (SPEC section 4, Table 3's image column).

The video tokenizer's weights are copied into an :class:`~sweettok.models.tokenizer.ImageTokenizer`
and trained on one-frame inputs: images go through the spatial path only (frame-0 patch
embedding, spatial trunk and queries, the adjective/noun books, the decoder's spatial blocks
and head, the proxy's frame-0 pixel head). Which of its parts train is ``trainable``
(:data:`~sweettok.models.tokenizer.IMAGE_PARTS`): ``[decoder]`` keeps the video tokenizer's ids
for every image and teaches the decoder to draw photographs from them; ``[encoder, decoder]``
also moves the spatial encoder and the books' projector (with the MLC loss, so the latents
stay on the codebook).

Loss = ``l2_weight`` * MSE + ``lpips_weight`` * LPIPS (+ ``mlc_weight`` * MLC loss when the
encoder trains). The paper's image column has no discriminator, so there is none here.
Everything else (AdamW, warm-up + cosine, EMA, checkpoints, exact resume, logs, fp16 on
CUDA, DDP under ``torchrun``) is the shared loop of :mod:`sweettok.training.loop`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F

from sweettok.models.tokenizer import IMAGE_PARTS, ImageTokenizer, describe_model
from sweettok.training.ema import EMA
from sweettok.training.loop import StepContext, StepOutput, TrainingSections, TrainResult, train
from sweettok.training.schedule import build_adamw, build_scheduler
from sweettok.typed_params import FieldChecks, from_mapping

log = logging.getLogger(__name__)

__all__ = ["ImageFinetuneConfig", "finetune_images"]


@dataclass(frozen=True)
class ImageFinetuneConfig(TrainingSections, FieldChecks):
    """Parameters of image fine-tuning (``image_finetune.training`` in the parameters).

    Attributes:
        optimizer, schedule, loop: `OptimizerConfig`, warm-up/min-ratio, `LoopConfig` fields
            (the paper: AdamW betas (0.9, 0.99), eps 1e-8, lr 1e-4, weight decay 1e-4,
            10K warm-up, cosine, batch 32, fp16, 500K steps).
        trainable: parts of :data:`IMAGE_PARTS` that train (``decoder``, ``encoder``).
        ema_decay: EMA of the trained weights; the exported model carries the EMA weights.
        run_dir: checkpoints, log, loss curve.
        l2_weight, lpips_weight: reconstruction terms.
        mlc_weight: weight of the MLC loss (only when the encoder trains).
    """

    optimizer: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=dict)
    loop: dict = field(default_factory=lambda: {"total_steps": 100})
    trainable: list = field(default_factory=lambda: ["decoder"])
    ema_decay: float | None = 0.999
    run_dir: str = "data/06_models/runs/image_finetune"
    l2_weight: float = 1.0
    lpips_weight: float = 0.1
    mlc_weight: float = 1.0

    def __post_init__(self) -> None:
        self.loop_config
        self.optimizer_config
        self.schedule_config
        parts = self.trainable
        if (not isinstance(parts, (list, tuple)) or not parts or len(set(parts)) != len(parts)
                or any(p not in IMAGE_PARTS for p in parts)):
            self._fail("trainable", f"must be a non-empty list of distinct parts from {sorted(IMAGE_PARTS)}, "
                                    f"got {parts!r}")
        decay = self.ema_decay
        if decay is not None and not (isinstance(decay, (int, float)) and 0.0 < decay < 1.0):
            self._fail("ema_decay", f"must be in (0, 1) or null, got {decay!r}")
        for name in ("l2_weight", "lpips_weight", "mlc_weight"):
            self._check_float(name, 0.0, inclusive=True)
        if not isinstance(self.run_dir, str) or not self.run_dir:
            self._fail("run_dir", f"must be a non-empty path, got {self.run_dir!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "image_finetune.training") -> "ImageFinetuneConfig":
        return from_mapping(cls, d, where)



def finetune_images(model: ImageTokenizer, dataset, cfg: ImageFinetuneConfig,
                    provenance: Mapping[str, Any] | None = None) -> TrainResult:
    """Fine-tune ``model`` on ``dataset`` (items with ``image``: float ``(C, H, W)`` in [-0.5, 0.5]).

    The model's trainable parameters are set from ``cfg.trainable`` here; the run's
    checkpoints (``cfg.run_dir``) hold kind ``sweettok_image`` configs.
    """
    from sweettok.metrics import LPIPS

    if not isinstance(model, ImageTokenizer):
        raise TypeError(f"finetune_images trains an ImageTokenizer (ImageTokenizer.from_video(...)), got "
                        f"{type(model).__name__}")
    names = model.set_trainable(tuple(cfg.trainable))
    log.info("image fine-tuning trains %s: %d tensors, %.2fM parameters", "+".join(cfg.trainable), len(names),
             sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6)
    optimizer = build_adamw(model, cfg.optimizer_config)
    scheduler = build_scheduler(optimizer, cfg.schedule_config)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
    lpips = LPIPS() if cfg.lpips_weight > 0 else None
    train_encoder = "encoder" in cfg.trainable

    def step_fn(batch: dict, ctx: StepContext) -> StepOutput:
        ctx.raw["model"].freeze_modes()
        images = batch["image"]
        # through the (DDP-wrapped) module's forward, so that gradients are all-reduced
        recon, mlc = ctx.modules["model"](images, train_pass=True)
        mse = F.mse_loss(recon.float(), images)
        loss = cfg.l2_weight * mse
        logs: dict[str, Any] = {"mse": mse.detach()}
        if lpips is not None:
            lpips.to(ctx.device)
            perceptual = lpips(recon, images).mean()
            loss = loss + cfg.lpips_weight * perceptual
            logs["lpips"] = perceptual.detach()
        if train_encoder:
            loss = loss + cfg.mlc_weight * mlc
            logs["mlc"] = mlc.detach()
        return StepOutput(losses={"model": loss}, logs=logs)

    return train(step_fn, model, optimizer, scheduler, ema, dataset, cfg.loop_config, run_dir=cfg.run_dir,
                 model_config=describe_model(model)[0], provenance=provenance)
