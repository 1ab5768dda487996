"""Records that training nodes return: where a run's final checkpoint is and what made it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sweettok import __version__
from sweettok.training.checkpoint import is_complete, step_dir_name
from sweettok.training.distributed import is_main_process
from sweettok.training.loop import TrainResult


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_pointer(kind: str, result: TrainResult, run_dir: str, params: dict, **extra) -> dict:
    """The small JSON record a training node returns: where its final checkpoint is and what made it.

    Under torchrun only rank 0 writes checkpoints; every rank returns the same record
    (the checkpoint's name follows from the step), so Kedro's outputs agree.
    """
    path = Path(run_dir) / step_dir_name(result.step)
    if is_main_process() and not is_complete(path):
        raise RuntimeError(f"{kind}: training ended at step {result.step} but {path} is not a complete checkpoint")
    return {"kind": kind, "checkpoint": path.as_posix(), "step": int(result.step),
            "params_sha256": params_hash(params), "code_version": __version__, **extra}
