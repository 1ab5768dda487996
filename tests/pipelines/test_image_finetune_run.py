"""The `image_finetune` pipeline on a tiny clip cache and a tiny random-weight video tokenizer,
through a Kedro catalog whose persisted entries are conf/base's, moved to a temporary folder.

Real photographs, LPIPS and Inception; few images and 32 x 32 px: this checks the plumbing (the
image cache, the image-kind checkpoint, which rows with which counts, the schema, the figure).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from PIL import Image

from sweettok.data.clips import ClipCache, ClipCacheConfig, PendingClipCache
from sweettok.data.images import ImageCache
from sweettok.data.scan import scan_dataset
from sweettok.io.model_dataset import ModelDataset
from sweettok.metrics.image_reconstruction import AFTER, BEFORE
from sweettok.models.checkpoint import CheckpointError
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig
from sweettok.models.sweettok import SweetTok
from sweettok.models.tokenizer import ImageTokenizer, VideoTokenizer, load_model, save_model
from sweettok.pipelines.image_finetune import create_pipeline
from sweettok.schemas import ImageMetricsSchema

REPO = Path(__file__).resolve().parents[2]
FRAMES, RES = 5, 32
TINY = dict(input_frames=FRAMES, resolution=RES, patch_size=8, width=32, heads=2, mlp_ratio=2.0,
            enc_spatial_depth=1, enc_temporal_depth=1, dec_spatial_depth=1, dec_temporal_depth=1,
            dec_temporal_after=[1], spatial_queries=4, temporal_query_grid=2, temporal_queries_per_cell=2,
            codebook_dim=8, gcn_hidden=16, proxy_vocab_size=40, head_hidden=32)
OUTPUTS = ("image_cache", "image_tokenizer", "image_metrics", "image_reconstructions")


def _params(run_dir: Path) -> dict:
    return {
        "images": {"train_photos": ["coins", "brick"], "heldout_photos": ["clock"], "crops_per_photo": 2,
                   "heldout_scales": [1.0, 2.0], "video_frames": [0]},
        "training": {"optimizer": {"lr": 0.003, "betas": [0.9, 0.99], "eps": 1e-8},
                     "schedule": {"warmup_steps": 1},
                     "loop": {"total_steps": 4, "batch_size": 4, "checkpoint_every": 2, "progress": False,
                              "threads": 1, "device": "cpu"},
                     "ema_decay": 0.5, "run_dir": str(run_dir)},
        "evaluation": {"batch_size": 8, "fid": True, "figure_images": 3, "codec": "JPEG", "codec_scales": [1],
                       "device": "cpu"},
    }


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, tiny_dataset):
    tmp = tmp_path_factory.mktemp("image_finetune")
    torch.manual_seed(0)
    manifest = scan_dataset(tiny_dataset, min_frames=FRAMES, progress=False).manifest
    PendingClipCache(manifest, ClipCacheConfig(frames=FRAMES, resolution=RES, train_clips_per_video=1)) \
        .write_to(tmp / "clip_cache")
    proxy = ProxyTokenizer(ProxyTokenizerConfig(hidden_dim=16, num_blocks=1, codebook_size=40, norm_groups=4,
                                                sample_buffer_size=64))
    video = VideoTokenizer(SweetTok(SweetTokConfig.from_dict(TINY), CodebookPrior.random(seed=1)), proxy).eval()
    save_model(video, tmp / "tokenizer", provenance={"run_checkpoint": "runs/tokenizer_phase2/step_00000004"})
    conf = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())
    entries = {}
    for name in OUTPUTS:
        entry = dict(conf[name])
        entry["filepath"] = str(tmp / Path(entry["filepath"]).name)
        entries[name] = entry
    catalog = DataCatalog.from_config(entries)
    params = _params(tmp / "run")
    inputs = {"clip_cache": ClipCache(tmp / "clip_cache"),
              "tokenizer": ModelDataset(str(tmp / "tokenizer"), kind="sweettok_pixel").load(),
              "params:image_finetune": params}
    for name, value in inputs.items():
        catalog[name] = MemoryDataset(value, copy_mode="assign")
    SequentialRunner().run(create_pipeline(), catalog)
    return {"tmp": tmp, "table": pd.read_csv(tmp / "image_metrics.csv"), "cache": ImageCache(tmp / "image_cache"),
            "manifest": manifest}


def test_image_cache_holds_photographs_and_training_frames(finetuned):
    index = finetuned["cache"].index
    assert set(index.loc[index["split"] == "test", "origin"]) == {"clock"}
    # clock (300 x 400) at shorter edge 32 and 64: 1 + 4 tiles of 32 px
    assert (index["split"] == "test").sum() == 5
    train_videos = set(finetuned["manifest"].loc[finetuned["manifest"]["split"] == "train", "video_id"])
    frames = index[index["source"] == "video_frame"]
    assert len(frames) == len(train_videos) and set(frames["origin"]) == train_videos
    assert (index[index["source"] == "photo"]["split"] == "train").sum() == 4


def test_image_tokenizer_is_its_own_kind(finetuned):
    path = finetuned["tmp"] / "image_tokenizer"
    model = load_model(path, kind="sweettok_image")
    assert isinstance(model, ImageTokenizer)
    assert model.provenance["step"] == 4 and model.provenance["image_cache_sha256"] == finetuned["cache"].fingerprint()
    with pytest.raises(CheckpointError, match="an image tokenizer"):
        load_model(path, kind="sweettok_pixel")
    video = load_model(finetuned["tmp"] / "tokenizer", kind="sweettok_pixel")
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, video.state_dict()[k])]
    assert changed and all(k.startswith(("sweettok.decoder.", "proxy.")) for k in changed)


def test_metrics_table_rows_and_counts(finetuned):
    table = ImageMetricsSchema.validate(finetuned["table"])
    assert list(table["method"])[:2] == [BEFORE, AFTER]
    assert set(table["kind"]) == {"tokenizer", "baseline"} and (table["kind"] == "baseline").sum() == 2
    assert table["images"].eq(5).all() and table["fid_images"].eq(5).all() and table["fid"].notna().all()
    rows = table.set_index("method")
    assert rows.loc[BEFORE, "bits"] == rows.loc[AFTER, "bits"]
    assert (rows.loc[table["method"][2:], "bits"] <= rows.loc[AFTER, "bits"]).all()
    # the fine-tuned decoder reconstructs differently from the video tokenizer
    assert rows.loc[BEFORE, "psnr"] != rows.loc[AFTER, "psnr"]


def test_figure_is_written(finetuned):
    with Image.open(finetuned["tmp"] / "image_reconstructions.png") as im:
        assert im.size[0] > 200 and im.size[1] > 400
