"""The checkpoint format: one directory, written atomically, loaded strictly.

Used for the resumable step checkpoints of a training run (``sweettok.training.checkpoint``
lists and resumes them) and for exported models (``sweettok.models.tokenizer``).

Layout of ``<run_dir>/step_XXXXXXXX/`` (format version 1)::

    config.json          {"format_version": 1, "step", "model_config": {...},
                          "model_config_sha256", "files": {name: {"sha256", "bytes"}},
                          "provenance": {...}, "torch_version"}
    model.safetensors    the model's state dict
    ema.safetensors      EMA shadow weights, same keys as the model (optional)
    <part>.safetensors   state dicts of other trained modules, e.g. discriminator (optional)
    training_state.pt    optimisers, schedulers, grad scaler, step, RNG states; plain
                         tensors/numbers only, read with torch.load(weights_only=True)

An exported model (``sweettok.models.tokenizer.save_model``) has the same ``config.json``
and ``model.safetensors`` (its evaluation weights), no training state, and, for models
built on a language codebook, ``prior.safetensors`` and ``prior.json`` (the words).

Atomicity: :func:`sweettok.files.atomic_directory` (hidden sibling, fsync, rename).
``config.json`` is written last and lists every file with its size and sha256, so
``is_complete`` rejects a partial or damaged copy.

Nothing in a checkpoint records when it was written: the same weights give the same bytes, so
an upstream stage that reruns and trains the same model leaves DVC's hashes of its outputs, and
every stage downstream, unchanged (the training log has the times).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sweettok.files import atomic_directory, checksum_manifest, verify_manifest

log = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "FORMAT_VERSION",
    "is_complete",
    "load_module_weights",
    "load_state_file",
    "read_checkpoint_config",
    "save_state_file",
    "step_dir_name",
    "write_checkpoint",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "training_state.pt"
_STEP_DIR = re.compile(r"^step_(\d{8})$")
_PART_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_EXTRA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, of another format, or does not fit the model."""


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def _plain_state(state: Mapping[str, Any], what: str) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors, no two sharing storage (as safetensors requires)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{what}: {k} is a {type(v).__name__}, only tensors can be saved")
        t = v.detach().to("cpu").contiguous()
        if t.numel():
            # Tied weights share storage; safetensors refuses aliases, so store a copy.
            if t.untyped_storage().data_ptr() in seen:
                t = t.clone()
            seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def save_state_file(state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """A state dict as a ``.safetensors`` file (format version in its metadata)."""
    save_file(_plain_state(state, Path(path).name), str(path), metadata={"format_version": str(FORMAT_VERSION)})


def write_checkpoint(
    directory: str | Path,
    *,
    model_state: Mapping[str, torch.Tensor],
    model_config: Mapping[str, Any],
    step: int | None = None,
    ema_state: Mapping[str, torch.Tensor] | None = None,
    part_states: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    training_state: Mapping[str, Any] | None = None,
    extra_states: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    extra_json: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write one checkpoint directory atomically (:func:`sweettok.files.atomic_directory`).

    Args:
        directory: the checkpoint's final path (replaced if it exists).
        model_state: the model's state dict (unwrapped from DDP).
        model_config: JSON-serialisable model configuration (``kind`` plus the config fields).
        step: optimiser steps completed (recorded when given).
        ema_state: EMA shadow weights, same keys as ``model_state``.
        part_states: other trained modules by name (``[A-Za-z][A-Za-z0-9_-]*``), e.g. a discriminator.
        training_state: optimiser/scheduler/step/RNG state; tensors and plain values only.
        extra_states: further tensor files by file name (``name.safetensors``), e.g. a codebook prior.
        extra_json: further JSON files by file name (``name.json``).
        provenance: JSON-serialisable description of what made this (data checksums, code
            version, parameters hash...).
    """
    config_json = json.dumps(dict(model_config), sort_keys=True)  # fails early if not JSON-able
    with atomic_directory(directory) as tmp:
        names = [MODEL_FILE]
        save_state_file(model_state, tmp / MODEL_FILE)
        if ema_state is not None:
            names.append(EMA_FILE)
            save_state_file(ema_state, tmp / EMA_FILE)
        for name, state in (part_states or {}).items():
            if not _PART_NAME.match(name) or name in ("model", "ema"):
                raise ValueError(f"part name {name!r} is not allowed (letters, digits, '_', '-'; not model/ema)")
            names.append(f"{name}.safetensors")
            save_state_file(state, tmp / names[-1])
        for fname, state in (extra_states or {}).items():
            if not _EXTRA_NAME.match(fname) or not fname.endswith(".safetensors") or fname in names:
                raise ValueError(f"extra tensor file {fname!r} is not allowed")
            names.append(fname)
            save_state_file(state, tmp / fname)
        for fname, value in (extra_json or {}).items():
            if not _EXTRA_NAME.match(fname) or not fname.endswith(".json") or fname == CONFIG_FILE:
                raise ValueError(f"extra JSON file {fname!r} is not allowed")
            names.append(fname)
            (tmp / fname).write_text(json.dumps(value, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        if training_state is not None:
            names.append(STATE_FILE)
            torch.save(dict(training_state), tmp / STATE_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "model_config": json.loads(config_json),
            "model_config_sha256": hashlib.sha256(config_json.encode()).hexdigest(),
            "files": checksum_manifest(tmp, names),
            "provenance": dict(provenance or {}),
            "torch_version": torch.__version__,
        }
        if step is not None:
            meta["step"] = int(step)
        # Written last: a config.json listing every file marks the checkpoint complete.
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    log.info("saved checkpoint %s", directory)
    return Path(directory)


def is_complete(path: str | Path, verify_checksums: bool = False) -> bool:
    """True when ``path`` is a finished checkpoint: a ``config.json`` of this format whose
    listed files all exist with their recorded sizes (and sha256 when asked)."""
    p = Path(path)
    try:
        meta = json.loads((p / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    if meta.get("format_version") != FORMAT_VERSION or MODEL_FILE not in meta.get("files", {}):
        return False
    return verify_manifest(p, meta["files"], checksums=verify_checksums) is None


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint (format checked)."""
    p = Path(path)
    try:
        meta = json.loads((p / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{p}: no {CONFIG_FILE}; not a checkpoint directory") from None
    except ValueError as err:
        raise CheckpointError(f"{p / CONFIG_FILE}: not valid JSON ({err})") from None
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{p}: checkpoint format_version {version!r}, this code reads {FORMAT_VERSION}")
    return meta


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file on the CPU."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: file not found")
    try:
        return load_file(str(p), device="cpu")
    except SafetensorError as err:
        raise CheckpointError(f"{p}: not a readable safetensors file ({err})") from None


def load_module_weights(module: nn.Module, path: str | Path) -> None:
    """Load a ``.safetensors`` state dict into ``module`` strictly.

    Raises:
        CheckpointError: naming every missing and unexpected key and every shape mismatch.
    """
    state = load_state_file(path)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches {shapes}")
        raise CheckpointError(f"{path} does not fit {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


