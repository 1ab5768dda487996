"""Device selection, the resumable epoch sampler, and the CSV log / loss figure."""

import pytest
import torch

from sweettok.training.distributed import EpochSampler, init_distributed, is_main_process, select_device
from sweettok.training.logs import CSVLogger, plot_loss_curves, read_log


def test_device_selection():
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            select_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        select_device("tpu")


def test_single_process_needs_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.initialised_here) == (0, 1, True, False)
    assert is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        init_distributed("cpu")


def test_epoch_sampler_is_disjoint_seeded_and_skips():
    data = list(range(20))
    ranks = [EpochSampler(data, num_replicas=2, rank=r, seed=5) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(3)
    a, b = list(ranks[0]), list(ranks[1])
    assert len(a) == len(b) == 10 and not set(a) & set(b) and set(a) | set(b) == set(data)
    again = EpochSampler(data, num_replicas=2, rank=0, seed=5)
    again.set_epoch(3, skip=4)
    assert list(again) == a[4:] and len(again) == 6
    other = EpochSampler(data, num_replicas=2, rank=0, seed=5)
    other.set_epoch(4)
    assert list(other) != a


def test_csv_logger_columns_and_resume(tmp_path):
    path = tmp_path / "run" / "train_log.csv"
    lg = CSVLogger(path)
    lg.log(1, {"loss/model": 0.5})
    lg.log(2, {"loss/model": 0.25, "loss/disc": 1.0})  # a column that appears later
    lg.log(3, {"loss/model": 0.125, "loss/disc": 0.5})
    header, rows = read_log(path)
    assert header == ["step", "loss/model", "loss/disc"]
    assert [r["loss/disc"] for r in rows] == ["", "1.0", "0.5"]
    resumed = CSVLogger(path, resume_step=2)  # rows after the checkpoint are dropped
    resumed.log(3, {"loss/model": 0.2, "loss/disc": 0.4})
    _, rows = read_log(path)
    assert [(r["step"], r["loss/model"]) for r in rows] == [("1", "0.5"), ("2", "0.25"), ("3", "0.2")]
    png = plot_loss_curves(path, tmp_path / "curves.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert plot_loss_curves(path, tmp_path / "none.png", prefix="nothing") is None
    fresh = CSVLogger(path)  # a fresh run replaces the old log
    assert read_log(path)[1] == [] and fresh.columns == ["step"]
