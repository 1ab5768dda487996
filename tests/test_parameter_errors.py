"""A bad parameter is named by its full key path, however deep the config that rejects it.

The parameters are the real merged ones (base and paper, through the project's config loader)
with one value changed, built the way the pipelines build them.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from sweettok import cli
from sweettok.data.clips import ClipCacheConfig
from sweettok.data.synthetic import SyntheticConfig
from sweettok.language.config import CodebookConfig
from sweettok.models.config import SweetTokConfig
from sweettok.training.loop import LoopConfig
from sweettok.training.proxy_training import ProxyTrainingConfig
from sweettok.training.tokenizer_training import PhaseConfig
from sweettok.typed_params import ParamError

BUILD = {
    "tokenizer_phase1": lambda p: PhaseConfig.from_dict(p, "tokenizer_phase1"),
    "tokenizer_phase2": lambda p: PhaseConfig.from_dict(p, "tokenizer_phase2"),
    "proxy": ProxyTrainingConfig.from_dict,
    "model": SweetTokConfig.from_dict,
    "patchify": ClipCacheConfig.from_dict,
    "codebook": CodebookConfig.from_params,
}


@pytest.fixture(scope="module")
def params() -> dict[str, dict]:
    return {env: cli.load_params(env) for env in ("base", "paper")}


def _set(params: dict, path: str, value) -> dict:
    """A copy of ``params`` with the value at dotted ``path`` replaced (``...`` deletes it)."""
    out = copy.deepcopy(params)
    *parents, leaf = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is ...:
        del node[leaf]
    else:
        node[leaf] = value
    return out


def _build(params: dict, path: str):
    top = path.split(".")[0]
    if top == "ingest":  # the ingest node builds the embedded dataset's config from ingest.synthetic
        return SyntheticConfig.from_dict(params["ingest"]["synthetic"])
    return BUILD[top](params[top])


def test_the_shipped_parameters_build(params):
    for env in ("base", "paper"):
        for top in BUILD:
            _build(params[env], top)
        _build(params[env], "ingest")


@pytest.mark.parametrize("env", ["base", "paper"])
@pytest.mark.parametrize(
    "path, value, why",
    [
        ("tokenizer_phase2.loop.batch_size", 0, "must be an integer >= 1, got 0"),
        ("tokenizer_phase1.loop.precision", "fp8", "must be one of ('fp32', 'bf16', 'fp16'), got 'fp8'"),
        ("tokenizer_phase1.loop.grad_clip_norm", -1.0, "must be > 0 or null, got -1.0"),
        ("tokenizer_phase2.optimizer.lr", 0, "must be in (0.0, inf), got 0"),
        ("tokenizer_phase1.optimizer.betas", [0.9], "must be two numbers, got [0.9]"),
        ("tokenizer_phase2.schedule.warmup_steps", 10**9, "must not exceed total_steps"),
        ("tokenizer_phase1.schedule.min_lr_ratio", 2.0, "must be in [0.0, 1.0], got 2.0"),
        ("tokenizer_phase2.discriminator.num_downsamples", 0, "must be an integer >= 1, got 0"),
        ("tokenizer_phase2.discriminator.base_channels", 12, "must be divisible by norm_groups (8), got 12"),
        ("tokenizer_phase2.disc_optimizer.weight_decay", -1, "must be in [0.0, inf), got -1"),
        ("tokenizer_phase2.ema_decay", 1.0, "must be in (0, 1) or null, got 1.0"),
        ("tokenizer_phase2.lpips_frames", -1, "must be a number >= 0, got -1"),
        ("proxy.loop.seed", -1, "must be an integer >= 0, got -1"),
        ("proxy.model.codebook_size", 1, "must be >= 2, got 1"),
        ("proxy.model.hidden_dim", 30, "must be divisible by norm_groups"),
        ("proxy.schedule.warmup_steps", -1, "must be an integer >= 0, got -1"),
        ("proxy.optimizer.eps", "tiny", "must be a number, got 'tiny'"),
        ("model.width", 130, "must be divisible by heads"),
        ("model.topk", 0, "must be >= 1, got 0"),
        ("model.dec_temporal_after", [1, 2], "must list one layer per decoder temporal module"),
        ("ingest.synthetic.frames", 20, "videos need at least 24 frames, got 20"),
    ],
)
def test_bad_value_names_the_full_path(params, env, path, value, why):
    with pytest.raises(ParamError) as info:
        _build(_set(params[env], path, value), path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and why in message, message
    assert info.value.keys == [path]


@pytest.mark.parametrize(
    "path, suggestion",
    [
        ("tokenizer_phase2.loop.bach_size", "batch_size"),
        ("tokenizer_phase1.optimizer.weight_decy", "weight_decay"),
        ("tokenizer_phase2.schedule.warmup", "warmup_steps"),
        ("tokenizer_phase2.discriminator.base_channel", "base_channels"),
        ("tokenizer_phase2.disc_optimizer.beta", "betas"),
        ("proxy.model.codebook_sise", "codebook_size"),
        ("proxy.loop.checkpoint_evry", "checkpoint_every"),
        ("model.wdith", "width"),
        ("ingest.synthetic.frame", "frames"),
        ("patchify.frame", "frames"),
        ("codebook.tager", "tagger"),
    ],
)
def test_unknown_key_names_the_full_path_and_the_close_match(params, path, suggestion):
    with pytest.raises(ValueError) as info:
        _build(_set(params["base"], path, 1), path)
    assert str(info.value) == f"{path}: unknown parameter; did you mean {suggestion!r}?"


def test_unknown_keys_without_a_close_match_list_the_known_ones(params):
    bad = _set(_set(params["base"], "tokenizer_phase2.loop.zzz", 1), "tokenizer_phase2.loop.qqq", 2)
    with pytest.raises(ParamError) as info:
        _build(bad, "tokenizer_phase2")
    assert info.value.keys == ["tokenizer_phase2.loop.qqq", "tokenizer_phase2.loop.zzz"]
    first, second = str(info.value).split("; tokenizer_phase2.loop.zzz: ")
    assert first.startswith("tokenizer_phase2.loop.qqq: unknown parameter; known: batch_size, checkpoint_every")
    assert second.startswith("unknown parameter; known: batch_size")


def test_wrong_shape_missing_and_owner_given_keys_are_named(params):
    base = params["base"]
    with pytest.raises(ParamError, match=r"^tokenizer_phase2\.loop: expected a mapping of parameters, got int 5$"):
        _build(_set(base, "tokenizer_phase2.loop", 5), "tokenizer_phase2")
    with pytest.raises(ParamError, match=r"^proxy\.loop\.total_steps: required parameter missing$"):
        _build(_set(base, "proxy.loop.total_steps", ...), "proxy")
    # the schedule's length is the loop's: setting it under schedule is refused, not silently ignored
    with pytest.raises(ParamError, match=r"^tokenizer_phase1\.schedule\.total_steps: given by the enclosing "
                                         r"config \(400\), not a parameter here$"):
        _build(_set(base, "tokenizer_phase1.schedule.total_steps", 10), "tokenizer_phase1")


def test_top_level_configs_keep_their_full_paths(params):
    base = params["base"]
    with pytest.raises(ValueError, match=r"patchify\.frames=16"):
        _build(_set(base, "patchify.frames", 16), "patchify")
    with pytest.raises(ValueError, match=r"codebook\.general_words\.nouns must be an integer >= 0, got -1"):
        _build(_set(base, "codebook.general_words.nouns", -1), "codebook")


def test_configs_built_in_code_name_the_class():
    with pytest.raises(ParamError, match=r"^LoopConfig\.batch_size: must be an integer >= 1, got 0$"):
        LoopConfig(total_steps=1, batch_size=0)
    with pytest.raises(ParamError, match=r"^PhaseConfig\.loop\.batch_size: must be an integer >= 1, got 0$"):
        PhaseConfig(loop={"total_steps": 1, "batch_size": 0})
    with pytest.raises(ParamError, match=r"^ProxyTrainingConfig\.model\.norm_groups: must be >= 1, got 0$"):
        ProxyTrainingConfig(model={"norm_groups": 0})
    with pytest.raises(ParamError, match=r"^SyntheticConfig\.crf: must be in \[0, 51\], got 60$"):
        SyntheticConfig(crf=60)


def test_error_survives_pickling():
    """Worker processes (ingest, DataLoader) send exceptions back pickled."""
    with pytest.raises(ParamError) as info:
        PhaseConfig.from_dict({"loop": {"total_steps": 1, "batch_size": 0, "bach_size": 1}}, "tokenizer_phase2")
    back = pickle.loads(pickle.dumps(info.value))
    assert isinstance(back, ValueError) and str(back) == str(info.value) and back.keys == info.value.keys


def test_cli_error_names_the_path_through_the_merged_environment(tmp_path, capsys):
    conf = tmp_path / "conf"
    (conf / "bad").mkdir(parents=True)
    (conf / "base").mkdir()
    (conf / "base" / "parameters_model.yml").write_text((cli.find_conf_root() / "base/parameters_model.yml").read_text())
    (conf / "bad" / "parameters_model.yml").write_text("model:\n  heads: 3\n")
    assert cli.main(["info", "--config", "bad", "--conf-dir", str(conf)]) == 2
    assert "model.width: must be divisible by heads (3), got 128" in capsys.readouterr().err
