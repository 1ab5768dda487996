"""The image tokenizer: exact id round trips, its own checkpoint kind, and what image mode trains."""

from __future__ import annotations

import pytest
import torch
from kedro.io.core import DatasetError

from sweettok.io.model_dataset import ModelDataset
from sweettok.models.checkpoint import CheckpointError
from sweettok.models.tokenizer import IMAGE_PARTS, ImageTokenizer, ModelKindError, VideoTokenizer, load_model, save_model

from image_helpers import smooth_images


@pytest.fixture
def image_tokenizer(video_tokenizer) -> ImageTokenizer:
    return ImageTokenizer.from_video(video_tokenizer).eval()


def test_from_video_copies_the_weights_exactly(video_tokenizer, image_tokenizer, one_thread):
    images = smooth_images(5)
    video_state = video_tokenizer.state_dict()
    assert all(torch.equal(v, video_state[k]) for k, v in image_tokenizer.state_dict().items())
    with torch.no_grad():
        assert torch.equal(image_tokenizer(images), video_tokenizer(images)[:, :, 0])
        assert torch.equal(image_tokenizer.encode(images)[1], video_tokenizer.encode(images)[1])


def test_ids_round_trip_exactly_for_a_batch(image_tokenizer, one_thread):
    images = smooth_images(6, seed=3)
    cfg = image_tokenizer.cfg
    with torch.no_grad():
        latents, ids = image_tokenizer.encode(images)
        assert ids.shape == (6, (cfg.topk + 1) * cfg.spatial_queries) and ids.dtype == torch.int64
        assert latents.shape == (6, cfg.spatial_queries, cfg.latent_dim)
        # ids -> latents reproduces the quantized latents bit for bit, so decoding them is exact
        assert torch.equal(image_tokenizer.sweettok.ids_to_latents(ids), latents)
        from_ids = image_tokenizer.decode_ids(ids)
        assert from_ids.shape == (6, 3, 1, cfg.resolution, cfg.resolution)
        assert torch.equal(from_ids, image_tokenizer.decode_latents(latents))
        assert torch.equal(from_ids[:, :, 0], image_tokenizer(images))
        # encoding is deterministic, and an image's ids do not depend on the rest of its batch
        assert torch.equal(image_tokenizer.encode(images)[1], ids)
        assert torch.equal(image_tokenizer.encode(images[2:3])[1], ids[2:3])
        # one-frame clips are images
        assert torch.equal(image_tokenizer.encode(images[:, :, None])[1], ids)
        # the tokens of an image take several entries (the checks above are not about constant ids)
        assert ids.unique().numel() > cfg.topk + 1


def test_exported_image_tokenizer_keeps_its_ids(image_tokenizer, tmp_path, one_thread):
    images = smooth_images(4, seed=5)
    save_model(image_tokenizer, tmp_path / "image_tokenizer")
    loaded = load_model(tmp_path / "image_tokenizer", kind="sweettok_image")
    assert isinstance(loaded, ImageTokenizer)
    with torch.no_grad():
        ids = image_tokenizer.encode(images)[1]
        assert torch.equal(loaded.encode(images)[1], ids)
        assert torch.equal(loaded.decode_ids(ids), image_tokenizer.decode_ids(ids))


def test_image_and_video_checkpoints_cannot_be_confused(video_tokenizer, image_tokenizer, tmp_path, one_thread):
    save_model(video_tokenizer, tmp_path / "video")
    save_model(image_tokenizer, tmp_path / "image")
    with pytest.raises(CheckpointError, match=r"'sweettok_image' checkpoint \(an image tokenizer.*expected "
                                              r"sweettok_pixel \(a video tokenizer\)"):
        load_model(tmp_path / "image", kind="sweettok_pixel")
    with pytest.raises(CheckpointError, match=r"'sweettok_pixel' checkpoint \(a video tokenizer\), expected "
                                              r"sweettok_image"):
        load_model(tmp_path / "video", kind="sweettok_image")
    # the catalog's datasets name the kind they hold, on load and on save
    with pytest.raises(DatasetError, match="'sweettok_image' checkpoint \\(an image tokenizer"):
        ModelDataset(str(tmp_path / "image"), kind="sweettok_pixel").load()
    with pytest.raises(DatasetError, match="holds 'sweettok_pixel' models, got a 'sweettok_image'"):
        ModelDataset(str(tmp_path / "elsewhere"), kind="sweettok_pixel").save(image_tokenizer)
    assert not isinstance(image_tokenizer, VideoTokenizer)


def test_image_tokenizer_refuses_videos(image_tokenizer, video_tokenizer, one_thread):
    clip = torch.rand(2, 3, 5, 32, 32) - 0.5
    for call in (image_tokenizer.encode, image_tokenizer, lambda x: image_tokenizer(x, train_pass=True)):
        with pytest.raises(ModelKindError, match="takes images .* got 5 frames.*video tokenizer"):
            call(clip)
    with torch.no_grad():
        _, video_ids = video_tokenizer.encode(clip)
    with pytest.raises(ModelKindError, match="decodes one frame, asked for 5"):
        image_tokenizer.decode_ids(video_ids, 5)
    with pytest.raises(ModelKindError, match="takes a video tokenizer"):
        ImageTokenizer.from_video(image_tokenizer)
    # the video tokenizer still takes both
    with torch.no_grad():
        assert video_tokenizer(clip).shape == clip.shape


@pytest.mark.parametrize("parts", [("decoder",), ("encoder", "decoder")])
def test_every_trainable_parameter_learns_from_images(image_tokenizer, parts, one_thread):
    """Image mode trains the one-frame path only: each trainable tensor gets a non-zero gradient
    (DDP would otherwise stop on unused parameters) and every temporal tensor is frozen."""
    names = image_tokenizer.set_trainable(parts)
    image_tokenizer.train()
    image_tokenizer.freeze_modes()
    images = smooth_images(4)
    recon, mlc = image_tokenizer(images, train_pass=True)
    assert recon.shape == images.shape
    (torch.nn.functional.mse_loss(recon, images) + mlc).backward()
    params = dict(image_tokenizer.named_parameters())
    no_grad = [n for n in names if params[n].grad is None or not params[n].grad.abs().sum() > 0]
    assert not no_grad
    assert not [n for n, p in params.items() if not p.requires_grad and p.grad is not None]
    assert not [n for n in names if "temporal" in n or "tubes" in n or "head_tube" in n]
    frozen_encoder = any(n.startswith("sweettok.encoder.") for n in names)
    assert frozen_encoder == ("encoder" in parts)
    assert (mlc.requires_grad) == ("encoder" in parts)


def test_set_trainable_names_bad_parts(image_tokenizer):
    with pytest.raises(ValueError, match=r"subset of \['decoder', 'encoder'\]"):
        image_tokenizer.set_trainable(("decoder", "temporal"))
    assert set(IMAGE_PARTS) == {"encoder", "decoder"}
