"""Time the default pipeline after training with Kedro's SequentialRunner and with LaneRunner,
one after the other on the same data, and write both wall times and their ratio as JSON.

Needs a finished `make run` (the trained tokenizer and everything before it in data/). Runs
`kedro run --from-nodes <the nodes that read the trained tokenizer>` twice: reconstruction and
image scoring, image fine-tuning, token ids, LM training, sampling and scoring, the report.
The LM and the image fine-tuning write their checkpoints to fresh run directories under
--work (a finished run directory would be resumed, not trained). About 25 minutes on 2 cores;
run it on an otherwise idle machine.

    python scripts/bench_lanes.py --out data/08_reporting/bench_lanes.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sweettok.runner import usable_cores

# The nodes that read `tokenizer` (and nothing later): everything downstream of them follows.
AFTER_TRAINING = ("describe_run", "encode_token_ids", "evaluate_reconstruction", "finetune_image_tokenizer",
                  "report_figures", "token_words")
RUNNERS = {"sequential": None, "lanes": "sweettok.runner.LaneRunner"}


def run_once(name: str, runner: str | None, work: Path) -> dict:
    lm_dir, ft_dir = work / f"lm_{name}", work / f"image_finetune_{name}"
    for d in (lm_dir, ft_dir):
        shutil.rmtree(d, ignore_errors=True)
    cmd = [str(Path(sys.executable).with_name("kedro")), "run", "--from-nodes", ",".join(AFTER_TRAINING),
           "--params", f"lm.training.run_dir={lm_dir},image_finetune.training.run_dir={ft_dir}"]
    if runner:
        cmd += ["--runner", runner]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    log_path = work / f"bench_lanes_{name}.log"
    with open(log_path, "w") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"})
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{name}: `{' '.join(cmd)}` failed (exit {done.returncode}); see {log_path}")
    return {"runner": runner or "kedro.runner.SequentialRunner", "seconds": seconds,
            "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data/08_reporting/bench_lanes.json"))
    ap.add_argument("--work", type=Path, default=None, help="run directories (default: a temporary one)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_lanes_"))
    work.mkdir(parents=True, exist_ok=True)
    results = {name: run_once(name, runner, work) for name, runner in RUNNERS.items()}
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cores": usable_cores(),
        "from_nodes": list(AFTER_TRAINING),
        "runs": results,
        "speedup": results["sequential"]["seconds"] / results["lanes"]["seconds"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"after training: sequential {results['sequential']['seconds']:.0f} s, lanes "
          f"{results['lanes']['seconds']:.0f} s: {report['speedup']:.2f}x -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
