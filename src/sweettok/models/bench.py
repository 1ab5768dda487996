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

Devices and precision: ``device="cuda"`` moves the model and batch to the GPU and
synchronises before starting and after stopping the clock; ``precision="bf16"`` runs the
forward pass and loss under ``torch.autocast(<device>, dtype=torch.bfloat16)`` (the backward
follows the autocast graph; the MLC quantizer keeps its own float32 section). On CUDA the peak
of ``torch.cuda.max_memory_allocated``, reset before the first timed step, is
``peak_memory_mib`` (tensors only, not the allocator's cache or the CUDA context).

FLOPs: after the timed steps, one more (untimed) step runs under
:class:`torch.utils.flop_counter.FlopCounterMode`, so the timings and peaks above are those
of the steps alone. Counted: matrix products (``mm``/``addmm``/``bmm``, so every
``nn.Linear`` and ``einsum``), convolutions and the two products of each attention call
(``QK^T`` and ``PV``; the fused backward as five products, the recomputation included, as
torch counts it on CUDA), at ``2*m*n*k`` per product, forward and backward. Not counted:
elementwise work, normalisation, softmax, reductions and the nearest-neighbour searches
that are not written as products. Two corrections over torch's own table: attention on CPU
(torch has no formula for its CPU kernel, so CPU and GPU would otherwise disagree), and
products with a sparse operand (the GCN's adjacency), which torch counts as dense
``n x n`` and this counts as ``2 * nnz * k``. ``achieved_tflops`` is
``flops_per_step / step_seconds_median / 1e12``; ``mfu`` divides it by the device's dense
bf16 peak (:data:`PEAK_BF16_TFLOPS`, or ``peak_tflops`` given by hand).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["run_benchmarks", "bench_in_process", "count_step_flops", "peak_bf16_tflops", "throughput",
           "resolve_device", "PEAK_BF16_TFLOPS"]

PRECISIONS = ("fp32", "bf16")

# Dense (no structured sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets,
# as (words of torch.cuda.get_device_name(), peak or None, what the number is). Names are
# matched on whole words, most specific entry first, so that "L4" does not match "L40S"
# and "H100 PCIe" is not taken for the SXM part. A None peak is a known variant whose figure
# is not in the table: MFU stays null rather than borrowing a sibling's peak.
PEAK_BF16_TFLOPS: tuple[tuple[str, float | None, str], ...] = (
    ("H100 PCIe", 756.0, "H100 PCIe"),
    ("H100 NVL", None, "H100 NVL"),
    ("H100", 989.4, "H100 SXM"),
    ("H200 NVL", None, "H200 NVL"),
    ("H200", 989.4, "H200 SXM"),
    ("A100", 312.0, "A100"),
    ("L4", 121.0, "L4"),
    ("RTX 4090", 165.2, "GeForce RTX 4090, fp32 accumulate"),
)


def _rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the architecture."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _words(name: str) -> list[str]:
    return re.findall(r"[A-Z0-9]+", name.upper())


def _match_peak(device_name: str) -> tuple[float | None, str] | None:
    words = _words(device_name)
    for pattern, peak, label in PEAK_BF16_TFLOPS:
        pw = _words(pattern)
        if any(words[i:i + len(pw)] == pw for i in range(len(words) - len(pw) + 1)):
            return peak, label
    return None


def peak_bf16_tflops(device_name: str) -> float | None:
    """Dense bf16 peak (TFLOP/s) of the GPU called ``device_name`` (as ``torch.cuda.get_device_name``
    spells it, e.g. ``"NVIDIA H100 80GB HBM3"`` -> 989.4); None if the table has no figure for it."""
    match = _match_peak(device_name)
    return None if match is None else match[0]


def throughput(flops_per_step: int | None, step_seconds: float, device_type: str, device_name: str,
               precision: str, peak_tflops: float | None = None) -> dict[str, Any]:
    """Achieved TFLOP/s and model FLOPs utilisation of one step.

    Args:
        flops_per_step: counted FLOPs of one forward+backward step (None: not counted).
        step_seconds: the step's wall time in seconds (> 0).
        device_type: ``"cpu"`` or ``"cuda"``; the peak table only covers CUDA devices.
        device_name: the device's name, matched against :data:`PEAK_BF16_TFLOPS`.
        precision: ``"fp32"`` or ``"bf16"``; the table holds bf16 peaks, so fp32 gets no MFU
            unless ``peak_tflops`` is given.
        peak_tflops: the device's peak in TFLOP/s; overrides the table when given.

    Returns:
        ``achieved_tflops`` (None without FLOPs), ``peak_tflops`` and ``peak_tflops_source``
        (None when unknown), ``mfu`` in [0, 1] for a sane peak (None when either number is
        missing) and ``mfu_note``, which says why ``mfu`` is None (else None).
    """
    achieved = None if flops_per_step is None else flops_per_step / step_seconds / 1e12
    peak, source, note = None, None, None
    if peak_tflops is not None:
        peak, source = float(peak_tflops), "given (--peak-tflops)"
    elif device_type != "cuda":
        note = f"no peak table for {device_type} devices: pass --peak-tflops for an MFU"
    elif precision != "bf16":
        note = (f"the peak table holds dense bf16 peaks and this step ran in {precision}: "
                "pass --peak-tflops for an MFU")
    else:
        match = _match_peak(device_name)
        if match is None:
            note = f"{device_name!r} is not in the peak table: pass --peak-tflops for an MFU"
        elif match[0] is None:
            note = f"{device_name!r} ({match[1]}) has no peak in the table: pass --peak-tflops for an MFU"
        else:
            peak, source = match[0], f"table: {match[1]}, dense bf16"
    if achieved is None:
        note = "FLOPs were not counted (--no-flops)"
    mfu = achieved / peak if achieved is not None and peak else None
    return {"achieved_tflops": achieved, "peak_tflops": peak, "peak_tflops_source": source, "mfu": mfu,
            "mfu_note": note if mfu is None else None}


def _attention_flops(q_shape, k_shape, v_shape, backward: bool) -> int:
    # Same convention as torch's formula for the CUDA kernels: forward = QK^T and PV; the fused
    # backward recomputes QK^T and does four more products (dP, dV, dQ, dK).
    b, h, s_q, d = q_shape
    s_k, d_v = k_shape[-2], v_shape[-1]
    qk = 2 * b * h * s_q * s_k * d  # one (s_q, d) x (d, s_k) product per head
    pv = 2 * b * h * s_q * s_k * d_v
    return qk + pv if not backward else 2 * qk + 3 * pv


def _cpu_attention_fwd(query, key, value, *args, out_val=None, **kwargs) -> int:
    return _attention_flops(query.shape, key.shape, value.shape, backward=False)


def _cpu_attention_bwd(grad_out, query, key, value, *args, out_val=None, **kwargs) -> int:
    return _attention_flops(query.shape, key.shape, value.shape, backward=True)


def _product_flops(a: torch.Tensor, b: torch.Tensor) -> int:
    # A sparse operand does one multiply-add per stored value and column of the other side.
    if a.layout != torch.strided:
        return 2 * a._nnz() * b.shape[-1]
    if b.layout != torch.strided:
        return 2 * b._nnz() * a.shape[0]
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


def _mm(a, b, *args, out_val=None, **kwargs) -> int:
    return _product_flops(a, b)


def _addmm(bias, a, b, *args, out_val=None, **kwargs) -> int:
    return _product_flops(a, b)


for _fn in (_cpu_attention_fwd, _cpu_attention_bwd, _mm, _addmm):
    _fn._get_raw = True  # FlopCounterMode passes tensors, not shapes, to these

_aten = torch.ops.aten
_EXTRA_FLOP_FORMULAS: dict[Any, Callable[..., int]] = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_fwd,
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_bwd,
    _aten.mm: _mm,
    _aten.addmm: _addmm,
    _aten._sparse_addmm: _addmm,
}


def count_step_flops(loss_fn: Callable[[], torch.Tensor]) -> dict[str, Any]:
    """FLOPs of ``loss_fn()`` (the forward pass to a scalar loss) and of its ``backward()``.

    Runs the step once under :class:`~torch.utils.flop_counter.FlopCounterMode` with this
    module's corrections (module docstring: what is and is not counted). The caller clears
    gradients first if it cares about them; this leaves the step's gradients in place.

    Returns:
        ``{"forward": int, "total": int, "by_op": {aten op name: int}}``: FLOPs of the forward
        pass (loss included), of forward + backward, and the total per counted op.
    """
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
    with counter:
        loss = loss_fn()
        forward = counter.get_total_flops()
        loss.backward()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return {"forward": int(forward), "total": int(counter.get_total_flops()), "by_op": by_op}


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; ``"cpu"``/``"cuda"``/``"cuda:N"``
    are checked and returned as given.

    Raises:
        ValueError: for another name, or a CUDA device that torch cannot use.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if re.fullmatch(r"cuda(:\d+)?", device):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU "
                             f"({'a CPU-only build' if torch.version.cuda is None else 'no device or driver'})")
        return device
    raise ValueError(f"device {device!r}: expected cpu, cuda, cuda:N or auto")


