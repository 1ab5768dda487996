"""Benchmark of SweetTok's training step on CPU: time and peak memory per profile.

Method: each profile runs in a fresh Python subprocess (``python -m sweettok.models.bench
--child``, the request as JSON on stdin) so that one profile's allocations cannot inflate
another's peak. The child builds the model in train mode with the profile's stand-in random
vocabulary (:mod:`sweettok.models.profiles`), draws one random clip ``(B, C, T, H, W)`` in
[-0.5, 0.5] and random proxy targets, and times ``warmup + steps`` full steps of
``cross_entropy(logits, targets) + mlc_loss`` forward and backward (gradients cleared each
step, no optimiser update) with ``time.perf_counter``. Reported: the median and all timed
step durations, the machine's 1-minute load average before and after (CPU timings are only
comparable on an otherwise idle machine), and the peak resident set size of the child (``getrusage(RUSAGE_SELF).ru_maxrss``,
Linux kB) next to its RSS before the model was built (interpreter + torch) and after, so the
step's own footprint is ``peak - after_build``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["run_benchmarks", "bench_in_process"]


def _rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def bench_in_process(config: dict, prior_profile: str, warmup: int, steps: int, batch: int, seed: int = 0,
                     threads: int = 0) -> dict:
    """Time ``steps`` forward+backward passes (after ``warmup``) of the model of ``config``.

    Meant to run in a fresh process (peak RSS is process-wide); see the module docstring.
    ``threads > 0`` sets torch's intra-op thread count, else torch's default is used.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    from sweettok.models.config import SweetTokConfig
    from sweettok.models.profiles import default_prior
    from sweettok.models.sweettok import SweetTok, parameter_breakdown

    rss_start = _rss_mib()
    load_before = os.getloadavg()[0]  # other work on the machine skews CPU timings; record it
    torch.manual_seed(seed)
    cfg = SweetTokConfig.from_dict(config)
    model = SweetTok(cfg, default_prior(prior_profile, seed=seed)).train()
    rss_built = _rss_mib()
    frames = cfg.input_frames
    slices = cfg.check_frames(frames)
    g = cfg.grid_size
    x = torch.rand(batch, cfg.in_channels, frames, cfg.resolution, cfg.resolution) - 0.5
    targets = torch.randint(0, cfg.proxy_vocab_size, (batch, slices, g, g))
    times = []
    for i in range(warmup + steps):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        out = model(x)
        logits, mlc_loss = out.logits, out.mlc_loss
        loss = F.cross_entropy(logits, targets) + mlc_loss
        loss.backward()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return {
        "input": [batch, cfg.in_channels, frames, cfg.resolution, cfg.resolution],
        "parameters": parameter_breakdown(model)["total"],
        "latent_tokens": cfg.num_latent_tokens(frames),
        "warmup_steps": warmup,
        "timed_steps": steps,
        "step_seconds_median": statistics.median(times),
        "step_seconds": times,
        "rss_before_build_mib": rss_start,
        "rss_after_build_mib": rss_built,
        "peak_rss_mib": _peak_rss_mib(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
    }


def run_benchmarks(configs: dict[str, dict], warmup: int = 1, steps: int = 3, batch: int = 1,
                   threads: int = 0, timeout_s: float = 3600) -> dict[str, Any]:
    """Benchmark each ``{profile: SweetTokConfig dict}`` in its own subprocess; returns the report.

    A profile whose child fails (e.g. killed for memory) gets ``{"error": ...}`` instead of
    numbers; the others are still measured.
    """
    profiles: dict[str, Any] = {}
    for name, config in configs.items():
        request = {"config": config, "prior_profile": name, "warmup": warmup, "steps": steps, "batch": batch,
                   "threads": threads}
        proc = subprocess.run(
            [sys.executable, "-m", "sweettok.models.bench", "--child"],
            input=json.dumps(request), capture_output=True, text=True, timeout=timeout_s,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            profiles[name] = {"error": f"exit code {proc.returncode}", "stderr_tail": proc.stderr[-2000:]}
        else:
            profiles[name] = json.loads(lines[-1])
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "what": "SweetTok phase-1 training step (cross-entropy + MLC loss), forward + backward, CPU, float32",
        "method": "fresh subprocess per profile; median of timed steps after warm-up; peak RSS from getrusage",
        "device": "cpu",
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "batch": batch,
        "profiles": profiles,
    }


def _child() -> int:
    request = json.loads(sys.stdin.read())
    result = bench_in_process(**request)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        sys.exit(_child())
    print("usage: sweettok bench model [--out PATH]  (this module's --child mode is internal)", file=sys.stderr)
    sys.exit(2)
