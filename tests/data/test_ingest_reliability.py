"""Ingest on messy, real-world-like collections: odd list lines, codecs whose random access
is wrong, leakage between splits, empty splits, links out of the root."""

from __future__ import annotations

import logging
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweettok.data.clips import ClipCacheConfig, ClipDataset, build_clip_cache, read_windows, resize_and_crop
from sweettok.data.scan import SplitError, scan_dataset
from sweettok.data.synthetic import write_mp4
from sweettok.data.video import decord, iter_frames_sequential, probe_file, read_frames
from sweettok.schemas import ClipIndexSchema, VideoManifestSchema, VideoRejectsSchema

GROW = 7  # classInd index of Grow in the tiny dataset


def numbered_frames(n: int, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Frames whose top row of eight 8-pixel blocks spells the frame number in binary, over a
    random block background with a moving white square."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, (height // 8, width // 8, 3)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
    out = np.repeat(background[None], n, axis=0)
    for i in range(n):
        x = (i * 2) % (width - 8)
        out[i, 24:32, x : x + 8] = 255
        for bit in range(8):
            out[i, 0:8, bit * 8 : (bit + 1) * 8] = 255 if (i >> bit) & 1 else 0
    return out


def frame_number(frame: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if frame[2:6, bit * 8 + 2 : bit * 8 + 6].mean() > 128)


def write_mpeg4_avi(path: Path, frames: np.ndarray, gop: int = 12, b_frames: int = 2) -> None:
    """MPEG-4 Part 2 with B-frames in an AVI container: the case decord seeks wrongly in."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25, options={"qscale": "2"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def sequential(path: Path) -> np.ndarray:
    return np.stack([f.to_ndarray(format="rgb24") for f in iter_frames_sequential(path)])


@pytest.fixture()
def root(tmp_path, tiny_dataset) -> Path:
    root = tmp_path / "root"
    shutil.copytree(tiny_dataset, root)
    return root


def append_lines(path: Path, lines: list[str] | bytes) -> None:
    with open(path, "ab") as f:
        f.write(lines if isinstance(lines, bytes) else "".join(f"{line}\n" for line in lines).encode("utf-8"))


# ----------------------------------------------------------------- list files


def test_names_with_spaces_quotes_and_non_ascii_are_read_and_a_bad_line_costs_one_row(root):
    good = (root / "Grow/v_Grow_g01_c01.mp4").read_bytes()
    names = ["Grow/v_Grow_g04_c01 some name.mp4", "Grow/v_Grów_g04_c02 ünïcødé 名前.mp4", "Grow/it's \"q\".mp4"]
    for i, name in enumerate(names):
        # distinct bytes per copy (a trailing free box), so that they are not identical content
        (root / name).write_bytes(good + (16).to_bytes(4, "big") + b"free" + i.to_bytes(8, "big"))
    nfd = unicodedata.normalize("NFD", names[1])
    assert nfd != names[1]
    train = root / "ucfTrainTestlist/trainlist01.txt"
    # Windows line ends; the second name written in the other Unicode normal form; a quoted path
    append_lines(train, f"{names[0]} {GROW}\r\n{nfd} {GROW}\r\n".encode())
    append_lines(train, [f"{names[2]} {GROW}", f"\"Grow/v_Grow_g02_c01.mp4\" {GROW}"])
    lines_before = len(train.read_bytes().splitlines())
    append_lines(train, b"Grow/bad\xff\xfename.mp4 7\n")  # not UTF-8
    append_lines(train, ["Grow/v_Grow_g09_c01.mp4 99", "Unknown/clip.mp4", "\x07bell.mp4 7"])

    result = scan_dataset(root, min_frames=17, progress=False)
    m = VideoManifestSchema.validate(result.manifest).set_index("path")
    for name in names:
        assert m.loc[name, "label"] == "Grow" and m.loc[name, "split"] == "train" and m.loc[name, "frames"] == 24
    assert len(m) == 16 + 3
    rejects = VideoRejectsSchema.validate(result.rejects)
    rows = {r.source: (r.path, r.reason) for r in rejects.itertuples()}
    assert rows == {
        f"trainlist01.txt:{lines_before + 1}": ("Grow/bad\ufffd\ufffdname.mp4 7", "unparsable_line"),
        f"trainlist01.txt:{lines_before + 2}": ("Grow/v_Grow_g09_c01.mp4", "unknown_label"),
        f"trainlist01.txt:{lines_before + 3}": ("Unknown/clip.mp4", "unknown_label"),
        f"trainlist01.txt:{lines_before + 4}": ("?bell.mp4 7", "unparsable_line"),
    }
    # the repeated (quoted) line for a listed file is ignored and said in the summary
    assert "1 repeated list line(s) ignored" in result.summary


def test_bad_class_index_and_kinetics_rows_become_rejects(root, tmp_path, tiny_dataset):
    append_lines(root / "ucfTrainTestlist/classInd.txt", ["x Nonsense", "3 Duplicate", "9"])
    result = scan_dataset(root, min_frames=17, progress=False)
    assert len(result.manifest) == 16
    assert result.rejects[["source", "reason"]].values.tolist() == [
        ["classInd.txt:9", "unparsable_line"], ["classInd.txt:10", "unparsable_line"],
        ["classInd.txt:11", "unparsable_line"],
    ]

    k = tmp_path / "k"
    (k / "clips").mkdir(parents=True)
    shutil.copy(tiny_dataset / "Grow/v_Grow_g01_c01.mp4", k / "clips/a b_000001_000011.mp4")
    shutil.copy(tiny_dataset / "Shrink/v_Shrink_g01_c01.mp4", k / "clips/ü_000000_000010.mp4")
    (k / "list.csv").write_text(
        "youtube_id,time_start,time_end,label,split\n"
        "a b,1,11,\"grow, slowly\",train\n"
        "ü,0,10,shrink,val\n"
        "c,zero,10,grow,train\n"
        "d,1,2\n", encoding="utf-8")
    result = scan_dataset(k, progress=False)
    assert sorted(zip(result.manifest["path"], result.manifest["label"], result.manifest["split"])) == [
        ("clips/a b_000001_000011.mp4", "grow, slowly", "train"), ("clips/ü_000000_000010.mp4", "shrink", "test")]
    assert result.rejects[["source", "reason"]].values.tolist() == [
        ["list.csv:4", "unparsable_line"], ["list.csv:5", "unparsable_line"]]


# ----------------------------------------------------------------- frame accuracy


@pytest.fixture(scope="module")
def bad_seek_avi(tmp_path_factory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("avi") / "Grow" / "v_Grow_g07_c01.avi"
    frames = numbered_frames(120)
    write_mpeg4_avi(path, frames)
    return path, frames


@pytest.mark.skipif(decord is None, reason="decord has no wheel for this platform")
def test_decord_random_access_is_wrong_on_this_avi(bad_seek_avi):
    """The premise of the next tests: decord seeks to other frames than it names, silently."""
    path, _ = bad_seek_avi
    vr = decord.VideoReader(str(path), num_threads=1)
    numbers = [frame_number(f) for f in vr.get_batch([60, 100]).asnumpy()]
    assert numbers != [60, 100]
    assert [frame_number(f) for f in sequential(path)] == list(range(120))


def test_probe_counts_by_decoding_and_picks_a_reader_that_returns_the_true_frames(bad_seek_avi):
    path, _ = bad_seek_avi
    probe = probe_file(path, min_frames=17)
    assert probe.frames == 120 and (probe.width, probe.height) == (64, 48)
    if decord is not None:
        assert probe.reader == "pyav" and "sequential" in probe.note
    wanted = [100, 3, 60, 61, 119]
    assert [frame_number(f) for f in read_frames(path, wanted, probe.reader)] == wanted


def test_a_window_read_by_wrong_random_access_is_caught_and_read_again(bad_seek_avi):
    path, _ = bad_seek_avi
    windows, reader = read_windows(path, "decord", [0, 50, 103], frames=17, stride=1)
    assert reader == ("pyav" if decord is not None else "decord")
    truth = sequential(path)
    for start, clip in windows:
        assert [frame_number(f) for f in clip] == list(range(start, start + 17))
        np.testing.assert_array_equal(clip, truth[start : start + 17])


def test_cached_windows_equal_sequentially_decoded_frames_for_several_codecs(root, bad_seek_avi):
    """AVI/MPEG-4 with B-frames (wrong random access), H.264 mp4 and MJPEG AVI side by side:
    every cached clip equals the sequentially decoded frames, resized the same way, bit for bit."""
    import av

    shutil.copy(bad_seek_avi[0], root / "Grow/v_Grow_g07_c01.avi")
    write_mpeg4_avi(root / "Grow/v_Grow_g08_c01.avi", numbered_frames(90, seed=1), gop=30)
    mjpeg = root / "Grow/v_Grow_g09_c01.avi"
    with av.open(str(mjpeg), "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for frame in numbered_frames(40, seed=2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    append_lines(root / "ucfTrainTestlist/trainlist01.txt",
                 [f"Grow/v_Grow_g07_c01.avi {GROW}", f"Grow/v_Grow_g09_c01.avi {GROW}"])
    append_lines(root / "ucfTrainTestlist/testlist01.txt", ["Grow/v_Grow_g08_c01.avi"])
    manifest = scan_dataset(root, min_frames=17, progress=False).manifest
    readers = manifest.set_index("path")["reader"]
    assert manifest.set_index("path").loc["Grow/v_Grow_g07_c01.avi", "frames"] == 120
    if decord is not None:
        assert readers["Grow/v_Grow_g07_c01.avi"] == "pyav"
        assert readers["Grow/v_Grow_g01_c01.mp4"] == "decord"

    shard_dir = root.parent / "shards"
    cfg = ClipCacheConfig(frames=17, resolution=32, train_clips_per_video=3)
    index = ClipIndexSchema.validate(build_clip_cache(manifest, cfg, shard_dir, progress=False))
    assert set(index["reader"]) <= {"decord", "pyav"}
    data = ClipDataset(index, shard_dir, verify=True)
    by_id = manifest.set_index("video_id")
    for i, row in enumerate(index.itertuples()):
        truth = sequential(root / by_id.loc[row.video_id, "path"])[row.start_frame : row.start_frame + 17]
        np.testing.assert_array_equal(data.read_uint8(i), resize_and_crop(truth, 32), err_msg=row.clip_id)
    avi = index[index["video_id"] == "Grow/v_Grow_g07_c01"]
    assert avi["start_frame"].tolist() == [0, 52, 103]
    assert (avi["reader"] == readers["Grow/v_Grow_g07_c01.avi"]).all()


# ----------------------------------------------------------------- splits


def test_a_video_in_both_split_lists_is_an_error_naming_both_entries_or_one_reject(root):
    train_lines = len((root / "ucfTrainTestlist/trainlist01.txt").read_text().splitlines())
    append_lines(root / "ucfTrainTestlist/trainlist01.txt", ["Grow/v_Grow_g01_c01.mp4 7"])  # a test video
    with pytest.raises(SplitError) as info:
        scan_dataset(root, min_frames=17, progress=False)
    message = str(info.value)
    assert "Grow/v_Grow_g01_c01.mp4" in message
    assert f"train (trainlist01.txt:{train_lines + 1})" in message and "test (testlist01.txt:" in message
    assert "on_split_conflict: reject" in message

    result = scan_dataset(root, min_frames=17, on_split_conflict="reject", progress=False)
    assert "Grow/v_Grow_g01_c01.mp4" not in set(result.manifest["path"])
    assert result.rejects[["path", "reason"]].values.tolist() == [["Grow/v_Grow_g01_c01.mp4", "in_both_splits"]]
    assert len(result.manifest) == 15


def test_identical_content_under_two_names_in_two_splits_is_leakage(root):
    shutil.copy(root / "Grow/v_Grow_g01_c01.mp4", root / "Grow/v_Grow_g03_c01.mp4")  # a test video's bytes
    append_lines(root / "ucfTrainTestlist/trainlist01.txt", ["Grow/v_Grow_g03_c01.mp4 7"])
    with pytest.raises(SplitError, match=r"train:Grow/v_Grow_g03_c01\.mp4.*test:Grow/v_Grow_g01_c01\.mp4|"
                                         r"test:Grow/v_Grow_g01_c01\.mp4.*train:Grow/v_Grow_g03_c01\.mp4"):
        scan_dataset(root, min_frames=17, progress=False)
    result = scan_dataset(root, min_frames=17, on_split_conflict="reject", progress=False)
    rejects = result.rejects.set_index("path")
    assert sorted(rejects.index) == ["Grow/v_Grow_g01_c01.mp4", "Grow/v_Grow_g03_c01.mp4"]
    assert (rejects["reason"] == "duplicate_content").all()
    assert "train:Grow/v_Grow_g03_c01.mp4" in rejects.loc["Grow/v_Grow_g01_c01.mp4", "detail"]
    assert len(result.manifest) == 15 and result.manifest["sha256"].is_unique


def test_an_empty_split_stops_ingest_and_patchify_unless_allowed(root, tmp_path, tiny_dataset):
    test_list = root / "ucfTrainTestlist/testlist01.txt"
    test_list.write_text("".join(line.replace(".mp4", "_gone.mp4\n") for line in test_list.read_text().splitlines()))
    with pytest.raises(SplitError, match=r"the test split is empty after ingest \(rejects: missing_file 8"):
        scan_dataset(root, min_frames=17, progress=False)
    result = scan_dataset(root, min_frames=17, allow_empty_splits=["test"], progress=False)
    assert set(result.manifest["split"]) == {"train"}

    # patchify: every test video is shorter than one clip
    manifest = scan_dataset(tiny_dataset, min_frames=9, progress=False).manifest
    manifest.loc[manifest["split"] == "test", "frames"] = 10
    cfg = dict(frames=17, resolution=16, train_clips_per_video=1)
    with pytest.raises(ValueError, match=r"the test split has no clips \(8 test video\(s\) in the manifest; "
                                         r"8 video\(s\) shorter than one clip"):
        build_clip_cache(manifest, ClipCacheConfig(**cfg), tmp_path / "s", progress=False)
    index = build_clip_cache(manifest, ClipCacheConfig(**cfg, allow_empty_splits=["test"]), tmp_path / "s2", progress=False)
    assert len(index) == 8 and set(index["split"]) == {"train"}


def test_a_symlink_out_of_the_root_is_one_reject_row(root, tmp_path, caplog):
    outside = tmp_path / "outside.mp4"
    shutil.copy(root / "Grow/v_Grow_g01_c01.mp4", outside)
    (root / "Grow/v_Grow_g05_c01.mp4").symlink_to(outside)  # listed
    (root / "Grow/v_Grow_g05_c02.mp4").symlink_to(outside)  # on disk only
    append_lines(root / "ucfTrainTestlist/trainlist01.txt", ["Grow/v_Grow_g05_c01.mp4 7"])
    with caplog.at_level(logging.INFO, logger="sweettok.data.scan"):
        result = scan_dataset(root, min_frames=17, progress=False)
    assert result.rejects[["path", "reason"]].values.tolist() == [
        ["Grow/v_Grow_g05_c01.mp4", "path_escapes_root"], ["Grow/v_Grow_g05_c02.mp4", "not_in_split_lists"]]
    assert result.rejects["path"].is_unique
    log = caplog.text
    assert "kept 16 (test 8, train 8); rejected 2" in log
    assert "rejected by reason: not_in_split_lists 1, path_escapes_root 1" in log
    assert "readers: " in log


def test_patchify_skips_a_file_that_broke_after_ingest(root, tmp_path):
    manifest = scan_dataset(root, min_frames=17, progress=False).manifest
    broken = manifest[manifest["split"] == "train"].iloc[0]
    (root / broken["path"]).write_bytes(b"gone")
    cfg = ClipCacheConfig(frames=17, resolution=16, train_clips_per_video=1)
    index = build_clip_cache(manifest, cfg, tmp_path / "s", progress=False)
    assert len(index) == 15 and broken["video_id"] not in set(index["video_id"])


def test_manifest_reader_column_survives_the_catalog_round_trip(root, tmp_path):
    manifest = scan_dataset(root, min_frames=17, progress=False).manifest
    manifest.to_parquet(tmp_path / "m.parquet")
    back = VideoManifestSchema.validate(pd.read_parquet(tmp_path / "m.parquet"))
    assert back["reader"].tolist() == manifest["reader"].tolist()
    assert set(back["reader"]) <= {"decord", "pyav"}


def test_probing_in_worker_processes_gives_the_same_manifest_and_rejects(root):
    (root / "Grow/v_Grow_g01_c01.mp4").write_bytes(b"\x00" * 100)  # one bad file among the good ones
    one = scan_dataset(root, min_frames=17, progress=False, allow_empty_splits=["test"])
    two = scan_dataset(root, min_frames=17, progress=False, allow_empty_splits=["test"], workers=2)
    pd.testing.assert_frame_equal(one.manifest, two.manifest)
    pd.testing.assert_frame_equal(one.rejects, two.rejects)
    assert one.rejects[["path", "reason"]].values.tolist() == [["Grow/v_Grow_g01_c01.mp4", "not_a_video"]]
