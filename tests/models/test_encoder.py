"""Spatial query anchoring: each anchored spatial token starts from its own region of the frame."""

from __future__ import annotations

import pytest
import torch

from sweettok.models.config import SweetTokConfig
from sweettok.models.encoder import DecoupledQueryEncoder, query_regions
from sweettok.models.patchify import PatchEmbed


@pytest.mark.parametrize("n, expected", [(32, (4, 8)), (256, (16, 16)), (6, (2, 3)), (7, (1, 7)), (1, (1, 1))])
def test_query_regions_is_the_most_square_factorisation(n, expected):
    assert query_regions(n) == expected


def _spatial_latents(cfg: SweetTokConfig, anchor: bool, frames: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    cfg = cfg.replace(spatial_query_anchor=anchor, patch_input_norm=False)
    embed, encoder = PatchEmbed(cfg), DecoupledQueryEncoder(cfg)
    with torch.no_grad():
        zs, _ = encoder(embed(frames))
    return zs


@pytest.mark.parametrize("seed", [0, 1])
def test_anchored_token_follows_its_own_region(one_thread, tiny_model_cfg, seed):
    # Tiny model: 32x32 frames, 4x4 patch grid, Ls = 6 -> regions of a 2 x 3 layout; the first
    # region is pooled from patch rows 0-1 and (adaptively) column 0-1, so it covers pixels
    # [0:16, 0:8] at least. Changing only those pixels must move token 0 far more than the rest.
    gen = torch.Generator().manual_seed(10 + seed)
    x = torch.rand(8, 3, 1, 32, 32, generator=gen) - 0.5
    x2 = x.clone()
    x2[..., :16, :8] = torch.rand(8, 3, 1, 16, 8, generator=gen) - 0.5
    moved = (_spatial_latents(tiny_model_cfg, True, x2, seed) - _spatial_latents(tiny_model_cfg, True, x, seed)).norm(dim=-1).mean(0)
    assert moved[0] > 3 * moved[1:].max(), moved


def test_anchoring_makes_spatial_tokens_depend_on_the_frame_at_initialisation(one_thread, tiny_model_cfg):
    # Spread of each token over 8 random frames, relative to the spread between the tokens of
    # one frame. Plain learned queries start dominated by their own identity (the failure the
    # anchor fixes: measured ratio ~0.15); anchored ones vary with the frame as much as
    # between themselves (~1.0).
    x = torch.rand(8, 3, 1, 32, 32, generator=torch.Generator().manual_seed(3)) - 0.5
    ratios = {}
    for anchor in (False, True):
        zs = _spatial_latents(tiny_model_cfg, anchor, x, seed=0)
        across_frames = (zs - zs.mean(0)).norm(dim=-1).mean()
        across_tokens = (zs - zs.mean(1, keepdim=True)).norm(dim=-1).mean()
        ratios[anchor] = float(across_frames / across_tokens)
    assert ratios[False] < 0.3 and ratios[True] > 0.7, ratios
