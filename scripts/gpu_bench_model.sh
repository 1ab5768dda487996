#!/usr/bin/env bash
# The paper profile's training step on one NVIDIA GPU, from a fresh clone, in one command:
#
#     bash scripts/gpu_bench_model.sh                      # bf16, batch 12, 2 warm-up + 5 timed steps
#     bash scripts/gpu_bench_model.sh --batch 6            # extra options go to `sweettok bench model`
#     bash scripts/gpu_bench_model.sh --peak-tflops 835    # a GPU the peak table does not know
#
# 1. checks that there is an NVIDIA GPU (nvidia-smi) and, after set-up, that torch sees it;
# 2. sets up .venv with `make setup` if there is none (Python 3.11, pinned torch, the project);
# 3. runs `sweettok bench model --config paper --device cuda --precision bf16 --batch 12
#    --steps 5 --warmup 2` (phase-1 loss, forward + backward, random clips of 17x256x256,
#    no optimiser step), which writes data/08_reporting/bench_model_gpu.json;
# 4. prints the median step time, peak GPU memory (torch.cuda.max_memory_allocated), the
#    achieved TFLOP/s (FLOPs counted by torch's FlopCounterMode: matrix products, convolutions
#    and attention) and the MFU against the GPU's dense bf16 peak.
# A GPU without bf16 (before Ampere) runs in fp32; the MFU is then left empty unless
# --peak-tflops gives the fp32 peak.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT_JSON=data/08_reporting/bench_model_gpu.json
PY=.venv/bin/python

die() { echo "gpu_bench_model: error: $*" >&2; exit 1; }

case "${1:-}" in
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

export KEDRO_DISABLE_TELEMETRY=1 DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

# ------------------------------------------------------------------ 1. an NVIDIA GPU
command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: this script needs a machine with an NVIDIA GPU \
and its driver. Without one, 'sweettok bench model' measures the CPU."
if ! gpus="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"; then
    die "nvidia-smi failed (driver not loaded, or no GPU visible to this container?):
$gpus"
fi
[ -n "$gpus" ] || die "nvidia-smi lists no GPU"
echo "gpu_bench_model: GPU(s): $gpus"

# ------------------------------------------------------------------ 2. the environment
if [ ! -x "$PY" ]; then
    command -v make >/dev/null 2>&1 || die "'make' not found: install it (apt-get install make)"
    command -v "${PYTHON:-python3.11}" >/dev/null 2>&1 || die "'${PYTHON:-python3.11}' not found: set-up needs \
Python 3.11 (or set PYTHON=/path/to/python3.11)"
    echo "gpu_bench_model: no .venv: running 'make setup' (installs torch and the project, minutes)"
    make --no-print-directory setup
fi

if ! cuda_report="$("$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) cannot use the GPU: "
          + ("it is a CPU-only build" if torch.version.cuda is None else
             "is the driver older than this CUDA version needs (nvidia-smi shows the highest it supports)?"))
    sys.exit(1)
print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 "
      + ("yes" if torch.cuda.is_bf16_supported(including_emulation=False) else "no"))
PYEOF
)"; then
    die "$cuda_report"
fi
echo "gpu_bench_model: torch sees $cuda_report"

precision=bf16
case "$cuda_report" in
    *"bf16 no") precision=fp32; echo "gpu_bench_model: this GPU has no bf16: measuring fp32" ;;
esac

# ------------------------------------------------------------------ 3. the benchmark
mkdir -p "$(dirname "$OUT_JSON")"
# later options win in argparse, so the caller's "$@" can change any of these
if ! .venv/bin/sweettok bench model --config paper --device cuda --precision "$precision" --batch 12 \
        --steps 5 --warmup 2 --out "$OUT_JSON" "$@"; then
    [ -f "$OUT_JSON" ] && echo "gpu_bench_model: the report (with the child's error) is in $OUT_JSON" >&2
    die "the benchmark failed; if the GPU ran out of memory, try a smaller batch: bash $0 --batch 6"
fi

# ------------------------------------------------------------------ 4. the summary
"$PY" - "$OUT_JSON" <<'PYEOF'
import json, sys

report = json.load(open(sys.argv[1]))
for name, r in report["profiles"].items():
    print(f"\n{name} profile, batch {report['batch']}, {r['precision']}, {r['device_name']} "
          f"(input {r['input']}, {r['parameters']:,} parameters)")
    print(f"  step time (fwd+bwd):  {r['step_seconds_median'] * 1e3:.1f} ms median of {r['timed_steps']} "
          f"({', '.join(f'{s * 1e3:.1f}' for s in r['step_seconds'])})")
    print(f"  peak GPU memory:      {r['peak_memory_mib']:.0f} MiB (max_memory_allocated)")
    if r["flops_per_step"] is not None:
        print(f"  FLOPs per step:       {r['flops_per_step'] / 1e12:.3f} TFLOP (forward {r['forward_flops_per_step'] / 1e12:.3f})")
        print(f"  achieved:             {r['achieved_tflops']:.2f} TFLOP/s")
    if r["mfu"] is not None:
        print(f"  MFU:                  {100 * r['mfu']:.1f}% of {r['peak_tflops']:g} TFLOP/s ({r['peak_tflops_source']})")
    else:
        print(f"  MFU:                  n/a ({r['mfu_note']})")
print(f"\nwrote {sys.argv[1]}")
PYEOF
