"""Checkpoints: one directory per saved step, written atomically, loaded strictly.

Layout of ``<run_dir>/step_XXXXXXXX/`` (format version 1)::

    config.json          {"format_version": 1, "step", "model_config": {...},
                          "model_config_sha256", "files": {name: {"sha256", "bytes"}},
                          "provenance": {...}, "created_utc", "torch_version"}
    model.safetensors    the model's state dict
    ema.safetensors      EMA shadow weights, same keys as the model (optional)
    <part>.safetensors   state dicts of other trained modules, e.g. discriminator (optional)
    training_state.pt    optimisers, schedulers, grad scaler, step, RNG states; plain
                         tensors/numbers only, read with torch.load(weights_only=True)

Atomicity: everything is written into a hidden sibling ``.tmp-step_XXXXXXXX-*``, each file
and the folder are fsync'ed, and only then is the folder renamed to its final name (an
atomic rename on POSIX). A crash leaves at worst a ``.tmp-*`` folder, which is never
taken for a checkpoint and is removed by the next save. ``config.json`` is written last
and lists every file with its sha256, so ``is_complete`` can also reject a damaged copy.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "FORMAT_VERSION",
    "is_complete",
    "latest_checkpoint",
    "list_checkpoints",
    "load_module_weights",
    "load_state_file",
    "load_training_state",
    "read_checkpoint_config",
    "resolve_resume",
    "save_checkpoint",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "training_state.pt"
_STEP_DIR = re.compile(r"^step_(\d{8})$")
_PART_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, of another format, or does not fit the model."""


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        model_state: the model's state dict (unwrapped from DDP).
        model_config: JSON-serialisable model configuration (e.g. ``dataclasses.asdict``).
        ema_state: EMA shadow weights, same keys as ``model_state``.
        part_states: other modules by name (``[A-Za-z][A-Za-z0-9_-]*``), e.g. a discriminator.
        training_state: optimiser/scheduler/step/RNG state; tensors and plain values only.
        provenance: JSON-serialisable description of what made this (data checksums, code
            version, parameters hash...).
        keep_last: keep only this many newest complete checkpoints (``None``: keep all).
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    final = run / step_dir_name(step)
    config_json = json.dumps(dict(model_config), sort_keys=True)  # fails early if not JSON-able
    tmp = run / f".tmp-{step_dir_name(step)}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()  # (unlike mkdtemp) honours the umask, like the files inside
    try:
        files: dict[str, Path] = {MODEL_FILE: tmp / MODEL_FILE}
        save_file(
            _plain_state(model_state, MODEL_FILE),
            str(files[MODEL_FILE]),
            metadata={"format_version": str(FORMAT_VERSION)},
        )
        if ema_state is not None:
            files[EMA_FILE] = tmp / EMA_FILE
            save_file(
                _plain_state(ema_state, EMA_FILE),
                str(files[EMA_FILE]),
                metadata={"format_version": str(FORMAT_VERSION)},
            )
        for name, state in (part_states or {}).items():
            if not _PART_NAME.match(name) or name in ("model", "ema"):
                raise ValueError(f"part name {name!r} is not allowed (letters, digits, '_', '-'; not model/ema)")
            fname = f"{name}.safetensors"
            files[fname] = tmp / fname
            save_file(_plain_state(state, fname), str(files[fname]), metadata={"format_version": str(FORMAT_VERSION)})
        if training_state is not None:
            files[STATE_FILE] = tmp / STATE_FILE
            torch.save(dict(training_state), files[STATE_FILE])
        umask = _current_umask()
        for path in files.values():
            os.chmod(path, 0o666 & ~umask)  # safetensors creates files owner-only
            _fsync_file(path)
        meta = {
            "format_version": FORMAT_VERSION,
            "step": int(step),
            "model_config": json.loads(config_json),
            "model_config_sha256": hashlib.sha256(config_json.encode()).hexdigest(),
            "files": {n: {"sha256": _sha256_file(p), "bytes": p.stat().st_size} for n, p in files.items()},
            "provenance": dict(provenance or {}),
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "torch_version": torch.__version__,
        }
        with open(tmp / CONFIG_FILE, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists():
            # Re-saving a step (e.g. after a resume): move the old one aside first, since a
            # directory cannot be renamed onto a non-empty one.
            trash = run / f".tmp-old-{step_dir_name(step)}-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(final, trash)
            os.rename(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(run)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale_temporaries(run)
    if keep_last is not None:
        for _, old in list_checkpoints(run)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    log.info("saved checkpoint %s", final)
    return final


def _remove_stale_temporaries(run: Path) -> None:
    # Only one writer (rank 0) per run directory, so any temporary left now is from a crash.
    for p in run.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)


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
    for name, info in meta["files"].items():
        f = p / name
        if not f.is_file() or f.stat().st_size != info.get("bytes"):
            return False
        if verify_checksums and _sha256_file(f) != info.get("sha256"):
            return False
    return True


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


def load_training_state(path: str | Path) -> dict[str, Any]:
    """The training state of a checkpoint, read with ``weights_only=True``."""
    p = Path(path)
    f = p / STATE_FILE if p.is_dir() else p
    if not f.is_file():
        raise CheckpointError(f"{p}: no {STATE_FILE}")
    return torch.load(f, map_location="cpu", weights_only=True)
