"""The reconstruction yardstick: whole-clip PSNR on frames 1..T-1 and all frames, equal-bits baselines."""

import math

import pandas as pd
import pandera.errors
import pytest
import torch

from sweettok.metrics.image_codec import (decode, encode, encode_frame_within, from_uint8, highest_quality_within,
                                          to_uint8)
from sweettok.metrics.image_quality import clip_psnr, frame_mse, psnr
from sweettok.metrics.reconstruction import (FirstFrameCodec, FirstFrameThumbnail, equal_bits_baselines,
                                             first_frame_baseline, frame_ranges, score_reconstructions,
                                             thumbnail_size_for_bits)
from sweettok.schemas import ReconstructionBudgetSchema, ReconstructionMetricsSchema


def _fake_lpips(x, y):
    """Stand-in for LPIPS (keeps the tests fast): mean absolute difference per image."""
    return (x - y).abs().mean(dim=(1, 2, 3))


def _offset_clip():
    """A grey clip and a reconstruction whose frame t is off by d_t everywhere: frame MSEs d_t**2."""
    clip = torch.zeros(1, 3, 4, 8, 8)
    recon = clip + torch.tensor([0.0, 0.1, 0.1, 0.2])[None, None, :, None, None]
    return clip, recon


def _textured_clip(frames=5, side=32, seed=0) -> torch.Tensor:
    """(1, 3, T, side, side) on the 8-bit grid: a gradient, stripes drifting over time and some noise."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
    g = torch.Generator().manual_seed(seed)
    frames_ = [0.3 * xx * yy + 0.15 * torch.sin(6.0 * xx + 0.5 * t) + 0.05 * torch.randn(side, side, generator=g)
               for t in range(frames)]
    clip = torch.stack(frames_).unsqueeze(0).expand(3, -1, -1, -1).clone()
    clip[1] = clip[1] * 0.5 + 0.1 * yy
    clip[2] = -clip[2]
    clip = clip.unsqueeze(0).clamp(-0.5, 0.5)
    return ((clip + 0.5) * 255).round() / 255 - 0.5


def test_whole_clip_psnr_and_per_frame_mean_on_known_mse():
    clip, recon = _offset_clip()
    assert torch.allclose(frame_mse(recon, clip), torch.tensor([[0.0, 0.01, 0.01, 0.04]]), atol=1e-7)
    # whole clip: MSE 0.06 / 4 = 0.015 -> 18.2391 dB; per frame: (100 + 20 + 20 + 13.9794) / 4 = 38.4949 dB
    assert clip_psnr(recon, clip).item() == pytest.approx(10 * math.log10(1 / 0.015), abs=1e-4)
    assert clip_psnr(recon, clip).item() == pytest.approx(18.2391, abs=1e-4)
    assert psnr(recon, clip).item() == pytest.approx(38.4949, abs=1e-4)


def test_score_table_frame_ranges_on_known_mse():
    clip, recon = _offset_clip()
    table = score_reconstructions({"offset": lambda x: recon.expand_as(x)}, [clip[0]], bits={"offset": 100.0},
                                  lpips=_fake_lpips, progress=False)
    assert list(table["frames"]) == ["1-3", "all"]
    rows = table.set_index("frames")
    # frames 1..3: MSE 0.06 / 3 = 0.02 -> 16.9897 dB; per-frame mean (20 + 20 + 13.9794) / 3 = 17.9931 dB
    assert rows.loc["1-3", "psnr"] == pytest.approx(16.9897, abs=1e-4)
    assert rows.loc["1-3", "psnr_frame_mean"] == pytest.approx(17.9931, abs=1e-4)
    assert rows.loc["all", "psnr"] == pytest.approx(18.2391, abs=1e-4)
    assert rows.loc["all", "psnr_frame_mean"] == pytest.approx(38.4949, abs=1e-4)
    assert rows.loc["1-3", "lpips"] == pytest.approx((0.1 + 0.1 + 0.2) / 3, abs=1e-6)
    assert (table["bits"] == 100.0).all() and table["tokens"].isna().all()


def test_whole_clip_psnr_averages_over_clips_after_the_log():
    # two clips with MSE 0.01 and 0.0001 over all frames: mean of 20 dB and 40 dB, not PSNR of the mean MSE
    clips = torch.zeros(2, 3, 3, 8, 8)
    recon = clips + torch.tensor([0.1, 0.01])[:, None, None, None, None]
    table = score_reconstructions({"r": lambda x: recon}, list(clips), lpips=_fake_lpips, batch_size=2,
                                  progress=False)
    assert table.set_index("frames").loc["all", "psnr"] == pytest.approx(30.0, abs=1e-4)


def test_frame_ranges_follow_the_clip_length():
    assert frame_ranges(17) == {"1-16": slice(1, 17), "all": slice(0, 17)}
    assert frame_ranges(9) == {"1-8": slice(1, 9), "all": slice(0, 9)}
    assert frame_ranges(2) == {"1": slice(1, 2), "all": slice(0, 2)}
    assert frame_ranges(1) == {"all": slice(0, 1)}


def test_first_frame_copy_is_finite_without_frame_0():
    clip = _textured_clip()
    table = score_reconstructions({"first": first_frame_baseline}, [clip[0]], lpips=_fake_lpips, progress=False)
    rows = table.set_index("frames")
    mse = frame_mse(first_frame_baseline(clip), clip)[0]
    assert mse[0] == 0 and (mse[1:] > 1e-4).all()
    expected = 10 * math.log10(1 / mse[1:].mean().item())
    assert rows.loc["1-4", "psnr"] == pytest.approx(expected, abs=1e-3) and expected < 40
    # the per-frame mean over all frames lives off the exact frame 0 (100 dB) ...
    assert rows.loc["all", "psnr_frame_mean"] > 100 / 5
    # ... the whole-clip PSNR does not: it is the MSE diluted by 4/5
    assert rows.loc["all", "psnr"] == pytest.approx(expected + 10 * math.log10(5 / 4), abs=1e-3)


def test_thumbnail_size_choice():
    assert thumbnail_size_for_bits(2116.3, 3) == 9  # 9 * 9 * 24 = 1944 <= 2116 < 10 * 10 * 24
    assert thumbnail_size_for_bits(3200.0, 3) == 11  # 2904 <= 3200 < 3456
    assert thumbnail_size_for_bits(1944.0, 3) == 9 and thumbnail_size_for_bits(1943.9, 3) == 8
    assert thumbnail_size_for_bits(23.0, 3) == 0 and thumbnail_size_for_bits(24.0, 3) == 1
    assert thumbnail_size_for_bits(1e9, 3, max_side=64) == 64
    assert thumbnail_size_for_bits(64.0, 1) == 2
    names = list(equal_bits_baselines(2116.3, "SweetTok", 3, max_side=64, codec="WEBP"))
    assert names == ["thumbnail 9x9 @ 1944 bits (= SweetTok)", "WebP frame 0 @ <=2116 bits (= SweetTok)"]


def test_non_divisor_thumbnail_is_8_bit_and_reports_its_bits():
    clip = _textured_clip()
    thumb = FirstFrameThumbnail(9)
    out = thumb(clip)
    assert out.shape == clip.shape and torch.equal(out[:, :, 0], out[:, :, -1])
    assert thumb.last_bits.tolist() == [9 * 9 * 3 * 8]
    # 8-bit storage: the full-size thumbnail of an 8-bit frame is that frame exactly
    assert torch.allclose(FirstFrameThumbnail(32)(clip), first_frame_baseline(clip), atol=1e-6)


def test_quality_search_finds_the_highest_fitting_quality():
    calls = []

    def fake(q):  # size grows with quality: 10 + 3 q bytes
        calls.append(q)
        return b"x" * (10 + 3 * q)

    for max_bytes in (10, 11, 100, 200, 310, 1000):
        calls.clear()
        q, data = highest_quality_within(fake, max_bytes)
        assert q == min((max_bytes - 10) // 3, 100) and len(data) <= max_bytes
        assert len(calls) <= 8  # a binary search over 0..100
    assert highest_quality_within(fake, 9) is None


def test_quality_search_is_monotone_in_the_budget_with_webp():
    frame = _textured_clip(frames=1, side=64)[0, :, 0]
    image = to_uint8(frame)
    results = [highest_quality_within(lambda q: encode(image, "WEBP", q), b // 8) for b in (1200, 1800, 2600, 4000)]
    qualities = [r[0] for r in results]
    assert qualities == sorted(qualities) and qualities[0] < qualities[-1]
    errors = [encode_frame_within(frame, b, "WEBP", scales=(1,)).mse for b in (1200, 1800, 2600, 4000)]
    assert errors == sorted(errors, reverse=True)


@pytest.mark.parametrize("budget", [400.0, 900.0, 2116.3, 3200.0])
def test_codec_never_exceeds_the_budget(budget):
    clip = torch.cat([_textured_clip(frames=3, side=64, seed=s) for s in range(2)])
    codec = FirstFrameCodec(budget, "WEBP", scales=(1, 2, 4))
    out = codec(clip)
    assert out.shape == clip.shape and torch.equal(out[:, :, 0], out[:, :, 2])
    assert (codec.last_bits <= budget).all() and (codec.last_bits > 0).all()
    for i in range(2):
        enc = encode_frame_within(clip[i, :, 0], budget, "WEBP", scales=(1, 2, 4))
        assert enc.bits == codec.last_bits[i].item() and torch.equal(enc.frame, out[i, :, 0])
        if not enc.flat:
            # the measured file: re-encoding the chosen scale at the chosen quality gives the same size
            side = round(64 / enc.scale)
            small = torch.nn.functional.adaptive_avg_pool2d(clip[i, :, 0][None], side)[0]
            data = encode(to_uint8(small), "WEBP", enc.quality)
            assert 8 * len(data) == enc.bits <= budget
            assert from_uint8(decode(data), 3).shape == (3, side, side)


def test_codec_falls_back_to_a_flat_colour_and_counts_it():
    clip = _textured_clip(frames=3, side=32)
    codec = FirstFrameCodec(100.0, "WEBP")  # below any WebP file
    table = score_reconstructions({"webp": codec}, [clip[0]], lpips=_fake_lpips, progress=False)
    assert codec.last_flat.tolist() == [True] and codec.last_bits.tolist() == [24.0]
    assert (table["flat_fallback_clips"] == 1).all() and (table["bits"] == 24.0).all()
    out = codec(clip)
    assert torch.allclose(out[0, :, 0].mean(dim=(1, 2)), clip[0, :, 0].mean(dim=(1, 2)), atol=0.5 / 255 + 1e-6)


def test_equal_bits_codec_beats_a_thumbnail_of_the_same_budget():
    clip = _textured_clip(frames=2, side=64)
    methods = equal_bits_baselines(2116.3, "SweetTok", 3, max_side=64, codec="WEBP")
    (thumb_name, thumb), (codec_name, codec) = methods.items()
    mse = {name: frame_mse(m(clip), clip)[0, 0].item() for name, m in methods.items()}
    assert mse[codec_name] < mse[thumb_name]


def test_tables_validate_against_their_schemas():
    clip = _textured_clip()
    methods = {"first": first_frame_baseline, **equal_bits_baselines(900.0, "X", 3, max_side=32, codec="WEBP")}
    table = score_reconstructions(methods, [clip[0]], tokens={"first": None}, bits={"first": 24576.0},
                                  lpips=_fake_lpips, progress=False)
    metrics = ReconstructionMetricsSchema.validate(table)
    assert len(metrics) == 6 and set(metrics["frames"]) == {"1-4", "all"}
    # a CSV round trip: empty tokens and fallback counts come back as nullable integers
    from io import StringIO

    reread = ReconstructionMetricsSchema.validate(pd.read_csv(StringIO(table.to_csv(index=False))))
    assert str(reread["tokens"].dtype) == "Int64" and reread["flat_fallback_clips"].isna().sum() == 4
    budget = ReconstructionBudgetSchema.validate(table.drop(columns="tokens"))
    assert len(budget) == 6
    with pytest.raises(pandera.errors.SchemaError):
        ReconstructionMetricsSchema.validate(pd.concat([table, table.iloc[:1]], ignore_index=True))  # duplicate (method, frames)
    with pytest.raises(pandera.errors.SchemaError):
        ReconstructionMetricsSchema.validate(table.iloc[1:])  # "first" lacks one frame range
    with pytest.raises(pandera.errors.SchemaError):
        ReconstructionMetricsSchema.validate(table.assign(frames="0-4"))
