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


def _temporal_latents(cfg: SweetTokConfig, first_difference: str, clips: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    cfg = cfg.replace(first_difference=first_difference)
    embed, encoder = PatchEmbed(cfg), DecoupledQueryEncoder(cfg)
    still = embed.still_tube(clips) if first_difference == "still_tube" else None
    with torch.no_grad():
        _, zt = encoder(embed(clips), still)
    return zt


def test_first_difference_of_a_still_clip_is_zero_motion(one_thread, tiny_model_cfg):
    # Two different still clips (every frame = frame 0): with the still-tube reference every
    # temporal difference is exactly zero, so their temporal latents are the same; with the
    # frame-0 patch features as reference the first difference mixes two embedders and carries
    # the clips' appearance into the temporal tokens.
    frames = torch.rand(2, 3, 1, 32, 32, generator=torch.Generator().manual_seed(4)) - 0.5
    clips = frames.expand(-1, -1, 5, -1, -1).contiguous()
    still = _temporal_latents(tiny_model_cfg, "still_tube", clips)
    mixed = _temporal_latents(tiny_model_cfg, "mixed", clips)
    assert (still[0] - still[1]).abs().max() < 1e-5
    assert (mixed[0] - mixed[1]).norm(dim=-1).mean() > 0.1


def test_still_tube_reference_sees_motion_in_the_first_tube(one_thread, tiny_model_cfg):
    # Moving only frames 1-4 (the first tube) of still clips gives motion in the first difference.
    gen = torch.Generator().manual_seed(5)
    clips = (torch.rand(2, 3, 1, 32, 32, generator=gen) - 0.5).expand(-1, -1, 5, -1, -1).contiguous()
    moved = clips.clone()
    moved[:, :, 1:] = torch.roll(moved[:, :, 1:], shifts=4, dims=-1)
    base = _temporal_latents(tiny_model_cfg, "still_tube", clips)
    shifted = _temporal_latents(tiny_model_cfg, "still_tube", moved)
    assert (base - shifted).norm(dim=-1).mean() > 0.1


def test_temporal_anchor_lets_the_temporal_trunk_see_the_first_frame(one_thread, tiny_model_cfg):
    # Two still clips: without the anchor their temporal latents are equal (zero motion, nothing
    # else); with it the trunk reads frame 0 as step 0 and the latents differ by appearance.
    frames = torch.rand(2, 3, 1, 32, 32, generator=torch.Generator().manual_seed(4)) - 0.5
    clips = frames.expand(-1, -1, 5, -1, -1).contiguous()
    torch.manual_seed(0)
    cfg = tiny_model_cfg.replace(first_difference="still_tube", temporal_anchor=True)
    embed, encoder = PatchEmbed(cfg), DecoupledQueryEncoder(cfg)
    with torch.no_grad():
        _, zt = encoder(embed(clips), embed.still_tube(clips))
    assert (zt[0] - zt[1]).norm(dim=-1).mean() > 0.1


def test_temporal_anchor_needs_the_still_tube_reference(tiny_model_cfg):
    with pytest.raises(ValueError, match="temporal_anchor"):
        tiny_model_cfg.replace(first_difference="mixed", temporal_anchor=True)


def _decoder_change(cfg: SweetTokConfig, anchor: bool, seed: int) -> torch.Tensor:
    """Mean change of the decoder's logits per output cell ``(g, g)`` when only spatial latent 0 changes."""
    from sweettok.models.decoder import DecoupledQueryDecoder

    torch.manual_seed(seed)
    decoder = DecoupledQueryDecoder(cfg.replace(decoder_spatial_anchor=anchor)).eval()
    gen = torch.Generator().manual_seed(100 + seed)
    zs = torch.randn(8, cfg.spatial_queries, cfg.latent_dim, generator=gen)
    zt = torch.randn(8, cfg.temporal_queries, cfg.latent_dim, generator=gen)
    zs2 = zs.clone()
    zs2[:, 0] = torch.randn(8, cfg.latent_dim, generator=gen)
    with torch.no_grad():
        change = (decoder(zs2, zt, slices=3) - decoder(zs, zt, slices=3)).abs()  # (B, V, S, g, g)
    return change.mean(dim=(0, 1, 2))


@pytest.mark.parametrize("seed", [0, 1])
def test_decoder_anchor_routes_each_spatial_latent_to_its_own_region(one_thread, tiny_model_cfg, seed):
    # Ls = 6 on a 4 x 4 grid: regions of a 2 x 3 layout, region 0 = cells rows 0-1, columns 0-1.
    # With the anchor, changing latent 0 moves those cells' logits far more than the others'
    # already at initialisation; without it, every cell finds latent 0 by attention alike.
    own = torch.zeros(4, 4, dtype=torch.bool)
    own[:2, :2] = True
    anchored = _decoder_change(tiny_model_cfg, True, seed)
    plain = _decoder_change(tiny_model_cfg, False, seed)
    assert anchored[own].mean() > 3 * anchored[~own].mean(), anchored
    assert plain[own].mean() < 1.5 * plain[~own].mean(), plain
    with pytest.raises(ValueError, match="decoder_spatial_anchor"):
        tiny_model_cfg.replace(decoder_spatial_anchor=1)
