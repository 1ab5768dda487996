import csv
import json
from collections import Counter

import numpy as np
import pytest

from sweettok.data.synthetic import ACTIONS, SyntheticConfig, all_specs, generate_dataset, render_video
from sweettok.data.video import read_frames


def _decoded(root, rel):
    return read_frames(root / rel, list(range(24)))


def test_layout_lists_and_captions(tiny_dataset, tiny_config):
    lists = tiny_dataset / "ucfTrainTestlist"
    classes = [line.split()[1] for line in (lists / "classInd.txt").read_text().splitlines()]
    assert classes == list(ACTIONS)[:8]
    train = [line.split() for line in (lists / "trainlist01.txt").read_text().splitlines()]
    test = [line.split() for line in (lists / "testlist01.txt").read_text().splitlines()]
    assert len(train) == 8 and len(test) == 8
    for rel, idx in train:
        cls = classes[int(idx) - 1]
        assert rel.startswith(f"{cls}/v_{cls}_g02_c01"), rel
        assert (tiny_dataset / rel).stat().st_size > 1000
    assert all(len(parts) == 1 and "_g01_" in parts[0] for parts in test)
    # every class in both splits
    assert {r.split("/")[0] for r, _ in train} == set(classes) == {p[0].split("/")[0] for p in test}
    with open(tiny_dataset / "captions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    for row in rows:
        words = row["caption"].split()
        tags = [t.rsplit("/", 1) for t in row["tagged"].split()]
        assert [w for w, _ in tags] == words
        pos = Counter(p for _, p in tags)
        assert pos["NOUN"] == 1 and pos["VERB"] == 1 and pos["ADV"] == 1 and pos["ADJ"] >= 2
        verb = next(w for w, p in tags if p == "VERB")
        assert verb == ACTIONS[row["path"].split("/")[0]]


def test_videos_are_real_h264_with_enough_frames(tiny_dataset):
    import av

    rel = "Grow/v_Grow_g01_c01.mp4"
    with av.open(str(tiny_dataset / rel)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        n = sum(1 for _ in container.decode(stream))
    assert n == 24
    frames = _decoded(tiny_dataset, rel)
    assert frames.shape == (24, 48, 64, 3)
    # the object moves: consecutive frames differ, and the clip is not a constant image
    assert np.abs(frames[1:].astype(int) - frames[:-1]).mean() > 0.5


def test_same_seed_same_rendered_frames_and_nearly_the_same_decoded_ones(tmp_path, tiny_config, tiny_dataset):
    # Rendering is exact; x264 now and then encodes the same frames slightly differently
    # (measured 43-46 dB apart when it does), so decoded frames are compared by PSNR.
    for spec in all_specs(tiny_config)[:4]:
        np.testing.assert_array_equal(render_video(spec, tiny_config), render_video(spec, tiny_config))
    again = generate_dataset(tmp_path / "again", tiny_config)
    other = generate_dataset(tmp_path / "other", SyntheticConfig(**{**tiny_config.__dict__, "seed": 4}))
    for rel in ["MoveLeft/v_MoveLeft_g01_c01.mp4", "Shrink/v_Shrink_g02_c01.mp4"]:
        first, second = _decoded(tiny_dataset, rel).astype(float), _decoded(again, rel).astype(float)
        mse = ((first - second) ** 2).mean()
        assert mse == 0 or 10 * np.log10(255**2 / mse) > 38, mse
        assert np.abs(first - _decoded(other, rel)).mean() > 5
    meta_a = json.loads((tiny_dataset / "dataset.json").read_text())
    meta_b = json.loads((again / "dataset.json").read_text())
    assert meta_a["specs"] == meta_b["specs"]


def test_regeneration_is_skipped_when_current(tiny_dataset, tiny_config):
    before = (tiny_dataset / "dataset.json").stat().st_mtime_ns
    generate_dataset(tiny_dataset, tiny_config)
    assert (tiny_dataset / "dataset.json").stat().st_mtime_ns == before


def test_default_size_and_appearance_independent_of_class():
    cfg = SyntheticConfig()
    specs = all_specs(cfg)
    train = [s for s in specs if s.group > cfg.test_groups]
    test = [s for s in specs if s.group <= cfg.test_groups]
    assert len(train) >= 200 and len(test) >= 60
    assert len({s.label for s in specs}) >= 8
    # appearance is drawn independently of the class: each shape and colour shows up in many classes
    for attr in ("shape", "colour", "texture", "size", "background"):
        per_value = Counter()
        for value in {getattr(s, attr) for s in specs}:
            per_value[value] = len({s.label for s in specs if getattr(s, attr) == value})
        assert min(per_value.values()) >= 5, (attr, per_value)
    cams = Counter(s.camera for s in specs)
    assert cams["pan"] > 20 and cams["zoom"] > 20 and cams["none"] > 100
    assert sum(s.background != "gradient" for s in specs) > 150


@pytest.mark.parametrize("bad", [dict(frames=20), dict(n_classes=5), dict(test_groups=8), dict(height=33)])
def test_config_rejects_bad_values_by_name(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SyntheticConfig(**bad)
