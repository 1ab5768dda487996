"""scripts/flat_colours.py: which clips count as flat backgrounds, and how their colour error is scored."""

import importlib.util
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "flat_colours.py"
_SPEC = importlib.util.spec_from_file_location("flat_colours", _PATH)
flat_colours = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(flat_colours)


def _clips() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    clips = (torch.rand(5, 3, 3, 16, 16, generator=g) - 0.5) * 0.8  # textured everywhere
    clips[1, :, 0, :4] = torch.tensor([0.1, -0.2, 0.3])[:, None, None]  # flat borders, one colour
    clips[1, :, 0, -4:] = torch.tensor([0.1, -0.2, 0.3])[:, None, None]
    clips[3, :, 0] *= 0.2  # low contrast, not flat
    return clips


def test_flattest_backgrounds_ranks_by_border_spread_and_takes_their_colour():
    picked, colours = flat_colours.flattest_backgrounds(_clips(), 2)
    assert picked == [1, 3]
    assert torch.allclose(colours[0], torch.tensor([0.1, -0.2, 0.3]))
    # the second colour is the mean of clip 3's borders
    first = _clips()[3, :, 0]
    want = torch.cat([first[:, :4].flatten(1), first[:, -4:].flatten(1)], 1).mean(1)
    assert torch.allclose(colours[1], want)


def test_flattest_backgrounds_rejects_frames_without_borders():
    with pytest.raises(ValueError, match="no 4-row"):
        flat_colours.flattest_backgrounds(torch.zeros(2, 3, 2, 6, 6), 1)


def test_colour_errors_clamps_and_measures_mean_colour_and_spread():
    colours = torch.tensor([[0.5, 0.0, -0.5], [0.2, 0.2, 0.2]])
    recon = colours[:, :, None, None, None].expand(-1, -1, 2, 4, 4).clone()
    recon[0] += 0.3  # overshoots to 0.8 in the red channel: clamped to 0.5 there
    recon[1, :, :, :2] += 0.1  # half the rows brighter: mean off by 0.05, spread > 0
    error, spread = flat_colours.colour_errors(recon, colours)
    assert error[0].item() == pytest.approx((0.0 + 0.3 + 0.3) / 3)
    assert error[1].item() == pytest.approx(0.05)
    assert spread[0].item() == pytest.approx(0.0)
    assert spread[1].item() > 0.04
