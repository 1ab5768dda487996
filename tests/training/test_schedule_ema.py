"""Warm-up + cosine schedule, AdamW parameter groups, and the EMA of weights."""

import math

import pytest
import torch
from torch import nn

from sweettok.training.ema import EMA, EMAConfig
from sweettok.training.schedule import (
    OptimizerConfig,
    ScheduleConfig,
    WarmupCosine,
    build_adamw,
    build_scheduler,
    weight_decay_groups,
)


def test_warmup_then_cosine_values():
    f = WarmupCosine(warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0)
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the cosine
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)
    assert WarmupCosine(0, 10)(0) == 1.0


def test_scheduler_drives_optimizer_and_restores_weights_only(tmp_path):
    model = nn.Linear(2, 2)
    opt = build_adamw(model, OptimizerConfig(lr=1e-3))
    sched = build_scheduler(opt, ScheduleConfig(total_steps=10, warmup_steps=2))
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([5e-4, 1e-3, 1e-3, 1e-3 * 0.5 * (1 + math.cos(math.pi / 8))])
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    assert state["last_epoch"] == 4 and "lr_lambdas" not in state
    opt2 = build_adamw(model, OptimizerConfig(lr=1e-3))
    sched2 = build_scheduler(opt2, ScheduleConfig(total_steps=10, warmup_steps=2))
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    for s in (sched, sched2):
        s.optimizer.step()
        s.step()
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())
    # A resumed run with a longer schedule keeps its step but follows the new cosine.
    opt3 = build_adamw(model, OptimizerConfig(lr=1e-3))
    longer = build_scheduler(opt3, ScheduleConfig(total_steps=18, warmup_steps=2))
    longer.load_state_dict(state)
    assert opt3.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 2 / 16)))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.queries = nn.Parameter(torch.zeros(3, 4))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_no_decay_on_norms_biases_embeddings_queries():
    decay, no_decay = weight_decay_groups(Tiny(), 0.05)
    assert decay["names"] == ["proj.weight"] and decay["weight_decay"] == 0.05
    assert sorted(no_decay["names"]) == ["embed.weight", "norm.bias", "norm.weight", "proj.bias", "queries"]
    opt = build_adamw(Tiny(), OptimizerConfig(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.05))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.defaults["betas"] == (0.9, 0.99)
    assert sum(len(g["params"]) for g in opt.param_groups) == 6  # frozen layer excluded


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"lr": 0}, "lr"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"eps": "x"}, "eps"),
        ({"implementation": "fast"}, "implementation"),
    ],
)
def test_optimizer_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"OptimizerConfig.{field}"):
        OptimizerConfig(**kwargs)


def test_adamw_implementation_auto_is_fused_on_the_cpu_and_all_agree():
    """`auto` picks the fused kernel on the CPU; fused, foreach and the per-tensor loop give the same
    update up to float rounding, and the weight-decay exemptions hold in each."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.Linear(32, 4))
    grads = [[torch.randn_like(p) for p in base.parameters()] for _ in range(20)]
    trained = {}
    for kind in ("auto", "fused", "foreach", "loop"):
        model = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.Linear(32, 4))
        model.load_state_dict(base.state_dict())
        opt = build_adamw(model, OptimizerConfig(lr=1e-2, weight_decay=0.5, implementation=kind))
        assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
        used = {k: opt.defaults[k] for k in ("fused", "foreach")}
        assert used == {"auto": {"fused": True, "foreach": None}, "fused": {"fused": True, "foreach": None},
                        "foreach": {"fused": None, "foreach": True}, "loop": {"fused": None, "foreach": False}}[kind]
        for step in grads:
            for p, g in zip(model.parameters(), step):
                p.grad = g.clone()
            opt.step()
        trained[kind] = torch.cat([p.detach().flatten() for p in model.parameters()])
    moved = (trained["loop"] - torch.cat([p.detach().flatten() for p in base.parameters()])).abs().max()
    assert moved > 0.1  # 20 steps at lr 1e-2 move the weights far beyond rounding
    for kind in ("auto", "fused", "foreach"):
        assert torch.allclose(trained[kind], trained["loop"], rtol=0, atol=1e-5), kind


def test_schedule_config_errors():
    with pytest.raises(ValueError, match="ScheduleConfig.warmup_steps"):
        ScheduleConfig(total_steps=5, warmup_steps=6)
    with pytest.raises(ValueError, match="ScheduleConfig.total_steps"):
        ScheduleConfig(total_steps=0)


def test_ema_arithmetic_buffers_and_copy():
    torch.manual_seed(0)
    model = nn.BatchNorm1d(2)
    ema = EMA(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    model.num_batches_tracked += 7
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], start + 1.0)  # 0.5 * w0 + 0.5 * (w0 + 2)
    assert ema.shadow["num_batches_tracked"].item() == 7  # integer buffers are copied
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], start + 1.5)
    fresh = nn.BatchNorm1d(2)
    ema.copy_to(fresh)
    assert torch.allclose(fresh.weight, start + 1.5)
    assert ema.num_updates == 2
    with pytest.raises(KeyError, match="unexpected keys"):
        ema.load_state_dict({**ema.state_dict(), "extra": torch.zeros(1)})
    with pytest.raises(ValueError, match="EMAConfig.decay"):
        EMAConfig(decay=1.0)
