import numpy as np
import pytest
import torch

from sweettok.data.clips import ClipCacheConfig, ClipDataset, build_clip_cache, resize_and_crop, window_starts
from sweettok.data.scan import scan_dataset
from sweettok.data.video import read_frames
from sweettok.schemas import ClipIndexSchema


@pytest.fixture(scope="module")
def cache(tmp_path_factory, tiny_dataset):
    manifest = scan_dataset(tiny_dataset, min_frames=17, progress=False).manifest
    shard_dir = tmp_path_factory.mktemp("shards")
    # a small shard limit, so that the cache spans several shards
    cfg = ClipCacheConfig(frames=17, resolution=32, train_clips_per_video=3, shard_size_mb=1)
    index = build_clip_cache(manifest, cfg, shard_dir, progress=False)
    return manifest, index, shard_dir


def test_window_sampling_protocol():
    assert window_starts(32, 17, 1, "test", 3) == [7]
    assert window_starts(32, 17, 1, "train", 3) == [0, 8, 15]
    assert window_starts(17, 17, 1, "train", 3) == [0]
    assert window_starts(16, 17, 1, "train", 3) == []
    assert window_starts(40, 9, 2, "train", 2) == [0, 23]  # span 17: last start 23


def test_index_counts_and_schema(cache):
    manifest, index, shard_dir = cache
    ClipIndexSchema.validate(index)
    assert (index[index.split == "test"].groupby("video_id").size() == 1).all()
    assert (index[index.split == "train"].groupby("video_id").size() == 3).all()
    assert len(index) == 8 * 1 + 8 * 3
    assert index["shard"].nunique() >= 2
    assert set(index["label"]) == set(manifest["label"])


def test_dataset_shape_range_and_round_trip_against_direct_decode(cache, tiny_dataset):
    manifest, index, shard_dir = cache
    ds = ClipDataset(index, shard_dir, split="test", verify=True)
    assert len(ds) == 8
    for i in range(len(ds)):
        item = ds[i]
        clip = item["clip"]
        assert clip.shape == (3, 17, 32, 32) and clip.dtype == torch.float32
        assert clip.min() >= -0.5 and clip.max() <= 0.5 and clip.std() > 0.02
        row = ds.index.iloc[i]
        video = manifest.set_index("video_id").loc[row.video_id]
        direct = read_frames(tiny_dataset / video["path"], list(range(row.start_frame, row.start_frame + 17)))
        expected = torch.from_numpy(resize_and_crop(direct, 32)).permute(3, 0, 1, 2).float() / 255 - 0.5
        assert torch.equal(clip, expected)
        assert item["label"] == int(video["label_index"])
    # the centre test window of a 24-frame video starts at frame 3
    assert (ds.index["start_frame"] == 3).all()


def test_resize_keeps_content_and_crops_the_centre():
    frames = np.zeros((2, 48, 64, 3), np.uint8)
    frames[:, :, 8:56] = 255  # the central 48 columns are white, the 8-pixel borders black
    out = resize_and_crop(frames, 24)
    assert out.shape == (2, 24, 24, 3)
    # the centre crop drops the black borders; only the antialiasing filter's edge blend remains
    assert out[:, :, 1:-1].min() == 255 and out.min() >= 200


def test_augmentations_and_checksum(cache):
    _, index, shard_dir = cache
    torch.manual_seed(0)
    ds = ClipDataset(index, shard_dir, split="train", crop=24, flip=True)
    assert ds[0]["clip"].shape == (3, 17, 24, 24)
    full = ClipDataset(index, shard_dir, split="train")[0]["clip"]
    flipped = [ClipDataset(index, shard_dir, split="train", flip=True)[0]["clip"] for _ in range(12)]
    assert any(torch.equal(f, full.flip(-1)) for f in flipped) and any(torch.equal(f, full) for f in flipped)
    shard = shard_dir / index.iloc[0]["shard"]
    data = bytearray(shard.read_bytes())
    data[int(index.iloc[0]["offset"]) + 5] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        ClipDataset(index, shard_dir, verify=True)[0]
    data[int(index.iloc[0]["offset"]) + 5] ^= 0xFF
    shard.write_bytes(bytes(data))


def test_config_validation():
    with pytest.raises(ValueError, match="frames"):
        ClipCacheConfig(frames=16)
    with pytest.raises(ValueError, match="unknown parameter"):
        ClipCacheConfig.from_dict({"frames": 17, "fps": 3})
