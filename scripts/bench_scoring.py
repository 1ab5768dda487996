"""Benchmark of the reconstruction scores' two costly parts, side by side in one process.

SSIM's window means as float64 2-D convolutions (how they were computed before; kept here as
the baseline) against the stride-1 average pool of ``sweettok.metrics.image_quality.ssim``, and
LPIPS with both inputs through the backbone against reference features computed once
(``LPIPS.reference``). The workload is what ``evaluate_reconstruction`` does per batch: 8
test-sized clips (17 x 64 x 64) scored against 12 methods. Medians of 3 alternating rounds
after a warm-up; the values of both ways are compared too.

    python scripts/bench_scoring.py --threads 2 --out data/08_reporting/bench_scoring.json
"""
import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--out", default="data/08_reporting/bench_scoring.json")
args = parser.parse_args()
torch.set_num_threads(args.threads)
from sweettok.metrics.image_quality import DATA_RANGE, ssim  # noqa: E402
from sweettok.metrics.perceptual import LPIPS  # noqa: E402


def ssim_conv(x, y, win=7, k1=0.01, k2=0.03):  # the previous implementation's arithmetic
    b, c, t, h, w = x.shape
    a = x.transpose(1, 2).reshape(b * t * c, 1, h, w).double() + 0.5
    d = y.transpose(1, 2).reshape(b * t * c, 1, h, w).double() + 0.5
    kernel = torch.full((1, 1, win, win), 1.0 / win**2, dtype=torch.float64)
    npix = win * win
    cov_norm = npix / (npix - 1)
    mu_a, mu_d = F.conv2d(a, kernel), F.conv2d(d, kernel)
    var_a = cov_norm * (F.conv2d(a * a, kernel) - mu_a**2)
    var_d = cov_norm * (F.conv2d(d * d, kernel) - mu_d**2)
    cov = cov_norm * (F.conv2d(a * d, kernel) - mu_a * mu_d)
    c1, c2 = (k1 * DATA_RANGE) ** 2, (k2 * DATA_RANGE) ** 2
    m = ((2 * mu_a * mu_d + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_d**2 + c1) * (var_a + var_d + c2))
    return m.mean(dim=(1, 2, 3)).reshape(b, t, c).mean(2).mean(1).float()


g = torch.Generator().manual_seed(0)
ref = torch.rand(8, 3, 17, 64, 64, generator=g) - 0.5
cands = [(ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(-0.5, 0.5) for _ in range(12)]
lp = LPIPS()


def lpips_reference():
    r = lp.reference(ref)
    return [lp(c, ref, reference=r) for c in cands]


ways = {"ssim_conv2d": lambda: [ssim_conv(c, ref) for c in cands],
        "ssim_pool": lambda: [ssim(c, ref) for c in cands],
        "lpips_both": lambda: [lp(c, ref) for c in cands],
        "lpips_reference": lpips_reference}
times = {name: [] for name in ways}
res = {}
with torch.no_grad():
    for f in ways.values():  # warm-up
        f()
    for _ in range(3):  # alternating rounds
        for name, f in ways.items():
            t = time.perf_counter()
            out = f()
            times[name].append(time.perf_counter() - t)
            res[name] = torch.stack(out)
med = {k: sorted(v)[1] for k, v in times.items()}
report = {"benchmark": "reconstruction scoring: SSIM window and LPIPS reference features",
          "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.machine(),
          "threads": torch.get_num_threads(), "workload": "8 clips x 17 x 64 x 64 against 12 candidates",
          "median_s": {k: round(v, 3) for k, v in med.items()},
          "ssim_ratio": round(med["ssim_conv2d"] / med["ssim_pool"], 2),
          "lpips_ratio": round(med["lpips_both"] / med["lpips_reference"], 2),
          "ssim_max_abs_diff": float((res["ssim_conv2d"] - res["ssim_pool"]).abs().max()),
          "lpips_max_abs_diff": float((res["lpips_both"] - res["lpips_reference"]).abs().max())}
with open(args.out, "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(report))
