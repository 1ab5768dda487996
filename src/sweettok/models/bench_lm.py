"""Sampling speed of the token LM with and without the KV cache, side by side.

Method: the trained LM (or any ``token_lm`` checkpoint) samples full sequences (the profile's
length: ``[class] + ids + [sep]``) for ``batch`` labels with the profile's sampling settings,
alternately with ``use_cache=True`` and ``False``, ``repeats`` rounds after one untimed warm-up
round each; the same generator seed per round, so both paths must give the same tokens (checked
and reported). Reported per batch size: the median seconds of each path and their ratio. The
report records device, torch threads and the 1-minute load average before and after (CPU
figures are comparable only on an otherwise idle machine; the ratio is measured side by side).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import torch
from tqdm.auto import tqdm

from sweettok.models.lm import SamplingConfig, TokenLM, generate

__all__ = ["run_lm_benchmark"]


def _timed(model: TokenLM, labels: torch.Tensor, cfg: SamplingConfig, seed: int) -> tuple[float, torch.Tensor]:
    device = model.token_embed.weight.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    ids = generate(model, labels, cfg, torch.Generator().manual_seed(seed))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, ids


def run_lm_benchmark(model: TokenLM, sampling: SamplingConfig, batch_sizes: list[int], repeats: int = 3,
                     threads: int = 0, seed: int = 0) -> dict[str, Any]:
    """Time sampling with and without the KV cache; returns the report (a JSON-able dict)."""
    if threads > 0:
        torch.set_num_threads(threads)
    if not batch_sizes or min(batch_sizes) < 1 or repeats < 1:
        raise ValueError(f"need batch sizes >= 1 and repeats >= 1, got {batch_sizes} and {repeats}")
    model.eval()
    device = model.token_embed.weight.device
    load_before = os.getloadavg()[0]
    rows = []
    with tqdm(total=len(batch_sizes) * (repeats + 1) * 2, desc="bench lm", unit="run") as bar:
        for b in batch_sizes:
            labels = torch.arange(b) % model.cfg.classes
            times: dict[bool, list[float]] = {True: [], False: []}
            same = True
            for r in range(repeats + 1):
                out = {}
                for use_cache in (True, False):
                    seconds, out[use_cache] = _timed(model, labels, replace(sampling, use_cache=use_cache,
                                                                            batch_size=b), seed + r)
                    if r > 0:  # round 0 warms up
                        times[use_cache].append(seconds)
                    bar.update(1)
                same = same and torch.equal(out[True], out[False])
            cached, uncached = statistics.median(times[True]), statistics.median(times[False])
            rows.append({"batch": b, "seconds_with_cache": cached, "seconds_without_cache": uncached,
                         "speedup": uncached / cached, "same_tokens": bool(same),
                         "tokens_per_s_with_cache": b * model.vocab.block_size / cached})
    return {
        "benchmark": "token LM sampling, KV cache vs re-reading the prefix",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "sequence_length": model.vocab.sequence_length, "parameters": sum(p.numel() for p in model.parameters()),
        "sampling": {"temperature": sampling.temperature, "top_k": sampling.top_k, "top_p": sampling.top_p,
                     "guidance_scale": sampling.guidance_scale},
        "repeats": repeats, "rows": rows,
    }
