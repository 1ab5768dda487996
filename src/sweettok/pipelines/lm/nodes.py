"""Nodes of the `lm` pipeline: the id table, the class-conditional LM, samples and their scores.

Parameters (``lm`` in ``conf/*/parameters_lm.yml``): ``encode`` (``batch_size``, ``device``),
``training`` (:class:`~sweettok.training.lm_training.LMTrainingConfig`), ``sampling``
(:class:`~sweettok.models.lm.SamplingConfig`) and ``generation``
(:class:`~sweettok.metrics.generation.GenerationConfig`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from sweettok.data.clips import ClipCache
from sweettok.data.token_ids import encode_id_table, id_matrix, tokenizer_identity
from sweettok.metrics.generation import (GenerationConfig, IdClassifier, PendingVideos, binomial_summary,
                                         confusion_figure,
                                         confusion_matrix, confusion_title,
                                         decode_ids, leave_one_out_centroid_accuracy, nearest_centroid_accuracy,
                                         sample_grid)
from sweettok.models.lm import SamplingConfig, TokenLM, TokenLMConfig, generate
from sweettok.models.tokenizer import VideoTokenizer
from sweettok.pipelines.records import final_model, params_hash
from sweettok.training.distributed import cleanup, select_device
from sweettok.training.lm_training import (LMTrainingConfig, SequenceDataset, evaluate_nll, train_lm,
                                           unigram_baselines)
from sweettok.training.rng import seed_everything

log = logging.getLogger(__name__)


def _class_names(token_ids: pd.DataFrame) -> list[str]:
    """Class names by label index (every index below the largest must have a name)."""
    pairs = token_ids[["label_index", "label"]].drop_duplicates().sort_values("label_index")
    if pairs["label_index"].duplicated().any():
        raise ValueError("the id table gives one label index two class names")
    names = dict(zip(pairs["label_index"], pairs["label"], strict=True))
    return [names.get(i, f"class {i}") for i in range(int(pairs["label_index"].max()) + 1)]


def _check_tokenizer(token_ids: pd.DataFrame, tokenizer: VideoTokenizer) -> None:
    made_by, loaded = set(token_ids["tokenizer"]), tokenizer_identity(tokenizer)
    if made_by != {loaded}:
        raise ValueError(f"the id table was made by tokenizer {sorted(made_by)} but the loaded tokenizer is {loaded}; "
                         f"rerun the lm pipeline's encode_token_ids")


def encode_token_ids(clip_cache: ClipCache, tokenizer: VideoTokenizer, params: dict) -> pd.DataFrame:
    """Every cached clip's token ids, once (the LM and the semantics reports read this table)."""
    enc = params.get("encode", {})
    device = select_device(enc.get("device", "auto"))
    return encode_id_table(tokenizer, clip_cache, batch_size=int(enc.get("batch_size", 16)), device=device)


def train_token_lm(token_ids: pd.DataFrame, tokenizer: VideoTokenizer, clip_cache: ClipCache,
                   params: dict) -> tuple[TokenLM, dict]:
    """Train the class-conditional LM on the training clips' ids; validate on the test clips' ids.

    Returns the LM (EMA weights) and a summary: final validation NLL and perplexity beside the
    unigram baselines fitted on the training ids.
    """
    _check_tokenizer(token_ids, tokenizer)
    cfg = LMTrainingConfig.from_dict(params.get("training", {}))
    classes = _class_names(token_ids)
    lm_cfg = TokenLMConfig.for_tokenizer(tokenizer.sweettok, clip_cache.frames, len(classes), **cfg.model)
    train_rows, val_rows = token_ids[token_ids["split"] == "train"], token_ids[token_ids["split"] == "test"]
    if not len(train_rows):
        raise ValueError("the id table has no training clips to train the LM on")
    train_ids, val_ids = id_matrix(train_rows), id_matrix(val_rows)
    seed_everything(cfg.loop_config.seed)
    model = TokenLM(lm_cfg)
    if train_ids.shape[1] != model.vocab.clip_ids:
        raise ValueError(f"the id table holds {train_ids.shape[1]} ids per clip; the tokenizer's layout for "
                         f"{clip_cache.frames}-frame clips has {model.vocab.clip_ids}")
    train_set = SequenceDataset(train_ids, train_rows["label_index"].to_numpy(), model.vocab)
    val_set = SequenceDataset(val_ids, val_rows["label_index"].to_numpy(), model.vocab)
    provenance = {"tokenizer_sha256": tokenizer_identity(tokenizer), "params_sha256": params_hash(params),
                  "classes": classes}
    result = train_lm(model, train_set, val_set, cfg, provenance=provenance)
    cleanup()
    lm = final_model("token_lm", result, cfg.run_dir, provenance)
    summary: dict[str, Any] = {"train_sequences": len(train_set), "val_sequences": len(val_set),
                               "parameters": sum(p.numel() for p in lm.parameters()), "steps": int(result.step),
                               "block_size": lm.vocab.block_size, "vocabulary": lm.vocab.size, "classes": classes,
                               "cond_dropout": cfg.cond_dropout, "label_smoothing": cfg.label_smoothing}
    if len(val_set):
        val = evaluate_nll(lm, val_set.seq)
        unconditioned = val_set.seq.clone()
        unconditioned[:, 0] = lm.vocab.null_class
        summary.update({"val_loss": val, "val_perplexity": math.exp(val),
                        # the same ids without their class: what the class tells the LM, in nats per id
                        "val_loss_null_class": evaluate_nll(lm, unconditioned),
                        **unigram_baselines(train_ids, val_ids, lm.vocab)})
        log.info("LM validation NLL %.3f nats/id (perplexity %.1f); unigram %.3f, unigram within part of speech "
                 "%.3f, unigram per position %.3f; with the null class instead of the true one %.3f", val, math.exp(val),
                 summary["unigram_loss"], summary["slot_unigram_loss"], summary["position_unigram_loss"],
                 summary["val_loss_null_class"])
    return lm, summary


