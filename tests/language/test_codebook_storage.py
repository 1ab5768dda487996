"""The language codebook directory and its Kedro dataset: round trip and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from kedro.io import DataCatalog, DatasetError

from sweettok.io.codebook_dataset import LanguageCodebookDataset
from sweettok.language.codebook import LanguageCodebook
from sweettok.language.storage import (
    CodebookFormatError,
    sha256_file as _sha256,
    load_language_codebook,
    save_language_codebook,
)
from sweettok.models.codebook_prior import CodebookPrior


def sample_codebook() -> LanguageCodebook:
    prior = CodebookPrior.random(n_adj=5, n_noun=7, n_adv=4, n_verb=6, embed_dim=16, n_edges=12, seed=3)
    return LanguageCodebook(spatial=prior.spatial, temporal=prior.temporal,
                            metadata={"encoder": {"name": "test", "dim": 16}, "parameters_sha256": "ab" * 32})


def assert_same(a: CodebookPrior, b: CodebookPrior) -> None:
    for book in ("spatial", "temporal"):
        ga, gb = getattr(a, book), getattr(b, book)
        assert ga.words == gb.words and ga.pos == gb.pos
        for name in ("embeddings", "edge_index", "edge_weight"):
            ta, tb = getattr(ga, name), getattr(gb, name)
            assert ta.dtype == tb.dtype and torch.equal(ta, tb), f"{book}.{name}"


def rewrite_with_checksum(directory: Path, name: str, text: str) -> None:
    """Replace one file and record its new checksum, as a careless hand edit would."""
    (directory / name).write_text(text, encoding="utf-8")
    meta = json.loads((directory / "metadata.json").read_text())
    meta["files"][name] = _sha256(directory / name)
    (directory / "metadata.json").write_text(json.dumps(meta))


def test_round_trip_keeps_tensors_words_and_metadata(tmp_path: Path):
    codebook = sample_codebook()
    target = tmp_path / "feature" / "language_codebook"
    save_language_codebook(codebook, target)
    assert sorted(p.name for p in target.iterdir()) == ["metadata.json", "tensors.safetensors", "words.json"]
    loaded = load_language_codebook(target)
    assert isinstance(loaded, LanguageCodebook) and isinstance(loaded, CodebookPrior)
    assert_same(codebook, loaded)
    assert loaded.metadata["parameters_sha256"] == "ab" * 32
    assert loaded.metadata["format_version"] == 1 and loaded.metadata["encoder"]["dim"] == 16
    assert loaded.spatial.n_first == 5 and loaded.temporal.n_first == 4
    # Saving again replaces the directory and leaves no temporary folder behind.
    save_language_codebook(CodebookPrior.random(embed_dim=8, seed=1), target)
    assert load_language_codebook(target).embed_dim == 8
    assert sorted(p.name for p in target.parent.iterdir()) == ["language_codebook"]


def test_kedro_dataset_from_catalog_config(tmp_path: Path):
    catalog = DataCatalog.from_config({
        "language_codebook": {
            "type": "sweettok.io.codebook_dataset.LanguageCodebookDataset",
            "filepath": str(tmp_path / "language_codebook"),
        }
    })
    assert not catalog.exists("language_codebook")
    codebook = sample_codebook()
    catalog.save("language_codebook", codebook)
    assert catalog.exists("language_codebook")
    loaded = catalog.load("language_codebook")
    assert_same(codebook, loaded)
    assert loaded.metadata["encoder"]["name"] == "test"
    ds = LanguageCodebookDataset(filepath=str(tmp_path / "language_codebook"))
    assert ds._describe() == {"filepath": str(tmp_path / "language_codebook")}
    with pytest.raises(DatasetError, match="saves a CodebookPrior, got dict"):
        ds.save({"spatial": None})


def test_corrupt_tensor_file_is_named(tmp_path: Path):
    target = tmp_path / "cb"
    save_language_codebook(sample_codebook(), target)
    tensors = target / "tensors.safetensors"
    data = tensors.read_bytes()
    tensors.write_bytes(data[: len(data) // 2])
    ds = LanguageCodebookDataset(filepath=str(target))
    with pytest.raises(DatasetError, match=r"tensors\.safetensors: sha256 differs"):
        ds.load()
    # Even with a matching checksum, a truncated file is reported as unreadable.
    meta = json.loads((target / "metadata.json").read_text())
    meta["files"]["tensors.safetensors"] = _sha256(tensors)
    (target / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CodebookFormatError, match=r"tensors\.safetensors: not a readable safetensors file"):
        load_language_codebook(target)


def test_words_that_do_not_match_the_tensors_are_named(tmp_path: Path):
    target = tmp_path / "cb"
    save_language_codebook(sample_codebook(), target)
    words = json.loads((target / "words.json").read_text())
    words["spatial"]["words"].pop()
    words["spatial"]["pos"].pop()
    rewrite_with_checksum(target, "words.json", json.dumps(words))
    with pytest.raises(CodebookFormatError, match=r"spatial\.embeddings is \(12, 16\), expected \(11, 16\)"):
        load_language_codebook(target)


def test_format_version_and_missing_files(tmp_path: Path):
    target = tmp_path / "cb"
    save_language_codebook(sample_codebook(), target)
    meta = json.loads((target / "metadata.json").read_text())
    meta["format_version"] = 99
    (target / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CodebookFormatError, match=r"metadata\.json: format version 99, this code reads version 1"):
        load_language_codebook(target)
    (target / "metadata.json").write_text("{not json")
    with pytest.raises(CodebookFormatError, match=r"metadata\.json: not valid JSON"):
        load_language_codebook(target)
    (target / "metadata.json").unlink()
    with pytest.raises(CodebookFormatError, match=r"metadata\.json: missing"):
        load_language_codebook(target)
    with pytest.raises(CodebookFormatError, match="no language codebook directory"):
        load_language_codebook(tmp_path / "nowhere")
