import pandas as pd

from sweettok.data.clips import ClipDataset
from sweettok.data.video import decord
from sweettok.schemas import CaptionsSchema, ClipIndexSchema, VideoManifestSchema, VideoRejectsSchema


def test_kedro_run_ingest_then_patchify_on_a_tiny_generated_dataset(kedro_project):
    kedro_project.set_params({
        "ingest": {
            "source": "synthetic", "root": "data/01_raw/tiny", "layout": "auto", "split_index": 1,
            "min_frames": 9,
            "synthetic": {"n_classes": 8, "groups": 3, "clips_per_group": 1, "test_groups": 1, "frames": 24,
                          "height": 40, "width": 56, "seed": 1, "workers": 1},
        },
        "patchify": {"frames": 9, "resolution": 24, "frame_stride": 2, "train_clips_per_video": 2,
                     "shard_size_mb": 64},
    })
    out = kedro_project.run("--pipelines", "ingest")
    log = " ".join((out.stdout + out.stderr).split())
    assert "kept 24 (test 8, train 16); rejected 0" in log
    # H.264 in mp4: decord's random access gives exactly the sequentially decoded frames
    assert f"readers: {'decord' if decord is not None else 'pyav'} 24 (" in log
    kedro_project.run("--pipelines", "patchify")
    p = kedro_project.path
    manifest = VideoManifestSchema.validate(pd.read_parquet(p / "data/02_intermediate/video_manifest.parquet"))
    rejects = VideoRejectsSchema.validate(pd.read_csv(p / "data/02_intermediate/video_rejects.csv", dtype=str,
                                                      keep_default_na=False))
    captions = CaptionsSchema.validate(pd.read_parquet(p / "data/02_intermediate/captions.parquet"))
    index = ClipIndexSchema.validate(pd.read_parquet(p / "data/03_primary/clip_cache/index.parquet"))
    assert len(manifest) == 24 and len(rejects) == 0 and len(captions) == 24
    assert manifest.groupby("split").size().to_dict() == {"test": 8, "train": 16}
    assert index.groupby("split").size().to_dict() == {"test": 8, "train": 32}
    assert set(manifest["reader"]) == set(index["reader"]) == {"decord" if decord is not None else "pyav"}
    clip = ClipDataset(index, p / "data/03_primary/clip_cache", split="test", verify=True)[0]["clip"]
    assert tuple(clip.shape) == (3, 9, 24, 24)