def generate_clips(token_lm: TokenLM, tokenizer: VideoTokenizer, clip_cache: ClipCache, token_ids: pd.DataFrame,
                   params: dict) -> tuple[pd.DataFrame, PendingVideos, Figure]:
    """Sample ``samples_per_class`` clips per class; their ids, MP4 files and a PNG grid."""
    _check_tokenizer(token_ids, tokenizer)
    gen = GenerationConfig.from_dict(params.get("generation", {}))
    sampling = SamplingConfig.from_dict(params.get("sampling", {}))
    device = select_device(gen.device)
    classes = _class_names(token_ids)
    labels = torch.arange(len(classes)).repeat_interleave(gen.samples_per_class)
    generator = torch.Generator().manual_seed(gen.seed)
    log.info("sampling %d clips (%d per class), temperature %.2f, top-k %d, top-p %.2f, guidance %.2f, KV cache %s",
             len(labels), gen.samples_per_class, sampling.temperature, sampling.top_k, sampling.top_p,
             sampling.guidance_scale, sampling.use_cache)
    ids = generate(token_lm.to(device), labels, sampling, generator).cpu().numpy()
    table = pd.DataFrame({
        "sample_id": [f"sample_{i:05d}" for i in range(len(labels))],
        "label": [classes[i] for i in labels.tolist()], "label_index": labels.numpy(),
        "tokenizer": tokenizer_identity(tokenizer), "ids": list(ids),
    })
    clips = decode_ids(tokenizer, ids, clip_cache.frames, gen.batch_size, device)
    videos = PendingVideos(clips, table[["sample_id", "label", "label_index"]], fps=gen.fps)
    grid = sample_grid(clips, table["label"].tolist(), gen.grid_per_class, gen.grid_frames)
    return table, videos, grid


