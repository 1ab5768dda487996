"""The public API with an image tokenizer: images in, videos refused, tokens tied to their checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_helpers import smooth_images

from sweettok.api import InputError, TokenFileError, Tokenizer
from sweettok.models.tokenizer import ImageTokenizer, save_model


@pytest.fixture
def tokenizers(video_tokenizer, tmp_path):
    image = ImageTokenizer.from_video(video_tokenizer)
    with torch.no_grad():  # make it differ from the video tokenizer, as fine-tuning does
        image.proxy.head_first.bias.add_(0.1)
    save_model(video_tokenizer, tmp_path / "video")
    save_model(image, tmp_path / "image")
    return (Tokenizer.from_pretrained(tmp_path / "video", device="cpu"),
            Tokenizer.from_pretrained(tmp_path / "image", device="cpu"), image)


def test_image_tokenizer_encodes_and_decodes_images(tokenizers, one_thread):
    _, tok, image = tokenizers
    assert tok.is_image_tokenizer and tok.window == 1
    picture = ((smooth_images(1, size=32)[0].permute(1, 2, 0) + 0.5) * 255).round().to(torch.uint8).numpy()
    tokens = tok.encode(picture)
    assert tokens.ids.shape == (1, tok.ids_per_window(1)) and tokens.frames == 1
    decoded = tok.decode(tokens)
    assert decoded.shape == (1, 32, 32, 3) and decoded.dtype == np.uint8
    with torch.no_grad():
        x = torch.from_numpy(picture).permute(2, 0, 1).float()[None] / 255 - 0.5
        ids = image.eval().encode(x)[1]
        expected = ((image.decode_ids(ids)[0, :, 0].permute(1, 2, 0) + 0.5).clamp(0, 1) * 255).round()
    assert np.array_equal(tokens.ids, ids.numpy())
    assert np.array_equal(decoded[0], expected.to(torch.uint8).numpy())


def test_image_tokenizer_refuses_videos_and_foreign_tokens(tokenizers, one_thread):
    video_tok, image_tok, _ = tokenizers
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="image tokenizer.*more than one frame.*video tokenizer"):
        image_tok.encode(frames)
    # tokens name the checkpoint that made them: neither tokenizer decodes the other's
    with pytest.raises(TokenFileError, match="not by this one"):
        image_tok.decode(video_tok.encode(frames[:1]))
    with pytest.raises(TokenFileError, match="not by this one"):
        video_tok.decode(image_tok.encode(frames[0]))
    assert video_tok.encode(frames).ids.shape[0] == 1 and not video_tok.is_image_tokenizer
