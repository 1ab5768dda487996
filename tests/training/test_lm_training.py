"""Training the token LM: it learns class-dependent ids, resumes exactly, and trains under torchrun (gloo)."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from sweettok.models.lm import LMVocabulary, TokenLM, TokenLMConfig
from sweettok.training.checkpoint import latest_checkpoint, load_state_file
from sweettok.training.lm_training import LMTrainingConfig, SequenceDataset, evaluate_nll, train_lm, unigram_baselines
from torchrun_launch import run_torchrun

LAYOUT = dict(n_adj=6, n_noun=8, n_adv=5, n_verb=7, topk=2, spatial_tokens=3, temporal_tokens=4, classes=3)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids whose every head word is fixed by the class and every modifier by the previous id (plus noise)."""
    vocab = LMVocabulary(TokenLMConfig(**LAYOUT))
    ranges = vocab.position_ranges()
    clip = ranges[1 : vocab.sep_position] + ranges[vocab.sep_position + 1 :]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, LAYOUT["classes"], n)
    ids = np.zeros((n, len(clip)), np.int64)
    for i in range(n):
        prev = 0
        for j, (lo, hi) in enumerate(clip):
            is_head = (j % 3) == 2
            value = lo + ((labels[i] * 2 + j) if is_head else (prev + j)) % (hi - lo)
            if rng.random() < 0.1:
                value = rng.integers(lo, hi)
            ids[i, j] = prev = value
    return ids, labels


def _cfg(run_dir, steps: int, **loop) -> LMTrainingConfig:
    return LMTrainingConfig.from_dict({
        "model": {"width": 32, "depth": 2, "heads": 2},
        "optimizer": {"lr": 3e-3, "betas": [0.9, 0.96], "weight_decay": 0.03},
        "schedule": {"warmup_steps": min(5, steps)},
        "loop": {"total_steps": steps, "batch_size": 8, "log_every": 5, "checkpoint_every": 5, "device": "cpu",
                 "threads": 1, "progress": False, "seed": 1, **loop},
        "eval_every": 10, "ema_decay": 0.9, "cond_dropout": 0.1, "run_dir": str(run_dir),
    })


def test_the_lm_learns_class_dependent_ids(tmp_path, one_thread):
    train_ids, train_labels = _data(96, 0)
    val_ids, val_labels = _data(24, 1)
    torch.manual_seed(0)
    model = TokenLM(TokenLMConfig(**LAYOUT, width=32, depth=2, heads=2))
    train_set = SequenceDataset(train_ids, train_labels, model.vocab)
    val_set = SequenceDataset(val_ids, val_labels, model.vocab)
    train_lm(model, train_set, val_set, _cfg(tmp_path / "run", 120))
    log = pd.read_csv(tmp_path / "run" / "train_log.csv").dropna(subset=["val/nll"])
    assert log["step"].tolist() == list(range(10, 121, 10))
    assert log["val/nll"].iloc[-1] < 0.5 * log["val/nll"].iloc[0]
    model.eval()
    val = evaluate_nll(model, val_set.seq)
    baselines = unigram_baselines(train_ids, val_ids, model.vocab)
    assert val < 0.6 * baselines["position_unigram_loss"], (val, baselines)
    nulled = val_set.seq.clone()
    nulled[:, 0] = model.vocab.null_class
    # the head words depend on the class; without it the first head is a guess among the 3 classes
    # (about log 3 = 1.1 nats over 21 ids, ~0.05 per id; later heads follow from the first)
    assert evaluate_nll(model, nulled) > val + 0.02


def test_resume_gives_the_same_weights_and_validation(tmp_path, one_thread, monkeypatch):
    import sweettok.training.lm_training as lm_training

    ids, labels = _data(40, 2)
    val_ids, val_labels = _data(8, 3)

    def run(run_dir):
        torch.manual_seed(0)
        model = TokenLM(TokenLMConfig(**LAYOUT, width=32, depth=2, heads=2))
        train_lm(model, SequenceDataset(ids, labels, model.vocab), SequenceDataset(val_ids, val_labels, model.vocab),
                 _cfg(run_dir, 20))
        return model

    straight = run(tmp_path / "a")
    real = lm_training.evaluate_nll

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    # killed in the validation after step 10 (before step 10's checkpoint) ...
    monkeypatch.setattr(lm_training, "evaluate_nll", crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b")
    assert latest_checkpoint(tmp_path / "b").name == "step_00000005"
    monkeypatch.setattr(lm_training, "evaluate_nll", real)
    resumed = run(tmp_path / "b")  # ... and resumed from step 5
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    ema_a = load_state_file(tmp_path / "a" / "step_00000020" / "ema.safetensors")
    ema_b = load_state_file(tmp_path / "b" / "step_00000020" / "ema.safetensors")
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    log_a = pd.read_csv(tmp_path / "a" / "train_log.csv")
    log_b = pd.read_csv(tmp_path / "b" / "train_log.csv")
    assert np.allclose(log_a["val/nll"].dropna(), log_b["val/nll"].dropna(), rtol=0, atol=1e-6)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="lm.training.model"):
        LMTrainingConfig.from_dict({"model": {"widht": 3}})
    with pytest.raises(ValueError, match="cond_dropout"):
        LMTrainingConfig.from_dict({"cond_dropout": 1.0})


WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    sys.path.insert(0, {tests!r})
    from test_lm_training import LAYOUT, _cfg, _data
    from sweettok.models.lm import TokenLM, TokenLMConfig
    from sweettok.training.lm_training import SequenceDataset, train_lm

    torch.set_num_threads(1)
    args = json.loads(sys.argv[1])
    torch.manual_seed(0)  # the same initial weights on both ranks
    model = TokenLM(TokenLMConfig(**LAYOUT, width=32, depth=2, heads=2))
    ids, labels = _data(32, 4)
    val_ids, val_labels = _data(8, 5)
    train_lm(model, SequenceDataset(ids, labels, model.vocab), SequenceDataset(val_ids, val_labels, model.vocab),
             _cfg(args["run_dir"], 4, checkpoint_every=4, log_every=2))
    rank = int(os.environ["RANK"])
    save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, os.path.join(args["out"], f"rank{{rank}}.safetensors"))
    """
)


def test_lm_under_torchrun_two_gloo_processes(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(tests=os.path.dirname(__file__)))
    args = {"run_dir": str(tmp_path / "run"), "out": str(tmp_path)}
    run_torchrun(worker, args)
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    saved = load_state_file(latest_checkpoint(tmp_path / "run") / "model.safetensors")
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k  # gradients averaged over the ranks
        assert torch.equal(saved[k], w0[k]), k
    log = pd.read_csv(tmp_path / "run" / "train_log.csv")
    assert log["step"].tolist() == [2, 4] and np.isfinite(log["val/nll"].iloc[-1])
