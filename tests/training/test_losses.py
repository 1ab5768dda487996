"""The patch-colour term: MSE of the mean colours of each frame's squares."""

from __future__ import annotations

import pytest
import torch

from sweettok.training.losses import patch_colour_mse


def test_texture_around_the_same_mean_costs_nothing_and_a_colour_shift_costs_its_square():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 5, 16, 16) - 0.5
    # a +-0.2 checkerboard inside every 4 x 4 square keeps each square's mean
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 0.4 - 0.2
    assert patch_colour_mse(target + checker, target, 4).item() == pytest.approx(0.0, abs=1e-12)
    # plain MSE sees the checkerboard; the colour term does not
    assert torch.mean(checker ** 2).item() == pytest.approx(0.04)
    shifted = target.clone()
    shifted[:, 1] += 0.1  # green up by 0.1 everywhere: one channel of three
    assert patch_colour_mse(shifted, target, 4).item() == pytest.approx(0.01 / 3, rel=1e-5)


def test_images_and_clips_agree_frame_by_frame():
    torch.manual_seed(1)
    a, b = torch.rand(3, 3, 2, 8, 8), torch.rand(3, 3, 2, 8, 8)
    per_frame = [patch_colour_mse(a[:, :, t], b[:, :, t], 8) for t in range(2)]
    assert patch_colour_mse(a, b, 8).item() == pytest.approx(sum(per_frame).item() / 2, rel=1e-6)


def test_gradient_reaches_the_reconstruction():
    recon = torch.zeros(1, 3, 8, 8, requires_grad=True)
    patch_colour_mse(recon, torch.full((1, 3, 8, 8), 0.3), 4).backward()
    # d/dx mean((mean(x) - 0.3)^2) over 12 squares of 16 pixels: 2 * (-0.3) / 12 / 16 per pixel
    assert torch.allclose(recon.grad, torch.full_like(recon, -0.6 / 12 / 16))


@pytest.mark.parametrize("shape, patch", [((1, 3, 8, 8), 3), ((1, 3, 8), 4)])
def test_bad_shapes_are_named(shape, patch):
    with pytest.raises(ValueError):
        patch_colour_mse(torch.zeros(shape), torch.zeros(shape), patch)


def _proxy_cfg(run_dir, **extra):
    from sweettok.training.proxy_training import ProxyTrainingConfig

    return ProxyTrainingConfig.from_dict({
        "model": {"hidden_dim": 8, "num_blocks": 1, "norm_groups": 4, "codebook_size": 16, "restart_every": 0,
                  "sample_buffer_size": 32, "patch_size": 8},
        "loop": {"total_steps": 3, "batch_size": 2, "checkpoint_every": 3, "progress": False, "device": "cpu",
                 "log_every": 1},
        "schedule": {"warmup_steps": 1}, "lpips_weight": 0.0, "run_dir": str(run_dir), **extra})


def test_the_proxy_trains_with_the_colour_term_and_logs_it(tmp_path, one_thread):
    import pandas as pd
    from safetensors.torch import load_file

    from sweettok.training.proxy_training import train_proxy

    clips = torch.rand(4, 3, 5, 16, 16, generator=torch.Generator().manual_seed(0)) - 0.5
    data = [{"clip": c} for c in clips]
    weights = {}
    for w in (0.0, 4.0):
        train_proxy(data, _proxy_cfg(tmp_path / str(w), colour_weight=w))
        weights[w] = load_file(str(tmp_path / str(w) / "step_00000003" / "model.safetensors"))
        logged = pd.read_csv(tmp_path / str(w) / "train_log.csv")
        assert ("colour" in logged.columns) == (w > 0)
    assert not torch.equal(weights[0.0]["embed_first.weight"], weights[4.0]["embed_first.weight"])
    with pytest.raises(ValueError, match="colour_weight"):
        _proxy_cfg(tmp_path / "bad", colour_weight=-1)
