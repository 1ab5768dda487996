"""Training speed alone and beside one busy process: ``sweettok bench threads``.

Method: each measurement runs in a fresh Python subprocess (``python -m
sweettok.training.bench_threads --child``, the request as JSON on stdin), so that thread pools
and environment settings do not carry over. The child runs the project's real training
function of one stage (``train_proxy``, ``train_phase1``, ``train_phase2``) with the base
profile's model and loop parameters, on random clips of the base clip size, for a fixed
number of optimiser steps (no checkpoint before the end), under one thread policy:

- ``auto``: ``loop.threads: auto``, the default (:mod:`sweettok.training.threads`);
- ``fixed``: all of torch's threads throughout (``loop.threads: <torch default>``), what
  training did before the governor.

Steps per second come from the run's own log (``time/sec_per_step``, windows of
``log_every`` steps; the first window, which includes start-up, is left out). "Busy" means
one competing single-threaded process (``python -c 'while True: pass'``) started before the
child and killed after it. The report gives, per stage and policy, steps/s alone and busy
side by side and their ratio, the machine's core count and load average, and when it ran.

``sweettok bench optimizer`` reuses the child to time the same stages alone under each AdamW
implementation (``optimizer.implementation``: ``loop``, torch's CPU default before, against
``fused``, now the default), the implementations alternating within each repeat.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["run_thread_benchmark", "run_optimizer_benchmark", "STAGES"]

STAGES = ("proxy", "phase1", "phase2")
DEFAULT_STEPS = {"proxy": 100, "phase1": 40, "phase2": 40}


class _RandomClips:
    """``n`` random clips ``(C, T, H, W)`` in [-0.5, 0.5] with random proxy codes."""

    def __init__(self, n: int, frames: int, side: int, grid: tuple[int, int, int], vocab: int, seed: int = 0):
        import torch

        g = torch.Generator().manual_seed(seed)
        self.clips = torch.rand(n, 3, frames, side, side, generator=g) - 0.5
        self.codes = torch.randint(0, vocab, (n, *grid), generator=g)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        return {"clip": self.clips[i], "codes": self.codes[i]}


def _short(section: dict, steps: int) -> dict:
    """The section's schedule with its warm-up cut to fit a short run (speed does not depend on it)."""
    schedule = dict(section.get("schedule", {}))
    schedule["warmup_steps"] = min(schedule.get("warmup_steps", 0), steps // 2)
    return schedule


def _child(request: dict[str, Any]) -> dict[str, Any]:
    """One stage, one policy: train ``steps`` steps and read the step rate from the run log."""
    import pandas as pd
    import torch

    from sweettok.cli import load_params
    from sweettok.models.config import SweetTokConfig
    from sweettok.models.profiles import default_prior
    from sweettok.models.proxy import ProxyTokenizer
    from sweettok.models.sweettok import SweetTok
    from sweettok.models.tokenizer import VideoTokenizer
    from sweettok.training.proxy_training import ProxyTrainingConfig, train_proxy
    from sweettok.training.tokenizer_training import PhaseConfig, train_phase1, train_phase2

    params = load_params(request["profile"], request.get("conf_dir"))
    stage, steps = request["stage"], request["steps"]
    if request.get("optimizer"):
        for key in ("proxy", "tokenizer_phase1", "tokenizer_phase2"):
            params[key] = {**params[key], "optimizer": {**params[key].get("optimizer", {}),
                                                        "implementation": request["optimizer"]}}
    threads = "auto" if request["policy"] == "auto" else torch.get_num_threads()
    loop = {"total_steps": steps, "checkpoint_every": steps, "keep_last": 1, "resume": "never", "log_every": 10,
            "progress": False, "device": "cpu", "threads": threads}
    model_cfg = SweetTokConfig.from_dict(params["model"])
    proxy_cfg = ProxyTrainingConfig.from_dict(params["proxy"]).model_config
    frames, side = model_cfg.input_frames, model_cfg.resolution
    grid = proxy_cfg.grid(frames, side, side)
    with tempfile.TemporaryDirectory() as tmp:
        if stage == "proxy":
            section = params["proxy"]
            data = _RandomClips(4 * section["loop"]["batch_size"], frames, side, grid, proxy_cfg.codebook_size)
            cfg = ProxyTrainingConfig.from_dict({**section, "loop": {**section["loop"], **loop}, "run_dir": tmp,
                                                 "schedule": _short(section, steps)})
            result = train_proxy(data, cfg)
        else:
            key = "tokenizer_phase1" if stage == "phase1" else "tokenizer_phase2"
            section = params[key]
            data = _RandomClips(4 * section["loop"]["batch_size"], frames, side, grid, proxy_cfg.codebook_size)
            cfg = PhaseConfig.from_dict({**section, "loop": {**section["loop"], **loop}, "run_dir": tmp,
                                         "schedule": _short(section, steps), "disc_start": 0}, key)
            model = SweetTok(model_cfg, default_prior(request["profile"]))
            if stage == "phase1":
                result = train_phase1(model, data, cfg)
            else:
                result = train_phase2(VideoTokenizer(model, ProxyTokenizer(proxy_cfg)), data, cfg)
        log = pd.read_csv(result.time_log_path)
        has_log = result.log_path is not None and result.log_path.exists()
        losses = pd.read_csv(result.log_path)["loss/model"].dropna() if has_log else None
    seconds = log["time/sec_per_step"].iloc[1:]  # equal windows of log_every steps
    return {"steps": steps, "steps_per_s": float(1.0 / seconds.mean()),
            "final_loss": float(losses.iloc[-1]) if losses is not None and len(losses) else None,
            "window_steps_per_s": [round(float(1.0 / s), 3) for s in seconds],
            "threads_seen": sorted({int(t) for t in log["time/threads"]}) if "time/threads" in log else None}


def _measure(request: dict[str, Any], busy: bool) -> dict[str, Any]:
    intruder = None
    if busy:
        intruder = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
    try:
        env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
        proc = subprocess.run([sys.executable, "-m", "sweettok.training.bench_threads", "--child"],
                              input=json.dumps(request), capture_output=True, text=True, env=env, check=False)
    finally:
        if intruder is not None:
            intruder.kill()
            intruder.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({request}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_thread_benchmark(stages: list[str], policies: list[str], profile: str = "base",
                         steps: dict[str, int] | None = None, conf_dir: str | None = None,
                         progress: bool = True, out: Path | None = None) -> dict[str, Any]:
    """Steps per second of each stage under each policy, alone and with one busy process (the report
    is rewritten to ``out`` after every row, so an interrupted run keeps what it measured)."""
    steps = {**DEFAULT_STEPS, **(steps or {})}
    rows = []
    load_before = os.getloadavg()
    for stage in stages:
        for policy in policies:
            request = {"stage": stage, "policy": policy, "profile": profile, "steps": steps[stage],
                       "conf_dir": conf_dir}
            alone = _measure(request, busy=False)
            busy = _measure(request, busy=True)
            row = {"stage": stage, "policy": policy, "steps": steps[stage],
                   "alone_steps_per_s": alone["steps_per_s"], "busy_steps_per_s": busy["steps_per_s"],
                   "alone_over_busy": alone["steps_per_s"] / busy["steps_per_s"],
                   "threads_alone": alone["threads_seen"], "threads_busy": busy["threads_seen"],
                   "alone_windows": alone["window_steps_per_s"], "busy_windows": busy["window_steps_per_s"]}
            rows.append(row)
            if progress:
                print(f"{stage:7s} {policy:6s} alone {row['alone_steps_per_s']:6.2f} steps/s   busy "
                      f"{row['busy_steps_per_s']:6.2f} steps/s   alone/busy {row['alone_over_busy']:.2f}x",
                      file=sys.stderr, flush=True)
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(_report(rows, policies, profile, load_before), indent=2) + "\n")
    return _report(rows, policies, profile, load_before)


def run_optimizer_benchmark(stages: list[str], implementations: list[str], repeats: int = 2,
                            profile: str = "base", steps: dict[str, int] | None = None,
                            conf_dir: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Steps per second of each stage alone under each AdamW implementation, alternating within each of
    ``repeats`` rounds; the ratio of each implementation's median to the first one's."""
    steps = {**DEFAULT_STEPS, **(steps or {})}
    load_before = os.getloadavg()
    rows = []
    for stage in stages:
        runs: dict[str, list[dict]] = {impl: [] for impl in implementations}
        for _ in range(repeats):
            for impl in implementations:
                request = {"stage": stage, "policy": "auto", "profile": profile, "steps": steps[stage],
                           "conf_dir": conf_dir, "optimizer": impl}
                runs[impl].append(_measure(request, busy=False))
        medians = {impl: statistics.median(r["steps_per_s"] for r in rs) for impl, rs in runs.items()}
        base = implementations[0]
        row = {"stage": stage, "steps": steps[stage], "median_steps_per_s": medians,
               "speedup_over_" + base: {impl: medians[impl] / medians[base] for impl in implementations},
               "steps_per_s": {impl: [r["steps_per_s"] for r in rs] for impl, rs in runs.items()},
               "final_loss": {impl: [r["final_loss"] for r in rs] for impl, rs in runs.items()}}
        rows.append(row)
        if progress:
            print(f"{stage:7s} " + "   ".join(f"{impl} {medians[impl]:6.2f} steps/s" for impl in implementations),
                  file=sys.stderr, flush=True)
    return {"benchmark": "training steps/s alone per AdamW implementation (optimizer.implementation)",
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "profile": profile,
            "cores": _cores(),
            "repeats": repeats, "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "rows": rows}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _report(rows: list[dict], policies: list[str], profile: str, load_before: tuple) -> dict[str, Any]:
    return {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "profile": profile,
            "cores": _cores(),
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "competitor": "one single-threaded busy loop (python -c 'while True: pass')",
            "median_alone_over_busy": {p: statistics.median(r["alone_over_busy"] for r in rows if r["policy"] == p)
                                       for p in policies if any(r["policy"] == p for r in rows)},
            "rows": rows}


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        print(json.dumps(_child(json.loads(sys.stdin.read()))))
    else:
        sys.exit("use `sweettok bench threads`")
