"""The image set: held-out photographs give no training image, frames come from training clips only,
the cache reads back what was written, and the schemas reject bad tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.errors
import pytest
from image_helpers import write_clip_cache

from sweettok.data.images import (HELDOUT_PHOTOS, TRAIN_PHOTOS, ImageCache, ImageSetConfig, PendingImageCache,
                                  load_photograph, tile_offsets)
from sweettok.data.synthetic import PHOTOS
from sweettok.schemas import ImageIndexSchema, ImageMetricsSchema
from sweettok.typed_params import ParamError


@pytest.fixture
def clip_cache(tmp_path):
    rng = np.random.default_rng(0)
    clip = lambda t: rng.integers(0, 256, (t, 32, 32, 3), dtype=np.uint8)  # noqa: E731
    first = clip(5)
    overlapping = np.concatenate([first[4:], clip(4)])  # starts where the first clip ends
    return write_clip_cache(tmp_path / "clips", {
        "v1@0": ("train", first), "v1@4": ("train", overlapping), "v2@0": ("train", clip(5)),
        "v3@0": ("test", clip(5)),  # a test video: never an image
        "im1@0": ("train", clip(1)), "im2@0": ("test", clip(1)),  # images of an ImageNet-style root
    })


def _build(cfg: ImageSetConfig, clip_cache, path) -> ImageCache:
    path.mkdir()
    PendingImageCache(cfg, clip_cache, progress=False).write_to(path)
    return ImageCache(path)


def test_photographs_are_split_by_photograph(clip_cache, tmp_path, one_thread):
    cfg = ImageSetConfig(train_photos=["coins", "brick"], heldout_photos=["clock", "gravel"], crops_per_photo=3,
                         heldout_scales=[1, 2])
    cache = _build(cfg, clip_cache, tmp_path / "images")
    index = cache.index
    photos = index[index["source"] == "photo"]
    assert set(photos.loc[photos["split"] == "train", "origin"]) == {"coins", "brick"}
    assert set(photos.loc[photos["split"] == "test", "origin"]) == {"clock", "gravel"}
    assert (photos[photos["split"] == "train"].groupby("origin").size() == 3).all()
    # held-out tiles: every whole 32-px tile of the photograph at shorter edge 32 and 64
    for name in ("clock", "gravel"):
        h, w = load_photograph(name).shape[:2]
        expected = sum(len(tile_offsets(round(h * s / min(h, w)), round(w * s / min(h, w)), 32)) for s in (32, 64))
        assert (photos["origin"] == name).sum() == expected
    assert cache.resolution == 32
    # the tiles read back as the photograph at that scale
    from sweettok.data.clips import resize_shorter_edge

    row = photos[(photos["origin"] == "gravel") & (photos["scale"] == 64)].iloc[1]
    big = resize_shorter_edge(load_photograph("gravel")[None], 64)[0]
    test = cache.dataset("test")
    i = int(np.flatnonzero(test.index["image_id"] == row.image_id)[0])
    np.testing.assert_array_equal(test.read_uint8(i), big[row.top:row.top + 32, row.left:row.left + 32])
    assert test[i]["image"].shape == (3, 32, 32)
    assert test[i]["image"].min() >= -0.5 and test[i]["image"].max() <= 0.5


def test_frames_come_from_training_clips_and_images_keep_their_split(clip_cache, tmp_path, one_thread):
    cfg = ImageSetConfig(embedded_photos=False, video_frames=[0, -1])
    index = _build(cfg, clip_cache, tmp_path / "images").index
    frames = index[index["source"] == "video_frame"]
    assert (frames["split"] == "train").all()
    assert set(frames["origin"]) == {"v1", "v2"}
    # v1@0's last frame is v1@4's first: stored once
    assert len(frames) == 5 and frames["checksum"].is_unique
    images = index[index["source"] == "image"].set_index("image_id")["split"].to_dict()
    assert images == {"im1@0": "train", "im2@0": "test"}
    clips = clip_cache.dataset()
    stored = ImageCache(tmp_path / "images").dataset("train")
    j = int(np.flatnonzero(stored.index["image_id"] == "frame:v2@0#4")[0])
    np.testing.assert_array_equal(stored.read_uint8(j), clips.read_uint8(2)[4])


def test_a_split_without_images_stops_the_build(clip_cache, tmp_path, one_thread):
    cfg = ImageSetConfig(embedded_photos=False)
    only_video = write_clip_cache(tmp_path / "videos", {"v@0": ("train", np.zeros((5, 32, 32, 3), np.uint8)),
                                                        "w@0": ("test", np.zeros((5, 32, 32, 3), np.uint8))})
    with pytest.raises(ValueError, match="no test image"):
        PendingImageCache(cfg, only_video, progress=False).write_to(tmp_path / "out")


def test_embedded_photographs_are_disjoint_from_the_video_backgrounds():
    assert not set(HELDOUT_PHOTOS) & set(TRAIN_PHOTOS)
    assert not set(HELDOUT_PHOTOS) & set(PHOTOS)
    for name in HELDOUT_PHOTOS:
        photo = load_photograph(name)
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3 and min(photo.shape[:2]) >= 256


def test_image_set_config_names_bad_keys():
    with pytest.raises(ParamError, match=r"image_finetune.images.heldout_photos: \['coins'\] also in train_photos"):
        ImageSetConfig.from_dict({"heldout_photos": ["coins"]})
    with pytest.raises(ParamError, match=r"image_finetune.images.train_photos: unknown photograph\(s\) \['kitten'\]"):
        ImageSetConfig.from_dict({"train_photos": ["kitten"]})
    with pytest.raises(ParamError, match=r"image_finetune.images.train_scales"):
        ImageSetConfig.from_dict({"train_scales": [0.5, 2]})


def _index_rows() -> pd.DataFrame:
    base = {"scale": 32, "top": 0, "left": 0, "height": 32, "width": 32, "shard": "shard_00000.bin",
            "checksum": "0" * 32}
    return pd.DataFrame([
        {"image_id": "a", "source": "photo", "origin": "coins", "split": "train", "offset": 0, **base},
        {"image_id": "b", "source": "photo", "origin": "clock", "split": "test", "offset": 3072, **base},
    ])


def test_image_index_schema_rejects_bad_tables():
    ImageIndexSchema.validate(_index_rows())
    leak = _index_rows()
    leak.loc[1, "origin"] = "coins"
    bad_source = _index_rows()
    bad_source.loc[0, "source"] = "drawing"
    not_square = _index_rows()
    not_square.loc[0, "width"] = 40
    extra = _index_rows().assign(label="x")
    for table, why in ((leak, "no held-out"), (bad_source, "isin"), (not_square, "squares of one size"),
                       (extra, "label")):
        with pytest.raises(pandera.errors.SchemaErrors, match=why):
            ImageIndexSchema.validate(table, lazy=True)


def test_image_metrics_schema_rejects_bad_tables():
    good = pd.DataFrame([
        {"method": "tok", "kind": "tokenizer", "tokens": 32, "bits": 700.0, "images": 10, "psnr": 20.0,
         "ssim": 0.5, "lpips": 0.3, "fid": 50.0, "fid_images": 10},
        {"method": "thumb", "kind": "baseline", "tokens": None, "bits": 600.0, "images": 10, "psnr": 22.0,
         "ssim": 0.6, "lpips": 0.4, "fid": None, "fid_images": None},
    ]).astype({"tokens": "Int64", "fid_images": "Int64"})
    ImageMetricsSchema.validate(good)
    fid_alone = good.copy()
    fid_alone.loc[1, "fid"] = 3.0
    too_many = good.copy()
    too_many.loc[0, "fid_images"] = 11
    tokens_on_baseline = good.copy()
    tokens_on_baseline.loc[1, "tokens"] = 4
    bad_psnr = good.copy()
    bad_psnr.loc[0, "psnr"] = -1.0
    for table, why in ((fid_alone, "together"), (too_many, "at most the scored"), (tokens_on_baseline, "token count"),
                       (bad_psnr, "in_range")):
        with pytest.raises(pandera.errors.SchemaErrors, match=why):
            ImageMetricsSchema.validate(table, lazy=True)
