import shutil

import numpy as np
import pandas as pd
import pytest

from sweettok.data.scan import resolve_inside, scan_dataset
from sweettok.data.synthetic import write_mp4
from sweettok.data.video import ProbeError, probe_file
from sweettok.schemas import CaptionsSchema, VideoManifestSchema, VideoRejectsSchema


@pytest.fixture()
def dirty_root(tmp_path, tiny_dataset):
    """The tiny dataset plus one bad file of each kind, all named by the train list."""
    root = tmp_path / "root"
    shutil.copytree(tiny_dataset, root)
    good = root / "Grow/v_Grow_g01_c01.mp4"
    bad = {
        "Grow/v_Grow_g05_c01.mp4": b"",
        "Grow/v_Grow_g05_c02.mp4": good.read_bytes()[: good.stat().st_size // 2],
        "Grow/v_Grow_g05_c03.mp4": np.random.default_rng(0).bytes(5000),
    }
    for rel, data in bad.items():
        (root / rel).write_bytes(data)
    frames = np.zeros((10, 48, 64, 3), np.uint8)
    frames[:, 10:20, 10:20] = 200
    write_mp4(root / "Grow/v_Grow_g05_c04.mp4", frames, fps=8)
    write_mp4(tmp_path / "outside.mp4", np.zeros((30, 48, 64, 3), np.uint8), fps=8)
    shutil.copy(good, root / "Grow/v_Grow_g06_c01.mp4")  # on disk, in no list
    grow = 7  # classInd index of Grow
    with open(root / "ucfTrainTestlist/trainlist01.txt", "a") as f:
        for rel in [*bad, "Grow/v_Grow_g05_c04.mp4", "../outside.mp4", "Grow/v_Grow_g05_c09.mp4"]:
            f.write(f"{rel} {grow}\n")
    return root


def test_each_bad_file_is_rejected_with_its_reason_and_nothing_else_is_lost(dirty_root):
    result = scan_dataset(dirty_root, min_frames=17, progress=False)
    reasons = dict(zip(result.rejects["path"], result.rejects["reason"]))
    assert reasons == {
        "Grow/v_Grow_g05_c01.mp4": "empty_file",
        "Grow/v_Grow_g05_c02.mp4": "truncated",
        "Grow/v_Grow_g05_c03.mp4": "not_a_video",
        "Grow/v_Grow_g05_c04.mp4": "too_short",
        "../outside.mp4": "path_escapes_root",
        "Grow/v_Grow_g05_c09.mp4": "missing_file",
        "Grow/v_Grow_g06_c01.mp4": "not_in_split_lists",
    }
    too_short = result.rejects.set_index("path").loc["Grow/v_Grow_g05_c04.mp4", "detail"]
    assert "10 frames" in too_short
    m = result.manifest
    assert len(m) == 16
    assert m.groupby("split").size().to_dict() == {"test": 8, "train": 8}
    assert (m["frames"] == 24).all() and (m["width"] == 64).all() and (m["height"] == 48).all()
    assert (m["fps"] == 8.0).all()
    assert m["sha256"].str.len().eq(64).all() and m["sha256"].is_unique
    VideoManifestSchema.validate(m)
    VideoRejectsSchema.validate(result.rejects)
    caps = CaptionsSchema.validate(result.captions)
    assert set(caps["video_id"]) == set(m["video_id"])
    assert m.set_index("video_id").loc["Grow/v_Grow_g01_c01", "label"] == "Grow"


def test_path_checks(tmp_path):
    root = tmp_path / "r"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.mp4").write_bytes(b"1")
    (tmp_path / "secret.mp4").write_bytes(b"1")
    (root / "a" / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    assert resolve_inside(root, "a/x.mp4") == (root / "a" / "x.mp4").resolve()
    assert resolve_inside(root, "a/../../secret.mp4") is None
    assert resolve_inside(root, str(tmp_path / "secret.mp4")) is None
    assert resolve_inside(root, "a/link.mp4") is None  # a symlink out of the root


def test_probe_reports_decode_failure_inside_a_complete_container(tmp_path, tiny_dataset):
    data = bytearray((tiny_dataset / "Grow/v_Grow_g01_c01.mp4").read_bytes())
    # keep the box structure, destroy the coded frames in the middle of 'mdat'
    start = data.find(b"mdat") + 4
    data[start + 64 : start + 64 + 3000] = bytes(3000)
    path = tmp_path / "garbled.mp4"
    path.write_bytes(bytes(data))
    try:
        probe = probe_file(path, min_frames=1)
    except ProbeError as exc:
        assert exc.reason == "undecodable"
    else:  # H.264 decoders conceal errors; then the file is at least still the right length
        assert probe.frames == 24


def test_kinetics_layout(tmp_path, tiny_dataset):
    root = tmp_path / "k"
    (root / "train" / "grow").mkdir(parents=True)
    (root / "val" / "shrink").mkdir(parents=True)
    shutil.copy(tiny_dataset / "Grow/v_Grow_g01_c01.mp4", root / "train/grow/abc_000010_000020.mp4")
    shutil.copy(tiny_dataset / "Shrink/v_Shrink_g01_c01.mp4", root / "val/shrink/xyz_000000_000010.mp4")
    pd.DataFrame({
        "youtube_id": ["abc", "xyz", "gone"], "time_start": [10, 0, 5], "time_end": [20, 10, 15],
        "label": ["grow", "shrink", "grow"], "split": ["train", "val", "train"],
    }).to_csv(root / "kinetics.csv", index=False)
    result = scan_dataset(root, progress=False)
    assert sorted(zip(result.manifest["path"], result.manifest["split"], result.manifest["label"])) == [
        ("train/grow/abc_000010_000020.mp4", "train", "grow"),
        ("val/shrink/xyz_000000_000010.mp4", "test", "shrink"),
    ]
    assert result.rejects[["path", "reason"]].values.tolist() == [["gone_000005_000015", "missing_file"]]


def test_imagenet_layout(tmp_path):
    from PIL import Image

    root = tmp_path / "in"
    shade = iter(range(0, 250, 50))
    for split, cls, n in (("train", "n01", 2), ("train", "n02", 1), ("val", "n01", 1)):
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((40, 30, 3), next(shade), np.uint8)).save(root / split / cls / f"im{i}.png")
    (root / "train" / "n02" / "broken.JPEG").write_bytes(b"not a jpeg")
    result = scan_dataset(root, progress=False)
    m = result.manifest
    assert len(m) == 4 and (m["kind"] == "image").all() and (m["frames"] == 1).all()
    assert (m["width"] == 30).all() and (m["height"] == 40).all()
    assert m.groupby("split").size().to_dict() == {"test": 1, "train": 3}
    assert result.rejects[["path", "reason"]].values.tolist() == [["train/n02/broken.JPEG", "undecodable"]]
    assert (m["reader"] == "pil").all()


def _video(path, shade: int, frames: int = 6) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = np.full((frames, 32, 48, 3), shade, np.uint8)
    clip[:, :, : 4 + shade % 40] = 255 - shade  # different bytes for every file
    write_mp4(path, clip, fps=8)


def test_folders_layout_splits_each_class_by_a_hash_of_its_names_and_keeps_groups_whole(tmp_path):
    import hashlib

    root = tmp_path / "mine"
    shade = iter(range(5, 250, 9))
    for i in range(5):
        _video(root / "Wave" / f"clip {i}.mp4", next(shade))
    for actor, n in (("anna", 3), ("ben", 2)):
        for i in range(n):
            _video(root / "Clap" / actor / f"take{i}.MOV", next(shade))
    _video(root / "Sit" / "only.mkv", next(shade))
    _video(root / "loose.mp4", next(shade))
    _video(root / ".ipynb_checkpoints" / "x.mp4", next(shade))  # hidden: not a class
    _video(root / "Wave" / ".cache" / "y.mp4", next(shade))  # hidden inside a class: not a file of it

    result = scan_dataset(root, min_frames=4, progress=False)
    m = result.manifest.set_index("path")
    assert "(folders)" in result.summary and sorted(set(m["label"])) == ["Clap", "Sit", "Wave"]
    assert len(m) == 11 and (m["frames"] == 6).all()
    assert result.rejects[["path", "reason"]].values.tolist() == [["loose.mp4", "unknown_label"]]
    # Wave: 5 files, each its own group: ceil(0.2 * 5) = 1 to test, the first in sha256 order
    first = min((f"Wave/clip {i}.mp4" for i in range(5)), key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    assert m.loc[m["label"] == "Wave", "split"].to_dict() == {
        f"Wave/clip {i}.mp4": "test" if f"Wave/clip {i}.mp4" == first else "train" for i in range(5)}
    # Clap: two actors, one per split, each actor's takes together
    clap = m[m["label"] == "Clap"]
    by_actor = clap.groupby(clap.index.str.split("/").str[1])["split"].agg(set).to_dict()
    assert sorted(by_actor) == ["anna", "ben"] and all(len(s) == 1 for s in by_actor.values())
    assert {next(iter(s)) for s in by_actor.values()} == {"train", "test"}
    assert m.loc["Sit/only.mkv", "split"] == "train"  # one group: training only
    # the same files give the same split; a larger share moves more groups to test
    again = scan_dataset(root, min_frames=4, progress=False).manifest
    assert again[["path", "split"]].equals(result.manifest[["path", "split"]])
    half = scan_dataset(root, min_frames=4, progress=False, test_fraction=0.5).manifest
    assert (half[half["label"] == "Wave"]["split"] == "test").sum() == 3
    with pytest.raises(ValueError, match="test_fraction"):
        scan_dataset(root, min_frames=4, progress=False, test_fraction=1.0)


def test_folders_layout_takes_the_split_from_train_and_val_folders(tmp_path):
    root = tmp_path / "split"
    shade = iter(range(5, 250, 17))
    for split, cls, n in (("train", "run", 2), ("train", "jump", 2), ("Val", "run", 1), ("Val", "jump", 1)):
        for i in range(n):
            _video(root / split / cls / f"v{i}.webm", next(shade))
    _video(root / "train" / "stray.mp4", next(shade))
    result = scan_dataset(root, min_frames=4, progress=False)
    m = result.manifest
    assert "(folders)" in result.summary
    assert m.groupby(["split", "label"]).size().to_dict() == {("test", "jump"): 1, ("test", "run"): 1,
                                                              ("train", "jump"): 2, ("train", "run"): 2}
    assert result.rejects[["path", "reason"]].values.tolist() == [["train/stray.mp4", "unknown_label"]]
    # an ImageNet-style folder of images is still the imagenet layout
    from PIL import Image

    (tmp_path / "im" / "train" / "n01").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "im" / "train" / "n01" / "a.png")
    from sweettok.data.scan import detect_layout

    assert detect_layout(tmp_path / "im") == "imagenet" and detect_layout(root) == "folders"
    (tmp_path / "empty" / "docs").mkdir(parents=True)
    with pytest.raises(ValueError, match="no <class>/ folders of videos"):
        detect_layout(tmp_path / "empty")


@pytest.mark.parametrize("bad", [0, 1.0, -0.1, "0.2", True])
def test_ingest_params_check_the_test_fraction(bad):
    from sweettok.pipelines.ingest.nodes import IngestParams

    with pytest.raises(ValueError, match="ingest.test_fraction"):
        IngestParams.from_dict({"test_fraction": bad})
    assert IngestParams.from_dict({"test_fraction": 0.3}).test_fraction == 0.3
