"""Resumable checkpoints of a training run: one directory per saved step.

``<run_dir>/step_XXXXXXXX/`` holds a checkpoint in the format of
:mod:`sweettok.models.checkpoint` (``config.json``, ``model.safetensors``, optionally
``ema.safetensors`` and other parts) plus ``training_state.pt``: optimisers, schedulers,
grad scaler, step and RNG states, plain tensors and numbers only, read with
``torch.load(weights_only=True)``. This module saves, lists, prunes and resumes them.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sweettok.models.checkpoint import (CONFIG_FILE, EMA_FILE, FORMAT_VERSION, MODEL_FILE, STATE_FILE,
                                        CheckpointError, is_complete, load_module_weights, load_state_file,
                                        read_checkpoint_config, step_dir_name, write_checkpoint)

__all__ = [
    "CONFIG_FILE",
    "CheckpointError",
    "EMA_FILE",
    "FORMAT_VERSION",
    "MODEL_FILE",
    "is_complete",
    "latest_checkpoint",
    "list_checkpoints",
    "load_module_weights",
    "load_state_file",
    "load_training_state",
    "read_checkpoint_config",
    "resolve_resume",
    "save_checkpoint",
    "step_dir_name",
]

_STEP_DIR = re.compile(r"^step_(\d{8})$")


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model_state: Mapping[str, torch.Tensor],
    model_config: Mapping[str, Any],
    ema_state: Mapping[str, torch.Tensor] | None = None,
    part_states: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    training_state: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    keep_last: int | None = None,
) -> Path:
    """Write ``<run_dir>/step_XXXXXXXX`` atomically and return its path.

    Args:
        run_dir: folder holding the run's checkpoints (created if needed).
        step: optimiser steps completed.
        keep_last: keep only this many newest complete checkpoints (``None``: keep all).
        others: as :func:`sweettok.models.checkpoint.write_checkpoint`.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    run = Path(run_dir)
    final = write_checkpoint(run / step_dir_name(step), model_state=model_state, model_config=model_config,
                             step=step, ema_state=ema_state, part_states=part_states,
                             training_state=training_state, provenance=provenance)
    # Only one writer (rank 0) per run directory, so any temporary left now is from a crash.
    for p in (*run.glob(".tmp-*"), *run.glob(".step_*.tmp-*")):
        shutil.rmtree(p, ignore_errors=True)
    if keep_last is not None:
        for _, old in list_checkpoints(run)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first, as ``(step, path)``."""
    run = Path(run_dir)
    if not run.is_dir():
        return []
    found = []
    for child in run.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and child.is_dir() and is_complete(child):
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or ``None``; partial folders are ignored."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def resolve_resume(resume: str | Path | None, run_dir: str | Path) -> Path | None:
    """What to resume from.

    Args:
        resume: ``"auto"`` (the latest complete checkpoint of ``run_dir`` if any, else a
            fresh start), ``"never"``/``None``/``""`` (fresh start), or a checkpoint path
            (must be complete).
    """
    if resume is None or str(resume) in ("", "never", "none", "false"):
        return None
    if str(resume) == "auto":
        return latest_checkpoint(run_dir)
    path = Path(resume)
    if not is_complete(path):
        raise CheckpointError(f"resume={str(resume)!r} is not a complete checkpoint directory")
    return path



def load_training_state(path: str | Path) -> dict[str, Any]:
    """The training state of a checkpoint, read with ``weights_only=True``."""
    p = Path(path)
    f = p / STATE_FILE if p.is_dir() else p
    if not f.is_file():
        raise CheckpointError(f"{p}: no {STATE_FILE}")
    return torch.load(f, map_location="cpu", weights_only=True)
