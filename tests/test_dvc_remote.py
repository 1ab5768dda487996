"""Sharing outputs through a DVC remote, end to end, on a scratch copy of the project.

A real stage (`ingest`, shrunk through its parameters file to a few seconds) runs through
`make repro` with a PATH that lacks the environment (the Makefile must put it there),
its outputs are pushed to a temporary local remote, the repository is cloned, the clone
pulls, and then `dvc status` is clean and every pulled file equals the original.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGE = "ingest"
# conftest's TINY dataset: 16 videos of 24 frames at 48 x 64
SMALL_SYNTHETIC = dict(n_classes=8, groups=2, clips_per_group=1, test_groups=1, frames=24, height=48, width=64,
                       workers=1)


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if env is None:
        env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update(KEDRO_DISABLE_TELEMETRY="1", DVC_NO_ANALYTICS="1")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def _files(root: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of every file under the given outputs, by path relative to root."""
    digests = {}
    for p in paths:
        target = root / p
        for f in sorted([target] if target.is_file() else target.rglob("*")):
            if f.is_file():
                digests[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return digests


def test_default_remote_is_a_sibling_folder_of_the_checkout():
    from dvc.config import Config

    config = Config(dvc_dir=str(ROOT / ".dvc"))
    remote = config["core"]["remote"]
    # `url = ../../sweettok-dvc-remote` in .dvc/config: DVC resolves it against .dvc/
    assert Path(config["remote"][remote]["url"]) == ROOT.parent / "sweettok-dvc-remote"


def test_push_clone_pull_gives_the_same_outputs(tmp_path):
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][STAGE]
    outs = [o if isinstance(o, str) else next(iter(o)) for o in stage["outs"]]

    work, clone, remote = tmp_path / "work", tmp_path / "clone", tmp_path / "remote"
    work.mkdir()
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "conf/base", work / "conf/base")
    (work / "conf/local").mkdir()
    (work / "conf/local/.gitkeep").touch()
    for name in ("pyproject.toml", ".gitignore", ".dvcignore", "Makefile"):
        shutil.copy2(ROOT / name, work / name)
    # only this stage (make repro reproduces every stage of dvc.yaml)
    text = yaml.safe_dump({"stages": {STAGE: stage}}, sort_keys=False)
    (work / "dvc.yaml").write_text(text)
    params_file = next(iter(next(iter(stage["params"]))))
    params = yaml.safe_load((work / params_file).read_text())
    params[STAGE]["workers"] = 1
    params[STAGE]["min_frames"] = min(params[STAGE]["min_frames"], SMALL_SYNTHETIC["frames"])
    params[STAGE]["synthetic"].update(SMALL_SYNTHETIC)
    (work / params_file).write_text(yaml.safe_dump(params, sort_keys=False))

    _run(["git", "init", "-q"], work)
    _run(["git", "config", "user.email", "test@example.com"], work)
    _run(["git", "config", "user.name", "test"], work)
    _run(["dvc", "init", "-q"], work)
    _run(["dvc", "remote", "add", "scratch", str(remote)], work)

    make = shutil.which("make")
    if make:
        # what a user without an activated environment gets: the Makefile puts .venv/bin first;
        # `-o setup` takes the environment as set up; Python writes byte code (.dvcignore)
        env = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": "/usr/bin:/bin"}
        _run([make, "-o", "setup", f"VENV={BIN.parent}", "repro"], work, env=env)
    else:  # pragma: no cover
        _run(["dvc", "repro", STAGE], work)
    originals = _files(work, outs)
    assert len(originals) > 16  # 16 videos, list files, tables
    assert json.loads(_run(["dvc", "status", STAGE, "--json"], work).stdout) == {}

    _run(["dvc", "push", "-r", "scratch", STAGE], work)
    _run(["git", "add", "-A"], work)
    _run(["git", "commit", "-q", "-m", "ingest"], work)
    tracked = _run(["git", "ls-files"], work).stdout.split()
    assert "dvc.lock" in tracked and not [f for f in tracked if f.startswith(tuple(outs))]

    _run(["git", "clone", "-q", str(work), str(clone)], tmp_path)
    assert not any((clone / o).exists() for o in outs)
    _run(["dvc", "pull", "-r", "scratch", STAGE], clone)
    assert json.loads(_run(["dvc", "status", STAGE, "--json"], clone).stdout) == {}
    assert _files(clone, outs) == originals


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_repro_puts_the_environment_on_the_path():
    env = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/bin:/bin"}
    out = _run(["make", "-n", "-o", "setup", "repro"], ROOT, env=env).stdout
    assert f'PATH="{ROOT / ".venv/bin"}:$PATH" .venv/bin/dvc repro' in out, out
