"""The whole phase-1 step trains: a tiny model memorises one clip's random proxy ids."""

from __future__ import annotations

import csv

import pytest

from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.overfit import overfit_one_clip, write_curve

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cross_entropy_falls_tenfold(tmp_path):
    cfg = SweetTokConfig(
        input_frames=5, resolution=32, patch_size=8, width=64, heads=2, enc_spatial_depth=1,
        enc_temporal_depth=1, dec_spatial_depth=1, dec_temporal_depth=1, spatial_queries=8,
        codebook_dim=8, gcn_hidden=16, proxy_vocab_size=64, head_hidden=64,
    )
    result = overfit_one_clip(cfg, CodebookPrior.random(), steps=100, lr=3e-3, seed=0)
    assert len(result.ce) == 100
    assert 3.5 < result.ce[0] < 4.8  # about ln(64) = 4.16 at initialisation
    assert result.ce[-1] * 10 <= result.ce[0]
    assert result.mlc[-1] < result.mlc[0]
    csv_path, png_path = write_curve(result, tmp_path)
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 100 and float(rows[-1]["cross_entropy"]) == pytest.approx(result.ce[-1], abs=1e-6)
    assert set(result.perplexity) == {"adj", "noun", "adv", "verb"}
    assert 1.0 <= float(rows[0]["noun_perplexity"]) <= 8.0 + 1e-6  # 8 spatial tokens pick at most 8 of 20 nouns
    assert png_path.stat().st_size > 5_000 and png_path.read_bytes()[:4] == b"\x89PNG"
