"""A tiny exported video tokenizer (random weights) and test media for the API and command tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from sweettok.data.synthetic import SyntheticConfig, draw_spec, render_video, write_mp4
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig
from sweettok.models.sweettok import SweetTok
from sweettok.models.tokenizer import VideoTokenizer, save_model

TINY = dict(input_frames=17, resolution=32, patch_size=8, width=32, heads=2, mlp_ratio=2.0,
            enc_spatial_depth=1, enc_temporal_depth=1, dec_spatial_depth=1, dec_temporal_depth=1,
            dec_temporal_after=[1], spatial_queries=4, temporal_query_grid=2, temporal_queries_per_cell=2,
            codebook_dim=8, gcn_hidden=16, proxy_vocab_size=40, head_hidden=32)


def make_tokenizer(seed: int = 0, **changes) -> VideoTokenizer:
    torch.manual_seed(seed)
    cfg = SweetTokConfig.from_dict({**TINY, **changes})
    prior = CodebookPrior.random(seed=1)
    proxy = ProxyTokenizer(ProxyTokenizerConfig(hidden_dim=16, num_blocks=1, codebook_size=40, norm_groups=4,
                                                sample_buffer_size=64))
    return VideoTokenizer(SweetTok(cfg, prior), proxy).eval()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """An exported tiny video tokenizer."""
    path = tmp_path_factory.mktemp("ckpt") / "tokenizer"
    save_model(make_tokenizer(0), path, provenance={"step": 0, "note": "random weights, for tests"})
    return path


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory) -> Path:
    """Same architecture, other weights."""
    path = tmp_path_factory.mktemp("ckpt_other") / "tokenizer"
    save_model(make_tokenizer(1), path)
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """A 40-frame 100x72 test video of the embedded dataset (mp4), its middle frame (png), and bad files."""
    d = tmp_path_factory.mktemp("media")
    cfg = dataclasses.replace(SyntheticConfig.from_dict({}), frames=40, height=72, width=100)
    frames = render_video(draw_spec(cfg, "Orbit", cfg.groups, 1), cfg)
    write_mp4(d / "clip.mp4", frames, fps=25)
    from PIL import Image

    Image.fromarray(frames[20]).save(d / "frame.png")
    (d / "notes.mp4").write_text("these are my notes, not a video\n" * 20)
    data = (d / "clip.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    png = (d / "frame.png").read_bytes()
    (d / "broken.png").write_bytes(png[: len(png) // 2])
    np.save(d / "frames.npy", frames)
    return {"video": d / "clip.mp4", "image": d / "frame.png", "text": d / "notes.mp4",
            "truncated": d / "truncated.mp4", "broken_png": d / "broken.png", "frames": d / "frames.npy",
            "dir": d}


@pytest.fixture(scope="session")
def build_tokenizer():
    """``build_tokenizer(seed, **config_changes)``: a tiny VideoTokenizer with random weights."""
    return make_tokenizer
