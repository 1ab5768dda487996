"""A model-agnostic training loop: accumulation, clipping, mixed precision, DDP, EMA,
atomic checkpoints and exact resume.

The caller owns the model and the maths; the loop owns everything around it::

    def step_fn(batch, ctx: StepContext) -> StepOutput:
        out = ctx.modules["model"](batch)
        return StepOutput(losses={"model": loss}, logs={"mse": mse})

    result = train(step_fn, model, optimizer, scheduler, ema, dataset, LoopConfig(...),
                   run_dir=..., model_config=asdict(model_cfg))

``losses`` maps a *part* name to the scalar loss that trains it: ``"model"`` is the main
model; more parts (a GAN discriminator with its own optimiser) come in ``extra_parts``.
Each loss is back-propagated only into its own part's parameters
(``backward(inputs=...)``), so the generator's adversarial term never leaves gradients
in the discriminator. A part whose loss is absent in a step (the discriminator before
it starts) is not stepped. Forward passes that must not train a module (the generator's
pass through the discriminator) should use ``ctx.raw[name]``, the module without its DDP
wrapper; passes that train it use ``ctx.modules[name]``. Every part is put in train mode
once at the start; a step function that keeps frozen submodules in eval mode (phase 2's
encoder) sets that itself.

Determinism and resume: the data order is a function of ``(seed, epoch)`` only
(``EpochSampler``; DataLoader seeds come from a per-epoch generator, not the global RNG),
and a checkpoint stores the RNG states of every rank. Resuming at step ``s`` skips the
micro-batches already consumed, so on CPU with a fixed seed a run killed at any point and
resumed with ``resume="auto"`` ends with the same weights as an uninterrupted run. (With
``num_workers > 0`` a dataset that draws random numbers per worker is the exception.)

Under ``torchrun`` (``WORLD_SIZE > 1``) the process group is joined from the environment,
trained parts are wrapped in DDP, each rank reads a disjoint share of every epoch, logged
values are averaged over ranks, and only rank 0 writes the log, the checkpoints and the
figure. The process group is left open for the caller (``distributed.cleanup``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sweettok.training.checkpoint import (
    EMA_FILE,
    MODEL_FILE,
    CheckpointError,
    load_module_weights,
    load_state_file,
    load_training_state,
    read_checkpoint_config,
    resolve_resume,
    save_checkpoint,
)
from sweettok.training.distributed import EpochSampler, barrier, init_distributed
from sweettok.training.ema import EMA
from sweettok.training.logs import LOG_FILE, TIME_LOG_FILE, TIME_PREFIX, CSVLogger, plot_loss_curves
from sweettok.training.memory import MALLOC_POLICIES, retained_heap
from sweettok.training.rng import capture_rng_state, restore_rng_state, seed_everything
from sweettok.training.threads import governor_for
from sweettok.training.schedule import OptimizerConfig, ScheduleConfig
from sweettok.typed_params import ParamError, from_mapping, nested_config

log = logging.getLogger(__name__)

__all__ = ["LoopConfig", "StepContext", "StepOutput", "TrainPart", "TrainResult", "train"]

PLOT_FILE = "loss_curves.png"
TRAINING_STATE_VERSION = 1
_PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class LoopConfig:
    """How to train (the model-independent part of the training parameters).

    Attributes:
        total_steps: optimiser steps of the whole run.
        batch_size: samples per micro-batch *per process*.
        grad_accum_steps: micro-batches per optimiser step (effective batch =
            ``batch_size * grad_accum_steps * world_size``).
        grad_clip_norm: max global gradient norm per part (SPEC: 1.0); ``None`` disables.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast (fp16 with a gradient scaler);
            mixed precision applies on CUDA only, CPU runs stay fp32.
        checkpoint_every: save every this many optimiser steps (and at the end).
        keep_last: complete checkpoints kept in the run directory.
        resume: ``"auto"`` (latest complete checkpoint of the run, if any), ``"never"``,
            or a checkpoint path.
        seed: seeds the data order and, on a fresh start, python/numpy/torch (``+ rank``).
        log_every: optimiser steps per CSV row (values are means over the window).
        num_workers: DataLoader worker processes.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        threads: CPU intra-op threads. ``auto``: start with torch's pool and follow the cores
            other processes leave free (:mod:`sweettok.training.threads`; a shared machine
            otherwise slows training many times over); a number: that many, fixed (bit-exact
            reruns need a fixed count). The pool size is given back after training.
        shuffle: shuffle the data each epoch.
        progress: show a tqdm bar on rank 0.
        find_unused_parameters: passed to DDP (parts with parameters that get no gradient
            in some steps need it).
        malloc: ``keep`` (freed memory stays with the process while training: no page-fault
            churn between steps, :mod:`sweettok.training.memory`) or ``system`` (glibc's defaults).
    """

    total_steps: int
    batch_size: int = 1
    grad_accum_steps: int = 1
    grad_clip_norm: float | None = 1.0
    precision: str = "fp32"
    checkpoint_every: int = 1000
    keep_last: int = 3
    resume: str = "auto"
    seed: int = 0
    log_every: int = 10
    num_workers: int = 0
    device: str = "auto"
    threads: str | int = "auto"
    shuffle: bool = True
    progress: bool = True
    find_unused_parameters: bool = False
    malloc: str = "keep"

    def __post_init__(self) -> None:
        for name, minimum in (
            ("total_steps", 1),
            ("batch_size", 1),
            ("grad_accum_steps", 1),
            ("checkpoint_every", 1),
            ("keep_last", 1),
            ("log_every", 1),
            ("num_workers", 0),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ParamError(name, f"must be an integer >= {minimum}, got {value!r}", owner="LoopConfig")
        if self.grad_clip_norm is not None:
            if not isinstance(self.grad_clip_norm, (int, float)) or self.grad_clip_norm <= 0:
                raise ParamError("grad_clip_norm", f"must be > 0 or null, got {self.grad_clip_norm!r}",
                                 owner="LoopConfig")
        if self.threads != "auto" and (not isinstance(self.threads, int) or isinstance(self.threads, bool)
                                       or self.threads < 1):
            raise ParamError("threads", f"must be 'auto' or an integer >= 1, got {self.threads!r}", owner="LoopConfig")
        if self.malloc not in MALLOC_POLICIES:
            raise ParamError("malloc", f"must be one of {MALLOC_POLICIES}, got {self.malloc!r}", owner="LoopConfig")
        if self.precision not in _PRECISIONS:
            raise ParamError("precision", f"must be one of {_PRECISIONS}, got {self.precision!r}", owner="LoopConfig")
        if not isinstance(self.resume, (str, Path)):
            raise ParamError("resume", f"must be 'auto', 'never' or a path, got {self.resume!r}", owner="LoopConfig")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "loop") -> LoopConfig:
        """Build from the mapping at key path ``where``; errors name ``<where>.<field>``."""
        return from_mapping(cls, d, where)


class TrainingSections:
    """The ``loop``, ``optimizer`` and ``schedule`` mappings of a training config as typed configs.

    Mixed into each stage's config dataclass (proxy, tokenizer phases, image fine-tuning), which
    holds the three sections as plain mappings; errors name the section's key path.
    """

    @property
    def loop_config(self) -> LoopConfig:
        return nested_config(self, LoopConfig, self.loop, "loop")

    @property
    def optimizer_config(self) -> OptimizerConfig:
        return nested_config(self, OptimizerConfig, self.optimizer, "optimizer")

    @property
    def schedule_config(self) -> ScheduleConfig:
        # the schedule ends with the run: its total_steps is loop.total_steps, not a key of its own
        return nested_config(self, ScheduleConfig, self.schedule, "schedule",
                             given={"total_steps": self.loop_config.total_steps})


@dataclass
class TrainPart:
    """A module trained by its own optimiser (and optional per-step scheduler)."""

    module: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any | None = None


@dataclass
class StepContext:
    """What a step function may use besides the batch.

    Attributes:
        step: the optimiser step being computed (0-based; ``step`` steps are done).
        micro_step: index of this micro-batch within the step (``< accum_steps``).
        modules: parts by name, DDP-wrapped where the run is distributed; use them for
            forward passes whose loss trains that part.
        raw: the same parts unwrapped; use for passes that must not train the part.
    """

    step: int
    micro_step: int
    accum_steps: int
    epoch: int
    device: torch.device
    modules: Mapping[str, nn.Module]
    raw: Mapping[str, nn.Module]
    rank: int
    world_size: int


@dataclass
class StepOutput:
    """Returned by a step function: the loss per part, and scalars to log."""

    losses: Mapping[str, torch.Tensor]
    logs: Mapping[str, float | torch.Tensor] = field(default_factory=dict)


@dataclass
class TrainResult:
    """Where a finished ``train`` call left things."""

    step: int
    checkpoint: Path | None
    resumed_from: Path | None
    log_path: Path | None
    plot_path: Path | None
    last_logs: dict[str, float]
    time_log_path: Path | None = None


StepFn = Callable[[Any, StepContext], "StepOutput | torch.Tensor"]


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [_to_device(v, device) for v in batch]
        return type(batch)(moved) if not hasattr(batch, "_fields") else type(batch)(*moved)
    return batch


def _micro_batches(
    dataset: Dataset,
    sampler: EpochSampler,
    cfg: LoopConfig,
    start_micro: int,
    per_epoch: int,
    collate_fn: Callable | None,
    pin_memory: bool,
) -> Iterator[tuple[int, Any]]:
    epoch, offset = divmod(start_micro, per_epoch)
    while True:
        sampler.set_epoch(epoch, skip=offset * cfg.batch_size)
        # A private generator per epoch: creating a DataLoader iterator would otherwise
        # draw from the global RNG, which a resumed run does at a different moment.
        gen = torch.Generator()
        gen.manual_seed(cfg.seed * 1_000_003 + epoch)
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=cfg.num_workers,
            collate_fn=collate_fn,
            pin_memory=pin_memory,
            generator=gen,
        )
        for batch in loader:
            yield epoch, batch
        epoch, offset = epoch + 1, 0


def _as_output(out: Any) -> StepOutput:
    if isinstance(out, StepOutput):
        return out
    if isinstance(out, torch.Tensor):
        return StepOutput(losses={"model": out})
    raise TypeError(f"step_fn must return StepOutput or a scalar loss tensor, got {type(out).__name__}")


def _reduce_means(values: dict[str, float], device: torch.device, world: int) -> dict[str, float]:
    if world <= 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / world for k, v in zip(keys, t.tolist(), strict=True)}


def train(
    step_fn: StepFn,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    ema: EMA | None,
    dataset: Dataset,
    cfg: LoopConfig,
    *,
    run_dir: str | Path,
    model_config: Mapping[str, Any],
    extra_parts: Mapping[str, TrainPart] | None = None,
    provenance: Mapping[str, Any] | None = None,
    collate_fn: Callable | None = None,
    evaluate: Callable[[int], Mapping[str, float]] | None = None,
    evaluate_every: int | None = None,
) -> TrainResult:
    """Train ``model`` (and any ``extra_parts``) for ``cfg.total_steps`` optimiser steps.

    Args:
        step_fn: ``(batch, StepContext) -> StepOutput`` (or a scalar loss for ``"model"``);
            the batch is already on the device.
        model: the main model; its weights go to ``model.safetensors``.
        optimizer: optimiser of ``model``'s trainable parameters.
        scheduler: per-optimiser-step LR scheduler of ``optimizer`` (or ``None``).
        ema: EMA of ``model``'s weights, updated after each of its optimiser steps
            (saved as ``ema.safetensors``), or ``None``.
        dataset: map-style dataset; batches are collated by ``collate_fn``.
        cfg: loop settings.
        run_dir: folder for checkpoints (``step_XXXXXXXX/``), ``train_log.csv`` (values that
            the computation fixes: losses, learning rates, gradient norms, usage),
            ``train_time.csv`` (the ``time/*`` columns: step times, samples per second,
            threads) and ``loss_curves.png``.
        model_config: JSON-able model config, written to each checkpoint's ``config.json``.
        extra_parts: more trained modules by name (e.g. ``{"discriminator": TrainPart(...)}``),
            saved as ``<name>.safetensors`` with their optimiser state.
        provenance: JSON-able record of inputs (data checksums, parameters hash, code version).
        evaluate: ``evaluate(steps_done) -> {name: value}`` (a validation loss), called on every
            rank every ``evaluate_every`` optimiser steps and after the last one; its values go
            into the next CSV row as they are (not averaged over the log window).

    Returns:
        ``TrainResult`` with the last step, checkpoint and log paths.
    """
    info = init_distributed(cfg.device)
    device, rank, world, main = info.device, info.rank, info.world_size, info.is_main
    run = Path(run_dir)
    parts: dict[str, TrainPart] = {"model": TrainPart(model, optimizer, scheduler)}
    for name, part in (extra_parts or {}).items():
        if name in parts or name == "ema":
            raise ValueError(f"extra part name {name!r} is reserved")
        parts[name] = part
    for part in parts.values():
        part.module.to(device)
        part.module.train()
    if ema is not None:
        ema.to(device)
    trainable = {
        n: [p for p in part.module.parameters() if p.requires_grad] for n, part in parts.items() if part.optimizer
    }

    use_amp = device.type == "cuda" and cfg.precision != "fp32"
    amp_dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if use_amp and cfg.precision == "fp16" else None
    if cfg.precision != "fp32" and device.type != "cuda":
        log.info("precision=%s applies on CUDA only; training in fp32 on %s", cfg.precision, device)

    # ---------------------------------------------------------------- resume
    # Rank 0 decides and tells the others, so that a bad path fails on every rank
    # instead of leaving the others waiting in a collective.
    choice: list[str | None] = [None, None]  # [checkpoint path, error message]
    if main:
        try:
            found = resolve_resume(cfg.resume, run)
            if found is not None:
                _check_same_model(found, model_config)
            choice[0] = str(found) if found is not None else None
        except CheckpointError as err:
            choice[1] = str(err)
    if world > 1:
        dist.broadcast_object_list(choice, src=0)
    if choice[1] is not None:
        raise CheckpointError(choice[1])
    resume_from = Path(choice[0]) if choice[0] else None
    start_step = 0
    loop_meta = {
        "world_size": world,
        "batch_size": cfg.batch_size,
        "grad_accum_steps": cfg.grad_accum_steps,
        "seed": cfg.seed,
        "dataset_len": len(dataset),  # type: ignore[arg-type]
        "shuffle": cfg.shuffle,
    }
    if resume_from is not None:
        start_step = _restore(resume_from, parts, ema, scaler, rank, world, cfg, loop_meta)
        log.info("resumed from %s at step %d", resume_from, start_step)
    else:
        seed_everything(cfg.seed + rank)

    # ---------------------------------------------------------------- DDP
    modules: dict[str, nn.Module] = {}
    for name, part in parts.items():
        if world > 1 and part.optimizer is not None and trainable[name]:
            modules[name] = DistributedDataParallel(
                part.module,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters,
            )
        else:
            modules[name] = part.module
    raw = {name: part.module for name, part in parts.items()}

    # ---------------------------------------------------------------- data
    sampler = EpochSampler(dataset, num_replicas=world, rank=rank, shuffle=cfg.shuffle, seed=cfg.seed, drop_last=True)
    per_epoch = sampler.num_samples // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(
            f"dataset of {len(dataset)} samples gives {sampler.num_samples} per rank, "  # type: ignore[arg-type]
            f"fewer than one batch of {cfg.batch_size}"
        )
    stream = _micro_batches(
        dataset, sampler, cfg, start_step * cfg.grad_accum_steps, per_epoch, collate_fn, device.type == "cuda"
    )

    logger = CSVLogger(run / LOG_FILE, resume_step=start_step if resume_from else None) if main else None
    time_logger = CSVLogger(run / TIME_LOG_FILE, resume_step=start_step if resume_from else None) if main else None
    last_ckpt = resume_from
    last_logs: dict[str, float] = {}
    window: dict[str, float] = {}
    window_steps = 0
    window_start = time.perf_counter()

    def save(step: int) -> Path | None:
        rng = capture_rng_state()
        states = [rng]
        if world > 1:
            states = [None] * world
            dist.all_gather_object(states, rng)
        path = None
        if main:
            training_state = {
                "format_version": TRAINING_STATE_VERSION,
                "step": step,
                "optimizers": {n: p.optimizer.state_dict() for n, p in parts.items() if p.optimizer},
                "schedulers": {n: p.scheduler.state_dict() for n, p in parts.items() if p.scheduler},
                "scaler": scaler.state_dict() if scaler is not None else None,
                "ema": {"num_updates": ema.num_updates, "decay": ema.decay} if ema is not None else None,
                "rng": states,
                "loop": loop_meta,
            }
            path = save_checkpoint(
                run,
                step,
                model_state=raw["model"].state_dict(),
                model_config=model_config,
                ema_state=ema.state_dict() if ema is not None else None,
                part_states={n: raw[n].state_dict() for n in parts if n != "model"},
                training_state=training_state,
                provenance=provenance,
                keep_last=cfg.keep_last,
            )
        barrier()
        return path

    autocast = (lambda: torch.autocast(device_type="cuda", dtype=amp_dtype)) if use_amp else contextlib.nullcontext
    bar = tqdm(
        total=cfg.total_steps,
        initial=start_step,
        disable=not (main and cfg.progress),
        desc=f"train {run.name}",
        dynamic_ncols=True,
        mininterval=1.0,
    )
    if evaluate is not None and (not isinstance(evaluate_every, int) or evaluate_every < 1):
        raise ValueError(f"evaluate_every must be an integer >= 1 with an evaluate function, got {evaluate_every!r}")
    evaluated: dict[str, float] = {}
    epoch = start_step * cfg.grad_accum_steps // per_epoch
    threads_before = torch.get_num_threads()
    governor = governor_for(cfg.threads, device)
    # freed activations stay on the heap between steps (no mmap/munmap and page faults each step)
    with retained_heap(cfg.malloc):
        for step in range(start_step, cfg.total_steps):
            if governor is not None:
                governor.tick()
            for part in parts.values():
                if part.optimizer is not None:
                    part.optimizer.zero_grad(set_to_none=True)
            sums: dict[str, torch.Tensor] = {}
            stepped: list[str] = []
            for micro in range(cfg.grad_accum_steps):
                epoch, batch = next(stream)
                batch = _to_device(batch, device)
                ctx = StepContext(step, micro, cfg.grad_accum_steps, epoch, device, modules, raw, rank, world)
                with contextlib.ExitStack() as stack:
                    if micro < cfg.grad_accum_steps - 1:
                        # Accumulate locally; gradients are all-reduced once, on the last micro-batch.
                        for m in modules.values():
                            if isinstance(m, DistributedDataParallel):
                                stack.enter_context(m.no_sync())
                    with autocast():
                        out = _as_output(step_fn(batch, ctx))
                    unknown = sorted(set(out.losses) - set(trainable))
                    if unknown:
                        raise KeyError(
                            f"step_fn returned losses for {unknown}, which have no optimiser; parts: {sorted(trainable)}"
                        )
                    names = [n for n in parts if n in out.losses]
                    for i, name in enumerate(names):
                        loss = out.losses[name]
                        if loss.ndim != 0:
                            raise ValueError(f"loss for {name!r} must be a scalar, got shape {tuple(loss.shape)}")
                        scaled = loss.float() / cfg.grad_accum_steps
                        if scaler is not None:
                            scaled = scaler.scale(scaled)
                        # inputs=: each loss reaches only its own part's parameters.
                        scaled.backward(inputs=trainable[name], retain_graph=i < len(names) - 1)
                        key = f"loss/{name}"
                        sums[key] = sums.get(key, 0.0) + loss.detach().float() / cfg.grad_accum_steps
                        if name not in stepped:
                            stepped.append(name)
                    for key, value in out.logs.items():
                        v = value.detach().float() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
                        sums[key] = sums.get(key, 0.0) + v.to(device) / cfg.grad_accum_steps
            for name in [n for n in parts if n in stepped]:
                opt = parts[name].optimizer
                assert opt is not None
                if scaler is not None:
                    scaler.unscale_(opt)
                params = [p for p in trainable[name] if p.grad is not None]
                max_norm = cfg.grad_clip_norm if cfg.grad_clip_norm is not None else math.inf
                norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.zeros((), device=device)
                sums[f"grad_norm/{name}"] = norm.detach().float()
                if scaler is not None:
                    scaler.step(opt)
                elif torch.isfinite(norm):
                    opt.step()
                else:
                    # Same decision on every rank: gradients were all-reduced before the norm.
                    log.warning("step %d: non-finite gradient norm for %s; optimiser step skipped", step, name)
            if scaler is not None and stepped:
                scaler.update()
            with warnings.catch_warnings():
                # A part that has not stepped yet (e.g. a discriminator before its start) still
                # follows the global step; torch warns about that order, which is intended.
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)`")
                for part in parts.values():
                    if part.scheduler is not None:
                        part.scheduler.step()
            if ema is not None and "model" in stepped:
                ema.update(raw["model"])

            values = {k: float(v) for k, v in sums.items()}
            if device.type == "cpu":
                values["time/threads"] = float(torch.get_num_threads())
            for name, part in parts.items():
                if part.optimizer is not None:
                    values[f"lr/{name}"] = float(part.optimizer.param_groups[0]["lr"])
            for k, v in values.items():
                window[k] = window.get(k, 0.0) + v
            window_steps += 1
            done = step + 1
            if evaluate is not None and (done % evaluate_every == 0 or done == cfg.total_steps):
                began = time.perf_counter()
                evaluated.update({k: float(v) for k, v in evaluate(done).items()})
                window_start += time.perf_counter() - began  # step timings leave evaluation out
            if done % cfg.log_every == 0 or done == cfg.total_steps:
                means = _reduce_means({k: v / window_steps for k, v in window.items()}, device, world)
                means.update(evaluated)
                evaluated = {}
                elapsed = time.perf_counter() - window_start
                means["time/sec_per_step"] = elapsed / window_steps
                means["time/samples_per_sec"] = (
                    window_steps * cfg.batch_size * cfg.grad_accum_steps * world / max(elapsed, 1e-9)
                )
                means["epoch"] = float(epoch)
                last_logs = means
                if logger is not None and time_logger is not None:
                    logger.log(done, {k: v for k, v in means.items() if not k.startswith(TIME_PREFIX)})
                    time_logger.log(done, {k: v for k, v in means.items() if k.startswith(TIME_PREFIX)})
                if "loss/model" in means:
                    bar.set_postfix(loss=f"{means['loss/model']:.4g}", refresh=False)
                window, window_steps, window_start = {}, 0, time.perf_counter()
            bar.update(1)
            if done % cfg.checkpoint_every == 0 or done == cfg.total_steps:
                last_ckpt = save(done) or last_ckpt
    bar.close()
    torch.set_num_threads(threads_before)

    plot_path = None
    if main and logger is not None:
        plot_path = plot_loss_curves(logger.path, run / PLOT_FILE)
    barrier()
    return TrainResult(
        step=max(start_step, cfg.total_steps),
        checkpoint=last_ckpt if main else None,
        resumed_from=resume_from,
        log_path=logger.path if logger is not None else None,
        plot_path=plot_path,
        time_log_path=time_logger.path if time_logger is not None else None,
        last_logs=last_logs,
    )


def _check_same_model(ckpt: Path, model_config: Mapping[str, Any]) -> None:
    """Refuse to resume weights trained for another model configuration.

    Weights of the same shapes would load, and the run would go on with a model that means
    something else (a different normalisation, say).
    """
    saved = read_checkpoint_config(ckpt).get("model_config")
    wanted = json.loads(json.dumps(dict(model_config), sort_keys=True))
    if saved == wanted:
        return
    keys = sorted(k for k in set(saved or {}) | set(wanted) if (saved or {}).get(k) != wanted.get(k))
    shown = ", ".join(f"{k}: {(saved or {}).get(k, '<absent>')!r} -> {wanted.get(k, '<absent>')!r}" for k in keys[:6])
    raise CheckpointError(
        f"{ckpt} was trained with another model configuration ({shown}); remove {ckpt.parent} or set "
        f"loop.resume: never to start again"
    )


def _restore(
    ckpt: Path,
    parts: Mapping[str, TrainPart],
    ema: EMA | None,
    scaler: torch.amp.GradScaler | None,
    rank: int,
    world: int,
    cfg: LoopConfig,
    loop_meta: Mapping[str, Any],
) -> int:
    """Load weights, optimiser/scheduler/scaler/EMA state and RNG; return the step."""
    state = load_training_state(ckpt)
    if state.get("format_version") != TRAINING_STATE_VERSION:
        raise CheckpointError(
            f"{ckpt}: training state version {state.get('format_version')!r}, expected {TRAINING_STATE_VERSION}"
        )
    for name, part in parts.items():
        load_module_weights(part.module, ckpt / (MODEL_FILE if name == "model" else f"{name}.safetensors"))
        if part.optimizer is not None:
            if name not in state["optimizers"]:
                raise CheckpointError(f"{ckpt}: no optimiser state for part {name!r}")
            part.optimizer.load_state_dict(state["optimizers"][name])
        if part.scheduler is not None:
            if name not in state["schedulers"]:
                raise CheckpointError(f"{ckpt}: no scheduler state for part {name!r}")
            part.scheduler.load_state_dict(state["schedulers"][name])
    if ema is not None:
        if not (ckpt / EMA_FILE).is_file():
            raise CheckpointError(f"{ckpt}: an EMA is being trained but the checkpoint has no {EMA_FILE}")
        ema.load_state_dict(load_state_file(ckpt / EMA_FILE))
        ema.num_updates = int((state.get("ema") or {}).get("num_updates", 0))
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    step = int(state["step"])
    saved_meta = state.get("loop", {})
    changed = {k: (saved_meta.get(k), v) for k, v in loop_meta.items() if saved_meta.get(k) != v}
    if changed:
        log.warning("resuming with different %s: data order will differ from an uninterrupted run", changed)
    rng = state.get("rng") or []
    if len(rng) == world:
        restore_rng_state(rng[rank])
    else:
        log.warning("checkpoint has RNG states for %d ranks, running %d: reseeding", len(rng), world)
        seed_everything(cfg.seed + rank + 7919 * step)
    return step
