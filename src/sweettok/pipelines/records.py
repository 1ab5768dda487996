"""What training nodes hand to the catalog: the final model of a run, with what made it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from torch import nn

from sweettok import __version__
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.tokenizer import load_model
from sweettok.training.checkpoint import is_complete, step_dir_name
from sweettok.training.loop import TrainResult


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def final_model(kind: str, result: TrainResult, run_dir: str, provenance: dict,
                prior: CodebookPrior | None = None) -> nn.Module:
    """The model of a run's final step checkpoint (EMA weights when there are some), in eval mode.

    Under torchrun only rank 0 writes checkpoints; the node runs again in every rank after
    training, and each rank reads the same checkpoint (the barrier at the end of training
    makes it complete), so Kedro's outputs agree.
    """
    path = Path(run_dir) / step_dir_name(result.step)
    if not is_complete(path):
        raise RuntimeError(f"{kind}: training ended at step {result.step} but {path} is not a complete checkpoint")
    model = load_model(path, kind=kind, prior=prior)
    model.provenance = {**provenance, "run_checkpoint": path.as_posix(), "step": int(result.step),
                        "code_version": __version__}
    return model
