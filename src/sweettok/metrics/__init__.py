"""Reconstruction metrics: PSNR, SSIM, LPIPS (and the loading of their pretrained weights).

Pixels follow the project convention: float in ``[-0.5, 0.5]`` (data range 1.0); clips
``(B, C, T, H, W)``, images ``(B, C, H, W)``; every metric returns one value per sample.
``LPIPS`` is imported lazily because it pulls in torchvision.
"""

from sweettok.metrics.image_quality import DATA_RANGE, psnr, ssim

__all__ = ["DATA_RANGE", "LPIPS", "psnr", "ssim"]


def __getattr__(name: str):
    if name == "LPIPS":
        from sweettok.metrics.perceptual import LPIPS

        return LPIPS
    raise AttributeError(f"module 'sweettok.metrics' has no attribute {name!r}")
