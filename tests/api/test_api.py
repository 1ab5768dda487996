"""`sweettok.api.Tokenizer`: loading, the size and length policies, determinism, ids vs latents."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sweettok.api import LAYOUT_VERSION, InputError, TokenFileError, Tokenizer, Tokens, _Geometry
from sweettok.models.checkpoint import CheckpointError
from sweettok.models.tokenizer import load_model, save_model


@pytest.fixture(scope="module")
def tok(checkpoint):
    return Tokenizer.from_pretrained(checkpoint, device="cpu")


def test_from_pretrained_is_strict_and_self_contained(checkpoint, tmp_path, build_tokenizer):
    tok = Tokenizer.from_pretrained(checkpoint, device="cpu")
    fresh = build_tokenizer(0)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in tok.model.state_dict().items())
    assert tok.model.sweettok.quantizer.words == fresh.sweettok.quantizer.words  # the words travel with it
    assert not tok.model.training and tok.info()["ids_per_window"] == (4 + 8) * 3
    # an extra key in the weights is named, not ignored
    from safetensors.torch import load_file, save_file

    from sweettok.files import checksum_manifest

    bad = tmp_path / "bad"
    save_model(fresh, bad)
    state = load_file(bad / "model.safetensors")
    state["extra.weight"] = torch.zeros(2)
    save_file(state, bad / "model.safetensors")
    meta = json.loads((bad / "config.json").read_text())
    meta["files"].update(checksum_manifest(bad, ["model.safetensors"]))
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"unexpected keys \['extra.weight'\]"):
        Tokenizer.from_pretrained(bad)


def test_video_round_trip_keeps_length_and_size(tok, media):
    tokens = tok.encode(media["video"])
    assert (tokens.frames, tokens.height, tokens.width, tokens.window) == (40, 72, 100, 17)
    assert tokens.ids.shape == (3, 36) and tokens.ids.dtype == np.int64  # ceil(40 / 17) windows
    frames = tok.decode(tokens)
    assert frames.shape == (40, 72, 100, 3) and frames.dtype == np.uint8
    crop = tok.decode(tok.encode(media["video"], size="crop"))
    assert crop.shape == (40, 72, 72, 3)


def test_image_is_one_frame_window(tok, media):
    tokens = tok.encode(media["image"])
    assert tokens.ids.shape == (1, 4 * 3) and tokens.window == 1 and tokens.frames == 1
    assert tok.decode(tokens).shape == (1, 72, 100, 3)


def test_arrays_tensors_and_paths_give_the_same_ids(tok, media):
    frames = np.load(media["frames"])
    from_array = tok.encode(frames)
    from_float = tok.encode(frames.astype(np.float32) / 255)
    from_tensor = tok.encode(torch.from_numpy(frames))
    assert np.array_equal(from_array.ids, from_float.ids) and np.array_equal(from_array.ids, from_tensor.ids)
    short = tok.encode(frames[:3])
    assert short.ids.shape == (1, 36) and tok.decode(short).shape == (3, 72, 100, 3)


def test_encoding_twice_gives_identical_ids(tok, media):
    a, b = tok.encode(media["video"]), tok.encode(media["video"])
    assert np.array_equal(a.ids, b.ids)
    assert len(np.unique(a.ids)) > 5  # not a constant


def test_decoding_ids_equals_decoding_the_quantized_latents(tok, media):
    frames = np.load(media["frames"])
    tokens = tok.encode(frames[:17])  # one window: the same batch as below (float sums depend on the batch)
    geometry = _Geometry(72, 100, tok.resolution, "pad")
    clip = geometry.to_model(torch.from_numpy(frames[:17]))[None]
    with torch.inference_mode():
        latents, ids = tok.model.encode(clip)
        from_latents = tok.model.decode_latents(latents, 17)
        from_ids = tok.model.decode_ids(ids, 17)
    assert np.array_equal(ids[0].numpy(), tokens.ids[0])
    assert torch.equal(from_latents, from_ids)
    assert np.array_equal(geometry.from_model(from_latents[0]).numpy(), tok.decode(tokens)[:17])


def test_pad_geometry_puts_the_whole_frame_back():
    g = _Geometry(72, 100, 32, "pad")
    assert g.scaled == (23, 32) and g.box == (4, 0, 23, 32) and g.output_size == (72, 100)
    frame = torch.zeros(1, 72, 100, 3, dtype=torch.uint8)
    frame[..., 0] = 255  # pure red: padding repeats edge pixels, so the model frame is all red
    x = g.to_model(frame)
    assert x.shape == (3, 1, 32, 32) and torch.allclose(x[0], torch.full_like(x[0], 0.5))
    back = g.from_model(x)
    assert back.shape == (1, 72, 100, 3) and int(back[..., 0].min()) == 255 and int(back[..., 1].max()) == 0


def test_token_files_round_trip_without_pickle(tok, media, tmp_path):
    tokens = tok.encode(media["video"])
    path = tokens.save(tmp_path / "t.npz")
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"ids", "info"}
    back = Tokens.load(path)
    assert np.array_equal(back.ids, tokens.ids) and back.checkpoint == tok.checkpoint
    assert (back.frames, back.height, back.width, back.layout_version) == (40, 72, 100, LAYOUT_VERSION)
    assert back.source == str(media["video"]) and back.fps == pytest.approx(25)


def test_tokens_of_another_checkpoint_or_layout_are_refused(tok, other_checkpoint, media):
    tokens = tok.encode(media["video"])
    other = Tokenizer.from_pretrained(other_checkpoint, device="cpu")
    with pytest.raises(TokenFileError, match="tokens made by checkpoint"):
        other.decode(tokens)
    tokens.layout_version = LAYOUT_VERSION + 1
    with pytest.raises(TokenFileError, match="layout version"):
        tok.decode(tokens)


def test_bad_inputs_are_named(tok, media):
    with pytest.raises(InputError, match="not a video or image file"):
        tok.encode(media["text"])
    with pytest.raises(InputError, match="truncated"):
        tok.encode(media["truncated"])
    with pytest.raises(InputError, match="frames must be"):
        tok.encode(np.zeros((4, 8, 8), np.uint8)[..., None])
    with pytest.raises(InputError, match=r"lie in \[0, 1\]"):
        tok.encode(np.full((2, 8, 8, 3), 3.0))


@pytest.mark.parametrize("topk", [1, 3])
def test_id_layout_follows_topk(topk, tmp_path, media, build_tokenizer):
    path = tmp_path / f"k{topk}"
    save_model(build_tokenizer(0, topk=topk), path)
    tok = Tokenizer.from_pretrained(path, device="cpu")
    tokens = tok.encode(np.load(media["frames"])[:17])
    assert tokens.ids.shape == (1, (4 + 8) * (topk + 1))
    words = tok.words(tokens)[0]
    # every token: topk modifiers then one head word; spatial tokens first
    groups = [words[i:i + topk + 1] for i in range(0, len(words), topk + 1)]
    assert [p for _, p in groups[0]] == ["ADJ"] * topk + ["NOUN"]
    assert [p for _, p in groups[-1]] == ["ADV"] * topk + ["VERB"]
    assert tok.decode(tokens).shape == (17, 72, 100, 3)
    assert load_model(path).cfg.topk == topk


def test_images_are_found_by_content_and_gifs_read_as_videos(tok, media, tmp_path):
    from PIL import Image

    frame = np.asarray(Image.open(media["image"]).convert("RGB"))
    expected = tok.encode(frame)
    for name, fmt in [("photo.tif", "TIFF"), ("photo.jfif", "JPEG"), ("photo", "PNG")]:
        Image.fromarray(frame).save(tmp_path / name, format=fmt)
        tokens = tok.encode(tmp_path / name)
        assert tokens.frames == 1 and tokens.ids.shape == expected.ids.shape, name
    assert np.array_equal(tok.encode(tmp_path / "photo").ids, expected.ids)  # PNG without a suffix: lossless
    assert np.array_equal(tok.encode(tmp_path / "photo.tif").ids, expected.ids)
    frames = np.load(media["frames"])[:20]
    Image.fromarray(frames[0]).save(tmp_path / "anim.gif", save_all=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:]], duration=40, loop=0)
    tokens = tok.encode(tmp_path / "anim.gif")
    assert (tokens.frames, tokens.height, tokens.width) == (20, 72, 100) and tokens.fps == pytest.approx(25)
    assert tok.decode(tokens).shape == (20, 72, 100, 3)


def test_animated_webp_apng_and_tiff_stacks_are_videos_of_all_their_frames(tok, media, tmp_path):
    from PIL import Image

    from sweettok.api import _as_frames

    frames = np.load(media["frames"])[:20]  # 20 frames of 72 x 100, moving content
    assert np.abs(frames[0].astype(int) - frames[19]).mean() > 1
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(tmp_path / "anim.webp", save_all=True, append_images=pictures[1:], duration=50, loop=0,
                     lossless=True)
    pictures[0].save(tmp_path / "anim.png", save_all=True, append_images=pictures[1:], duration=50, loop=0)
    pictures[0].save(tmp_path / "stack.tif", save_all=True, append_images=pictures[1:])
    expected = tok.encode(frames)
    for name, fps in [("anim.webp", 20.0), ("anim.png", 20.0), ("stack.tif", 0.0)]:
        read, _, rate = _as_frames(tmp_path / name)
        assert np.array_equal(np.stack(list(read)), frames), name  # lossless files: every frame, exactly
        assert rate == pytest.approx(fps), name
        tokens = tok.encode(tmp_path / name)
        assert (tokens.frames, tokens.height, tokens.width, tokens.ids.shape[0]) == (20, 72, 100, 2), name
        assert tokens.fps == pytest.approx(fps) and np.array_equal(tokens.ids, expected.ids), name
        assert tok.decode(tokens).shape == (20, 72, 100, 3)
    # a TIFF whose pages differ in size (a page and its thumbnail) is an image: its first page
    pictures[0].save(tmp_path / "pyramid.tif", save_all=True, append_images=[pictures[1].resize((50, 36))])
    read, _, rate = _as_frames(tmp_path / "pyramid.tif")
    assert np.array_equal(np.stack(list(read)), frames[:1]) and rate == 0.0
    assert tok.encode(tmp_path / "pyramid.tif").frames == 1


def test_a_phone_video_with_a_display_rotation_is_tokenized_upright(tok, tmp_path):
    import av

    stored = np.zeros((48, 64, 3), np.uint8)
    stored[:, :16] = 255  # white left quarter as stored; a 90-degree display rotation puts it at the bottom
    with av.open(str(tmp_path / "phone.mp4"), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(90)
        for _ in range(5):
            c.mux(s.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        c.mux(s.encode())
    tokens = tok.encode(tmp_path / "phone.mp4")
    assert (tokens.frames, tokens.height, tokens.width) == (5, 64, 48)
    with av.open(str(tmp_path / "phone.mp4")) as c:  # the stored frames, as decoded, turned by hand
        upright = np.stack([np.rot90(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)])
    assert upright.shape == (5, 64, 48, 3) and upright[:, -10:].mean() > 200 and upright[:, :10].mean() < 50
    assert np.array_equal(tokens.ids, tok.encode(np.ascontiguousarray(upright)).ids)
    assert tok.decode(tokens).shape == (5, 64, 48, 3)