def _real_training_clips(clip_cache: ClipCache, per_class: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """``per_class`` training clips of each class (fixed draw), stacked, with their labels."""
    data = clip_cache.dataset("train")
    rng = np.random.default_rng(seed)
    picks = []
    for _, rows in data.index.groupby("label_index"):
        picks += sorted(rng.choice(rows.index.to_numpy(), size=min(per_class, len(rows)), replace=False).tolist())
    clips = torch.stack([data[i]["clip"] for i in picks])
    return clips, data.index.loc[picks, "label_index"].to_numpy()


def score_generation(generated_ids: pd.DataFrame, token_ids: pd.DataFrame, clip_cache: ClipCache,
                     tokenizer: VideoTokenizer, token_lm: TokenLM, lm_summary: dict,
                     params: dict) -> tuple[dict, Figure]:
    """gFVD of the samples against real training clips, and whether each sample shows its class.

    Class recognition two ways: a naive Bayes classifier on real training clips' ids (also scored
    on real test clips, to say how far to trust it), and the nearest class mean of real training
    clips' I3D embeddings (with its leave-one-out accuracy on those real clips).
    """
    from sweettok.metrics.fvd import fvd, i3d_features, load_i3d

    _check_tokenizer(token_ids, tokenizer)
    gen = GenerationConfig.from_dict(params.get("generation", {}))
    sampling = SamplingConfig.from_dict(params.get("sampling", {}))
    device = select_device(gen.device)
    classes = _class_names(token_ids)
    train_rows, test_rows = token_ids[token_ids["split"] == "train"], token_ids[token_ids["split"] == "test"]
    fake_ids, fake_labels = id_matrix(generated_ids), generated_ids["label_index"].to_numpy()

    # every word the LM can sample, not the largest id seen so far: the guidance sweep below
    # samples again and may draw a word no clip used
    classifier = IdClassifier(token_lm.vocab.words, len(classes)).fit(id_matrix(train_rows), train_rows["label_index"].to_numpy())
    real_test_acc = classifier.accuracy(id_matrix(test_rows), test_rows["label_index"].to_numpy())
    pred_ids = classifier.predict(fake_ids)
    recognised = binomial_summary(int((pred_ids == fake_labels).sum()), len(fake_labels), 1.0 / len(classes))
    gen_acc = recognised["accuracy"]

    # the class in the samples as guidance grows: more samples per scale, judged from their ids
    sweep = []
    for scale in gen.guidance_sweep:
        labels = torch.arange(len(classes)).repeat_interleave(gen.sweep_per_class)
        ids = generate(token_lm.to(device), labels, replace(sampling, guidance_scale=scale),
                       torch.Generator().manual_seed(gen.seed + 1)).cpu().numpy()
        hits = int((classifier.predict(ids) == labels.numpy()).sum())
        sweep.append({"guidance_scale": scale, "samples": len(labels),
                      **binomial_summary(hits, len(labels), 1.0 / len(classes))})
        log.info("guidance %.1f: class recognised from the ids of %.3f of %d samples [%.3f, %.3f]", scale,
                 sweep[-1]["accuracy"], len(labels), sweep[-1]["ci_low"], sweep[-1]["ci_high"])

    # gFVD and the I3D check on the first fvd_per_class samples of each class
    scored = (generated_ids.groupby("label_index").cumcount() < (gen.fvd_per_class or len(generated_ids))).to_numpy()
    scored_ids, scored_labels = fake_ids[scored], fake_labels[scored]
    per_class = gen.real_clips_per_class or int(pd.Series(scored_labels).value_counts().max())
    real, real_labels = _real_training_clips(clip_cache, per_class, gen.seed)
    fake = decode_ids(tokenizer, scored_ids, clip_cache.frames, gen.batch_size, device)
    i3d = load_i3d(device)
    real_emb = i3d_features(real, model=i3d, batch_size=gen.batch_size)
    fake_emb = i3d_features(fake, model=i3d, batch_size=gen.batch_size)
    g = fvd(real_emb, fake_emb)
    i3d_acc, _ = nearest_centroid_accuracy(real_emb, real_labels, fake_emb, scored_labels)
    i3d_loo = leave_one_out_centroid_accuracy(real_emb, real_labels)
    metrics = {
        **{k: v for k, v in lm_summary.items()},
        "samples": int(len(generated_ids)),
        "samples_per_class": gen.samples_per_class,
        "gfvd": float(g.value), "gfvd_clips": int(g.fake_clips), "gfvd_real_clips": int(g.real_clips),
        "gfvd_frames": int(clip_cache.frames), "gfvd_resolution": int(clip_cache.resolution),
        "gfvd_note": (f"I3D (Kinetics-400) logits of {g.fake_clips} generated vs {g.real_clips} real training clips, "
                      f"{clip_cache.frames} frames at {clip_cache.resolution}x{clip_cache.resolution} px resized "
                      f"to 224; few clips bias FVD upwards"),
        "generated_class_accuracy": gen_acc,
        "generated_class_accuracy_ci": [recognised["ci_low"], recognised["ci_high"]],
        "generated_class_p_value": recognised["p_value"],
        "classifier": "naive Bayes over token positions, fitted on the real training clips' ids",
        "classifier_real_test_accuracy": real_test_acc,
        "guidance_sweep": sweep,
        "generated_class_accuracy_i3d": i3d_acc,
        "generated_class_accuracy_i3d_clips": int(len(scored_labels)),
        "i3d_real_leave_one_out_accuracy": i3d_loo,
        "chance": 1.0 / len(classes),
        "sampling": {k: getattr(sampling, k) for k in ("temperature", "top_k", "top_p", "guidance_scale",
                                                      "use_cache")},
        "seed": gen.seed,
    }
    log.info("generated clips: %s; class recognised from ids %.3f [%.3f, %.3f] of %d (p = %.2g against chance; "
             "the classifier on real test clips %.3f), from I3D %.3f (leave-one-out on real clips %.3f); chance %.3f",
             g, gen_acc, recognised["ci_low"], recognised["ci_high"], len(fake_labels), recognised["p_value"],
             real_test_acc, i3d_acc, i3d_loo, 1.0 / len(classes))
    confusion = confusion_matrix(fake_labels, pred_ids, len(classes))
    metrics["confusion"] = confusion.tolist()  # rows: intended class, columns: recognised from the ids
    figure = confusion_figure(confusion, classes, confusion_title(gen_acc, len(classes)))
    return metrics, figure
