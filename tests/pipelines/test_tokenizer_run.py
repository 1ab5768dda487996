"""End to end: `kedro run --pipeline tokenizer` on a tiny generated dataset with tiny models.

This checks the plumbing (every node, dataset, schema and checkpoint hand-off) in about a
minute; how well the default profile learns is measured by the full run, not here.
"""

import json
import math
from pathlib import Path

import pandas as pd
import torch
import yaml

from sweettok.metrics.reconstruction import thumbnail_name, thumbnail_size_for_bits
from sweettok.schemas import ProxyCodeIndexSchema, ReconstructionBudgetSchema, ReconstructionMetricsSchema
from sweettok.models.tokenizer import load_model
from sweettok.training.checkpoint import is_complete, load_state_file, read_checkpoint_config

REPO = Path(__file__).resolve().parents[2]


def _base(name: str) -> dict:
    return yaml.safe_load((REPO / "conf" / "base" / f"parameters_{name}.yml").read_text())


def _tiny_loop(block: dict, steps: int) -> None:
    block["loop"].update(total_steps=steps, batch_size=2, checkpoint_every=steps, log_every=1, progress=False)
    block["schedule"]["warmup_steps"] = 1


def test_tokenizer_pipeline_end_to_end(kedro_project):
    proxy = _base("proxy")["proxy"]
    proxy["model"].update(hidden_dim=16, num_blocks=1, codebook_size=64, restart_every=0)
    _tiny_loop(proxy, 3)
    model = _base("model")["model"]
    model.update(resolution=32, width=32, heads=2, enc_spatial_depth=2, enc_temporal_depth=1, dec_spatial_depth=2,
                 dec_temporal_depth=1, dec_temporal_after=[1], spatial_queries=4, temporal_query_grid=4,
                 codebook_dim=8, gcn_hidden=16, proxy_vocab_size=64, head_hidden=32)
    tok = _base("tokenizer")
    _tiny_loop(tok["tokenizer_phase1"], 3)
    _tiny_loop(tok["tokenizer_phase2"], 4)
    tok["tokenizer_phase2"]["disc_start"] = 2  # the discriminator trains in the last two steps
    tok["tokenizer_phase2"]["gan_weight"] = 0.01  # off in the base profile; the adversarial path is tested here
    tok["tokenizer_phase2"]["discriminator"].update(base_channels=8, num_downsamples=2)
    tok["tokenizer_phase2"]["colour_weight"] = 1.0  # off in the base profile (the proxy has it); its path is tested here
    codebook = _base("codebook")["codebook"]
    codebook["general_words"] = {k: 20 for k in codebook["general_words"]}
    kedro_project.set_params({
        "ingest": {
            "source": "synthetic", "root": "data/01_raw/tiny", "layout": "auto", "split_index": 1, "min_frames": 9,
            "synthetic": {"n_classes": 8, "groups": 2, "clips_per_group": 1, "test_groups": 1, "frames": 24,
                          "height": 32, "width": 40, "seed": 2, "workers": 1},
        },
        "patchify": {"frames": 9, "resolution": 32, "frame_stride": 1, "train_clips_per_video": 1,
                     "shard_size_mb": 64},
        "codebook": codebook, "proxy": proxy, "model": model, **tok,
    })
    kedro_project.run("--pipeline", "tokenizer", timeout=900)
    p = kedro_project.path

    # every hand-off is a catalog artefact: exported models that load strictly with their provenance
    proxy_model = load_model(p / "data/06_models/proxy_tokenizer", kind="proxy_tokenizer")
    assert proxy_model.provenance["step"] == 3 and is_complete(p / proxy_model.provenance["run_checkpoint"])
    codes = ProxyCodeIndexSchema.validate(pd.read_parquet(p / "data/05_model_input/proxy_codes/index.parquet"))
    assert len(codes) == 16 and (codes[["slices", "grid_h", "grid_w"]].values == [3, 4, 4]).all()

    final = load_model(p / "data/06_models/tokenizer", kind="sweettok_pixel")
    assert final.provenance["step"] == 4 and final.cfg.proxy_vocab_size == 64
    run_checkpoint = p / final.provenance["run_checkpoint"]
    assert read_checkpoint_config(run_checkpoint)["model_config"]["kind"] == "sweettok_pixel"
    assert (run_checkpoint / "discriminator.safetensors").is_file()
    # the exported tokenizer holds the run's EMA weights and its own language codebook
    ema = load_state_file(run_checkpoint / "ema.safetensors")
    assert all(torch.equal(ema[k], v) for k, v in final.state_dict().items())
    assert final.sweettok.quantizer.words == load_model(p / "data/06_models/tokenizer_phase1").quantizer.words
    for phase in ("tokenizer_phase1", "tokenizer_phase2", "proxy"):
        log = pd.read_csv(p / "data/06_models/runs" / phase / "train_log.csv")
        assert len(log) >= 3 and log["loss/model"].notna().all()
        assert (p / "data/06_models/runs" / phase / "loss_curves.png").stat().st_size > 1000
    assert "loss/discriminator" in pd.read_csv(p / "data/06_models/runs/tokenizer_phase2/train_log.csv").columns
    # the patch-colour term: the base proxy has it, phase 2 here too; each logs it
    for phase in ("proxy", "tokenizer_phase2"):
        colour = pd.read_csv(p / "data/06_models/runs" / phase / "train_log.csv")["colour"]
        assert colour.notna().all() and (colour > 0).all()
    # the base profile's code-diversity term is on: by concavity of entropy it is <= 0, and < 0 unless
    # both clips of a batch had the same soft assignments at every position
    assert (pd.read_csv(p / "data/06_models/runs/tokenizer_phase1/train_log.csv")["diversity"] < 0).all()

    metrics = ReconstructionMetricsSchema.validate(pd.read_csv(p / "data/08_reporting/reconstruction_metrics.csv"))
    # frames 1..8 (frame 0 left out) first, then all frames; each tokenizer's bits buy the largest 8-bit
    # thumbnail that fits and a WebP frame 0
    budget_of = dict(zip(metrics["method"], metrics["bits"]))
    equal = [name for label in ("SweetTok", "proxy tokenizer") for name in (
        thumbnail_name(thumbnail_size_for_bits(budget_of[label], 3), 3, label),
        f"WebP frame 0 @ <={int(budget_of[label])} bits (= {label})")]
    methods = ["SweetTok", "proxy tokenizer", "every frame = first frame", "every frame = mean frame", *equal]
    assert list(metrics["method"]) == methods * 2 and list(metrics["frames"]) == ["1-8"] * 8 + ["all"] * 8
    tokens = dict(zip(metrics["method"], metrics["tokens"]))
    assert tokens["SweetTok"] == 4 + 16 and tokens["proxy tokenizer"] == 3 * 4 * 4
    assert metrics["tokens"].isna().sum() == 2 * 6
    # a codec row never spends more than its tokenizer (a flat colour, 24 bits, where even WebP's smallest file
    # does not fit)
    bits = metrics.set_index(["frames", "method"])["bits"]
    assert bits["all", equal[1]] <= bits["all", "SweetTok"] and bits["all", equal[3]] <= 288
    assert metrics["flat_fallback_clips"].notna().sum() == 4
    first = metrics.set_index(["frames", "method"]).loc[("all", "every frame = first frame")]
    assert first["psnr"] < first["psnr_frame_mean"]  # the exact frame 0 weighs less in the whole-clip PSNR
    assert (p / "data/08_reporting/reconstruction_examples.png").stat().st_size > 10_000

    # bits per clip: SweetTok's from its word books (4 spatial + 16 temporal tokens; unordered top-2
    # modifiers + one head word), the proxy's 48 codes of 6 bits, thumbnails of 8-bit RGB
    budget = ReconstructionBudgetSchema.validate(pd.read_csv(p / "data/08_reporting/reconstruction_budget.csv"))
    budget = budget[budget["frames"] == "1-8"]
    bits = dict(zip(budget["method"], budget["bits"]))
    pos = json.loads((p / "data/04_feature/language_codebook/metadata.json").read_text())["counts"]
    n = {**pos["spatial"]["by_pos"], **pos["temporal"]["by_pos"]}
    expected = (4 * (math.log2(math.comb(n["ADJ"], 2)) + math.log2(n["NOUN"]))
                + 16 * (math.log2(math.comb(n["ADV"], 2)) + math.log2(n["VERB"])))
    assert math.isclose(bits["SweetTok"], expected, rel_tol=1e-9)
    assert bits["proxy tokenizer"] == 48 * 6
    assert bits["thumbnail 4x4 @ 384 bits"] == 4 * 4 * 3 * 8 and bits["every frame = first frame"] == 32 * 32 * 3 * 8
    assert list(budget["bits"]) == sorted(budget["bits"])
    scores = budget.set_index("method")
    # the full-size thumbnail is the first frame itself; a finer thumbnail scores higher
    assert math.isclose(scores.loc["thumbnail 32x32 @ 24576 bits", "psnr"], metrics.set_index(["frames", "method"])
                        .loc[("1-8", "every frame = first frame"), "psnr"], abs_tol=1e-4)
    assert scores.loc["thumbnail 32x32 @ 24576 bits", "psnr"] > scores.loc["thumbnail 4x4 @ 384 bits", "psnr"] + 1
    assert (p / "data/08_reporting/reconstruction_budget.png").stat().st_size > 10_000
