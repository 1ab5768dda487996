"""The `lm` and `semantics` pipelines on a tiny clip cache and a tiny random-weight tokenizer, through a
Kedro catalog whose persisted entries are conf/base's, moved to a temporary folder.

Real I3D (gFVD) on 9-frame 32 x 32 clips; this checks the plumbing (table shapes and schemas, the
LM checkpoint, MP4 files, lm_metrics.json's keys and counts, few-shot and words tables), not quality.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from sweettok.data.clips import ClipCache, ClipCacheConfig, PendingClipCache
from sweettok.data.scan import scan_dataset
from sweettok.io.model_dataset import ModelDataset
from sweettok.models.tokenizer import save_model
from sweettok.pipelines.lm import create_pipeline as lm_pipeline
from sweettok.pipelines.semantics import create_pipeline as semantics_pipeline
from sweettok.schemas import SCHEMAS
from tiny_models import FRAMES, RES, tiny_video_tokenizer

REPO = Path(__file__).resolve().parents[2]
LM = {
    "encode": {"batch_size": 4, "device": "cpu"},
    "training": {"model": {"width": 32, "depth": 2, "heads": 2}, "optimizer": {"lr": 3e-3, "betas": [0.9, 0.96]},
                 "loop": {"total_steps": 30, "batch_size": 4, "log_every": 5, "checkpoint_every": 30, "device": "cpu",
                          "threads": 1},
                 "eval_every": 10, "ema_decay": 0.9},
    "sampling": {"top_p": 0.95, "guidance_scale": 2.0},
    "generation": {"samples_per_class": 2, "fvd_per_class": 1, "grid_per_class": 1, "guidance_sweep": [0.0, 3.0],
                   "sweep_per_class": 3, "grid_frames": 3, "batch_size": 8, "device": "cpu"},
}
SEMANTICS = {"words": {"split": "test", "figure_clips": 2},
             "fewshot": {"ways": [2, 4], "shots": [1, 3], "queries": 1, "episodes": 20, "split": "all",
                         "prompt_episodes": 1}}
OUTPUTS = ("token_ids", "token_lm", "lm_training", "generated_ids", "generated_videos", "generated_grid",
           "lm_metrics", "generated_confusion", "token_words", "class_words", "words_figure", "fewshot",
           "fewshot_prompts", "fewshot_figure", "fewshot_summary")


@pytest.fixture(scope="module")
def ran(tmp_path_factory, tiny_dataset):
    tmp = tmp_path_factory.mktemp("lm")
    torch.manual_seed(0)
    manifest = scan_dataset(tiny_dataset, min_frames=FRAMES, progress=False).manifest
    PendingClipCache(manifest, ClipCacheConfig(frames=FRAMES, resolution=RES, train_clips_per_video=1)).write_to(
        tmp / "clip_cache")
    cache = ClipCache(tmp / "clip_cache")
    save_model(tiny_video_tokenizer(), tmp / "tokenizer")
    tokenizer = ModelDataset(str(tmp / "tokenizer"), kind="sweettok_pixel").load()

    conf = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())
    entries = {}
    for name in OUTPUTS:
        entry = dict(conf[name])
        entry["filepath"] = str(tmp / "out" / Path(entry["filepath"]).name)
        entries[name] = entry
    entries["lm_training"]["filepath"] = str(tmp / "out" / "lm_training.json")
    catalog = DataCatalog.from_config(entries)
    params = {**LM, "training": {**LM["training"], "run_dir": str(tmp / "runs" / "lm")}}
    for name, value in {"clip_cache": cache, "tokenizer": tokenizer, "params:lm": params,
                        "params:semantics": SEMANTICS}.items():
        catalog[name] = MemoryDataset(value, copy_mode="assign")
    from sweettok.hooks import PanderaValidationHook  # the project's hook validates tables on save and load

    SequentialRunner().run(lm_pipeline() + semantics_pipeline(), catalog, hook_manager=_hooks(PanderaValidationHook()))
    return {"tmp": tmp, "out": tmp / "out", "cache": cache, "tokenizer": tokenizer, "catalog": catalog}


def _hooks(*plugins):
    from kedro.framework.hooks import _create_hook_manager

    manager = _create_hook_manager()
    for plugin in plugins:
        manager.register(plugin)
    return manager


def test_id_table(ran):
    table = SCHEMAS["token_ids"].validate(pd.read_parquet(ran["out"] / "token_ids.parquet"))
    assert len(table) == len(ran["cache"])
    cfg = ran["tokenizer"].cfg
    assert {len(v) for v in table["ids"]} == {cfg.ids_per_token * cfg.num_latent_tokens(FRAMES)}
    # the same ids as encoding a clip directly
    clip = ran["cache"].dataset()[3]["clip"]
    _, ids = ran["tokenizer"].encode(clip[None])
    assert np.array_equal(table["ids"].iloc[3], ids[0].numpy())


def test_lm_checkpoint_and_metrics(ran):
    metrics = json.loads((ran["out"] / "lm_metrics.json").read_text())
    for key in ("val_loss", "unigram_loss", "samples", "gfvd", "gfvd_clips", "generated_class_accuracy"):
        assert key in metrics, key
    # every sample judged by the id classifier; the first of each class in gFVD, against one real clip per class
    assert metrics["samples"] == 16 and metrics["gfvd_clips"] == 8 and metrics["gfvd_real_clips"] == 8
    assert metrics["generated_class_accuracy_i3d_clips"] == 8
    low, high = metrics["generated_class_accuracy_ci"]
    assert low <= metrics["generated_class_accuracy"] <= high and 0 < metrics["generated_class_p_value"] <= 1
    assert math.isfinite(metrics["val_loss_null_class"])
    assert [r["guidance_scale"] for r in metrics["guidance_sweep"]] == [0.0, 3.0]
    assert all(r["samples"] == 24 and 0 <= r["accuracy"] <= 1 for r in metrics["guidance_sweep"])
    assert math.isfinite(metrics["gfvd"]) and metrics["gfvd"] > 0
    assert 0.0 <= metrics["generated_class_accuracy"] <= 1.0 and metrics["chance"] == pytest.approx(1 / 8)
    # the part-of-speech constraint alone puts the LM below a unigram over every word
    assert metrics["val_loss"] < metrics["unigram_loss"]
    lm = ModelDataset(str(ran["out"] / "token_lm"), kind="token_lm").load()
    assert lm.vocab.clip_ids == len(pd.read_parquet(ran["out"] / "token_ids.parquet")["ids"].iloc[0])
    log = pd.read_csv(ran["tmp"] / "runs" / "lm" / "train_log.csv")
    evaluated = log.dropna(subset=["val/nll"])
    assert evaluated["step"].tolist() == [10, 20, 30]
    assert np.allclose(np.exp(evaluated["val/nll"]), evaluated["val/perplexity"])


def test_generated_videos(ran):
    ids = SCHEMAS["generated_ids"].validate(pd.read_parquet(ran["out"] / "generated_ids.parquet"))
    assert ids["label_index"].tolist() == sorted(list(range(8)) * 2)
    index = ran["catalog"].load("generated_videos")
    assert len(index) == 16 and index["file"].str.endswith(".mp4").all()
    with av.open(index["path"].iloc[0]) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == FRAMES and frames[0].shape == (RES, RES, 3)
    assert (ran["out"] / "generated_samples.png").stat().st_size > 1000


def test_words_and_fewshot(ran):
    words = SCHEMAS["token_words"].validate(pd.read_csv(ran["out"] / "token_words.csv"))
    cfg = ran["tokenizer"].cfg
    n_test = int((ran["cache"].index["split"] == "test").sum())
    assert len(words) == n_test * cfg.num_latent_tokens(FRAMES)
    assert (words.groupby("view").size() == pd.Series({"spatial": 4 * n_test,
                                                        "temporal": (cfg.num_latent_tokens(FRAMES) - 4) * n_test})).all()
    fewshot = SCHEMAS["fewshot"].validate(pd.read_csv(ran["out"] / "fewshot.csv"))
    # 2 clips per class (one train, one test video): shots 3 cannot be drawn and is skipped
    assert sorted(set(zip(fewshot["ways"], fewshot["shots"]))) == [(2, 1), (4, 1)]
    assert sorted(fewshot["view"].unique()) == ["both", "spatial", "temporal"]
    summary = json.loads((ran["out"] / "fewshot_summary.json").read_text())
    assert len(summary["skipped"]) == 2 and len(summary["settings"]) == 2
    prompts = (ran["out"] / "fewshot_prompts.txt").read_text(encoding="utf-8")
    assert prompts.count("ANSWERS:") == 2
