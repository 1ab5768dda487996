"""The `gpu` environment (conf/gpu, run by scripts/gpu_run.sh): the base profile scaled to one GPU.

Its parameters are read through the project's config loader (conf/gpu soft-merged over
conf/base) and built into every typed config the pipelines build, as `kedro run --env gpu`
would. No GPU is needed: this checks the configuration, not the speed.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import yaml

from sweettok import cli
from sweettok.data.clips import ClipCacheConfig
from sweettok.data.synthetic import SyntheticConfig
from sweettok.language.config import CodebookConfig
from sweettok.models.config import SweetTokConfig
from sweettok.pipelines.ingest.nodes import IngestParams
from sweettok.training.loop import LoopConfig
from sweettok.training.proxy_training import ProxyTrainingConfig
from sweettok.training.tokenizer_training import PhaseConfig

REPO = Path(__file__).resolve().parents[1]
GPU_CONF = REPO / "conf" / "gpu"
LOOP_FIELDS = {f.name for f in dataclasses.fields(LoopConfig)}
TRAINED = ("proxy", "tokenizer_phase1", "tokenizer_phase2")


@pytest.fixture(scope="module")
def params() -> dict[str, dict]:
    return {env: cli.load_params(env) for env in ("base", "gpu")}


def _build(p: dict) -> dict:
    return {
        "proxy": ProxyTrainingConfig.from_dict(p["proxy"]),
        "tokenizer_phase1": PhaseConfig.from_dict(p["tokenizer_phase1"], "tokenizer_phase1"),
        "tokenizer_phase2": PhaseConfig.from_dict(p["tokenizer_phase2"], "tokenizer_phase2"),
        "model": SweetTokConfig.from_dict(p["model"]),
        "patchify": ClipCacheConfig.from_dict(p["patchify"]),
        "codebook": CodebookConfig.from_params(p["codebook"]),
        "ingest": IngestParams.from_dict(p["ingest"]),
        "synthetic": SyntheticConfig.from_dict(p["ingest"]["synthetic"]),
    }


def _leaves(tree: dict, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += _leaves(value, (*path, key))
        else:
            out.append(((*path, key), value))
    return out


def _get(tree: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return KeyError
        tree = tree[key]
    return tree


def _gpu_files() -> dict[str, dict]:
    files = sorted(GPU_CONF.glob("parameters*.yml"))
    assert files, "conf/gpu has no parameters files"
    return {p.name: yaml.safe_load(p.read_text()) or {} for p in files}


def test_every_typed_config_builds(params):
    built = _build(params["gpu"])
    for name in TRAINED:
        loop = built[name].loop_config
        assert loop.precision == "bf16" and loop.device == "auto" and loop.num_workers > 0


def test_gpu_scales_batch_and_learning_rate_over_base(params):
    base, gpu = _build(params["base"]), _build(params["gpu"])
    for name in TRAINED:
        b, g = base[name], gpu[name]
        ratio = g.loop_config.batch_size / b.loop_config.batch_size
        assert ratio > 1, f"{name}: the gpu batch must be larger than base's"
        # between no scaling and the linear rule (the profile uses the square-root rule)
        lr_ratio = g.optimizer_config.lr / b.optimizer_config.lr
        assert 1.0 <= lr_ratio <= ratio, f"{name}: lr x{lr_ratio:.2f} for batch x{ratio:.2f}"
        assert math.isclose(lr_ratio, math.sqrt(ratio), rel_tol=0.05), f"{name}: not the square-root rule"
        assert g.schedule_config.warmup_steps < g.loop_config.total_steps
        assert g.run_dir != b.run_dir, f"{name}: a gpu run must not resume base's checkpoints"
    p2b, p2g = base["tokenizer_phase2"], gpu["tokenizer_phase2"]
    assert (p2g.disc_start < p2g.loop_config.total_steps) == (p2b.disc_start < p2b.loop_config.total_steps)
    assert params["gpu"]["proxy"]["encode_batch_size"] > params["base"]["proxy"]["encode_batch_size"]
    assert params["gpu"]["reconstruction"]["batch_size"] > params["base"]["reconstruction"]["batch_size"]
    assert gpu["codebook"].device == "auto"


def test_gpu_keeps_the_model_and_the_clips(params):
    base, gpu = params["base"], params["gpu"]
    assert gpu["model"] == base["model"]
    assert gpu["patchify"] == base["patchify"]
    assert (gpu["model"]["input_frames"], gpu["model"]["resolution"]) == (17, 64)
    # the embedded dataset is the same files (workers are not part of its identity)
    assert SyntheticConfig.from_dict(gpu["ingest"]["synthetic"]).fingerprint() == \
        SyntheticConfig.from_dict(base["ingest"]["synthetic"]).fingerprint()


def test_conf_gpu_holds_only_known_keys_that_differ(params):
    """Every leaf of conf/gpu names a key of base (or a LoopConfig field under a `loop`) and changes it."""
    base = params["base"]
    unknown, restated = [], []
    for name, tree in _gpu_files().items():
        for path, value in _leaves(tree):
            where = f"{name}: {'.'.join(path)}"
            have = _get(base, path)
            if have is KeyError:
                if not (len(path) >= 2 and path[-2] == "loop" and path[-1] in LOOP_FIELDS
                        and isinstance(_get(base, path[:-1]), dict)):
                    unknown.append(where)
            elif have == value and type(have) is type(value):
                restated.append(where)
    assert unknown == [], f"keys that base does not have (typos?): {unknown}"
    assert restated == [], f"keys that restate base's value: {restated}"


def test_gpu_lm_builds_and_scales(params):
    from sweettok.metrics.generation import GenerationConfig
    from sweettok.models.lm import SamplingConfig
    from sweettok.training.lm_training import LMTrainingConfig

    base, gpu = (LMTrainingConfig.from_dict(params[e]["lm"]["training"]) for e in ("base", "gpu"))
    SamplingConfig.from_dict(params["gpu"]["lm"]["sampling"])
    gen = GenerationConfig.from_dict(params["gpu"]["lm"]["generation"])
    assert gpu.loop_config.precision == "bf16" and gpu.loop_config.batch_size > base.loop_config.batch_size
    assert gpu.loop_config.total_steps > base.loop_config.total_steps and gpu.run_dir != base.run_dir
    # a larger model than base's; the learning rate stays at base's peak (already high for a transformer)
    assert gpu.model["width"] > base.model["width"] and gpu.optimizer_config.lr == base.optimizer_config.lr
    assert gen.fvd_per_class is None and gen.samples_per_class > 10
