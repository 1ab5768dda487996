"""Throughput of the FVD network: I3D clips per second at a few batch sizes.

Method: the pretrained I3D (:func:`sweettok.metrics.i3d.load_i3d`) runs in inference mode on
random clips ``(B, 3, T, 224, 224)`` uniform in ``[-1, 1]`` (the network's input; resizing in
:func:`sweettok.metrics.fvd.preprocess` is not included). For each batch size, ``warmup``
untimed passes, then ``repeats`` timed ones (``time.perf_counter``, with a CUDA synchronise
on GPU); reported: the median pass time and ``B / median`` clips per second. The report
records the device, torch's intra-op threads, the machine's cores and its 1-minute load
average before and after (CPU figures are only comparable on an otherwise idle machine).

On the CPU each batch size is also timed with the network in the contiguous layout, pass for
pass alternating with the channels-last one that :func:`~sweettok.metrics.i3d.load_i3d` uses, so
the two are measured side by side (``contiguous_*`` fields and ``channels_last_speedup``).
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from typing import Any

import torch
from tqdm.auto import tqdm

from sweettok.metrics.i3d import INPUT_SIZE, load_i3d

__all__ = ["run_i3d_benchmark"]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def run_i3d_benchmark(batch_sizes: list[int], frames: int = 16, repeats: int = 2, warmup: int = 1,
                      device: str | None = None, threads: int = 0, seed: int = 0) -> dict[str, Any]:
    """Measure I3D forward throughput; returns the report (a JSON-able dict).

    Args:
        batch_sizes: clips per forward pass to measure, e.g. ``[1, 4]``.
        frames: frames per clip (>= 9; the original FVD used 16).
        repeats: timed passes per batch size (the median is reported).
        warmup: untimed passes per batch size first.
        device: ``None``: CUDA when available, else CPU.
        threads: torch intra-op threads (0: torch's default).
    """
    if threads > 0:
        torch.set_num_threads(threads)
    if not batch_sizes or min(batch_sizes) < 1 or repeats < 1:
        raise ValueError(f"need batch sizes >= 1 and repeats >= 1, got {batch_sizes} and {repeats}")
    model = load_i3d(device)
    dev = next(model.parameters()).device
    # the same weights in the contiguous layout, timed beside the channels-last network
    plain = copy.deepcopy(model).use_channels_last(False) if model.channels_last else None
    gen = torch.Generator().manual_seed(seed)
    rows = []
    load_before = os.getloadavg()[0]
    nets = [model] + ([plain] if plain is not None else [])
    passes = (warmup + repeats) * len(batch_sizes) * len(nets)

    def timed(net: torch.nn.Module, x: torch.Tensor) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        with torch.inference_mode():
            net(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0

    with tqdm(total=passes, desc="bench i3d", unit="pass") as bar:
        for b in batch_sizes:
            x = (torch.rand(b, 3, frames, INPUT_SIZE, INPUT_SIZE, generator=gen) * 2 - 1).to(dev)
            times: list[list[float]] = [[] for _ in nets]
            for i in range(warmup + repeats):
                for k, net in enumerate(nets):
                    t = timed(net, x)
                    if i >= warmup:
                        times[k].append(t)
                    bar.update(1)
            median = statistics.median(times[0])
            row = {"batch": b, "seconds_per_batch_median": median, "seconds_per_batch": times[0],
                   "clips_per_s": b / median}
            if plain is not None:
                plain_median = statistics.median(times[1])
                row.update(contiguous_seconds_per_batch=times[1], contiguous_clips_per_s=b / plain_median,
                           channels_last_speedup=plain_median / median)
            rows.append(row)
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "what": "Kinetics-400 I3D (FVD network) forward pass, inference mode, float32",
        "layout": "channels_last_3d" if model.channels_last else "contiguous",
        "method": f"{warmup} untimed + {repeats} timed passes per batch size on random clips; median reported",
        "device": _device_name(dev),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "clip_shape": [3, frames, INPUT_SIZE, INPUT_SIZE],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "rows": rows,
    }
