#!/usr/bin/env bash
# The default chain on one NVIDIA GPU, from a fresh clone, in one command:
#
#     bash scripts/gpu_run.sh            # first run
#     bash scripts/gpu_run.sh --fresh    # again: delete the last GPU run's training runs first
#     bash scripts/gpu_run.sh --resume   # continue the last GPU run's checkpoints
#     bash scripts/gpu_run.sh --report   # only print the metrics and rewrite the JSON of the last run
#
# 1. checks that there is an NVIDIA GPU (nvidia-smi) and, after set-up, that torch sees it;
# 2. sets up .venv exactly as `make run` does (`make setup`: Python 3.11, pinned torch, the project);
# 3. runs the pipelines of the default chain one by one, as `dvc repro` does
#    (ingest -> patchify -> codebook -> proxy -> tokenizer_phase1 -> tokenizer_phase2 ->
#    reconstruction), each as `kedro run --env gpu --pipelines <name>`, timing each;
# 4. prints the reconstruction metrics and writes data/08_reporting/gpu_run.json: the device,
#    seconds per stage, measured seconds per training step, and the metrics.
#
# conf/gpu holds the settings (bf16, batch 32, 4x the base profile's steps); its estimate of
# about ten minutes for step 3 was not measured on a GPU: the JSON this writes is the measurement.
# The outputs land where `make run` puts them (data/, same catalog): a GPU run replaces the
# CPU run's models and metric tables; only the training run directories are its own
# (data/06_models/runs/gpu/). Log of the stages: data/08_reporting/gpu_run.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ENV_NAME=gpu
OUT_JSON=data/08_reporting/gpu_run.json
LOG=data/08_reporting/gpu_run.log
PY=.venv/bin/python

die() { echo "gpu_run: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

MODE=new
for arg in "$@"; do
    case "$arg" in
        --fresh) MODE=fresh ;;
        --resume) MODE=resume ;;
        --report) MODE=report ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$arg' (options: --fresh, --resume, --report, --help)" ;;
    esac
done

export KEDRO_DISABLE_TELEMETRY=1 DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

# ------------------------------------------------------------------ the report (also --report)
# Reads the stage timings file ($1, may be absent), writes $OUT_JSON, prints the metrics table.
report() {
    "$PY" - "$ENV_NAME" "$OUT_JSON" "${1:-}" "${2:-}" "${3:-}" <<'PYEOF'
import csv, json, os, platform, statistics, subprocess, sys, time
from pathlib import Path

env, out_json, timings_file, setup_s, precision = sys.argv[1:6]
from sweettok import cli

params = cli.load_params(env)
report = {"env": env, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node()}

def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None

report["git_commit"] = run(["git", "rev-parse", "HEAD"])
report["git_dirty"] = bool(run(["git", "status", "--porcelain", "--untracked-files=no"]))
import torch
dev = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
       "nvidia_smi": run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]),
       "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    dev.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
               capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported())
report["device"] = dev
report["precision"] = precision or None
report["setup_seconds"] = float(setup_s) if setup_s else None

stages = {}
if timings_file and Path(timings_file).is_file():
    for line in Path(timings_file).read_text().split():
        name, seconds = line.split("=")
        stages[name] = float(seconds)
report["stage_seconds"] = stages
report["total_seconds"] = round(sum(stages.values()), 1) if stages else None

training = {}
for name in ("proxy", "tokenizer_phase1", "tokenizer_phase2"):
    loop = params[name]["loop"]
    entry = {"total_steps": loop["total_steps"], "batch_size": loop["batch_size"],
             "precision": precision or loop.get("precision", "fp32"), "run_dir": params[name]["run_dir"]}
    log = Path(params[name]["run_dir"]) / "train_time.csv"  # the time/* columns
    if log.is_file():
        with log.open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("time/sec_per_step")]
        secs = [float(r["time/sec_per_step"]) for r in rows]
        if secs:
            # the first window holds start-up (CUDA context, cuDNN autotuning, first loader)
            steady = secs[1:] or secs
            entry.update(logged_steps=int(rows[-1]["step"]) if "step" in rows[-1] else None,
                         median_sec_per_step=round(statistics.median(steady), 4),
                         first_window_sec_per_step=round(secs[0], 4))
    training[name] = entry
report["training"] = training

metrics_path = Path("data/08_reporting/reconstruction_metrics.csv")
if metrics_path.is_file():
    with metrics_path.open() as f:
        rows = [{"method": r["method"], "frames": r["frames"], "tokens": int(r["tokens"]) if r["tokens"] else None,
                 **{k: float(r[k]) for k in ("bits", "psnr", "psnr_frame_mean", "ssim", "lpips")}}
                for r in csv.DictReader(f)]
    report["reconstruction_metrics"] = rows
    print("\nReconstruction on the test clips (data/08_reporting/reconstruction_metrics.csv; PSNR of the")
    print("whole-clip MSE, f.m. = mean of per-frame PSNRs):\n")
    print(f"| {'method':<48} | frames | tokens |   bits |   PSNR |   f.m. |  SSIM  | LPIPS  |")
    print(f"|{'-' * 50}|--------|-------:|-------:|-------:|-------:|-------:|-------:|")
    for r in rows:
        print(f"| {r['method']:<48} | {r['frames']:<6} | {r['tokens'] or '-':>6} | {r['bits']:6.0f} | {r['psnr']:6.2f} "
              f"| {r['psnr_frame_mean']:6.2f} | {r['ssim']:.4f} | {r['lpips']:.4f} |")
