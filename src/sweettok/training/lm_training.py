"""Training the class-conditional token LM (SPEC section 5, Table 3's LM column).

The LM (:class:`~sweettok.models.lm.TokenLM`) reads ``[class] + spatial ids + [sep] + temporal
ids`` of the training clips and is scored on the held-out clips' sequences. Loss: cross-entropy
normalised over each position's part of speech, with label smoothing over the same legal tokens.
The class token is replaced by the null class with probability ``cond_dropout`` so that
classifier-free guidance has an unconditional model to push away from (the release sampled
with guidance that its training never learned). Everything else (AdamW with the paper's betas
and weight decay, warm-up + cosine, EMA, checkpoints, exact resume, logs, fp16/bf16 on CUDA, DDP
under ``torchrun``) is the shared loop of :mod:`sweettok.training.loop`. Validation NLL and
perplexity of the EMA weights go to the run's log every ``eval_every`` steps.

:func:`unigram_baselines` gives the losses an LM must beat: the training ids' unigram
distribution (over all words, the yardstick the issue names), the same renormalised within each
position's part of speech, and a separate unigram per sequence position.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sweettok.models.lm import LMVocabulary, TokenLM, logits_loss, sequence_nll
from sweettok.training.ema import EMA
from sweettok.training.loop import StepContext, StepOutput, TrainingSections, TrainResult, train
from sweettok.training.schedule import build_adamw, build_scheduler
from sweettok.typed_params import FieldChecks, from_mapping

log = logging.getLogger(__name__)

__all__ = ["LMTrainingConfig", "SequenceDataset", "evaluate_nll", "train_lm", "unigram_baselines"]

MODEL_SIZE_KEYS = ("width", "depth", "heads", "mlp_ratio", "dropout", "attention_dropout")


@dataclass(frozen=True)
class LMTrainingConfig(TrainingSections, FieldChecks):
    """Parameters of LM training (``lm.training`` in the parameters).

    Attributes:
        model: the transformer's size (``width``, ``depth``, ``heads``, ``mlp_ratio``, ``dropout``,
            ``attention_dropout``;
            the vocabulary comes from the tokenizer).
        optimizer, schedule, loop: `OptimizerConfig`, warm-up/min-ratio, `LoopConfig` fields (the
            paper: AdamW betas (0.9, 0.96), lr 1e-4, weight decay 0.03, 10K warm-up, cosine,
            batch 4 per GPU, fp16, 1000K steps).
        label_smoothing: target mass spread over the position's legal tokens (release: 0.1).
        cond_dropout: probability of training a sequence with the null class.
        ema_decay: EMA of the weights; the exported LM carries the EMA weights.
        eval_every: optimiser steps between validation losses.
        run_dir: checkpoints, log, loss curve.
    """

    model: dict = field(default_factory=dict)
    optimizer: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=dict)
    loop: dict = field(default_factory=lambda: {"total_steps": 100})
    label_smoothing: float = 0.1
    cond_dropout: float = 0.1
    ema_decay: float | None = 0.999
    eval_every: int = 50
    run_dir: str = "data/06_models/runs/lm"

    def __post_init__(self) -> None:
        self.loop_config
        self.optimizer_config
        self.schedule_config
        unknown = sorted(set(self.model) - set(MODEL_SIZE_KEYS))
        if unknown:
            self._fail("model", f"unknown keys {unknown}; the LM's size keys are {list(MODEL_SIZE_KEYS)}")
        for name in ("label_smoothing", "cond_dropout"):
            self._check_float(name, 0.0, inclusive=True)
            if getattr(self, name) >= 1.0:
                self._fail(name, f"must be < 1, got {getattr(self, name)}")
        decay = self.ema_decay
        if decay is not None and not (isinstance(decay, (int, float)) and 0.0 < decay < 1.0):
            self._fail("ema_decay", f"must be in (0, 1) or null, got {decay!r}")
        self._check_int("eval_every", 1)
        if not isinstance(self.run_dir, str) or not self.run_dir:
            self._fail("run_dir", f"must be a non-empty path, got {self.run_dir!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "lm.training") -> LMTrainingConfig:
        return from_mapping(cls, d, where)


class SequenceDataset(Dataset):
    """LM sequences ``(S,)`` int64 of clips' ids and labels (items: ``{"seq": ...}``)."""

    def __init__(self, ids: np.ndarray, labels: np.ndarray, vocab: LMVocabulary):
        self.seq = vocab.to_sequence(torch.as_tensor(ids, dtype=torch.long), torch.as_tensor(labels, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.seq)

    def __getitem__(self, i: int) -> dict:
        return {"seq": self.seq[i]}


@torch.no_grad()
def evaluate_nll(model: TokenLM, seq: torch.Tensor, batch_size: int = 64) -> float:
    """Mean NLL (nats per scored id) of ``seq (N, S)`` under ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    device = model.token_embed.weight.device
    total, count = 0.0, 0
    for chunk in seq.split(batch_size):
        _, nll = sequence_nll(model, chunk.to(device))
        total += float(nll) * len(chunk)
        count += len(chunk)
    model.train(was_training)
    return total / max(count, 1)


def train_lm(model: TokenLM, train_set: SequenceDataset, val_set: SequenceDataset, cfg: LMTrainingConfig,
             provenance: Mapping[str, Any] | None = None) -> TrainResult:
    """Train ``model`` on ``train_set``; validation NLL / perplexity of the EMA weights on ``val_set``."""
    vocab = model.vocab
    log.info("LM: %.2fM parameters, vocabulary %d, block size %d, %d training and %d validation sequences",
             sum(p.numel() for p in model.parameters()) / 1e6, vocab.size, vocab.block_size, len(train_set),
             len(val_set))
    optimizer = build_adamw(model, cfg.optimizer_config)
    scheduler = build_scheduler(optimizer, cfg.schedule_config)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
    judge = copy.deepcopy(model)  # holds the EMA weights while validating

    def step_fn(batch: dict, ctx: StepContext) -> StepOutput:
        seq = batch["seq"]
        if cfg.cond_dropout > 0:
            drop = torch.rand(seq.shape[0], device=seq.device) < cfg.cond_dropout
            seq = seq.clone()
            seq[:, 0] = torch.where(drop, torch.full_like(seq[:, 0], vocab.null_class), seq[:, 0])
        # through the (DDP-wrapped) module so that gradients are all-reduced
        logits = ctx.modules["model"](seq[:, :-1])
        loss, nll = logits_loss(ctx.raw["model"], logits, seq, cfg.label_smoothing)
        return StepOutput(losses={"model": loss}, logs={"nll": nll})

    def evaluate(step: int) -> dict[str, float]:
        source = ema.shadow if ema is not None else model.state_dict()
        judge.load_state_dict(source, strict=True)
        judge.to(model.token_embed.weight.device)
        nll = evaluate_nll(judge, val_set.seq)
        return {"val/nll": nll, "val/perplexity": math.exp(nll)}

    return train(step_fn, model, optimizer, scheduler, ema, train_set, cfg.loop_config, run_dir=cfg.run_dir,
                 model_config={"kind": "token_lm", **model.cfg.to_dict()}, provenance=provenance,
                 evaluate=evaluate if len(val_set) else None, evaluate_every=cfg.eval_every)


def unigram_baselines(train_ids: np.ndarray, val_ids: np.ndarray, vocab: LMVocabulary,
                      alphas: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03, 0.01)) -> dict[str, float]:
    """NLL (nats per id) of the validation ids under context-free models fitted on the training ids.

    - ``unigram_loss``: one distribution over all ``W`` words (additive smoothing);
    - ``slot_unigram_loss``: the same counts renormalised within each position's part of speech;
    - ``position_unigram_loss``: a separate distribution per position, within its part of speech.

    Each uses the smoothing constant from ``alphas`` that gives the lowest validation loss (the
    baselines' best case). Ids ``(N, clip_ids)`` in the tokenizer's layout.
    """
    train_ids, val_ids = np.asarray(train_ids, np.int64), np.asarray(val_ids, np.int64)
    w = vocab.words
    ranges = vocab.position_ranges()
    # the sequence ranges of the clip ids (class and separator left out)
    clip_ranges = ranges[1 : vocab.sep_position] + ranges[vocab.sep_position + 1 :]
    lo = np.array([r[0] for r in clip_ranges])
    hi = np.array([r[1] for r in clip_ranges])
    counts = np.bincount(train_ids.ravel(), minlength=w).astype(np.float64)
    cols = np.arange(val_ids.shape[1])

    def best(fn) -> float:
        return min(fn(a) for a in alphas)

    def unigram(a: float) -> float:
        p = (counts + a) / (counts.sum() + a * w)
        return float(-np.log(p[val_ids]).mean())

    def slot(a: float) -> float:
        cum = np.concatenate([[0.0], np.cumsum(counts + a)])
        mass = cum[hi] - cum[lo]  # per position, the smoothed count of its part of speech
        return float(-(np.log(counts[val_ids] + a) - np.log(mass)[None, :]).mean())

    per_pos = np.zeros((train_ids.shape[1], w))
    np.add.at(per_pos, (np.broadcast_to(cols, train_ids.shape), train_ids), 1.0)

    def position(a: float) -> float:
        mass = per_pos.sum(1) + a * (hi - lo)
        return float(-(np.log(per_pos[cols[None, :], val_ids] + a) - np.log(mass)[None, :]).mean())

    return {"unigram_loss": best(unigram), "slot_unigram_loss": best(slot), "position_unigram_loss": best(position)}
