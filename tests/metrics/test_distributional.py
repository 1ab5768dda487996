"""Streaming rFVD / FID over several methods: which clips and frames enter, and the values
against Fréchet distances computed directly (with cheap stand-in feature functions; the real
networks run in tests/pipelines/test_evaluation_run.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sweettok.metrics.distributional import score_feature_distances, select_frames
from sweettok.metrics.evaluation import EvaluationConfig
from sweettok.metrics.frechet import frechet_distance
from sweettok.metrics.reconstruction import first_frame_baseline
from sweettok.typed_params import ParamError


def video_features(clips: torch.Tensor) -> np.ndarray:
    """(B, C, T, H, W) -> (B, C * T) per-frame channel means, plus each clip's frame-to-frame change."""
    means = clips.mean(dim=(3, 4)).flatten(1)
    motion = (clips[:, :, 1:] - clips[:, :, :-1]).abs().mean(dim=(1, 2, 3, 4))[:, None]
    return torch.cat([means, motion], dim=1).double().numpy()


def image_features(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) -> (N, 2 C): channel means and standard deviations."""
    return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1).double().numpy()


@pytest.fixture(scope="module")
def clips() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(7, 3, 1, 8, 8, generator=g) - 0.5
    drift = torch.linspace(0, 0.3, 5).view(1, 1, 5, 1, 1) * torch.randn(7, 3, 1, 1, 1, generator=g)
    return list(((base + drift) * 0.8).clamp(-0.5, 0.5))  # 7 clips (3, 5, 8, 8)


def test_values_counts_and_order(clips):
    noise = torch.Generator().manual_seed(1)
    methods = {"identity": lambda x: x.clone(), "first frame": first_frame_baseline,
               "noisy": lambda x: x + 0.2 * torch.randn(x.shape, generator=noise),
               "unscored": lambda x: x * 0}
    table = score_feature_distances(methods, clips, fvd_methods=["first frame", "identity"],
                                    fid_methods=["noisy", "identity"], fvd_clips=4, fid_clips=5, fid_frames=[1, -1],
                                    batch_size=3, video_features=video_features, image_features=image_features,
                                    progress=False)
    assert list(table["method"]) == list(methods)
    t = table.set_index("method")
    # a method identical to the ground truth is at distance 0: same clips, same frames on both sides
    assert t.loc["identity", "fvd"] == pytest.approx(0.0, abs=1e-9)
    assert t.loc["identity", "fid"] == pytest.approx(0.0, abs=1e-9)
    real = torch.stack(clips)
    expected_fvd = frechet_distance(video_features(real[:4]), video_features(first_frame_baseline(real[:4])))
    assert expected_fvd > 0.01 and t.loc["first frame", "fvd"] == pytest.approx(expected_fvd, rel=1e-12)
    # the noise is drawn batch by batch (3 + 2 clips: scoring stops after the 5 clips FID needs)
    noise.manual_seed(1)
    noisy = torch.cat([(b + 0.2 * torch.randn(b.shape, generator=noise)).clamp(-0.5, 0.5)
                       for b in (real[0:3], real[3:5])])
    frames = lambda x: x[:, :, [1, 4]].transpose(1, 2).reshape(-1, 3, 8, 8)  # noqa: E731
    expected_fid = frechet_distance(image_features(frames(real[:5])), image_features(frames(noisy)))
    assert t.loc["noisy", "fid"] == pytest.approx(expected_fid, rel=1e-12)
    assert t.loc["first frame", "fvd_clips"] == 4 and pd.isna(t.loc["first frame", "fid_clips"])
    assert t.loc["noisy", "fid_clips"] == 5 and t.loc["noisy", "fid_images"] == 10
    assert math.isnan(t.loc["unscored", "fvd"]) and math.isnan(t.loc["unscored", "fid"])
    assert str(table["fvd_clips"].dtype) == "Int64"


def test_bad_requests_are_named(clips):
    kw = dict(video_features=video_features, image_features=image_features, progress=False)
    with pytest.raises(ValueError, match="no method named 'SweetTok'"):
        score_feature_distances({"identity": lambda x: x}, clips, fvd_methods=["SweetTok"], **kw)
    with pytest.raises(ValueError, match="rFVD needs at least 2 clips"):
        score_feature_distances({"identity": lambda x: x}, clips[:1], fvd_methods=["identity"], **kw)
    with pytest.raises(ValueError, match="shape"):
        score_feature_distances({"crop": lambda x: x[..., :4]}, clips, fid_methods=["crop"], **kw)
    assert select_frames(5, None) == [0, 1, 2, 3, 4] and select_frames(5, [0, -1]) == [0, 4]
    for bad in ([5], [1, -4], [True]):
        with pytest.raises(ValueError):
            select_frames(5, bad)


def test_evaluation_parameters_are_checked_by_name():
    cfg = EvaluationConfig.from_dict({"fvd_methods": ["SweetTok"], "fid_frames": [4, 8]})
    assert cfg.methods_for("fvd", ["proxy tokenizer", "SweetTok"]) == ["SweetTok"]
    assert cfg.methods_for("fid", ["proxy tokenizer", "SweetTok"]) == ["proxy tokenizer", "SweetTok"]  # all
    with pytest.raises(ParamError, match=r"evaluation\.fvd_methods: \['SweetTok'\] are not methods"):
        cfg.methods_for("fvd", ["proxy tokenizer"])
    with pytest.raises(ParamError, match=r"evaluation\.fvd_clip: unknown parameter; did you mean 'fvd_clips'"):
        EvaluationConfig.from_dict({"fvd_clip": 4})
    with pytest.raises(ParamError, match=r"evaluation\.fvd_clips: must be >= 2"):
        EvaluationConfig.from_dict({"fvd_clips": 1})
    with pytest.raises(ParamError, match=r"evaluation\.device"):
        EvaluationConfig.from_dict({"device": "gpu"})
    with pytest.raises(ParamError, match=r"evaluation\.fid_frames"):
        EvaluationConfig.from_dict({"fid_frames": []})
