"""The compute curve: scaled training lengths, the table and the figure from run records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sweettok.cli import load_params
from sweettok.compute_curve import TRAINING_SECTIONS, curve_figure, curve_table, scaled_params


def test_scaled_params_multiply_steps_and_checkpoints_only(tmp_path):
    base = load_params("base")
    scaled = scaled_params(base, 3, tmp_path)
    for section in TRAINING_SECTIONS:
        assert scaled[section]["loop"]["total_steps"] == 3 * base[section]["loop"]["total_steps"]
        assert scaled[section]["loop"]["checkpoint_every"] == 3 * base[section]["loop"]["checkpoint_every"]
        assert scaled[section]["schedule"] == base[section]["schedule"]
        assert scaled[section]["optimizer"] == base[section]["optimizer"]
        assert Path(scaled[section]["run_dir"]).parent == tmp_path
    assert scaled["tokenizer_phase2"]["disc_start"] == 3 * base["tokenizer_phase2"]["disc_start"]
    assert scaled["model"] == base["model"]
    assert base["proxy"]["run_dir"] != scaled["proxy"]["run_dir"]  # the input is not modified


def _record(multiple: float, sweettok_psnr: float) -> dict:
    scores = []
    for method, psnr in (("SweetTok", sweettok_psnr), ("proxy tokenizer", sweettok_psnr + 1)):
        for frames in ("1-16", "all"):
            scores.append({"method": method, "frames": frames, "bits": 2116.0 if method == "SweetTok" else 3200.0,
                           "psnr": psnr, "psnr_frame_mean": psnr + 0.5, "ssim": 0.5, "lpips": 0.3 / multiple})
    return {"multiple": multiple, "training_seconds": 400.0 * multiple,
            "steps": {"proxy": 600 * multiple, "tokenizer_phase1": 500 * multiple, "tokenizer_phase2": 250 * multiple},
            "scores": scores}


def test_curve_table_and_figure_from_records():
    table = curve_table([_record(1, 17.0), _record(3, 18.0)])
    assert len(table) == 8
    row = table[(table["multiple"] == 3) & (table["method"] == "SweetTok") & (table["frames"] == "1-16")].iloc[0]
    assert row["psnr"] == 18.0 and row["phase1_steps"] == 1500 and row["training_seconds"] == 1200.0
    baselines = pd.DataFrame([{"method": "thumbnail 9x9 @ 1944 bits (= SweetTok)", "frames": "1-16", "psnr": 19.9,
                               "lpips": 0.43},
                              {"method": "WebP frame 0 @ <=2116 bits (= SweetTok)", "frames": "1-16", "psnr": 21.7,
                               "lpips": 0.40}])
    fig = curve_figure(table, baselines, minutes_per_multiple=6.5)
    psnr_ax, lpips_ax = fig.axes[:2]
    sweettok = next(line for line in psnr_ax.lines if line.get_label() == "SweetTok")
    assert list(sweettok.get_xdata()) == pytest.approx([6.5, 19.5])  # multiples x minutes per multiple
    assert list(sweettok.get_ydata()) == pytest.approx([17.0, 18.0])
    thumb = next(line for line in psnr_ax.lines if line.get_label().startswith("thumbnail 9x9"))
    assert list(thumb.get_ydata()) == pytest.approx([19.9, 19.9])  # a horizontal line at its score
    proxy = next(line for line in lpips_ax.lines if line.get_label() == "proxy tokenizer")
    assert list(proxy.get_ydata()) == pytest.approx([0.3, 0.1])


def test_training_seconds_sum_each_log_window(tmp_path):
    from sweettok.compute_curve import _training_seconds

    pd.DataFrame({"step": [10, 20, 25], "time/sec_per_step": [0.5, 0.25, 2.0]}).to_csv(tmp_path / "train_log.csv",
                                                                                       index=False)
    assert _training_seconds(tmp_path) == pytest.approx(10 * 0.5 + 10 * 0.25 + 5 * 2.0)


def test_training_seconds_read_train_time_csv_when_there_is_one(tmp_path):
    """Runs write their step times to train_time.csv; the values log then has none."""
    from sweettok.compute_curve import _mean_threads, _training_seconds

    pd.DataFrame({"step": [10, 20], "loss/model": [1.0, 0.5]}).to_csv(tmp_path / "train_log.csv", index=False)
    pd.DataFrame({"step": [10, 20], "time/sec_per_step": [0.5, 1.5], "time/threads": [2.0, 1.0]}).to_csv(
        tmp_path / "train_time.csv", index=False)
    assert _training_seconds(tmp_path) == pytest.approx(10 * 0.5 + 10 * 1.5)
    assert _mean_threads(str(tmp_path)) == pytest.approx(1.5)
