"""`sweettok bench optimizer`: the real proxy training step under two AdamW implementations, in fresh
processes; the report's ratios come from its own medians, and both implementations train the same."""

from __future__ import annotations

import math

import pytest

from sweettok.training.bench_threads import run_optimizer_benchmark


def test_optimizer_benchmark_times_both_implementations_and_they_train_alike():
    report = run_optimizer_benchmark(["proxy"], ["loop", "fused"], repeats=1, steps={"proxy": 20}, progress=False)
    assert report["cores"] >= 1 and report["repeats"] == 1
    (row,) = report["rows"]
    assert row["stage"] == "proxy" and row["steps"] == 20
    rates = row["median_steps_per_s"]
    assert set(rates) == {"loop", "fused"} and all(r > 0 for r in rates.values())
    assert row["speedup_over_loop"]["loop"] == 1.0
    assert row["speedup_over_loop"]["fused"] == pytest.approx(rates["fused"] / rates["loop"])
    # same data, seed and schedule: the updates differ only by rounding, so the losses end close
    # (not equal: the proxy's code assignments amplify rounding over the steps)
    (loss_loop,), (loss_fused,) = row["final_loss"]["loop"], row["final_loss"]["fused"]
    assert math.isfinite(loss_loop) and math.isfinite(loss_fused)
    assert loss_fused == pytest.approx(loss_loop, rel=0.05)
    # ...but the implementation did change: rounding leaves the two runs' losses apart
    assert loss_fused != loss_loop
