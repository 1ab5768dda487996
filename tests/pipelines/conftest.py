"""A throw-away copy of the Kedro project, so end-to-end runs write outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KEDRO = str(Path(sys.executable).with_name("kedro"))


class KedroProject:
    def __init__(self, path: Path):
        self.path = path

    def set_params(self, params: dict) -> None:
        """Parameter blocks for conf/local, soft-merged over conf/base like any environment
        (keys left out keep their base values)."""
        local = self.path / "conf" / "local" / "parameters.yml"
        current = yaml.safe_load(local.read_text()) if local.exists() else {}
        current.update(params)
        local.write_text(yaml.safe_dump(current))

    def run(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1",
               "COLUMNS": "400"}  # wide enough that rich does not wrap log lines
        proc = subprocess.run([KEDRO, "run", *args], cwd=self.path, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        return proc


@pytest.fixture()
def kedro_project(tmp_path) -> KedroProject:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()  # the package itself is installed (editable) in the environment
    return KedroProject(project)
