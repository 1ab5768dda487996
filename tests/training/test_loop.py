"""The generic training loop: exact resume after SIGKILL, 2-process DDP over gloo,
gradient accumulation, and per-part loss isolation for GAN training."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from sweettok.training.checkpoint import CheckpointError, latest_checkpoint, load_state_file
from sweettok.training.logs import read_log
from sweettok.training.loop import LoopConfig, StepOutput, TrainPart, train

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file
    from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig
    from sweettok.training import (EMA, LoopConfig, OptimizerConfig, ScheduleConfig, StepOutput,
                                   build_adamw, build_scheduler, train)

    torch.set_num_threads(1)
    args = json.loads(sys.argv[1])


    class Clips(torch.utils.data.Dataset):
        def __init__(self, n):
            g = torch.Generator().manual_seed(123)
            x = torch.rand(n, 3, 5, 4, 4, generator=g) - 0.5
            self.x = F.interpolate(x, size=(5, 16, 16), mode="trilinear")

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"index": i, "clip": self.x[i]}


    torch.manual_seed(0)
    cfg = ProxyTokenizerConfig(patch_size=4, hidden_dim=16, num_blocks=1, codebook_size=32, code_dim=4,
                               restart_every=4, sample_buffer_size=64)
    model = ProxyTokenizer(cfg)
    opt = build_adamw(model, OptimizerConfig(lr=2e-3))
    sched = build_scheduler(opt, ScheduleConfig(total_steps=args["steps"], warmup_steps=3))
    ema = EMA(model, 0.9)
    seen = []
    hang_at = args.get("hang_at")


    def step_fn(batch, ctx):
        if ctx.step == hang_at:
            open(args["marker"], "w").close()
            time.sleep(600)
        seen.extend(batch["index"].tolist())
        # Draws from numpy's and torch's global RNGs: resume must restore both.
        clip = batch["clip"] * float(np.random.uniform(0.9, 1.1)) + 0.01 * torch.randn_like(batch["clip"])
        out = ctx.modules["model"](clip)
        mse = F.mse_loss(out.reconstruction, clip)
        return StepOutput({"model": mse + out.vq_loss}, {"mse": mse})


    loop = LoopConfig(total_steps=args["steps"], batch_size=2, grad_accum_steps=2, checkpoint_every=args["every"],
                      keep_last=2, log_every=1, progress=False, seed=7, device="cpu")
    res = train(step_fn, model, opt, sched, ema, Clips(args["n"]), loop, run_dir=args["run_dir"],
                model_config=cfg.to_dict(), provenance={"test": "loop"})
    rank = int(os.environ.get("RANK", 0))
    state = {"model." + k: v.contiguous() for k, v in model.state_dict().items()}
    state.update({"ema." + k: v.contiguous() for k, v in ema.state_dict().items()})
    save_file(state, os.path.join(args["out"], f"final_rank{rank}.safetensors"))
    info = {"seen": seen, "resumed_from": str(res.resumed_from) if res.resumed_from else None, "step": res.step}
    with open(os.path.join(args["out"], f"info_rank{rank}.json"), "w") as f:
        json.dump(info, f)
    """
)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    path = tmp_path_factory.mktemp("worker") / "train_worker.py"
    path.write_text(WORKER)
    return path


