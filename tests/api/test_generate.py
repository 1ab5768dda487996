"""`Generator` and `sweettok generate`: clips of a class sampled from a token LM, with the tokenizer it models."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from sweettok.api import CheckpointError, Generator, InputError, Tokenizer, Tokens
from sweettok.cli import main
from sweettok.models.lm import SamplingConfig, TokenLM, TokenLMConfig, generate
from sweettok.models.tokenizer import load_model, model_identity, save_model

CLASSES = ["Walk", "Run", "Jump"]


def save_lm(directory: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A tiny random-weight LM for the tokenizer in ``tokenizer_dir``, saved as the lm pipeline does."""
    torch.manual_seed(seed)
    video = load_model(tokenizer_dir, kind="sweettok_pixel")
    cfg = TokenLMConfig.for_tokenizer(video.sweettok, video.cfg.input_frames, len(CLASSES), width=32, depth=1,
                                      heads=2)
    save_model(TokenLM(cfg), directory, provenance={"tokenizer_sha256": model_identity(tokenizer_dir),
                                                    "classes": CLASSES})
    return directory


@pytest.fixture(scope="module")
def lm_dir(checkpoint, tmp_path_factory) -> Path:
    return save_lm(tmp_path_factory.mktemp("lm") / "token_lm", checkpoint)


def test_samples_are_seeded_decodable_clips_of_the_named_class(lm_dir, checkpoint):
    gen = Generator.from_pretrained(lm_dir, tokenizer=checkpoint, device="cpu")
    assert gen.classes == CLASSES
    assert gen.class_index("run") == gen.class_index("1") == gen.class_index(1) == 1
    sampling = {"temperature": 1.0, "top_p": 0.9, "guidance_scale": 2.0}
    a = gen.sample("Run", n=3, seed=7, sampling=sampling, fps=10)
    b = gen.sample("run", n=3, seed=7, sampling=sampling, fps=10)
    c = gen.sample("Run", n=3, seed=8, sampling=sampling, fps=10)
    ids = np.concatenate([t.ids for t in a])
    assert ids.shape == (3, gen.tokenizer.ids_per_window(17))
    assert np.array_equal(ids, np.concatenate([t.ids for t in b]))  # same seed, same clips
    assert not np.array_equal(ids, np.concatenate([t.ids for t in c]))
    assert len({row.tobytes() for row in ids}) == 3  # three different clips
    # the same ids as the pipeline's sampler for this class
    expected = generate(gen.lm, torch.full((3,), 1), SamplingConfig.from_dict(sampling),
                        torch.Generator().manual_seed(7))
    assert np.array_equal(ids, expected.numpy())
    for tokens in a:
        assert (tokens.frames, tokens.window, tokens.height, tokens.width, tokens.fps) == (17, 17, 32, 32, 10.0)
        frames = gen.tokenizer.decode(tokens)
        assert frames.shape == (17, 32, 32, 3) and frames.dtype == np.uint8
        assert len(gen.tokenizer.words(tokens)[0]) == ids.shape[1]  # every id is a word of its book
    with pytest.raises(InputError, match="0 Walk, 1 Run, 2 Jump"):
        gen.sample("Swim")
    with pytest.raises(InputError, match="no class"):
        gen.class_index(3)


def test_an_lm_of_another_tokenizer_is_refused(checkpoint, other_checkpoint, tmp_path):
    lm = save_lm(tmp_path / "token_lm", other_checkpoint)
    with pytest.raises(CheckpointError, match="trained on the ids of tokenizer"):
        Generator.from_pretrained(lm, tokenizer=checkpoint)
    Generator.from_pretrained(lm, tokenizer=Tokenizer.from_pretrained(other_checkpoint))  # its own: fine
    with pytest.raises(CheckpointError, match="no token LM here"):
        Generator.from_pretrained(tmp_path / "nothing", tokenizer=checkpoint)


def test_generate_command_writes_videos_token_files_and_frames(lm_dir, checkpoint, other_checkpoint, tmp_path,
                                                               capsys):
    common = ["--lm", str(lm_dir), "--checkpoint", str(checkpoint), "--seed", "3"]
    assert main(["generate", "Jump", "-n", "2", "-o", str(tmp_path / "jump.mp4"), *common]) == 0
    assert "2 clip(s) of class Jump (17 frames of 32x32, seed 3" in capsys.readouterr().out
    for i in range(2):
        with av.open(str(tmp_path / f"jump_{i:02d}.mp4")) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == 17 and frames[0].shape == (32, 32, 3)
    assert main(["generate", "2", "-n", "2", "-o", str(tmp_path / "jump.npy"), *common]) == 0
    stacked = np.load(tmp_path / "jump.npy")
    assert stacked.shape == (2, 17, 32, 32, 3) and stacked.dtype == np.uint8
    # token files of the same draw: `sweettok decode` reads them, and they decode to the .npy's clips
    assert main(["generate", "jump", "-n", "2", "-o", str(tmp_path / "t.npz"), *common]) == 0
    for i in range(2):
        tokens = Tokens.load(tmp_path / f"t_{i:02d}.npz")
        assert tokens.frames == 17 and "class Jump" in tokens.source
        assert main(["decode", str(tmp_path / f"t_{i:02d}.npz"), "-o", str(tmp_path / "one.npy"), "--checkpoint",
                     str(checkpoint)]) == 0
        assert np.array_equal(np.load(tmp_path / "one.npy"), stacked[i])
    assert not np.array_equal(stacked[0], stacked[1])
    capsys.readouterr()
    assert main(["generate", "Swim", "-o", str(tmp_path / "x.mp4"), *common]) == 2
    assert "no class 'Swim'" in capsys.readouterr().err
    assert main(["generate", "Jump", "-o", str(tmp_path / "x.png"), *common]) == 2
    capsys.readouterr()
    assert main(["generate", "Jump", "-o", str(tmp_path / "x.mp4"), "--lm", str(lm_dir), "--checkpoint",
                 str(other_checkpoint)]) == 3
    assert "trained on the ids of tokenizer" in capsys.readouterr().err
