"""`sweettok encode | decode | words | info CHECKPOINT | bench`: round trips and every error case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sweettok.cli import main
from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig
from sweettok.models.tokenizer import save_model

SWEETTOK = str(Path(sys.executable).with_name("sweettok"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_video(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_video_round_trip_through_the_command(checkpoint, media, tmp_path, capsys):
    tokens = tmp_path / "clip.npz"
    code, out, err = run(capsys, "encode", media["video"], "-o", tokens, "--checkpoint", checkpoint)
    assert code == 0, err
    assert "40 frame(s) of 100x72 -> 3 window(s) x 36 ids" in out
    code, out, err = run(capsys, "decode", tokens, "-o", tmp_path / "recon.mp4", "--checkpoint", checkpoint)
    assert code == 0, err
    video = read_video(tmp_path / "recon.mp4")
    assert video.shape == (40, 72, 100, 3)
    assert run(capsys, "decode", tokens, "-o", tmp_path / "recon.npy", "--checkpoint", checkpoint)[0] == 0
    exact = np.load(tmp_path / "recon.npy")
    assert exact.shape == (40, 72, 100, 3)
    # the video file holds the decoded frames up to H.264 (crf 10, 4:2:0 chroma): frame by frame the
    # mean colours agree, and the video is much closer to them than to the next frame's
    assert np.abs(video.mean(axis=(1, 2)) - exact.mean(axis=(1, 2))).max() < 2.0
    assert np.abs(video[1:].astype(int) - exact[1:]).mean() < np.abs(video[1:].astype(int) - exact[:-1]).mean()


def test_image_round_trip_through_the_command(checkpoint, media, tmp_path, capsys):
    code, out, _ = run(capsys, "encode", media["image"], "-o", tmp_path / "img.npz", "--checkpoint", checkpoint)
    assert code == 0 and "1 frame(s) of 100x72 -> 1 window(s) x 12 ids" in out
    assert run(capsys, "decode", tmp_path / "img.npz", "-o", tmp_path / "img.png", "--checkpoint", checkpoint)[0] == 0
    assert Image.open(tmp_path / "img.png").size == (100, 72)


def test_words_and_info(checkpoint, media, tmp_path, capsys):
    run(capsys, "encode", media["video"], "-o", tmp_path / "t.npz", "--checkpoint", checkpoint)
    code, out, _ = run(capsys, "words", tmp_path / "t.npz", "--json", "--checkpoint", checkpoint)
    words = json.loads(out)
    assert code == 0 and len(words) == 3 and all(len(w) == 36 for w in words)
    code, out, _ = run(capsys, "words", tmp_path / "t.npz", "--checkpoint", checkpoint)
    assert "window 2 (frames 34-39)" in out and out.count("spatial :") == 3
    code, out, _ = run(capsys, "info", checkpoint, "--json")
    info = json.loads(out)
    assert code == 0 and info["ids_per_window"] == 36 and info["window_frames"] == 17 and info["resolution"] == 32
    assert info["provenance"]["note"] == "random weights, for tests"


def test_bench_writes_its_figures(checkpoint, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, stdout, err = run(capsys, "bench", "--checkpoint", checkpoint, "--clips", "2", "--batch", "2",
                            "--repeats", "1", "--height", "36", "--width", "48", "--out", out)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["encode_clips_per_s"] > 0 and report["decode_clips_per_s"] > 0 and report["peak_rss_mib"] > 100
    assert report["clip"] == [17, 36, 48, 3] and "clips/s" in stdout


# ---------------------------------------------------------------------- errors: one line, a non-zero exit
def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweettok: error: "), err
    return lines[0]


@pytest.mark.parametrize("name, message", [
    ("text", "not a video or image file"),
    ("truncated", "truncated or damaged MP4"),
    ("broken_png", "unreadable or truncated image"),
])
def test_bad_input_files(name, message, checkpoint, media, tmp_path, capsys):
    code, _, err = run(capsys, "encode", media[name], "-o", tmp_path / "x.npz", "--checkpoint", checkpoint)
    assert code == 2 and message in _one_line_error(err) and str(media[name]) in err
    assert not (tmp_path / "x.npz").exists()


def test_missing_file(checkpoint, tmp_path, capsys):
    code, _, err = run(capsys, "encode", tmp_path / "nope.mp4", "-o", tmp_path / "x.npz", "--checkpoint", checkpoint)
    assert code == 2 and "no such file" in _one_line_error(err)


def test_missing_checkpoint(media, tmp_path, capsys):
    code, _, err = run(capsys, "encode", media["video"], "-o", tmp_path / "x.npz", "--checkpoint", tmp_path / "none")
    assert code == 3 and "no such checkpoint directory" in _one_line_error(err)


def test_incompatible_checkpoint(media, tmp_path, capsys):
    proxy_dir = tmp_path / "proxy"
    save_model(ProxyTokenizer(ProxyTokenizerConfig(hidden_dim=16, num_blocks=1, codebook_size=40, norm_groups=4)),
               proxy_dir)
    code, _, err = run(capsys, "encode", media["video"], "-o", tmp_path / "x.npz", "--checkpoint", proxy_dir)
    assert code == 3 and "a 'proxy_tokenizer' checkpoint, expected sweettok_pixel" in _one_line_error(err)


def test_damaged_checkpoint(checkpoint, media, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoint, damaged)
    weights = bytearray((damaged / "model.safetensors").read_bytes())
    weights[-5] ^= 0xFF
    (damaged / "model.safetensors").write_bytes(bytes(weights))
    code, _, err = run(capsys, "encode", media["video"], "-o", tmp_path / "x.npz", "--checkpoint", damaged)
    assert code == 3 and "damaged checkpoint (model.safetensors: sha256 differs" in _one_line_error(err)


def test_token_file_of_another_checkpoint(checkpoint, other_checkpoint, media, tmp_path, capsys):
    run(capsys, "encode", media["video"], "-o", tmp_path / "t.npz", "--checkpoint", checkpoint)
    code, _, err = run(capsys, "decode", tmp_path / "t.npz", "-o", tmp_path / "r.mp4", "--checkpoint",
                       other_checkpoint)
    assert code == 4 and "tokens made by checkpoint" in _one_line_error(err)
    assert not (tmp_path / "r.mp4").exists()


def test_token_file_of_another_layout_version(checkpoint, media, tmp_path, capsys):
    run(capsys, "encode", media["video"], "-o", tmp_path / "t.npz", "--checkpoint", checkpoint)
    with np.load(tmp_path / "t.npz") as data:
        ids, info = data["ids"], json.loads(str(data["info"]))
    info["layout_version"] = 99
    np.savez(tmp_path / "v99.npz", ids=ids, info=np.array(json.dumps(info)))
    code, _, err = run(capsys, "decode", tmp_path / "v99.npz", "-o", tmp_path / "r.mp4", "--checkpoint", checkpoint)
    assert code == 4 and "token layout version 99" in _one_line_error(err)


def test_not_a_token_file(checkpoint, media, tmp_path, capsys):
    code, _, err = run(capsys, "decode", media["image"], "-o", tmp_path / "r.mp4", "--checkpoint", checkpoint)
    assert code == 4 and "not a sweettok token file" in _one_line_error(err)
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    os.replace(tmp_path / "pickled.npy", tmp_path / "pickled.npz")
    code, _, err = run(capsys, "decode", tmp_path / "pickled.npz", "-o", tmp_path / "r.mp4", "--checkpoint",
                       checkpoint)
    assert code == 4 and "not a sweettok token file" in _one_line_error(err)


def test_console_script_exit_code_and_stderr(media, tmp_path):
    """The installed `sweettok` command itself: one stderr line and exit code 2 on a bad input."""
    proc = subprocess.run([SWEETTOK, "encode", str(media["text"]), "-o", str(tmp_path / "x.npz"), "--checkpoint",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    # the checkpoint is checked first here: tmp_path is a directory but not a checkpoint
    assert proc.returncode == 3 and proc.stderr.startswith("sweettok: error: ") and "config.json" in proc.stderr


def test_the_command_reads_a_project_configuration_quietly_and_without_conf_local(checkpoint, media, tmp_path):
    """Reading conf/ imports Kedro's project module, which logs which logging file it uses: not for
    a `sweettok` command's user (default checkpoint from the catalog, and a profile's parameters).
    This project has no conf/local (git keeps no empty folder): conf/base alone is read."""
    project = tmp_path / "project"
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "base" / "catalog.yml").write_text(
        f"tokenizer:\n  type: sweettok.io.model_dataset.ModelDataset\n  filepath: {checkpoint}\n"
        "  kind: sweettok_pixel\n")
    proc = subprocess.run([SWEETTOK, "encode", str(media["image"]), "-o", str(tmp_path / "x.npz")], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 frame(s) of 100x72" in proc.stdout and "logging configuration" not in proc.stdout + proc.stderr
    proc = subprocess.run([SWEETTOK, "info", "--config", "base"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "latent tokens per clip" in proc.stdout and "logging configuration" not in proc.stdout + proc.stderr


def test_every_advertised_video_output_is_written(checkpoint, media, tmp_path, capsys):
    """Each video suffix `decode` accepts; WebM also through the installed command in a fresh process,
    where decord's libraries load before any encoder (that order once made VP9 fail to open)."""
    tokens = tmp_path / "t.npz"
    assert run(capsys, "encode", media["video"], "-o", tokens, "--checkpoint", checkpoint)[0] == 0
    assert run(capsys, "decode", tokens, "-o", tmp_path / "exact.npy", "--checkpoint", checkpoint)[0] == 0
    exact = np.load(tmp_path / "exact.npy").astype(int)
    from sweettok.cli_tokenize import VIDEO_OUTPUTS

    assert {".webm", ".gif", ".mp4"} <= VIDEO_OUTPUTS
    for suffix in sorted(VIDEO_OUTPUTS):
        out = tmp_path / f"recon{suffix}"
        code, _, err = run(capsys, "decode", tokens, "-o", out, "--checkpoint", checkpoint)
        assert code == 0, (suffix, err)
        video = read_video(out).astype(int)
        assert video.shape == (40, 72, 100, 3), suffix
        # as in the round trip above: the frames' mean colours agree (4:2:0 chroma or a 256-colour
        # palette cost detail, not colour), and each frame is closer to its own than to the next
        assert np.abs(video.mean(axis=(1, 2)) - exact.mean(axis=(1, 2))).max() < 2.0, suffix
        assert np.abs(video[1:] - exact[1:]).mean() < np.abs(video[1:] - exact[:-1]).mean(), suffix
    fresh = tmp_path / "fresh.webm"
    proc = subprocess.run([SWEETTOK, "decode", str(tokens), "-o", str(fresh), "--checkpoint", str(checkpoint)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read_video(fresh), read_video(tmp_path / "recon.webm"))


def test_checkpoint_defaults_to_the_catalogs_tokenizer(checkpoint, media, tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "local").mkdir()
    (project / "conf" / "base" / "catalog.yml").write_text(
        f"tokenizer:\n  type: sweettok.io.model_dataset.ModelDataset\n  filepath: {checkpoint}\n  kind: sweettok_pixel\n")
    monkeypatch.chdir(project)
    code, out, err = run(capsys, "encode", media["image"], "-o", tmp_path / "x.npz")
    assert code == 0, err
    (project / "conf" / "local" / "catalog.yml").write_text(
        "tokenizer:\n  type: sweettok.io.model_dataset.ModelDataset\n  filepath: models/none\n  kind: sweettok_pixel\n")
    code, _, err = run(capsys, "encode", media["image"], "-o", tmp_path / "x.npz")
    # conf/local overrides the catalog as for `kedro run`; the path is resolved from the project root
    assert code == 3 and f"{project / 'models' / 'none'}: no such checkpoint directory" in _one_line_error(err)