def _env(**extra):
    env = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    env.update(KEDRO_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _launch(worker, args, **env):
    return subprocess.Popen(
        [sys.executable, str(worker), json.dumps(args)],
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def test_resume_after_sigkill_matches_uninterrupted_run(worker, tmp_path):
    common = dict(steps=20, every=5, n=12)
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "kill"
    ref_dir.mkdir()
    kill_dir.mkdir()
    marker = tmp_path / "hanging"
    # The victim blocks inside step 13: checkpoints 5 and 10 exist, steps 10-12 are lost.
    victim = _launch(
        worker, dict(common, run_dir=str(kill_dir / "run"), out=str(kill_dir), hang_at=13, marker=str(marker))
    )
    reference = _launch(worker, dict(common, run_dir=str(ref_dir / "run"), out=str(ref_dir)))
    deadline = time.time() + 90
    while not marker.exists():
        assert victim.poll() is None, victim.communicate()[0]
        assert time.time() < deadline, "victim never reached step 13"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert latest_checkpoint(kill_dir / "run").name == "step_00000010"
    assert not (kill_dir / "final_rank0.safetensors").exists()

    resumed = _launch(worker, dict(common, run_dir=str(kill_dir / "run"), out=str(kill_dir)))
    _finish(reference)
    _finish(resumed)
    info = json.loads((kill_dir / "info_rank0.json").read_text())
    assert info["resumed_from"].endswith("step_00000010") and info["step"] == 20
    # The resumed process consumed exactly the batches the reference used after step 10.
    ref_seen = json.loads((ref_dir / "info_rank0.json").read_text())["seen"]
    assert info["seen"] == ref_seen[10 * 4 :]

    a = load_file(str(ref_dir / "final_rank0.safetensors"))
    b = load_file(str(kill_dir / "final_rank0.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), rtol=1e-5, atol=1e-6), k
    assert int(a["model.restarted_total"]) == int(b["model.restarted_total"])
    # The log after resume continues the same curve (rows 11-13 were rewritten).
    _, ref_rows = read_log(ref_dir / "run" / "train_log.csv")
    _, res_rows = read_log(kill_dir / "run" / "train_log.csv")
    assert [r["step"] for r in res_rows] == [str(s) for s in range(1, 21)]
    for r1, r2 in zip(ref_rows, res_rows, strict=True):
        assert float(r1["loss/model"]) == pytest.approx(float(r2["loss/model"]), rel=1e-5)
    # The run really trained: the comparison is not between two barely-moved models.
    assert float(ref_rows[-1]["mse"]) < 0.5 * float(ref_rows[0]["mse"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_ddp(worker, tmp_path):
    port = str(_free_port())
    args = dict(steps=6, every=3, n=16, run_dir=str(tmp_path / "run"), out=str(tmp_path))
    procs = [
        _launch(worker, args, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        for r in (0, 1)
    ]
    for p in procs:
        _finish(p)
    w0 = load_file(str(tmp_path / "final_rank0.safetensors"))
    w1 = load_file(str(tmp_path / "final_rank1.safetensors"))
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k  # gradients and codebook restarts synchronised
    seen0 = json.loads((tmp_path / "info_rank0.json").read_text())["seen"]
    seen1 = json.loads((tmp_path / "info_rank1.json").read_text())["seen"]
    assert len(seen0) == len(seen1) == 6 * 2 * 2
    for epoch in range(3):  # 8 samples per rank per epoch: disjoint halves of the dataset
        a, b = set(seen0[8 * epoch : 8 * epoch + 8]), set(seen1[8 * epoch : 8 * epoch + 8])
        assert not a & b and a | b == set(range(16))
    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt.name == "step_00000006"
    saved = load_state_file(ckpt / "model.safetensors")
    assert all(torch.equal(saved[k], w0["model." + k]) for k in saved)
    rng = torch.load(ckpt / "training_state.pt", weights_only=True)["rng"]
    assert len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])


class Affine(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w]))

    def forward(self, x):
        return self.w * x


def test_grad_accumulation_matches_a_large_batch(tmp_path):
    data = torch.arange(8, dtype=torch.float32).view(8, 1) / 8

    def run(batch, accum, name):
        model = Affine(0.5)
        opt = torch.optim.SGD(model.parameters(), lr=0.3)
        cfg = LoopConfig(
            total_steps=2,
            batch_size=batch,
            grad_accum_steps=accum,
            grad_clip_norm=None,
            shuffle=False,
            checkpoint_every=10,
            progress=False,
            device="cpu",
        )
        train(
            lambda b, ctx: (ctx.modules["model"](b) - 1.0).pow(2).mean(),
            model,
            opt,
            None,
            None,
            data,
            cfg,
            run_dir=tmp_path / name,
            model_config={},
        )
        return model.w.item()

    big, accumulated = run(4, 1, "big"), run(2, 2, "acc")
    assert big == pytest.approx(accumulated, rel=1e-6)
    assert big != pytest.approx(0.5)


def test_each_loss_trains_only_its_part_and_late_parts_wait(tmp_path):
    x = torch.full((4, 1), 2.0)
    gen, disc = Affine(0.5), Affine(3.0)
    opt_g = torch.optim.SGD(gen.parameters(), lr=0.1)
    opt_d = torch.optim.SGD(disc.parameters(), lr=0.1)

    def step_fn(batch, ctx):
        fake = ctx.modules["model"](batch)
        losses = {"model": -ctx.raw["disc"](fake).mean()}  # adversarial term through raw D
        if ctx.step >= 1:  # discriminator starts at step 1
            losses["disc"] = ctx.modules["disc"](fake.detach()).mean() - ctx.modules["disc"](batch).mean()
        return StepOutput(losses)

    cfg = LoopConfig(total_steps=2, batch_size=4, grad_clip_norm=None, checkpoint_every=1, progress=False, device="cpu")
    res = train(
        step_fn,
        gen,
        opt_g,
        None,
        None,
        x,
        cfg,
        run_dir=tmp_path,
        model_config={},
        extra_parts={"disc": TrainPart(disc, opt_d)},
    )
    # step 0: g += 0.1 * d * 2 = 0.5 + 0.6 = 1.1; d untouched (no loss, and none leaked from G's).
    # step 1: g += 0.1 * 3 * 2 = 1.7;  d -= 0.1 * (g_old * 2 - 2) = 3 - 0.1 * 0.2 = 2.98
    assert gen.w.item() == pytest.approx(1.7)
    assert disc.w.item() == pytest.approx(2.98)
    step1 = tmp_path / "step_00000001"
    assert load_state_file(step1 / "disc.safetensors")["w"].item() == pytest.approx(3.0)
    assert res.checkpoint.name == "step_00000002"
    assert "loss/disc" in read_log(res.log_path)[0]

    with pytest.raises(KeyError, match="no optimiser"):
        train(
            lambda b, ctx: StepOutput({"critic": b.sum()}),
            Affine(1.0),
            torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=1),
            None,
            None,
            x,
            LoopConfig(total_steps=1, batch_size=4, progress=False, device="cpu"),
            run_dir=tmp_path / "bad",
            model_config={},
        )


def test_resume_refuses_a_run_of_another_model_configuration(tmp_path):
    # same parameter shapes, another meaning: resuming would go on silently with the wrong model
    data = torch.arange(8, dtype=torch.float32).view(8, 1) / 8

    def run(steps, model_config):
        model = Affine(0.5)
        cfg = LoopConfig(total_steps=steps, batch_size=4, grad_clip_norm=None, shuffle=False,
                         checkpoint_every=1, progress=False, device="cpu")
        result = train(lambda b, ctx: (ctx.modules["model"](b) - 1.0).pow(2).mean(), model,
                       torch.optim.SGD(model.parameters(), lr=0.3), None, None, data, cfg,
                       run_dir=tmp_path / "run", model_config=model_config)
        return result.step, model.w.item()

    first = run(2, {"kind": "affine", "norm": "group", "sizes": (1, 1)})
    # the same configuration resumes (a tuple saved as a JSON list is the same value)
    assert run(3, {"kind": "affine", "norm": "group", "sizes": [1, 1]})[0] == 3
    with pytest.raises(CheckpointError, match=r"another model configuration \(norm: 'group' -> 'channel'\)"):
        run(4, {"kind": "affine", "norm": "channel", "sizes": (1, 1)})
    assert first[0] == 2
