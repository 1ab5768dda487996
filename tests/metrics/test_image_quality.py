"""PSNR / SSIM on [-0.5, 0.5] clips and images, checked against scikit-image."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sweettok.metrics import psnr, ssim


def _pair(shape, noise, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Smooth-ish content so SSIM is neither ~0 nor ~1.
    x = torch.rand(shape, generator=g) - 0.5
    x = torch.nn.functional.avg_pool3d(x, 3, stride=1, padding=1) if x.ndim == 5 else x
    y = (x + noise * torch.randn(shape, generator=g)).clamp(-0.5, 0.5)
    return x.clamp(-0.5, 0.5), y


def _skimage_ssim_clip(x, y, **kw):
    """Mean over frames of skimage SSIM on (H, W, C) frames shifted to [0, 1]."""
    b, c, t, h, w = x.shape
    out = np.zeros(b)
    for i in range(b):
        vals = []
        for f in range(t):
            a = (x[i, :, f] + 0.5).permute(1, 2, 0).double().numpy()
            d = (y[i, :, f] + 0.5).permute(1, 2, 0).double().numpy()
            vals.append(structural_similarity(a, d, data_range=1.0, channel_axis=-1, **kw))
        out[i] = np.mean(vals)
    return out


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.3])
def test_ssim_matches_skimage_on_clips(noise):
    x, y = _pair((2, 3, 5, 24, 20), noise)
    ours = ssim(x, y).numpy()
    ref = _skimage_ssim_clip(x, y)
    assert ours.shape == (2,)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert 0.0 < ref.min() < 0.999  # the comparison is not between two trivial 1.0s


def test_ssim_gaussian_variant_matches_skimage():
    x, y = _pair((1, 3, 3, 32, 32), 0.1, seed=1)
    ours = ssim(x, y, gaussian_weights=True).numpy()
    ref = _skimage_ssim_clip(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_ssim_images_and_identity():
    x, y = _pair((3, 3, 16, 16), 0.2, seed=2)
    ours = ssim(x, y)
    ref = _skimage_ssim_clip(x.unsqueeze(2), y.unsqueeze(2))
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(ssim(x, x).numpy(), 1.0, atol=1e-6)


def test_psnr_known_value_and_skimage():
    x = torch.zeros(1, 3, 2, 8, 8)
    y = torch.full_like(x, 0.1)  # MSE = 0.01 on a range of 1 -> 20 dB
    assert psnr(x, y).item() == pytest.approx(20.0, abs=1e-4)
    a, b = _pair((2, 3, 4, 16, 16), 0.05, seed=3)
    ref = [
        np.mean(
            [
                peak_signal_noise_ratio((a[i, :, f] + 0.5).numpy(), (b[i, :, f] + 0.5).numpy(), data_range=1.0)
                for f in range(4)
            ]
        )
        for i in range(2)
    ]
    np.testing.assert_allclose(psnr(a, b).numpy(), ref, rtol=1e-4)


def test_psnr_identical_is_capped_and_inputs_are_clamped():
    x = torch.rand(2, 3, 8, 8) - 0.5
    assert torch.allclose(psnr(x, x), torch.full((2,), 100.0))
    # Overshoot beyond the valid range is clipped before comparison.
    assert psnr(torch.full((1, 3, 4, 4), 0.9), torch.full((1, 3, 4, 4), 0.5)).item() == 100.0
    assert math.isclose(psnr(torch.full((1, 3, 4, 4), -0.5), torch.full((1, 3, 4, 4), 0.5)).item(), 0.0, abs_tol=1e-6)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="expected"):
        ssim(torch.zeros(3, 8), torch.zeros(3, 8))
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.zeros(1, 3, 5, 5), torch.zeros(1, 3, 5, 5))
