"""The `codebook` pipeline's nodes end to end, its configuration files and the word lists."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DataCatalog
from kedro.validation import instantiate_model

from sweettok.cli import load_params
from sweettok.language.config import GENERAL_KEYS, CodebookConfig
from sweettok.language.storage import load_language_codebook
from sweettok.language.vocabulary import load_word_list, word_list_checksums, word_list_path
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.pipelines.codebook import nodes
from sweettok.pipelines.codebook.pipeline import create_pipeline
from sweettok.schemas import CodebookWordsSchema

ROOT = Path(__file__).resolve().parents[2]

CAPTIONS = pd.DataFrame(
    {
        "video_id": [f"v{i}" for i in range(6)],
        "label": ["MoveLeft", "Spin", "Spin", "MoveLeft", "Grow", "Spin"],
        "split": ["train"] * 5 + ["test"],
        "caption": ["a small red square slides slowly", "a big striped red circle spins quickly",
                    "a small red circle spins slowly", "a big blue square slides slowly",
                    "a small blue star grows quickly", "a tiny green star spins"],
        "tagged": [
            "a/DET small/ADJ red/ADJ square/NOUN slides/VERB slowly/ADV",
            "a/DET big/ADJ striped/ADJ red/ADJ circle/NOUN spins/VERB quickly/ADV",
            "a/DET small/ADJ red/ADJ circle/NOUN spins/VERB slowly/ADV",
            "a/DET big/ADJ blue/ADJ square/NOUN slides/VERB slowly/ADV",
            "a/DET small/ADJ blue/ADJ star/NOUN grows/VERB quickly/ADV",
            "a/DET tiny/ADJ green/ADJ star/NOUN spins/VERB",
        ],
    }
)


def glove_file(tmp_path: Path) -> Path:
    """Small word vectors for the caption words (general words fall back to fixed vectors)."""
    words = ["small", "big", "striped", "red", "blue", "square", "circle", "star",
             "slides", "spins", "grows", "slowly", "quickly"]
    rng = np.random.default_rng(0)
    path = tmp_path / "vectors.txt"
    path.write_text("".join(f"{w} " + " ".join(f"{v:.4f}" for v in rng.standard_normal(8)) + "\n" for w in words))
    return path


def test_nodes_end_to_end_give_a_valid_prior(tmp_path: Path):
    params = {"min_caption_count": 2, "general_words": {"adjectives": 3, "nouns": 3, "adverbs": 2, "verbs": 2},
              "encoder": f"glove:{glove_file(tmp_path)}", "batch_size": 8, "device": "cpu", "tagger": "none"}
    cfg = instantiate_model("codebook", params, CodebookConfig)  # what Kedro does with the type hint
    train = nodes.select_captions(CAPTIONS, cfg)
    words = nodes.build_vocabulary(train, cfg)
    CodebookWordsSchema.validate(words)
    spatial = words[words["book"] == "spatial"]
    # caption words (>= 2 occurrences, test split excluded), then 3 general adjectives / nouns
    assert spatial["word"].tolist()[:4] == ["red", "small", "big", "blue"]
    assert spatial[spatial["pos"] == "NOUN"]["word"].tolist()[:2] == ["circle", "square"]
    assert "striped" not in set(spatial["word"]) and "tiny" not in set(spatial["word"])
    assert (spatial["pos"] == "ADJ").sum() == 4 + 3 and (spatial["pos"] == "NOUN").sum() == 2 + 3

    codebook = nodes.build_codebook_prior(words, train, cfg)
    assert isinstance(codebook, CodebookPrior)
    assert codebook.embed_dim == 8 and codebook.spatial.embeddings.dtype == torch.float32
    assert codebook.spatial.words == spatial["word"].tolist()
    sp = codebook.spatial
    edges = {(sp.words[a], sp.words[b]): w for (a, b), w in zip(sp.edge_index.T.tolist(), sp.edge_weight.tolist())}
    assert edges[("red", "circle")] == 2.0 and edges[("circle", "red")] == 2.0
    assert edges[("small", "square")] == 1.0 and edges[("blue", "square")] == 1.0
    assert "star" not in sp.words  # once in training captions (the test split does not count)
    assert all(sp.pos[sp.words.index(a)] != sp.pos[sp.words.index(b)] for a, b in edges)
    tp = codebook.temporal
    t_edges = {(tp.words[a], tp.words[b]): w for (a, b), w in zip(tp.edge_index.T.tolist(), tp.edge_weight.tolist())}
    assert t_edges[("slowly", "slides")] == 2.0 and ("quickly", "spins") in t_edges
    assert tp.edge_index.shape[1] == 2 * len({frozenset(e) for e in t_edges})
    # the embedding of a word is the same row in whichever book holds it
    np.testing.assert_allclose(sp.embeddings[sp.words.index("red")].numpy(),
                               [float(v) for v in (tmp_path / "vectors.txt").read_text().split("\n")[3].split()[1:]],
                               atol=1e-6)

    meta = codebook.metadata
    assert meta["encoder"] == {"name": "glove:vectors.txt", "dim": 8}
    assert meta["counts"]["spatial"]["by_pos"] == {"ADJ": 7, "NOUN": 5}
    assert meta["word_lists_sha256"] == word_list_checksums()
    assert meta["parameters_sha256"] == cfg.fingerprint() and len(meta["captions_sha256"]) == 64
    assert meta["n_training_captions"] == 5

    catalog = DataCatalog.from_config({"language_codebook": {
        "type": "sweettok.io.codebook_dataset.LanguageCodebookDataset", "filepath": str(tmp_path / "lc")}})
    catalog.save("language_codebook", codebook)
    loaded = load_language_codebook(tmp_path / "lc")
    assert loaded.metadata["captions_sha256"] == meta["captions_sha256"]
    assert torch.equal(loaded.temporal.edge_weight, tp.edge_weight)


def test_pipeline_wiring():
    pipe = create_pipeline()
    assert pipe.inputs() == {"captions", "params:codebook"}
    assert pipe.outputs() == {"language_codebook"}
    assert {"codebook_words", "codebook_training_captions"} <= pipe.all_outputs()


def test_catalog_reads_tricky_words_back_as_strings(tmp_path: Path):
    config = yaml.safe_load((ROOT / "conf/base/catalog_codebook.yml").read_text())
    assert config["language_codebook"]["type"] == "sweettok.io.codebook_dataset.LanguageCodebookDataset"
    entry = copy.deepcopy(config["codebook_words"])
    entry["filepath"] = str(tmp_path / "codebook_words.csv")
    catalog = DataCatalog.from_config({"codebook_words": entry})
    words = pd.DataFrame({"word": ["nan", "null", "true", "none"], "pos": ["NOUN", "ADJ", "ADV", "VERB"],
                          "book": ["spatial", "spatial", "temporal", "temporal"], "index": [1, 0, 0, 1],
                          "caption_count": [0, 3, 0, 0], "source": ["general", "both", "general", "general"]})
    catalog.save("codebook_words", words)
    back = catalog.load("codebook_words")
    assert back["word"].tolist() == ["nan", "null", "true", "none"]
    CodebookWordsSchema.validate(back)


@pytest.mark.parametrize("env", ["base", "paper"])
def test_parameter_files_build_valid_configs(env: str):
    params = load_params(env)["codebook"]  # conf/paper holds only what differs from base
    cfg = instantiate_model("codebook", params, CodebookConfig)
    for key, pos in GENERAL_KEYS.items():
        assert cfg.general_words[key] <= len(load_word_list(pos)), f"{env}: {key}"
    spatial = cfg.general_words["adjectives"] + cfg.general_words["nouns"]
    temporal = cfg.general_words["adverbs"] + cfg.general_words["verbs"]
    if env == "paper":  # release: 10,481 spatial and 11,139 temporal words
        assert 10_000 <= spatial <= 11_000 and 10_500 <= temporal <= 11_500
    else:
        assert spatial <= 1000 and temporal <= 1000


def test_shipped_word_lists():
    manifest = json.loads((word_list_path("ADJ").parent / "manifest.json").read_text())
    total = 0
    lists = {}
    for pos in GENERAL_KEYS.values():
        path = word_list_path(pos)
        total += path.stat().st_size
        words = load_word_list(pos)
        lists[pos] = words
        assert len(words) == len(set(words)), f"{path.name} has duplicates"
        assert all(w.isalpha() and w.islower() and w.isascii() for w in words), path.name
        entry = manifest["lists"][path.name]
        assert entry["words"] == len(words)
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert total < 1_000_000
    assert not set(lists["ADJ"]) & set(lists["NOUN"]) and not set(lists["ADV"]) & set(lists["VERB"])
    assert len(lists["ADJ"]) + len(lists["NOUN"]) >= 20_000 and len(lists["ADV"]) + len(lists["VERB"]) >= 11_500
    # frequency order and the part-of-speech rules of scripts/make_word_lists.py
    assert lists["ADJ"].index("red") < lists["ADJ"].index("crimson") and "red" not in lists["NOUN"]
    assert lists["NOUN"].index("dog") < lists["NOUN"].index("giraffe")
    assert lists["ADV"].index("quickly") < lists["ADV"].index("sluggishly") and "up" in lists["ADV"]
    assert lists["VERB"].index("run") < 200 and "run" in lists["NOUN"]  # books are independent
    assert not {"the", "he", "are", "of"} & set().union(*map(set, lists.values()))
