"""How far compute carries each tokenizer: ``sweettok curve``.

For each multiple ``m`` of the default training length, the training chain (proxy ->
proxy codes -> phase 1 -> phase 2) runs from scratch on the clip cache with every stage's
``loop.total_steps`` (and ``checkpoint_every``) times ``m``; warm-ups, learning rates and
everything else stay as configured. Each run has its own run directories under
``--work-dir`` (``m<m>/``), so several multiples may run at once in separate processes, and a
killed run resumes.

Per multiple the record holds each training stage's seconds of optimiser steps (from its
log, so a resumed run counts every step once) and the proxy-code pass's wall-clock seconds, the mean intra-op thread
count of each stage (below the start count when other processes took cores), and the test
scores of the proxy tokenizer and SweetTok: PSNR from whole-clip MSE and LPIPS, on frames
1..T-1 (the yardstick of :mod:`sweettok.metrics.reconstruction`). The equal-bits rows (a
first-frame thumbnail and WebP of frame 0 at no more bits than each tokenizer's ids) are
scored once on the same clips. ``--plot`` draws PSNR and LPIPS against training time from
all records in ``--out-dir``.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["scaled_params", "run_multiple", "equal_bits_rows", "curve_figure"]

TRAINING_SECTIONS = ("proxy", "tokenizer_phase1", "tokenizer_phase2")


def scaled_params(params: dict[str, Any], multiple: float, work_dir: Path) -> dict[str, Any]:
    """``params`` with each training stage's steps (and checkpoint interval) times ``multiple`` and its
    run directory under ``work_dir``."""
    out = copy.deepcopy(params)
    for section in TRAINING_SECTIONS:
        loop = out[section]["loop"]
        steps = max(1, round(loop["total_steps"] * multiple))
        loop["total_steps"] = steps
        loop["checkpoint_every"] = max(1, round(loop.get("checkpoint_every", steps) * multiple))
        if section == "tokenizer_phase2" and "disc_start" in out[section]:
            out[section]["disc_start"] = round(out[section]["disc_start"] * multiple)
        out[section]["run_dir"] = str(work_dir / section)
    return out


def _mean_threads(run_dir: str) -> float | None:
    from sweettok.training.logs import time_log_path

    path = time_log_path(run_dir)
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    return float(frame["time/threads"].mean()) if "time/threads" in frame else None


def run_multiple(multiple: float, env: str = "base", work_dir: str | Path = "data/07_curve",
                 out_dir: str | Path = "data/08_reporting/compute_curve", conf_dir: str | None = None) -> dict:
    """Train the chain at ``multiple`` x the default length, score it, write ``m<multiple>.json``."""
    from sweettok.cli import config_loader
    from sweettok.data.clips import ClipCache
    from sweettok.data.codes import load_code_table
    from sweettok.io.codebook_dataset import LanguageCodebookDataset
    from sweettok.pipelines.proxy.nodes import encode_proxy_codes, train_proxy_tokenizer
    from sweettok.pipelines.tokenizer_phase1.nodes import train_tokenizer_phase1
    from sweettok.pipelines.tokenizer_phase2.nodes import train_tokenizer_phase2

    loader = config_loader(env, conf_dir)
    catalog = loader["catalog"]
    tag = f"m{multiple:g}"
    work = Path(work_dir) / tag
    params = scaled_params(loader["parameters"], multiple, work / "runs")
    cache = ClipCache(catalog["clip_cache"]["filepath"])
    prior = LanguageCodebookDataset(catalog["language_codebook"]["filepath"]).load()
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    proxy = train_proxy_tokenizer(cache, params["proxy"])
    seconds["proxy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    codes_dir = work / "proxy_codes"
    if codes_dir.exists():
        shutil.rmtree(codes_dir)
    codes_dir.mkdir(parents=True)
    encode_proxy_codes(cache, proxy, params["proxy"]).write_to(codes_dir)
    seconds["proxy_codes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    phase1 = train_tokenizer_phase1(cache, load_code_table(codes_dir), proxy, prior, params["model"],
                                    params["tokenizer_phase1"])
    seconds["tokenizer_phase1"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tokenizer = train_tokenizer_phase2(cache, phase1, proxy, params["tokenizer_phase2"])
    seconds["tokenizer_phase2"] = time.perf_counter() - t0
    # A resumed run's wall clock covers only this call: take the training stages' seconds from
    # their logs (every optimiser step of the run, whichever process made it).
    for section in TRAINING_SECTIONS:
        seconds[section] = _training_seconds(params[section]["run_dir"])

    record = _score_record(multiple, env, params, cache, tokenizer, proxy, seconds,
                           batch_size=params.get("reconstruction", {}).get("batch_size", 8))
    _write_record(record, out_dir, tag)
    return record


def _score_record(multiple: float, env: str, params: dict, cache, tokenizer, proxy, seconds: dict[str, float],
                  batch_size: int = 8) -> dict:
    """Score proxy and SweetTok on the test clips and put the run's steps, seconds and threads beside."""
    import torch

    from sweettok.metrics.reconstruction import score_reconstructions
    from sweettok.pipelines.reconstruction.nodes import tokenizer_methods

    methods, tokens, bits = tokenizer_methods(tokenizer, proxy, cache.frames, cache.resolution)
    with torch.inference_mode():
        table = score_reconstructions(methods, cache.dataset("test"), tokens, bits, batch_size=batch_size)
    log.info("compute curve %gx: %.0f s of training; %s", multiple, sum(seconds.values()),
             table[["method", "frames", "psnr", "lpips"]].to_string(index=False))
    return {"multiple": multiple, "env": env,
            "steps": {s: params[s]["loop"]["total_steps"] for s in TRAINING_SECTIONS},
            "seconds": seconds, "training_seconds": sum(seconds.values()),
            "mean_threads": {s: _mean_threads(params[s]["run_dir"]) for s in TRAINING_SECTIONS},
            "bits": bits, "scores": table.drop(columns=["flat_fallback_clips"]).to_dict(orient="records")}