else:
    print("\n(no data/08_reporting/reconstruction_metrics.csv yet)")

if stages:
    print("\nSeconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
          + f"; total {report['total_seconds'] / 60:.1f} min")
for name, e in training.items():
    if "median_sec_per_step" in e:
        print(f"{name}: {e['median_sec_per_step']:.3f} s/step at batch {e['batch_size']} ({e['precision']})")
print(f"device: {dev.get('name') or dev['nvidia_smi'] or 'no CUDA device'}")
Path(out_json).parent.mkdir(parents=True, exist_ok=True)
Path(out_json).write_text(json.dumps(report, indent=2) + "\n")
print(f"wrote {out_json}")
PYEOF
}

if [ "$MODE" = report ]; then
    [ -x "$PY" ] || die "no .venv here: run 'bash scripts/gpu_run.sh' first"
    report "$(dirname "$OUT_JSON")/.gpu_run_stages" "" ""
    exit 0
fi

# ------------------------------------------------------------------ 1. an NVIDIA GPU
command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: this script needs a machine with an NVIDIA GPU \
and its driver. Without one, 'make run' runs the CPU profile."
if ! gpus="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"; then
    die "nvidia-smi failed (driver not loaded, or no GPU visible to this container?):
$gpus"
fi
[ -n "$gpus" ] || die "nvidia-smi lists no GPU"
echo "gpu_run: GPU(s): $gpus"

# ------------------------------------------------------------------ 2. the environment (make setup)
command -v make >/dev/null 2>&1 || die "'make' not found: install it (apt-get install make)"
command -v "${PYTHON:-python3.11}" >/dev/null 2>&1 || die "'${PYTHON:-python3.11}' not found: set-up needs \
Python 3.11 (or set PYTHON=/path/to/python3.11)"
t=$(now)
echo "gpu_run: setting up .venv (make setup; the first time this installs torch and the project, minutes)"
make --no-print-directory setup
setup_s=$(elapsed "$t" "$(now)")

if ! cuda_report="$("$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) cannot use the GPU: "
          + ("it is a CPU-only build" if torch.version.cuda is None else
             "is the driver older than this CUDA version needs (nvidia-smi shows the highest it supports)?"))
    sys.exit(1)
name = torch.cuda.get_device_name(0)
print(f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 "
      + ("yes" if torch.cuda.is_bf16_supported() else "no"))
PYEOF
)"; then
    die "$cuda_report"
fi
echo "gpu_run: torch sees $cuda_report"

# conf/gpu trains in bf16; a card without it (before Ampere: V100, T4, RTX 20xx) trains in fp32
precision=bf16
extra=()
case "$cuda_report" in
    *"bf16 no")
        precision=fp32
        extra=(--params "proxy.loop.precision=fp32,tokenizer_phase1.loop.precision=fp32,tokenizer_phase2.loop.precision=fp32")
        echo "gpu_run: this GPU has no bf16: training in fp32 (slower than the estimate)" ;;
esac

# ------------------------------------------------------------------ run directories of an earlier GPU run
mapfile -t run_dirs < <("$PY" -c "
from sweettok import cli
p = cli.load_params('$ENV_NAME')
print('\n'.join(p[k]['run_dir'] for k in ('proxy', 'tokenizer_phase1', 'tokenizer_phase2')))")
existing=()
for d in "${run_dirs[@]}"; do
    if [ -d "$d" ] && [ -n "$(ls -A "$d")" ]; then existing+=("$d"); fi
done
if [ "${#existing[@]}" -gt 0 ]; then
    case "$MODE" in
        new) die "an earlier GPU run left ${existing[*]}. With loop.resume: auto the pipelines would continue it \
(a finished run is only exported again). Rerun with --fresh to delete these run directories and train again, \
or with --resume to continue them." ;;
        fresh)
            for d in "${existing[@]}"; do
                case "$d" in data/06_models/*) ;; *) die "refusing to delete $d (not under data/06_models/)" ;; esac
                echo "gpu_run: deleting $d"
                rm -rf -- "$d"
            done ;;
        resume) echo "gpu_run: continuing ${existing[*]}" ;;
    esac
fi

# ------------------------------------------------------------------ 3. the pipelines, one by one
mapfile -t stages < <("$PY" -c "from sweettok.pipeline_registry import PIPELINES; print('\n'.join(PIPELINES))")
timings="$(dirname "$OUT_JSON")/.gpu_run_stages"
mkdir -p "$(dirname "$OUT_JSON")"
: > "$timings"
: > "$LOG"
export PATH="$ROOT/.venv/bin:$PATH"
for stage in "${stages[@]}"; do
    echo "gpu_run: === $stage ===" | tee -a "$LOG"
    t=$(now)
    if ! kedro run --env "$ENV_NAME" --pipelines "$stage" "${extra[@]}" 2>&1 | tee -a "$LOG"; then
        die "stage '$stage' failed after $(elapsed "$t" "$(now)") s; its output is in $LOG"
    fi
    s=$(elapsed "$t" "$(now)")
    echo "$stage=$s" >> "$timings"
    echo "gpu_run: $stage took $s s" | tee -a "$LOG"
done

# ------------------------------------------------------------------ 4. the report
report "$timings" "$setup_s" "$precision"
