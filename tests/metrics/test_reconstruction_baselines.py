"""Trivial reconstructions the tokenizers are scored against."""

import pytest
import torch

from sweettok.metrics import psnr
from sweettok.metrics.reconstruction import FirstFrameThumbnail, first_frame_baseline, mean_frame_baseline


def _textured_clip() -> torch.Tensor:
    """(1, 3, 5, 32, 32): a smooth gradient plus fine stripes that drift over time."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    frames = [0.3 * xx * yy + 0.15 * torch.sin(6.0 * xx + 0.3 * t) for t in range(5)]
    clip = torch.stack(frames).unsqueeze(0).expand(3, -1, -1, -1).clone()
    clip[1] *= 0.5
    return clip.unsqueeze(0).clamp(-0.5, 0.5)


HALF_STEP = 0.5 / 255 + 1e-6
"""Thumbnails are stored as 8 bits a channel; this clip is not on the 8-bit grid."""


def test_full_size_thumbnail_is_the_first_frame_baseline():
    clip = _textured_clip()
    assert torch.allclose(FirstFrameThumbnail(32)(clip), first_frame_baseline(clip), atol=HALF_STEP)
    assert FirstFrameThumbnail(32).bits(3) == 32 * 32 * 3 * 8


def test_thumbnail_is_constant_over_time_and_improves_with_size():
    clip = _textured_clip()
    out = FirstFrameThumbnail(8)(clip)
    assert out.shape == clip.shape
    assert torch.equal(out[:, :, 0], out[:, :, -1])
    scores = [psnr(FirstFrameThumbnail(s)(clip)[:, :, :1], clip[:, :, :1]).item() for s in (1, 4, 16)]
    assert scores[0] + 3 < scores[1] < scores[2] - 3
    # a 1 x 1 thumbnail is the first frame's mean colour
    assert torch.allclose(FirstFrameThumbnail(1)(clip)[0, :, 0], clip[0, :, 0].mean(dim=(1, 2))[:, None, None]
                          .expand(3, 32, 32), atol=HALF_STEP)


def test_thumbnail_errors():
    with pytest.raises(ValueError, match="size must be >= 1"):
        FirstFrameThumbnail(0)
    with pytest.raises(ValueError, match="exceeds the frame size 32 x 32"):
        FirstFrameThumbnail(64)(_textured_clip())


def test_mean_frame_baseline_is_the_time_average():
    clip = _textured_clip()
    assert torch.allclose(mean_frame_baseline(clip)[:, :, 2], clip.mean(dim=2), atol=1e-6)
