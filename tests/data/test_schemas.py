import pandas as pd
import pandera.errors
import pytest

from sweettok.schemas import SCHEMAS, ClipIndexSchema, VideoManifestSchema


def _manifest_row(**overrides):
    row = dict(video_id="A/v_A_g01_c01", path="A/v_A_g01_c01.mp4", root="data/01_raw/x", label="A",
               label_index=0, split="train", kind="video", frames=32, fps=8.0, width=128, height=96,
               size_bytes=1000, sha256="a" * 64, reader="decord")
    row.update(overrides)
    return pd.DataFrame([row])


def test_valid_row_passes():
    assert len(VideoManifestSchema.validate(_manifest_row())) == 1


@pytest.mark.parametrize(
    "column, value",
    [("split", "validation"), ("frames", 0), ("sha256", "xyz"), ("path", "../escape.mp4"), ("path", "/abs.mp4"),
     ("reader", "opencv")],
)
def test_bad_row_is_rejected_naming_the_column(column, value):
    with pytest.raises(pandera.errors.SchemaErrors) as info:
        VideoManifestSchema.validate(_manifest_row(**{column: value}), lazy=True)
    assert column in str(info.value)
    assert set(info.value.failure_cases["column"]) == {column}


def test_unexpected_and_missing_columns_are_named():
    df = _manifest_row().drop(columns=["fps"]).assign(extra=1)
    with pytest.raises(pandera.errors.SchemaErrors) as info:
        VideoManifestSchema.validate(df, lazy=True)
    text = str(info.value)
    assert "fps" in text and "extra" in text


def test_clip_index_shard_name_and_every_catalog_table_has_a_schema():
    row = dict(clip_id="v@0", video_id="v", label="A", label_index=0, split="test", start_frame=0, frames=17,
               height=64, width=64, reader="pyav", shard="../shard_00000.bin", offset=0, checksum="0" * 32)
    with pytest.raises(pandera.errors.SchemaErrors, match="shard"):
        ClipIndexSchema.validate(pd.DataFrame([row]), lazy=True)
    assert {"video_manifest", "video_rejects", "captions", "clip_index", "codebook_words"} <= set(SCHEMAS)
