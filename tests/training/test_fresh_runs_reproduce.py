"""Two fresh training runs with the same seed end with bit-identical weights: the initial
weights follow ``loop.seed`` as well as the data order (the model used to be built from the
unseeded global RNG, so two runs of `dvc repro` gave different tokenizers), and their checkpoint
directories are the same bytes (no clock time in them, so DVC sees an unchanged output)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from sweettok.training.proxy_training import ProxyTrainingConfig, train_proxy


class Clips(torch.utils.data.Dataset):
    def __init__(self, n: int = 8):
        g = torch.Generator().manual_seed(0)
        self.clips = torch.rand(n, 3, 5, 16, 16, generator=g) - 0.5

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        return {"clip": self.clips[i]}


def _run(run_dir, seed: int, global_seed: int) -> dict[str, torch.Tensor]:
    cfg = ProxyTrainingConfig.from_dict({
        "model": {"hidden_dim": 8, "num_blocks": 1, "norm_groups": 4, "codebook_size": 16, "restart_every": 0,
                  "sample_buffer_size": 32},
        "loop": {"total_steps": 3, "batch_size": 2, "checkpoint_every": 3, "progress": False, "device": "cpu",
                 "seed": seed},
        "schedule": {"warmup_steps": 1}, "lpips_weight": 0.0, "run_dir": str(run_dir)})
    torch.manual_seed(global_seed)  # whatever the global RNG was before, the run is the same
    train_proxy(Clips(), cfg)
    return load_file(str(run_dir / "step_00000003" / "model.safetensors"))


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, one_thread):
    a, b = _run(tmp_path / "a", 0, global_seed=1), _run(tmp_path / "b", 0, global_seed=2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = _run(tmp_path / "c", 1, global_seed=1)
    assert not torch.equal(a["embed_first.weight"], c["embed_first.weight"])


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_same_run_later_writes_the_same_bytes(tmp_path, one_thread):
    """The whole run directory repeats, step times (``train_time.csv``) aside: the report's DVC
    stage depends on ``train_log.csv``, which used to carry them and so changed on every run."""
    # one run directory name for both (the loss-curve figure is titled with it), as in a rerun
    _run(tmp_path / "a" / "run", 0, global_seed=0)
    time.sleep(1.1)  # a clock time written with second resolution would now differ
    _run(tmp_path / "b" / "run", 0, global_seed=0)
    a, b = _files(tmp_path / "a" / "run"), _files(tmp_path / "b" / "run")
    assert {"step_00000003/config.json", "step_00000003/model.safetensors", "step_00000003/training_state.pt",
            "train_log.csv", "train_time.csv", "loss_curves.png"} <= set(a)
    assert a.keys() == b.keys()
    assert [name for name in a if a[name] != b[name] and name != "train_time.csv"] == []
    header, *rows = a["train_log.csv"].decode().splitlines()
    assert header.startswith("step,") and "loss/model" in header and "time/" not in header
    time_header, *time_rows = a["train_time.csv"].decode().splitlines()
    assert time_header.split(",")[0] == "step" and "time/sec_per_step" in time_header.split(",")
    assert [r.split(",")[0] for r in time_rows] == [r.split(",")[0] for r in rows] == ["3"]
