"""One configuration path: the `sweettok` CLI reads parameters through the project's Kedro config loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweettok import cli, settings
from sweettok.models.config import SweetTokConfig

REPO = Path(__file__).resolve().parents[1]

# What a Kedro run gets: a session of the project for each environment, in a fresh process
# (bootstrap_project and the session configure process-wide state). `context.params` holds
# typed dataclasses where a node's type hint asks for one (Kedro builds them, e.g. CodebookConfig):
# they are written back as mappings.
_SESSION_PARAMS = """
import dataclasses, json, sys
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
bootstrap_project(sys.argv[1])
out = {}
for env in sys.argv[2:]:
    with KedroSession.create(project_path=sys.argv[1], env=env) as session:
        context = session.load_context()
        out[env] = {"params": context.params, "loader": context.config_loader["parameters"]}
print("PARAMS" + json.dumps(out, default=dataclasses.asdict))
"""


@pytest.fixture(scope="module")
def session_params() -> dict:
    proc = subprocess.run([sys.executable, "-c", _SESSION_PARAMS, str(REPO), "base", "paper"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("PARAMS"))
    return json.loads(line[len("PARAMS"):])


@pytest.mark.parametrize("env", ["base", "paper"])
def test_cli_parameters_equal_the_kedro_context(env, session_params):
    params = cli.load_params(env)
    assert params == session_params[env]["loader"]
    assert params == session_params[env]["params"]  # what the nodes get, typed blocks as mappings
    assert set(params) >= {"ingest", "patchify", "codebook", "proxy", "model", "tokenizer_phase1", "tokenizer_phase2"}
    # the narrower helpers read the same merged values
    assert cli.load_parameters("parameters_model.yml", env) == {"model": params["model"]}
    assert cli.load_model_config(env) == SweetTokConfig.from_dict(params["model"])


def test_paper_is_soft_merged_over_base():
    assert settings.CONFIG_LOADER_ARGS["merge_strategy"] == {"parameters": "soft"}
    base, paper = cli.load_params("base"), cli.load_params("paper")
    paper_file = yaml.safe_load((REPO / "conf/paper/parameters_model.yml").read_text())["model"]
    # a key that conf/paper leaves out comes from base; one that it gives wins; lists are replaced whole
    assert "topk" not in paper_file and paper["model"]["topk"] == base["model"]["topk"] == 2
    assert paper["model"]["width"] == 512 and base["model"]["width"] == 128
    assert paper["model"]["dec_temporal_after"] == [2, 4, 6, 8]
    # two levels down: phase 2's loop keeps base's grad_clip_norm and seed next to paper's batch size
    loop = paper["tokenizer_phase2"]["loop"]
    assert loop["batch_size"] == 12 and loop["precision"] == "bf16"
    assert loop["grad_clip_norm"] == base["tokenizer_phase2"]["loop"]["grad_clip_norm"] == 1.0
    assert paper["tokenizer_phase2"]["discriminator"] == {"base_channels": 64, "num_downsamples": 3, "norm_groups": 8}
    assert paper["ingest"] == base["ingest"]  # conf/paper has no ingest file
    # a null in conf/paper replaces base's value (rFID on every held-out image, not base's 64)
    assert base["image_finetune"]["evaluation"]["fid_images"] == 64
    assert paper["image_finetune"]["evaluation"]["fid_images"] is None
    assert paper["image_finetune"]["evaluation"]["batch_size"] == base["image_finetune"]["evaluation"]["batch_size"]


def test_conf_paper_holds_only_what_differs():
    """Every leaf of conf/paper differs from conf/base (nothing restated that the merge would give anyway)."""

    def same_leaves(paper: dict, base: dict, path: str = "") -> list[str]:
        out = []
        for key, value in paper.items():
            where = f"{path}.{key}" if path else key
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                out += same_leaves(value, base[key], where)
            elif key in base and base[key] == value and type(base[key]) is type(value):
                out.append(where)
        return out

    base = cli.load_params("base")
    restated = []
    for path in sorted((REPO / "conf/paper").glob("parameters*.yml")):
        restated += same_leaves(yaml.safe_load(path.read_text()) or {}, base)
    assert restated == []


def test_unknown_environment_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="'nosuchenv' not found"):
        cli.load_params("nosuchenv")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "parameters_x.yml").write_text("x: {a: 1, b: {c: 2}}\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "parameters_x.yml").write_text("x: {b: {d: 3}}\n")
    assert cli.load_params("other", tmp_path) == {"x": {"a": 1, "b": {"c": 2, "d": 3}}}
    assert cli.load_parameters("parameters_x.yml", "other", tmp_path) == {"x": {"a": 1, "b": {"c": 2, "d": 3}}}
