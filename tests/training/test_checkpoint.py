"""Checkpoint directories: round trip, strict loading, atomicity, retention, RNG state."""

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from sweettok.training import checkpoint as ck
from sweettok.training.checkpoint import (
    CheckpointError,
    is_complete,
    latest_checkpoint,
    list_checkpoints,
    load_module_weights,
    load_state_file,
    load_training_state,
    read_checkpoint_config,
    resolve_resume,
    save_checkpoint,
)
from sweettok.training.ema import EMA
from sweettok.training.rng import capture_rng_state, restore_rng_state
from sweettok.training.schedule import OptimizerConfig, ScheduleConfig, build_adamw, build_scheduler


class Net(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.lin = nn.Linear(3, width)
        self.norm = nn.LayerNorm(width)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        return self.norm(self.lin(x))


def _trained(seed=0):
    torch.manual_seed(seed)
    net = Net()
    opt = build_adamw(net, OptimizerConfig(lr=1e-2))
    sched = build_scheduler(opt, ScheduleConfig(total_steps=10, warmup_steps=2))
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 3)).pow(2).mean().backward()
        opt.step()
        sched.step()
    net.count += 3
    return net, opt, sched


def _save(tmp_path, step, net, opt, sched, **kw):
    state = {
        "step": step,
        "optimizers": {"model": opt.state_dict()},
        "schedulers": {"model": sched.state_dict()},
        "rng": [capture_rng_state()],
    }
    return save_checkpoint(
        tmp_path, step, model_state=net.state_dict(), model_config={"width": 4}, training_state=state, **kw
    )


def test_round_trip_weights_optimizer_scheduler_rng(tmp_path):
    net, opt, sched = _trained()
    ema = EMA(net, 0.9)
    path = _save(tmp_path, 3, net, opt, sched, ema_state=ema.state_dict(), provenance={"data_sha256": "abc"})
    assert path.name == "step_00000003" and is_complete(path, verify_checksums=True)
    meta = read_checkpoint_config(path)
    assert meta["format_version"] == 1 and meta["step"] == 3
    assert meta["model_config"] == {"width": 4} and meta["provenance"] == {"data_sha256": "abc"}
    assert set(meta["files"]) == {"model.safetensors", "ema.safetensors", "training_state.pt"}

    fresh, fresh_opt, fresh_sched = _trained(seed=1)
    load_module_weights(fresh, path / "model.safetensors")
    for (k, a), b in zip(net.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    state = load_training_state(path)  # weights_only=True inside
    fresh_opt.load_state_dict(state["optimizers"]["model"])
    fresh_sched.load_state_dict(state["schedulers"]["model"])
    assert fresh_sched.last_epoch == 3 and fresh_sched.get_last_lr() == sched.get_last_lr()
    x = torch.randn(5, 3)
    for o, n in ((opt, net), (fresh_opt, fresh)):  # one more identical step on each
        o.zero_grad()
        n(x).pow(2).mean().backward()
        o.step()
    assert torch.equal(net.lin.weight, fresh.lin.weight)
    ema2 = EMA(fresh, 0.9)
    ema2.load_state_dict(load_state_file(path / "ema.safetensors"))
    assert torch.equal(ema2.shadow["lin.weight"], ema.shadow["lin.weight"])


def test_training_state_is_weights_only_loadable_and_rng_restores(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    rng = capture_rng_state()
    expected = (random.random(), np.random.rand(), np.random.randn(), torch.rand(1).item())
    torch.save({"rng": rng}, tmp_path / "s.pt")
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), np.random.randn(), torch.rand(1).item()) == expected


def test_strict_loading_names_keys_and_shapes(tmp_path):
    net, opt, sched = _trained()
    path = _save(tmp_path, 1, net, opt, sched)

    class Other(Net):
        def __init__(self):
            super().__init__()
            self.extra = nn.Linear(2, 2)

    with pytest.raises(CheckpointError, match=r"missing keys \['extra.bias', 'extra.weight'\]"):
        load_module_weights(Other(), path / "model.safetensors")

    class Fewer(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4)

    with pytest.raises(CheckpointError, match=r"unexpected keys \['count', 'norm.bias', 'norm.weight'\]"):
        load_module_weights(Fewer(), path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"lin.weight: checkpoint \(4, 3\) vs model \(6, 3\)"):
        load_module_weights(Net(width=6), path / "model.safetensors")


def test_partial_directories_are_never_picked(tmp_path):
    net, opt, sched = _trained()
    good = _save(tmp_path, 5, net, opt, sched)
    # A crash mid-save leaves a hidden temporary; a copy without config.json, or with a
    # truncated file, does not look complete either.
    (tmp_path / ".tmp-step_00000009-123-abcd").mkdir()
    (tmp_path / ".tmp-step_00000009-123-abcd" / "model.safetensors").write_bytes(b"x")
    no_config = tmp_path / "step_00000007"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    truncated = tmp_path / "step_00000008"
    truncated.mkdir()
    for f in good.iterdir():
        (truncated / f.name).write_bytes(f.read_bytes())
    (truncated / "training_state.pt").write_bytes(b"short")
    assert latest_checkpoint(tmp_path) == good
    assert resolve_resume("auto", tmp_path) == good
    assert resolve_resume("never", tmp_path) is None
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        resolve_resume(str(truncated), tmp_path)
    assert latest_checkpoint(tmp_path / "nothing-here") is None


def test_failed_save_leaves_nothing_complete(tmp_path, monkeypatch):
    net, opt, sched = _trained()
    first = _save(tmp_path, 1, net, opt, sched)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", boom)  # dies after model.safetensors is written
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2, net, opt, sched)
    assert latest_checkpoint(tmp_path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001"]


def test_keep_last_and_resave(tmp_path):
    net, opt, sched = _trained()
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, net, opt, sched, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]
    net.count += 1
    again = _save(tmp_path, 4, net, opt, sched, keep_last=2)
    assert load_state_file(again / "model.safetensors")["count"].item() == 4
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_tied_weights_and_bad_inputs(tmp_path):
    net = Net()
    state = dict(net.state_dict())
    state["tied"] = state["lin.weight"]  # aliasing storage, as tied embeddings do
    path = save_checkpoint(tmp_path, 0, model_state=state, model_config={})
    assert torch.equal(load_state_file(path / "model.safetensors")["tied"], net.lin.weight)
    with pytest.raises(TypeError, match="only tensors"):
        save_checkpoint(tmp_path, 1, model_state={"a": 3}, model_config={})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, 1, model_state=state, model_config={"f": object()})
    bad = tmp_path / "step_00000000"
    meta = json.loads((bad / "config.json").read_text())
    meta["format_version"] = 99
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format_version 99"):
        read_checkpoint_config(bad)
    assert not is_complete(bad)
