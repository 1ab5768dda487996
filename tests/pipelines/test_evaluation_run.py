"""The `evaluation` pipeline on a tiny clip cache and tiny random-weight models, through a Kedro
catalog whose persisted entries are conf/base's, moved to a temporary folder.

Real I3D and Inception networks, few clips and 9-frame 32 x 32 clips: this checks the numbers'
plumbing (which rows, which frames, which counts), the schema, metrics.json and the report page,
including its image section (a tiny image cache of one held-out photograph, and an image tokenizer
copied from the tiny video tokenizer with one decoder weight changed, so before != after).
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from pandera.errors import SchemaError, SchemaErrors

from sweettok.data.clips import ClipCache, ClipCacheConfig, PendingClipCache
from sweettok.data.images import ImageCache, ImageSetConfig, PendingImageCache
from sweettok.data.scan import scan_dataset
from sweettok.io.model_dataset import ModelDataset
from sweettok.metrics.image_reconstruction import AFTER, BEFORE
from sweettok.metrics.reconstruction import frame_ranges
from sweettok.models.lm import TokenLM, TokenLMConfig
from sweettok.models.tokenizer import ImageTokenizer, save_model
from sweettok.pipelines.evaluation import create_pipeline
from sweettok.pipelines.image_finetune.nodes import evaluate_images
from sweettok.pipelines.lm.nodes import encode_token_ids, generate_clips
from sweettok.pipelines.reconstruction.nodes import evaluate_reconstruction
from sweettok.pipelines.semantics.nodes import read_token_words, recognise_few_shot
from sweettok.report.html import SECTIONS
from sweettok.schemas import (EvaluationMetricsSchema, GeneratedIdsSchema, ImageMetricsSchema,
                              ReconstructionMetricsSchema, TokenIdsSchema)
from sweettok.training.logs import CSVLogger
from tiny_models import FRAMES, RES, tiny_proxy, tiny_video_tokenizer

REPO = Path(__file__).resolve().parents[2]
PARAMS = {
    "profile": "test", "device": "cpu", "batch_size": 4,
    "fvd_clips": 4, "fvd_methods": ["SweetTok", "every frame = first frame"],
    "fid_clips": 4, "fid_frames": [4, -1], "fid_methods": ["SweetTok", "proxy tokenizer", "every frame = mean frame"],
    "figure_clips": 2, "figure_frames": 3, "word_clips": 2, "figure_images": 3,
}
RECONSTRUCTION = {"batch_size": 8, "figure_clips": 1, "thumbnail_sizes": [], "codec": "auto", "codec_scales": [1, 2]}
# clock (300 x 400) at shorter edge 32 and 64: 1 + 4 held-out tiles of 32 px; no rFID (cheap)
IMAGES = {"train_photos": ["coins"], "heldout_photos": ["clock"], "crops_per_photo": 1,
          "heldout_scales": [1.0, 2.0], "video_frames": [0]}
IMAGE_EVALUATION = {"batch_size": 8, "fid": False, "figure_images": 2, "codec": "JPEG", "codec_scales": [1],
                    "device": "cpu"}


def _write_log(path: Path, steps: int, values) -> None:
    logger = CSVLogger(path)
    for step in range(1, steps + 1):
        logger.log(step, values(step))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_dataset):
    tmp = tmp_path_factory.mktemp("evaluation")
    torch.manual_seed(0)
    manifest = scan_dataset(tiny_dataset, min_frames=FRAMES, progress=False).manifest
    cfg = ClipCacheConfig(frames=FRAMES, resolution=RES, train_clips_per_video=1)
    PendingClipCache(manifest, cfg).write_to(tmp / "clip_cache")
    cache = ClipCache(tmp / "clip_cache")

    # tiny models with random weights, exported with provenance that points at their run directories
    proxy = tiny_proxy()
    model = tiny_video_tokenizer(proxy)
    runs = tmp / "runs"
    fingerprint = cache.fingerprint()
    save_model(proxy, tmp / "proxy_tokenizer", provenance={
        "run_checkpoint": (runs / "proxy" / "step_00000003").as_posix(), "step": 3, "clip_cache_sha256": fingerprint})
    save_model(model, tmp / "tokenizer", provenance={
        "phase1": {"run_checkpoint": (runs / "tokenizer_phase1" / "step_00000003").as_posix()},
        "run_checkpoint": (runs / "tokenizer_phase2" / "step_00000004").as_posix(), "step": 4,
        "clip_cache_sha256": "0" * 64})  # as if trained on another cache
    # logs with the columns training writes; phase 1's book usage named as the model's own stats
    stats = model.sweettok(cache.dataset("test")[0]["clip"][None]).stats
    usage = {k: v for k, v in stats.items() if k.endswith(("_used", "_perplexity"))}
    assert {"adj_used", "noun_used", "adv_used", "verb_used"} <= set(usage)
    _write_log(runs / "proxy" / "train_log.csv", 3,
               lambda s: {"loss/model": 1.0 / s, "mse": 0.5 / s, "vq": 0.1, "usage": 0.2 * s, "perplexity": 3.0 * s,
                          "lr/model": 1e-3, "time/sec_per_step": 0.1})
    _write_log(runs / "tokenizer_phase1" / "train_log.csv", 3,
               lambda s: {"loss/model": 6.0 - s, "ce": 5.0 - s, "mlc": 0.5, "accuracy": 0.1 * s, "diversity": -0.2 * s,
                          **{k: v * s for k, v in usage.items()}})
    _write_log(runs / "tokenizer_phase2" / "train_log.csv", 4,
               lambda s: {"loss/model": 0.3 / s, "mse": 0.1 / s, "lpips": 0.4})

    tokenizer = ModelDataset(str(tmp / "tokenizer"), kind="sweettok_pixel").load()
    proxy_tokenizer = ModelDataset(str(tmp / "proxy_tokenizer"), kind="proxy_tokenizer").load()
    reconstruction = ReconstructionMetricsSchema.validate(
        evaluate_reconstruction(cache, tokenizer, proxy_tokenizer, RECONSTRUCTION)[0])

    # the image section's inputs: held-out tiles of one photograph, an "image tokenizer" whose decoder
    # differs from the video tokenizer's in one weight, and its image_metrics table
    PendingImageCache(ImageSetConfig.from_dict(IMAGES), cache).write_to(tmp / "image_cache")
    image_cache = ImageCache(tmp / "image_cache")
    image_tokenizer = ImageTokenizer.from_video(tokenizer).eval()
    with torch.no_grad():
        # the decoder head's last weight, by a ramp: a constant added to a position table before a
        # layer norm (the first decoder parameter) cancels, and before == after came down to rounding
        head = dict(image_tokenizer.named_parameters())["sweettok.decoder.head.2.weight"]
        head.add_(torch.linspace(-0.5, 0.5, head.numel()).view_as(head))
    image_metrics = ImageMetricsSchema.validate(evaluate_images(image_cache, tokenizer, image_tokenizer,
                                                                {"evaluation": IMAGE_EVALUATION})[0])

    # the lm and semantics sections' inputs: the real id table and semantics tables of the tiny tokenizer,
    # samples of an untrained LM, and LM scores with recognisable made-up numbers (the report shows them)
    token_ids = TokenIdsSchema.validate(encode_token_ids(cache, tokenizer, {"encode": {"device": "cpu"}}))
    lm_cfg = TokenLMConfig.for_tokenizer(tokenizer.sweettok, FRAMES, 8, width=16, depth=1, heads=2)
    torch.manual_seed(0)
    generated_ids = GeneratedIdsSchema.validate(generate_clips(
        TokenLM(lm_cfg).eval(), tokenizer, cache, token_ids,
        {"generation": {"samples_per_class": 2, "device": "cpu"}})[0])
    classes = sorted(set(token_ids["label"]))
    lm_metrics = {"classes": classes, "val_loss": 1.2345, "val_perplexity": 3.437, "unigram_loss": 4.5678,
                  "slot_unigram_loss": 3.3, "position_unigram_loss": 3.1, "train_sequences": 8, "val_sequences": 8,
                  "parameters": 1000, "steps": 5, "samples": 16, "gfvd": 987.6, "gfvd_clips": 16,
                  "gfvd_real_clips": 8, "gfvd_note": "I3D logits", "generated_class_accuracy": 0.375,
                  "classifier_real_test_accuracy": 0.5, "generated_class_accuracy_i3d": 0.25,
                  "i3d_real_leave_one_out_accuracy": 0.125, "chance": 0.125,
                  "confusion": (np.eye(8, dtype=int) * 2).tolist(), "sampling": {"top_p": 0.95},
                  "val_loss_null_class": 1.5, "generated_class_accuracy_ci": [0.2, 0.55], "generated_class_p_value": 0.01,
                  "generated_class_accuracy_i3d_clips": 8, "cond_dropout": 0.1,
                  "guidance_sweep": [{"guidance_scale": 4.0, "samples": 80, "accuracy": 0.4125, "ci_low": 0.31,
                                      "ci_high": 0.52, "p_value": 3e-9}]}
    semantics = {"words": {"split": "test"},
                 "fewshot": {"ways": [2], "shots": [1], "queries": 1, "episodes": 10, "split": "all"}}
    token_words, class_words, _ = read_token_words(token_ids, tokenizer, cache, semantics)
    fewshot, _, _, fewshot_summary = recognise_few_shot(token_ids, tokenizer, semantics)

    # the persisted outputs exactly as conf/base declares them, under tmp
    conf = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())
    outputs = {}
    for name in ("evaluation_metrics", "evaluation_metrics_json", "evaluation_report"):
        entry = dict(conf[name])
        entry["filepath"] = str(tmp / Path(entry["filepath"]).name)
        outputs[name] = entry
    catalog = DataCatalog.from_config(outputs)
    parameters = {"evaluation": PARAMS, "reconstruction": RECONSTRUCTION, "ingest": {"source": "synthetic"}}
    inputs = {"clip_cache": cache, "tokenizer": tokenizer, "proxy_tokenizer": proxy_tokenizer,
              "reconstruction_metrics": reconstruction, "video_manifest": manifest,
              "image_cache": image_cache, "image_tokenizer": image_tokenizer, "image_metrics": image_metrics,
              "lm_metrics": lm_metrics, "generated_ids": generated_ids, "fewshot": fewshot,
              "fewshot_summary": fewshot_summary, "class_words": class_words, "token_words": token_words,
              "params:evaluation": PARAMS, "params:reconstruction": RECONSTRUCTION, "parameters": parameters}
    for name, value in inputs.items():
        catalog[name] = MemoryDataset(value, copy_mode="assign")
    SequentialRunner().run(create_pipeline(), catalog)
    return {"tmp": tmp, "cache": cache, "reconstruction": reconstruction, "image_metrics": image_metrics,
            "fewshot": fewshot,
            "table": pd.read_csv(tmp / "evaluation_metrics.csv"),
            "json": json.loads((tmp / "metrics.json").read_text()),
            "html": (tmp / "report.html").read_text(encoding="utf-8")}


def test_table_rows_values_and_counts(evaluated):
    table = EvaluationMetricsSchema.validate(evaluated["table"])
    rec = evaluated["reconstruction"]
    methods = list(dict.fromkeys(rec["method"]))
    assert list(table["method"]) == methods
    by = table.set_index("method")
    later = next(iter(frame_ranges(FRAMES)))  # "1-8"
    for (method, frames), row in rec.set_index(["method", "frames"]).iterrows():
        suffix = "" if frames == "all" else "_no_frame0"
        assert frames in ("all", later)
        for k in ("psnr", "ssim", "lpips"):
            assert math.isclose(by.loc[method, k + suffix], row[k], rel_tol=1e-9), (method, frames, k)
    assert by.loc["SweetTok", "tokens"] == 4 + 8 and pd.isna(by.loc["every frame = first frame", "tokens"])
    n_test = int((evaluated["cache"].index["split"] == "test").sum())
    assert n_test == 8 and (table["quality_clips"] == n_test).all()
    # rFVD exactly for the chosen methods on the first 4 clips; FID on frames 4 and 8 of the first 4 clips
    fvd = table.dropna(subset=["fvd"])
    assert list(fvd["method"]) == ["SweetTok", "every frame = first frame"] and (fvd["fvd_clips"] == 4).all()
    fid = table.dropna(subset=["fid"])
    assert list(fid["method"]) == ["SweetTok", "proxy tokenizer", "every frame = mean frame"]
    assert (fid["fid_clips"] == 4).all() and (fid["fid_images"] == 8).all()
    assert table[["fvd_clips", "fid_clips", "fid_images"]].isna().sum().tolist() == [len(table) - 2,
                                                                                      len(table) - 3, len(table) - 3]
    for v in [*fvd["fvd"], *fid["fid"]]:
        assert math.isfinite(v) and v > 0
    # random weights reconstruct noise: further from the clips in I3D space than a still copy of frame 0
    assert by.loc["SweetTok", "fvd"] > by.loc["every frame = first frame", "fvd"]


def test_metrics_json_matches_the_table(evaluated):
    summary, table = evaluated["json"], evaluated["table"]
    assert summary["profile"] == "test"
    assert summary["dataset"]["test_clips"] == 8 and summary["dataset"]["frames"] == FRAMES
    assert list(summary["methods"]) == list(table["method"])
    sweettok = summary["methods"]["SweetTok"]
    row = table.set_index("method").loc["SweetTok"]
    assert sweettok["fvd"] == pytest.approx(row["fvd"]) and sweettok["fvd_clips"] == 4 and sweettok["tokens"] == 12
    assert summary["methods"]["every frame = mean frame"]["fvd"] is None  # missing values are null, not NaN
    assert summary["fid"]["frames"] == [4, -1]
    assert re.fullmatch(r"[0-9a-f]{64}", summary["checkpoints"]["SweetTok (tokenizer)"])
    # the processor and torch's kernel instruction set: CPU training repeats only on the same kind
    assert summary["cpu"].endswith(f"(torch kernels: {torch.backends.cpu.get_cpu_capability()})")
    assert len(summary["cpu"]) > len(" (torch kernels: )") + len(torch.backends.cpu.get_cpu_capability())


def test_report_is_one_self_contained_page(evaluated):
    html = evaluated["html"]
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    assert not re.search(r"https?:", html, flags=re.IGNORECASE) and "url(" not in html and "@import" not in html
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html))  # links stay on the page
    sources = re.findall(r'src="([^"]*)"', html)
    # 2 clips over time, 1 figure of held-out images, LM samples and confusion, few-shot and words figures,
    # 3 training phases, book usage, 2 word thumbnails
    assert len(sources) == 2 + 1 + 2 + 2 + 3 + 1 + 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    for s in sources:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "29.27" in html and "0.7766" in html  # the paper's row
    assert "profile <code>test</code>" in html and "8 test clips" in html
    # names are escaped, not pasted: the codec baselines' "<=" arrives as "&lt;="
    assert "frame 0 @ &lt;=" in html and "frame 0 @ <=" not in html
    # the tokenizer trained on another clip cache is flagged; the proxy's matches
    assert ">False<" in html and ">True<" in html


def test_report_shows_the_held_out_images(evaluated):
    html = evaluated["html"]
    assert '<a href="#images">' in html
    section = html.split('<section id="images">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr class=\"(tokenizer|baseline)\"><td class=\"name\">([^<]*)</td>(.*?)</tr>", section, re.S)
    table = evaluated["image_metrics"]
    assert [name for _, name, _ in rows] == [m.replace("<", "&lt;") for m in table["method"]]
    assert [k for k, _, _ in rows] == list(table["kind"])
    # each row's cells: tokens, bits, images, PSNR, SSIM, LPIPS, rFID, rFID images (rFID not computed here)
    by = table.set_index("method")
    for _, name, rest in rows:
        cells = re.findall(r"<td>([^<]*)</td>", rest)
        row = by.loc[name.replace("&lt;", "<")]
        assert cells[2:6] == ["5", f"{row['psnr']:.2f}", f"{row['ssim']:.4f}", f"{row['lpips']:.3f}"], name
        assert cells[0] == ("-" if pd.isna(row["tokens"]) else str(int(row["tokens"]))) and cells[6:] == ["-", "-"]
    assert by.loc[BEFORE, "psnr"] != by.loc[AFTER, "psnr"]  # the changed decoder weight shows
    # one embedded PNG figure of 3 of the 5 held-out tiles of the one held-out photograph
    sources = re.findall(r'src="([^"]*)"', section)
    assert len(sources) == 1 and base64.b64decode(sources[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 of the 5 held-out images" in section and "photographs clock" in section


def test_report_lists_the_words_of_test_clips(evaluated):
    html = evaluated["html"]
    cache = evaluated["cache"]
    tokenizer = ModelDataset(str(evaluated["tmp"] / "tokenizer"), kind="sweettok_pixel").load()
    clip = cache.dataset("test")[0]["clip"]
    _, ids = tokenizer.encode(clip[None])
    words = tokenizer.sweettok.ids_to_words(ids[0])
    first_spatial = " ".join(w for w, _ in words[:3])
    first_temporal = " ".join(w for w, _ in words[3 * 4 : 3 * 4 + 3])
    assert f"<span>{first_spatial}</span>" in html and f"<span>{first_temporal}</span>" in html
    assert html.count("spatial tokens</h3>") == 2


def test_report_has_the_generation_and_semantics_sections(evaluated):
    html = evaluated["html"]
    generation = html.split('<section id="generation">', 1)[1].split("</section>", 1)[0]
    for shown in ("1.234", "4.568", "987.6", "0.375 [0.200, 0.550], p = 0.01", "16 / 8", "<td>0.412</td>",
                  "[0.310, 0.520]", "<td>3e-09</td>", "of 10% of sequences"):
        assert shown in generation, shown
    assert generation.count('src="data:image/png;base64,') == 2
    semantics = html.split('<section id="semantics">', 1)[1].split("</section>", 1)[0]
    fewshot = evaluated["fewshot"]
    assert len(fewshot) == 3  # one 2-way 1-shot setting, three views
    for row in fewshot.itertuples():
        assert f"<td>{row.accuracy:.3f}</td>" in semantics
        assert f"[{row.ci_low:.3f}, {row.ci_high:.3f}]" in semantics
    assert "2-way 1-shot:" in semantics and semantics.count('src="data:image/png;base64,') == 2


def test_schema_rejects_a_bad_table(evaluated):
    good = EvaluationMetricsSchema.validate(evaluated["table"])
    bad_tables = []
    t = good.copy()
    t.loc[t["method"] == "SweetTok", "fvd_clips"] = pd.NA  # a value without its clip count
    bad_tables.append(t)
    t = good.copy()
    t.loc[t["method"] == "SweetTok", "fvd"] = -1.0
    bad_tables.append(t)
    t = good.copy()
    t.loc[t["method"] == "SweetTok", "fid_images"] = 9  # not a whole number of frames per clip (4 clips)
    bad_tables.append(t)
    bad_tables.append(pd.concat([good, good.iloc[:1]]))  # a method twice
    bad_tables.append(good.drop(columns=["fid_clips"]))
    for bad in bad_tables:
        with pytest.raises((SchemaError, SchemaErrors)):
            EvaluationMetricsSchema.validate(bad, lazy=True)


def test_parameters_reach_the_report_as_plain_yaml_even_as_typed_configs():
    # A whole-chain run hands some sections to later nodes as the dataclasses earlier nodes built.
    import yaml

    from sweettok.language.config import CodebookConfig
    from sweettok.pipelines.evaluation.nodes import plain_parameters

    cfg = CodebookConfig.from_params({})
    plain = plain_parameters({"codebook": cfg, "other": {"xs": (1, 2), "path": __import__("pathlib").Path("a/b")}})
    text = yaml.safe_dump(plain)
    back = yaml.safe_load(text)
    assert back["codebook"]["min_caption_count"] == cfg.min_caption_count
    assert back["codebook"]["general_words"] == dict(cfg.general_words)
    assert back["other"] == {"xs": [1, 2], "path": "a/b"}
