"""SweetTokConfig validation, (de)serialisation, derived sizes and the two YAML profiles."""

from __future__ import annotations

import pytest

from sweettok.cli import load_model_config
from sweettok.models.config import SweetTokConfig, evenly_spaced_after


def test_round_trip_through_dict():
    cfg = SweetTokConfig(dec_temporal_after=[1, 2], temporal_query_grid=4)
    d = cfg.to_dict()
    assert d["dec_temporal_after"] == [1, 2]
    assert SweetTokConfig.from_dict(d) == cfg
    assert cfg.dec_temporal_after == (1, 2)  # lists from YAML become tuples


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"^model\.depth: unknown parameter; known: .*; "
                                         r"model\.wdith: unknown parameter; did you mean 'width'\?$"):
        SweetTokConfig.from_dict({"wdith": 128, "depth": 3})


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"width": 130, "heads": 4}, "width"),
        ({"resolution": 60}, "resolution"),
        ({"input_frames": 16}, "input_frames"),
        ({"temporal_query_grid": 3}, "temporal_query_grid"),
        ({"dec_temporal_after": [1]}, "dec_temporal_after"),
        ({"dec_temporal_after": [3, 1]}, "dec_temporal_after"),
        ({"dec_temporal_after": [1, 9]}, "dec_temporal_after"),
        ({"dropout": 1.0}, "dropout"),
        ({"gcn_dropout": -0.1}, "gcn_dropout"),
        ({"beta": 0}, "beta"),
        ({"heads": True}, "heads"),
        ({"patch_input_norm": 1}, "patch_input_norm"),
        ({"spatial_query_anchor": "yes"}, "spatial_query_anchor"),
        ({"topk": 0}, "topk"),
        ({"patch_size": "8"}, "patch_size"),
        ({"enc_temporal_depth": 0}, "enc_temporal_depth"),
        ({"dec_temporal_depth": 5, "dec_spatial_depth": 4}, "dec_temporal_depth"),
        ({"attention": "linear"}, "attention"),
        ({"feed_forward": "swiglu"}, "feed_forward"),
        ({"peg": True}, "peg"),
        ({"spatial_trunk_input": "middle"}, "spatial_trunk_input"),
        ({"attention_scale": 0.0}, "attention_scale"),
        ({"null_kv": -1}, "null_kv"),
        ({"bias": "no"}, "bias"),
        ({"video_position_tables": False}, "video_position_tables"),  # nothing else places slices
        ({"rope": True, "width": 24, "heads": 4}, "rope"),  # head width 6 is not a multiple of 4
        ({"window_layers": [1, 2, 3, 4]}, "window_layers"),  # no layer left to read the trunk
        ({"window_layers": [2, 1]}, "window_layers"),
        ({"window_layers": [5]}, "window_layers"),
        ({"window_layers": [1], "window_size": 3}, "window_layers"),  # the 8 x 8 grid is no multiple of 3
    ],
)
def test_validation_names_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"^SweetTokConfig\.{field}: "):
        SweetTokConfig(**changes)


def test_image_only_config_is_valid():
    cfg = SweetTokConfig(input_frames=1, enc_temporal_depth=0, dec_temporal_depth=0)
    assert not cfg.has_temporal
    assert cfg.num_latent_tokens(1) == cfg.spatial_queries
    with pytest.raises(ValueError, match="T=5"):
        cfg.check_frames(5)


def test_derived_sizes():
    cfg = SweetTokConfig(resolution=64, patch_size=8, spatial_queries=32, temporal_query_grid=4,
                         temporal_queries_per_cell=3, codebook_dim=16)
    assert cfg.grid_size == 8 and cfg.cell_size == 2 and cfg.temporal_queries == 48
    assert cfg.latent_dim == 32 and cfg.max_slices == 5
    assert cfg.num_latent_tokens(17) == 80 and cfg.num_latent_tokens(5) == 80
    assert cfg.num_latent_tokens(1) == 32
    assert cfg.ids_per_clip(9) == 240 and cfg.ids_per_clip(1) == 96
    assert [cfg.check_frames(t) for t in (1, 5, 9, 13, 17)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("frames", [0, 2, 4, 16, 18])
def test_bad_frame_counts_name_t(frames):
    with pytest.raises(ValueError, match=rf"T={frames} frames; SweetTok takes 1 \+ 4k"):
        SweetTokConfig().check_frames(frames)


def test_too_many_frames_rejected():
    with pytest.raises(ValueError, match="at most input_frames=17"):
        SweetTokConfig().check_frames(21)


def test_evenly_spaced_temporal_layers():
    assert evenly_spaced_after(8, 4) == (1, 3, 5, 7)
    assert evenly_spaced_after(4, 2) == (1, 3)
    assert evenly_spaced_after(3, 3) == (1, 2, 3)
    assert SweetTokConfig(dec_spatial_depth=6, dec_temporal_depth=2).temporal_after == (1, 4)


def test_yaml_profiles():
    base = load_model_config("base")
    paper = load_model_config("paper")
    assert (base.input_frames, base.resolution, base.patch_size, base.width) == (17, 64, 8, 128)
    assert (paper.resolution, paper.width, paper.heads) == (256, 512, 8)
    assert (paper.enc_spatial_depth, paper.enc_temporal_depth, paper.dec_spatial_depth, paper.dec_temporal_depth) == (
        8, 4, 8, 4)
    assert paper.temporal_after == (2, 4, 6, 8)  # the release's placement (its 0-based [1, 3, 5, 7])
    assert paper.num_latent_tokens(17) == 1280 and paper.ids_per_clip(17) == 3840
    assert paper.proxy_vocab_size == 8192 and paper.gcn_hidden == 512
    assert base.num_latent_tokens(17) == 96
