"""Patch embedding geometry: which frames feed which slice, input checks."""

from __future__ import annotations

import pytest
import torch

from sweettok.models.patchify import PatchEmbed, as_clip


def test_image_and_clip_shapes(tiny_model_cfg):
    torch.manual_seed(0)
    embed = PatchEmbed(tiny_model_cfg)
    img = torch.rand(2, 3, 32, 32) - 0.5
    assert as_clip(img, tiny_model_cfg).shape == (2, 3, 1, 32, 32)
    assert embed(as_clip(img, tiny_model_cfg)).shape == (2, 1, 4, 4, 32)
    clip = torch.rand(2, 3, 9, 32, 32) - 0.5
    assert embed(clip).shape == (2, 3, 4, 4, 32)


def test_each_slice_sees_only_its_frames_and_patch(tiny_model_cfg):
    """Slice 0 = frame 0; slice j = frames 4j-3 .. 4j; cell (h, w) = pixels of that 8x8 patch."""
    torch.manual_seed(0)
    embed = PatchEmbed(tiny_model_cfg).eval()
    clip = torch.rand(1, 3, 9, 32, 32) - 0.5
    base = embed(clip)
    bumped = clip.clone()
    # a pattern, not a constant: the input LayerNorm removes a patch's mean
    bumped[:, :, 6, 8:16, 16:24] += 0.3 * torch.rand(3, 8, 8)  # frame 6 -> slice 2; patch row 1, column 2
    out = embed(bumped)
    changed = (out - base).abs().amax(dim=-1) > 1e-6  # (1, S, 4, 4)
    expected = torch.zeros_like(changed)
    expected[0, 2, 1, 2] = True
    assert torch.equal(changed, expected)


@pytest.mark.parametrize("frames", [2, 4, 8, 16])
def test_rejects_t_not_one_plus_4k(tiny_model_cfg, frames):
    with pytest.raises(ValueError, match=rf"T={frames} frames"):
        as_clip(torch.zeros(1, 3, frames, 32, 32), tiny_model_cfg)


def test_rejects_wrong_size_channels_and_rank(tiny_model_cfg):
    with pytest.raises(ValueError, match="frames are 32x48"):
        as_clip(torch.zeros(1, 3, 5, 32, 48), tiny_model_cfg)
    with pytest.raises(ValueError, match="C=1 channels"):
        as_clip(torch.zeros(1, 1, 5, 32, 32), tiny_model_cfg)
    with pytest.raises(ValueError, match=r"got shape \(3, 32, 32\)"):
        as_clip(torch.zeros(3, 32, 32), tiny_model_cfg)
    with pytest.raises(ValueError, match="float tensor"):
        as_clip(torch.zeros(1, 3, 5, 32, 32, dtype=torch.uint8), tiny_model_cfg)


def test_patch_input_norm_hides_patch_brightness(tiny_model_cfg):
    """With the paper's input LayerNorm a constant added to one whole patch is invisible;
    without it the patch's embedding moves."""
    img = torch.rand(1, 3, 1, 32, 32) - 0.5
    brighter = img.clone()
    brighter[:, :, :, 0:8, 0:8] += 0.2
    for norm, visible in ((True, False), (False, True)):
        torch.manual_seed(0)
        embed = PatchEmbed(tiny_model_cfg.replace(patch_input_norm=norm))
        diff = (embed(img) - embed(brighter)).abs().amax().item()
        assert (diff > 1e-4) == visible, (norm, diff)
