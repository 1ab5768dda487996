"""PSNR and SSIM of reconstructed clips and images.

Value convention (the project's tensor contract): pixels are float in ``[-0.5, 0.5]``,
so the *data range* is 1.0. Both inputs are clamped to that interval first, because a
decoder may overshoot and the reference metrics (PSNR/SSIM of saved 8-bit frames) only
ever see in-range pixels.

Clips are ``(B, C, T, H, W)``, images ``(B, C, H, W)``. Both metrics are computed per
frame and averaged over frames, giving one value per sample, shape ``(B,)``; callers
average over the dataset. :func:`clip_psnr` is PSNR of the whole clip's MSE instead (the
per-frame mean lets one exactly copied frame, floored at ``PSNR_MAX_DB``, dominate). SSIM follows ``skimage.metrics.structural_similarity`` with
``data_range=1.0, channel_axis=<C>`` (per channel, then averaged) so that numbers are
comparable with published tables that use scikit-image. SSIM is computed on the pixels
shifted to ``[0, 1]`` (its luminance term depends on absolute intensity).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DATA_RANGE = 1.0
"""Peak-to-peak range of the pixel values, ``0.5 - (-0.5)``."""

PSNR_MAX_DB = 100.0
"""PSNR of identical frames: the MSE is floored at ``10**-10`` so that means stay finite."""


def as_frames(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Flatten clips or images to a batch of frames.

    Args:
        x: ``(B, C, T, H, W)`` clips or ``(B, C, H, W)`` images.
        name: argument name used in error messages.

    Returns:
        ``(B, T, C, H, W)`` float tensor (``T = 1`` for images).
    """
    if x.ndim == 4:
        return x.unsqueeze(1)
    if x.ndim == 5:
        return x.permute(0, 2, 1, 3, 4)
    raise ValueError(f"{name}: expected (B, C, T, H, W) clips or (B, C, H, W) images, got shape {tuple(x.shape)}")


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(y.shape)}")
    fx = as_frames(x, "x").float().clamp(-0.5, 0.5)
    fy = as_frames(y, "y").float().clamp(-0.5, 0.5)
    return fx, fy


@torch.no_grad()
def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per frame then averaged over frames.

    Args:
        x, y: clips ``(B, C, T, H, W)`` or images ``(B, C, H, W)`` in ``[-0.5, 0.5]``.

    Returns:
        ``(B,)`` float32 PSNR in dB (at most ``PSNR_MAX_DB``).
    """
    return psnr_of_mse(frame_mse(x, y)).mean(dim=1)


@torch.no_grad()
def frame_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each frame over its pixels and channels (inputs clamped first).

    Args:
        x, y: clips ``(B, C, T, H, W)`` or images ``(B, C, H, W)`` in ``[-0.5, 0.5]``.

    Returns:
        ``(B, T)`` float32 (``T = 1`` for images).
    """
    fx, fy = _check_pair(x, y)
    return (fx - fy).pow(2).mean(dim=(2, 3, 4))


def psnr_of_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of mean squared errors on ``[-0.5, 0.5]`` pixels, elementwise, floored like :func:`psnr`."""
    return 10.0 * torch.log10(DATA_RANGE**2 / mse.clamp_min(10 ** (-PSNR_MAX_DB / 10)))


@torch.no_grad()
def clip_psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of the whole clip: one MSE over all frames, pixels and channels, then its PSNR.

    Unlike :func:`psnr` (the mean of per-frame PSNRs) one exact frame cannot dominate: a
    frame with MSE 0 counts as an MSE of 0 in the clip's mean, not as ``PSNR_MAX_DB``.

    Args:
        x, y: clips ``(B, C, T, H, W)`` or images ``(B, C, H, W)`` in ``[-0.5, 0.5]``.

    Returns:
        ``(B,)`` float32 PSNR in dB (at most ``PSNR_MAX_DB``).
    """
    return psnr_of_mse(frame_mse(x, y).mean(dim=1))


def _gaussian_window(sigma: float, truncate: float) -> torch.Tensor:
    # Same support as scipy.ndimage.gaussian_filter, which skimage uses.
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


@torch.no_grad()
def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    win_size: int = 7,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity, per frame (channels averaged) then averaged over frames.

    The defaults reproduce ``skimage.metrics.structural_similarity(a, b, data_range=1.0,
    channel_axis=-1)``: a uniform ``win_size`` window, sample covariance, and the mean
    of the SSIM map over the region not touched by the border (the window must fit).
    ``gaussian_weights=True`` reproduces skimage's Gaussian variant (Wang et al. 2004:
    sigma 1.5, 11-tap window, population covariance).

    Args:
        x, y: clips ``(B, C, T, H, W)`` or images ``(B, C, H, W)`` in ``[-0.5, 0.5]``.
        win_size: odd side length of the uniform window (ignored when Gaussian).

    Returns:
        ``(B,)`` float32 SSIM, at most 1.
    """
    fx, fy = _check_pair(x, y)
    b, t, c, h, w = fx.shape
    # SSIM's luminance term is not shift-invariant: it is defined on non-negative
    # intensities, so frames are moved to [0, 1] (what skimage sees for saved frames).
    # float64 keeps the E[x^2] - E[x]^2 variance formula as accurate as skimage's.
    a = fx.reshape(b * t * c, 1, h, w).double() + 0.5
    d = fy.reshape(b * t * c, 1, h, w).double() + 0.5
    if gaussian_weights:
        g = _gaussian_window(sigma, 3.5).to(a.device)
        win = g.numel()
        cov_norm = 1.0

        def window_mean(v: torch.Tensor) -> torch.Tensor:
            # the 2-D Gaussian is separable: two 1-D passes (4x faster than the 2-D kernel)
            return F.conv2d(F.conv2d(v, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    else:
        if win_size % 2 != 1 or win_size < 3:
            raise ValueError(f"win_size must be odd and >= 3, got {win_size}")
        win = win_size
        npix = win * win
        cov_norm = npix / (npix - 1)

        def window_mean(v: torch.Tensor) -> torch.Tensor:
            # a uniform window is a stride-1 average pool: on CPU in float64 about 10x faster
            # than the same window as a convolution kernel, and equal to it within 1e-15
            return F.avg_pool2d(v, win, stride=1)
    if h < win or w < win:
        raise ValueError(f"frames of {h}x{w} are smaller than the {win}x{win} SSIM window")
    # A 'valid' window equals skimage's filtered map cropped by (win-1)//2 per side; the five
    # local means are taken in one call.
    n = a.shape[0]
    mu_a, mu_d, aa, dd, ad = window_mean(torch.cat([a, d, a * a, d * d, a * d])).split(n)
    var_a = cov_norm * (aa - mu_a**2)
    var_d = cov_norm * (dd - mu_d**2)
    cov = cov_norm * (ad - mu_a * mu_d)
    c1 = (k1 * DATA_RANGE) ** 2
    c2 = (k2 * DATA_RANGE) ** 2
    num = (2 * mu_a * mu_d + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_d**2 + c1) * (var_a + var_d + c2)
    per_channel = (num / den).mean(dim=(1, 2, 3)).reshape(b, t, c)
    return per_channel.mean(dim=2).mean(dim=1).float()


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error measured on ``[-0.5, 0.5]`` pixels."""
    return 10.0 * math.log10(DATA_RANGE**2 / max(mse, 10 ** (-PSNR_MAX_DB / 10)))