def _write_record(record: dict, out_dir: str | Path, tag: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{tag}.json").write_text(json.dumps(record, indent=2, default=float) + "\n")


def _training_seconds(run_dir: str | Path) -> float:
    """Seconds of optimiser steps in a run's log (each row: ``time/sec_per_step`` over its window)."""
    from sweettok.training.logs import time_log_path

    frame = pd.read_csv(time_log_path(run_dir))
    steps = frame["step"].diff().fillna(frame["step"].iloc[0])
    return float((frame["time/sec_per_step"] * steps).sum())


def record_from_catalog(env: str = "base", out_dir: str | Path = "data/08_reporting/compute_curve",
                        conf_dir: str | None = None) -> dict:
    """The default run already in the catalog (``kedro run`` / ``dvc repro``) as the 1x record: its
    exported models scored like :func:`run_multiple`'s, its training seconds from the run logs
    (optimiser steps only, without code writing and start-up)."""
    from sweettok.cli import config_loader
    from sweettok.data.clips import ClipCache
    from sweettok.io.model_dataset import ModelDataset

    loader = config_loader(env, conf_dir)
    catalog, params = loader["catalog"], loader["parameters"]
    cache = ClipCache(catalog["clip_cache"]["filepath"])
    tokenizer = ModelDataset(catalog["tokenizer"]["filepath"], kind="sweettok_pixel").load()
    proxy = ModelDataset(catalog["proxy_tokenizer"]["filepath"], kind="proxy_tokenizer").load()
    seconds = {s: _training_seconds(params[s]["run_dir"]) for s in TRAINING_SECTIONS}
    record = {**_score_record(1.0, env, params, cache, tokenizer, proxy, seconds), "source": "catalog"}
    _write_record(record, out_dir, "m1")
    return record


def equal_bits_rows(bits: dict[str, float], env: str = "base", conf_dir: str | None = None) -> pd.DataFrame:
    """The equal-bits first-frame baselines (thumbnail, codec) of each tokenizer's bits, scored on
    the test clips of the clip cache (the long table of ``score_reconstructions``)."""
    from sweettok.cli import config_loader
    from sweettok.data.clips import ClipCache
    from sweettok.metrics.reconstruction import equal_bits_baselines, score_reconstructions

    loader = config_loader(env, conf_dir)
    cache = ClipCache(loader["catalog"]["clip_cache"]["filepath"])
    methods = {}
    for label, b in bits.items():
        methods.update(equal_bits_baselines(b, label, max_side=cache.resolution))
    return score_reconstructions(methods, cache.dataset("test"), bits=None)


def load_records(out_dir: str | Path) -> list[dict]:
    """Every ``m<multiple>.json`` in ``out_dir``, by multiple."""
    records = [json.loads(p.read_text()) for p in Path(out_dir).glob("m*.json")]
    return sorted(records, key=lambda r: r["multiple"])


def curve_table(records: list[dict]) -> pd.DataFrame:
    """One row per multiple, tokenizer and frame range: steps, training seconds, scores."""
    rows = []
    for r in records:
        for score in r["scores"]:
            rows.append({"multiple": r["multiple"], "training_seconds": r["training_seconds"],
                         "proxy_steps": r["steps"]["proxy"], "phase1_steps": r["steps"]["tokenizer_phase1"],
                         "phase2_steps": r["steps"]["tokenizer_phase2"],
                         **{k: score[k] for k in ("method", "frames", "bits", "psnr", "psnr_frame_mean", "ssim",
                                                  "lpips")}})
    return pd.DataFrame(rows)


def curve_figure(table: pd.DataFrame, baselines: pd.DataFrame, minutes_per_multiple: float | None = None):
    """PSNR and LPIPS (frames 1..T-1) against training length for the proxy and SweetTok, with the
    equal-bits baselines as horizontal lines.

    ``minutes_per_multiple``: training minutes of the default length alone on this machine; the
    x axis is then ``multiple * minutes_per_multiple`` (the runs of one curve may have shared the
    machine, so their own wall times are only in the table).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = next(f for f in table["frames"].unique() if f != "all")
    part = table[table["frames"] == rng]
    base = baselines[baselines["frames"] == rng]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = {"SweetTok": "tab:blue", "proxy tokenizer": "tab:orange"}
    x_of = (lambda m: m * minutes_per_multiple) if minutes_per_multiple else (lambda m: m)
    for ax, metric in zip(axes, ("psnr", "lpips")):
        for method, colour in colours.items():
            rows = part[part["method"] == method].sort_values("multiple")
            ax.plot([x_of(m) for m in rows["multiple"]], rows[metric], "o-", color=colour, label=method)
            for row in rows.itertuples(index=False):
                ax.annotate(f"{row.multiple:g}x", (x_of(row.multiple), getattr(row, metric)), fontsize=7,
                            textcoords="offset points", xytext=(4, 4))
        for row in base.itertuples(index=False):
            label = str(row.method)
            colour = colours["SweetTok"] if "(= SweetTok)" in label else colours["proxy tokenizer"]
            style = "--" if label.startswith("thumbnail") else ":"
            ax.axhline(getattr(row, metric), color=colour, linestyle=style, linewidth=1, label=label)
        ax.set_xlabel("training minutes (2 CPU cores, alone)" if minutes_per_multiple
                      else "training length (x the default steps)")
        ax.set_ylabel(f"{metric.upper()}{' (dB)' if metric == 'psnr' else ''}, frames {rng}")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, loc="upper right")
    fig.suptitle("Test clips: how far training compute carries each tokenizer (lines: first-frame baselines "
                 "at no more bits)", fontsize=9)
    fig.tight_layout()
    return fig


def plot(out_dir: str | Path, env: str = "base", conf_dir: str | None = None,
         minutes_per_multiple: float | None = None) -> tuple[Path, Path]:
    """Write ``compute_curve.csv``, ``equal_bits.csv`` (scored once) and ``compute_curve.png`` in ``out_dir``."""
    out = Path(out_dir)
    records = load_records(out)
    if not records:
        raise FileNotFoundError(f"no m<multiple>.json records in {out}: run `sweettok curve --multiple M` first")
    table = curve_table(records)
    baseline_path = out / "equal_bits.csv"
    if baseline_path.is_file():
        baselines = pd.read_csv(baseline_path)
    else:
        baselines = equal_bits_rows(records[0]["bits"], env, conf_dir)
        baselines.drop(columns=["tokens"]).to_csv(baseline_path, index=False)
    table.to_csv(out / "compute_curve.csv", index=False)
    fig = curve_figure(table, baselines, minutes_per_multiple)
    png = out / "compute_curve.png"
    fig.savefig(png, dpi=110)
    return out / "compute_curve.csv", png
