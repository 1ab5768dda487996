"""Held-out image scores: known values for known reconstructions, baselines at equal bits, the figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from image_helpers import make_video_tokenizer, smooth_images
from threadpoolctl import threadpool_limits

from sweettok.metrics.image_reconstruction import (AFTER, BEFORE, ImageEvaluationConfig, image_baselines,
                                                   image_evaluation_methods, image_figure, pick_examples,
                                                   score_images, spread_indices)
from sweettok.models.tokenizer import ImageTokenizer
from sweettok.schemas import ImageMetricsSchema


def test_scores_of_known_reconstructions(one_thread):
    images = smooth_images(6, seed=1)
    shift = 0.05  # every pixel off by 0.05 (inside the range): PSNR = 20 log10(1 / 0.05) = 26.02 dB
    methods = {"exact": lambda x: x.clone(), "shifted": lambda x: (x + shift).clamp(-0.5, 0.5),
               "flat": lambda x: torch.zeros_like(x)}
    table, recons = score_images(methods, images, tokens={"exact": 4}, bits={"exact": 10.0, "shifted": 20.0,
                                                                              "flat": 1.0}, fid=False)
    ImageMetricsSchema.validate(table)
    rows = table.set_index("method")
    assert rows.loc["exact", "psnr"] == pytest.approx(100.0)  # the floor of identical images
    assert rows.loc["exact", "ssim"] == pytest.approx(1.0, abs=1e-6)
    assert rows.loc["exact", "lpips"] == pytest.approx(0.0, abs=1e-6)
    moved = (images + shift).clamp(-0.5, 0.5)
    expected = np.mean([10 * math.log10(1.0 / float(((moved[i] - images[i]) ** 2).mean())) for i in range(6)])
    assert rows.loc["shifted", "psnr"] == pytest.approx(expected, abs=1e-3)
    assert rows.loc["shifted", "lpips"] > 0.0 and rows.loc["flat", "lpips"] > rows.loc["shifted", "lpips"]
    assert list(rows["kind"]) == ["tokenizer", "baseline", "baseline"]
    assert rows["images"].eq(6).all() and rows["fid"].isna().all()
    assert torch.equal(recons["flat"], torch.zeros_like(images))


def test_rfid_is_zero_for_exact_reconstructions(one_thread):
    images = smooth_images(5, size=64, seed=7)
    noisy = lambda x: (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-.5, .5)  # noqa: E731
    with threadpool_limits(limits=1, user_api="blas"):
        table, _ = score_images({"exact": lambda x: x.clone(), "noisy": noisy}, images, fid=True, batch_size=8)
    rows = table.set_index("method")
    assert rows.loc["exact", "fid"] == pytest.approx(0.0, abs=1e-3)
    assert rows.loc["noisy", "fid"] > 1.0
    assert rows["fid_images"].eq(5).all()


def test_thumbnail_baseline_stays_within_the_bits(one_thread):
    images = smooth_images(4, seed=2)
    baselines = image_baselines(700.0, "SweetTok", channels=3, side=32, codec="JPEG", scales=[1, 2])
    thumb = "thumbnail 5x5 @ 600 bits (= SweetTok)"
    assert thumb in baselines and any(name.startswith("JPEG image @ <=700 bits") for name in baselines)
    table, recons = score_images(baselines, images, fid=False)
    rows = table.set_index("method")
    assert rows.loc[thumb, "bits"] == 600.0
    assert all(rows["bits"] <= 700.0)
    # the thumbnail is the 5x5 area average, 8-bit, upsampled bilinearly
    small = torch.nn.functional.adaptive_avg_pool2d(images, 5)
    small = ((small + 0.5) * 255).round() / 255 - 0.5
    up = torch.nn.functional.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(recons[thumb], up.clamp(-0.5, 0.5), atol=1e-6)


def test_evaluation_methods_score_before_and_after(one_thread):
    video = make_video_tokenizer(0)
    image = ImageTokenizer.from_video(make_video_tokenizer(3))
    methods, tokens, bits = image_evaluation_methods(video, image, ImageEvaluationConfig(codec="JPEG"))
    assert list(methods)[:2] == [BEFORE, AFTER]
    assert tokens == {BEFORE: 4, AFTER: 4}
    q = image.sweettok.quantizer
    expected_bits = 4 * (math.log2(math.comb(q.n_adj, 2)) + math.log2(q.n_spatial - q.n_adj))
    assert bits[AFTER] == pytest.approx(expected_bits)
    images = smooth_images(3)
    with torch.no_grad():
        assert torch.equal(methods[BEFORE](images), video(images)[:, :, 0])
        assert torch.equal(methods[AFTER](images), image(images))
    with pytest.raises(TypeError, match="a VideoTokenizer and an ImageTokenizer"):
        image_evaluation_methods(image, video, ImageEvaluationConfig())


def test_figure_shares_one_colour_scale(one_thread):
    images = smooth_images(8, seed=3)
    recons = {"a": (images + 0.1).clamp(-0.5, 0.5), "b": images * 0.2}
    picks = pick_examples(["p", "p", "p", "q", "q", "r", "r", "r"], 4)
    assert len(set(picks)) == 4 and {0, 1, 2} & set(picks) and {3, 4} & set(picks) and {5, 6, 7} & set(picks)
    fig = image_figure(images, recons, picks)
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "magma"]
    assert len(maps) == 2 * len(picks)
    largest = max(float((r[picks] - images[picks]).abs().mean(1).max()) for r in recons.values())
    assert len({im.get_clim() for im in maps}) == 1
    assert maps[0].get_clim() == (0.0, pytest.approx(largest))
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_rfid_on_a_spread_subset(one_thread):
    # rFID of a subset equals rFID computed directly on those images; the other scores use all
    images = smooth_images(7, size=64, seed=8)
    noisy = lambda x: (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(-.5, .5)  # noqa: E731
    pick = spread_indices(7, 4)
    assert pick.tolist() == [0, 2, 4, 6] and spread_indices(3, 4).tolist() == [0, 1, 2]
    with threadpool_limits(limits=1, user_api="blas"):
        table, recons = score_images({"noisy": noisy}, images, fid=True, fid_images=4, batch_size=8)
        direct, _ = score_images({"noisy": lambda x: recons["noisy"][pick]}, images[pick], fid=True, batch_size=8)
    row, ref = table.iloc[0], direct.iloc[0]
    assert row["fid_images"] == 4 and row["images"] == 7
    assert row["fid"] == pytest.approx(ref["fid"], rel=1e-6) and row["fid"] > 1.0
    assert row["psnr"] != pytest.approx(ref["psnr"], abs=1e-9)  # PSNR is over all 7
