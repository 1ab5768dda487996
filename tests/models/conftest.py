"""Fixtures for the SweetTok model tests: a tiny config and a small random prior (one_thread: tests/conftest.py)."""

from __future__ import annotations

import pytest

from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig

TINY_MODEL = dict(
    input_frames=17, resolution=32, patch_size=8, width=32, heads=2, mlp_ratio=2.0,
    enc_spatial_depth=2, enc_temporal_depth=1, dec_spatial_depth=2, dec_temporal_depth=1,
    spatial_queries=6, temporal_query_grid=2, temporal_queries_per_cell=2,
    codebook_dim=8, gcn_hidden=16, gcn_dropout=0.1, proxy_vocab_size=40, head_hidden=32,
)


@pytest.fixture
def tiny_model_cfg() -> SweetTokConfig:
    """4x4 patch grid, temporal cells of 2x2 locations with 2 queries each (Lt = 8), Ls = 6."""
    return SweetTokConfig(**TINY_MODEL)


@pytest.fixture
def small_prior() -> CodebookPrior:
    """12 adjectives + 20 nouns, 10 adverbs + 16 verbs, 32-d embeddings."""
    return CodebookPrior.random(seed=1)
