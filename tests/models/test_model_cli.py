"""`sweettok info`, `sweettok bench model` and `sweettok overfit` end to end; the paper profile."""

from __future__ import annotations

import argparse
import csv
import json

import pytest
import torch

from sweettok import cli
from sweettok.models.profiles import default_prior
from sweettok.models.sweettok import SweetTok


def test_info_paper_json(capsys):
    assert cli.main(["info", "--config", "paper", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latent_tokens"] == 1280 and report["ids_per_clip"] == 3840
    assert report["logits"] == [8192, 5, 32, 32]
    params = report["parameters"]
    parts = {k: v for k, v in params.items() if k not in ("total", "frozen_buffers")}
    assert sum(parts.values()) == params["total"]
    assert 150e6 < params["total"] < 250e6
    # head: LN(512) + 512x1024 + 1024 + 1024x8192 + 8192
    assert params["decoder.head"] == 2 * 512 + 512 * 1024 + 1024 + 1024 * 8192 + 8192


def test_info_base_table_for_images(capsys):
    assert cli.main(["info", "--config", "base", "--frames", "1"]) == 0
    out = capsys.readouterr().out
    assert "latent tokens per clip: 32 (32 spatial + 0 temporal)" in out
    assert "ids per clip:           96" in out


def test_unknown_profile_is_an_error(capsys):
    assert cli.main(["info", "--config", "nosuchenv"]) == 2
    assert "nosuchenv" in capsys.readouterr().err


def test_registering_a_command_twice_fails():
    @cli.command("zz-test-only", help="test")
    def _first(args: argparse.Namespace) -> int:
        return 7

    try:
        assert cli.main(["zz-test-only"]) == 7
        with pytest.raises(ValueError, match="registered twice"):
            cli.command("zz-test-only", help="again")(_first)
    finally:
        del cli._COMMANDS["zz-test-only"]


def test_bench_model_base_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "model", "--profiles", "base", "--warmup", "0", "--steps", "2", "--threads", "1",
                     "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    r = report["profiles"]["base"]
    assert r["input"] == [1, 3, 17, 64, 64] and r["latent_tokens"] == 96
    assert len(r["step_seconds"]) == 2 and r["step_seconds_median"] > 0
    assert r["peak_rss_mib"] >= r["rss_after_build_mib"] >= r["rss_before_build_mib"] > 50
    assert r["torch_threads"] == 1


def test_overfit_command_writes_curve(tmp_path, one_thread):
    assert cli.main(["overfit", "--config", "base", "--steps", "3", "--threads", "1", "--out-dir", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "overfit_loss.csv").open()))
    assert [r["step"] for r in rows] == ["0", "1", "2"]
    assert (tmp_path / "overfit_loss.png").exists()


def test_paper_profile_one_clip_on_cpu(one_thread):
    """The paper model on one 17x256x256 clip: 1280 tokens, logits over 8192 proxy codes."""
    cfg = cli.load_model_config("paper")
    torch.manual_seed(0)
    model = SweetTok(cfg, default_prior("paper")).eval()
    x = torch.rand(1, 3, 17, 256, 256) - 0.5
    with torch.no_grad():
        latents, ids, _ = model.encode(x)
        logits = model.decode_latents(latents, 17)
    assert latents.shape == (1, 1280, 512)
    assert ids.shape == (1, 3840)
    assert logits.shape == (1, 8192, 5, 32, 32)
    assert torch.isfinite(logits).all()