def bench_in_process(config: dict, prior_profile: str, warmup: int, steps: int, batch: int, seed: int = 0,
                     threads: int = 0, device: str = "cpu", precision: str = "fp32", count_flops: bool = True,
                     peak_tflops: float | None = None, malloc: str = "keep") -> dict:
    """Time ``steps`` forward+backward passes (after ``warmup``) of the model of ``config``.

    Meant to run in a fresh process (peak RSS is process-wide); see the module docstring.
    ``threads > 0`` sets torch's intra-op thread count, else torch's default is used.
    ``device`` is ``cpu`` or ``cuda[:N]``, ``precision`` ``fp32`` or ``bf16`` (autocast).
    ``count_flops`` adds one untimed step under the FLOP counter after the timed ones;
    ``peak_tflops`` overrides the peak table for ``mfu`` (see :func:`throughput`).
    ``malloc``: the allocator policy the training loop uses (:mod:`sweettok.training.memory`;
    ``keep`` by default, ``system`` for glibc's defaults); the report gives the minor page faults
    and system CPU seconds per timed step.

    Returns:
        The report of one profile: the CPU keys of before (input shape, parameters, step
        seconds, RSS in MiB, threads, load average) plus ``device``, ``device_name``,
        ``precision``, ``peak_memory_mib`` (CUDA tensors' peak over the timed steps; None on
        CPU, where ``peak_rss_mib`` is the measure), ``flops_per_step``,
        ``forward_flops_per_step``, ``flops_by_op`` (None without ``count_flops``) and the
        keys of :func:`throughput`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    if threads > 0:
        torch.set_num_threads(threads)
    from sweettok.models.config import SweetTokConfig
    from sweettok.models.profiles import default_prior
    from sweettok.models.sweettok import SweetTok, parameter_breakdown

    dev = torch.device(device)
    on_cuda = dev.type == "cuda"
    rss_start = _rss_mib()
    load_before = os.getloadavg()[0]  # other work on the machine skews CPU timings; record it
    torch.manual_seed(seed)
    cfg = SweetTokConfig.from_dict(config)
    model = SweetTok(cfg, default_prior(prior_profile, seed=seed)).train().to(dev)
    rss_built = _rss_mib()
    frames = cfg.input_frames
    slices = cfg.check_frames(frames)
    g = cfg.grid_size
    # drawn on the CPU generator whatever the device, so every device sees the same batch
    x = (torch.rand(batch, cfg.in_channels, frames, cfg.resolution, cfg.resolution) - 0.5).to(dev)
    targets = torch.randint(0, cfg.proxy_vocab_size, (batch, slices, g, g)).to(dev)
    use_bf16 = precision == "bf16"

    def loss_of_step() -> torch.Tensor:
        with torch.autocast(dev.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext():
            out = model(x)
            return F.cross_entropy(out.logits, targets) + out.mlc_loss

    # CUDA kernels run asynchronously: without a barrier the clock would stop at the last launch
    sync = (lambda: torch.cuda.synchronize(dev)) if on_cuda else (lambda: None)
    from sweettok.training.memory import retained_heap

    times = []
    usage = [resource.getrusage(resource.RUSAGE_SELF)]
    with retained_heap(malloc) as heap_kept:
        for i in range(warmup + steps):
            if i == warmup:
                usage[0] = resource.getrusage(resource.RUSAGE_SELF)
                if on_cuda:
                    torch.cuda.reset_peak_memory_stats(dev)
            model.zero_grad(set_to_none=True)
            sync()
            t0 = time.perf_counter()
            loss = loss_of_step()
            loss.backward()
            sync()
            dt = time.perf_counter() - t0
            if i >= warmup:
                times.append(dt)
        usage.append(resource.getrusage(resource.RUSAGE_SELF))
    peak_rss = _peak_rss_mib()  # before the FLOP-counting step, which must not move the numbers
    load_after = os.getloadavg()[0]
    peak_memory = torch.cuda.max_memory_allocated(dev) / 2**20 if on_cuda else None
    device_name = torch.cuda.get_device_name(dev) if on_cuda else _cpu_name()
    flops = None
    if count_flops:
        model.zero_grad(set_to_none=True)
        flops = count_step_flops(loss_of_step)
    median = statistics.median(times)
    return {
        "input": [batch, cfg.in_channels, frames, cfg.resolution, cfg.resolution],
        "parameters": parameter_breakdown(model)["total"],
        "latent_tokens": cfg.num_latent_tokens(frames),
        "warmup_steps": warmup,
        "timed_steps": steps,
        "step_seconds_median": median,
        "step_seconds": times,
        "rss_before_build_mib": rss_start,
        "rss_after_build_mib": rss_built,
        "peak_rss_mib": peak_rss,
        "malloc": malloc,
        "malloc_applied": heap_kept,
        "minor_faults_per_step": (usage[1].ru_minflt - usage[0].ru_minflt) / max(steps, 1),
        "system_seconds_per_step": (usage[1].ru_stime - usage[0].ru_stime) / max(steps, 1),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": {"before": load_before, "after": load_after},
        "device": str(dev),
        "device_name": device_name,
        "precision": precision,
        "peak_memory_mib": peak_memory,
        "flops_per_step": None if flops is None else flops["total"],
        "forward_flops_per_step": None if flops is None else flops["forward"],
        "flops_by_op": None if flops is None else flops["by_op"],
        **throughput(None if flops is None else flops["total"], median, dev.type, device_name, precision,
                     peak_tflops),
    }


def run_benchmarks(configs: dict[str, dict], warmup: int = 1, steps: int = 3, batch: int = 1,
                   threads: int = 0, timeout_s: float = 3600, device: str = "cpu", precision: str = "fp32",
                   count_flops: bool = True, peak_tflops: float | None = None, malloc: str = "keep") -> dict[str, Any]:
    """Benchmark each ``{profile: SweetTokConfig dict}`` in its own subprocess; returns the report.

    A profile whose child fails (e.g. killed for memory) gets ``{"error": ...}`` instead of
    numbers; the others are still measured. ``device`` (``cpu``, ``cuda[:N]`` or ``auto``),
    ``precision``, ``count_flops`` and ``peak_tflops``: see :func:`bench_in_process`.

    Raises:
        ValueError: for an unknown device or precision, CUDA without a GPU, or bf16 on a GPU
            without bf16 support.
    """
    device = resolve_device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    if device != "cpu" and precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ValueError(f"{torch.cuda.get_device_name(device)} has no bf16 support: use --precision fp32")
    profiles: dict[str, Any] = {}
    for name, config in configs.items():
        request = {"config": config, "prior_profile": name, "warmup": warmup, "steps": steps, "batch": batch,
                   "threads": threads, "device": device, "precision": precision, "count_flops": count_flops,
                   "peak_tflops": peak_tflops, "malloc": malloc}
        proc = subprocess.run(
            [sys.executable, "-m", "sweettok.models.bench", "--child"],
            input=json.dumps(request), capture_output=True, text=True, timeout=timeout_s,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            profiles[name] = {"error": f"exit code {proc.returncode}", "stderr_tail": proc.stderr[-2000:]}
        else:
            profiles[name] = json.loads(lines[-1])
    on_cpu = device == "cpu"
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "what": "SweetTok phase-1 training step (cross-entropy + MLC loss), forward + backward, "
                + ("CPU" if on_cpu else device.upper()) + ", "
                + ("float32" if precision == "fp32" else "bf16 autocast"),
        "method": "fresh subprocess per profile; median of timed steps after warm-up; peak RSS from getrusage"
                  + ("" if on_cpu else "; CUDA synchronised around each step; peak_memory_mib from "
                                       "torch.cuda.max_memory_allocated over the timed steps"),
        "flops_method": None if not count_flops else (
            "torch.utils.flop_counter.FlopCounterMode over one extra untimed step after the timed ones: "
            "matrix products, convolutions and attention products at 2*m*n*k, forward + backward "
            "(attention's fused backward as 5 products); elementwise ops, norms, softmax and reductions "
            "not counted; sparse products as 2*nnz*k"),
        "device": device,
        "precision": precision,
        "peak_tflops_override": peak_tflops,
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
    print("usage: sweettok bench model [--out PATH] [--device cuda] ...  (this module's --child mode is internal)",
          file=sys.stderr)
    sys.exit(2)
