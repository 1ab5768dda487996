"""Pandera schemas of every table in the catalog.

`SCHEMAS` maps catalog names to schemas; `sweettok.hooks.PanderaValidationHook`
validates each table on save and on load. Columns are strict: an unexpected or missing
column is an error that names it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.pandas import Check, Column, DataFrameSchema

SPLITS = ["train", "test"]


def check_split_names(names, where: str) -> None:
    """``names`` (a parameter) must be a list of split names from `SPLITS`."""
    if not isinstance(names, (list, tuple)) or any(n not in SPLITS for n in names):
        raise ValueError(f"{where}={names!r}: must be a list of split names from {SPLITS}")


def empty_splits(splits: pd.Series, allowed) -> list[str]:
    """The splits of `SPLITS` that no row of ``splits`` holds and ``allowed`` does not excuse."""
    present = set(splits)
    return [s for s in SPLITS if s not in present and s not in allowed]
REJECT_REASONS = [
    "empty_file",
    "truncated",
    "not_a_video",
    "undecodable",
    "too_short",
    "path_escapes_root",
    "missing_file",
    "not_in_split_lists",
    "unknown_label",
    "unparsable_line",
    "in_both_splits",
    "duplicate_content",
]
# which decoder produced a file's frames: decord (random access, checked against sequential
# decoding at ingest and per clip), pyav (sequential decoding), pil (images)
READERS = ["decord", "pyav", "pil"]

_nonempty = Check.str_length(min_value=1)

VideoManifestSchema = DataFrameSchema(
    {
        "video_id": Column(str, _nonempty, unique=True),
        "path": Column(str, [_nonempty, Check(lambda s: ~s.str.contains(r"(?:^|/)\.\.(?:/|$)"), error="no '..' in path"),
                             Check(lambda s: ~s.str.startswith("/"), error="path is relative to the root")]),
        "root": Column(str, _nonempty),
        "label": Column(str, _nonempty),
        "label_index": Column(int, Check.ge(0)),
        "split": Column(str, Check.isin(SPLITS)),
        "kind": Column(str, Check.isin(["video", "image"])),
        "frames": Column(int, Check.ge(1)),
        "fps": Column(float, Check.ge(0.0)),
        "width": Column(int, Check.gt(0)),
        "height": Column(int, Check.gt(0)),
        "size_bytes": Column(int, Check.gt(0)),
        "sha256": Column(str, Check.str_matches(r"^[0-9a-f]{64}$")),
        "reader": Column(str, Check.isin(READERS)),
    },
    strict=True,
    coerce=True,
    name="video_manifest",
)

VideoRejectsSchema = DataFrameSchema(
    {
        "path": Column(str),
        "reason": Column(str, Check.isin(REJECT_REASONS)),
        "detail": Column(str),
        # where the dataset's lists named it: "<list file>:<line>"; empty for files found on disk only
        "source": Column(str),
    },
    strict=True,
    coerce=True,
    name="video_rejects",
)

CaptionsSchema = DataFrameSchema(
    {
        "video_id": Column(str, _nonempty, unique=True),
        "label": Column(str, _nonempty),
        "split": Column(str, Check.isin(SPLITS)),
        "caption": Column(str, _nonempty),
        # space-separated word/POS pairs with universal POS tags; empty when untagged
        "tagged": Column(str, Check.str_matches(r"^$|^(\S+/[A-Z]+)( \S+/[A-Z]+)*$")),
    },
    strict=True,
    coerce=True,
    name="captions",
)

# Where an array written by `sweettok.data.clips.ShardWriter` lives: shared by every shard index.
_SHARD_LOCATION = {
    "shard": Column(str, Check.str_matches(r"^shard_\d{5}\.bin$")),
    "offset": Column(int, Check.ge(0)),
    "checksum": Column(str, Check.str_matches(r"^[0-9a-f]{32}$")),
}

ClipIndexSchema = DataFrameSchema(
    {
        "clip_id": Column(str, _nonempty, unique=True),
        "video_id": Column(str, _nonempty),
        "label": Column(str, _nonempty),
        "label_index": Column(int, Check.ge(0)),
        "split": Column(str, Check.isin(SPLITS)),
        "start_frame": Column(int, Check.ge(0)),
        "frames": Column(int, Check.ge(1)),
        "height": Column(int, Check.gt(0)),
        "width": Column(int, Check.gt(0)),
        "reader": Column(str, Check.isin(READERS)),
        **_SHARD_LOCATION,
    },
    strict=True,
    coerce=True,
    name="clip_index",
)

ProxyCodeIndexSchema = DataFrameSchema(
    {
        "clip_id": Column(str, _nonempty, unique=True),
        "split": Column(str, Check.isin(SPLITS)),
        "slices": Column(int, Check.ge(1)),
        "grid_h": Column(int, Check.ge(1)),
        "grid_w": Column(int, Check.ge(1)),
        **_SHARD_LOCATION,
    },
    strict=True,
    coerce=True,
    name="proxy_code_index",
)

# mean reconstruction scores of one method on one frame range of the test clips
_QUALITY_COLUMNS = {
    # "1-<T-1>" (frame 0 left out) or "all"
    "frames": Column(str, Check.str_matches(r"^(all|1|1-[0-9]+)$")),
    # PSNR of each clip's MSE over the frames (dB), averaged over clips
    "psnr": Column(float, Check.in_range(0.0, 100.0)),
    # mean of per-frame PSNRs, each floored at 100 dB (the older convention)
    "psnr_frame_mean": Column(float, Check.in_range(0.0, 100.0)),
    "ssim": Column(float, Check.in_range(-1.0, 1.0)),
    "lpips": Column(float, Check.ge(0.0)),
    # clips for which a codec baseline could not meet its budget and sent a flat colour; empty for other methods
    "flat_fallback_clips": Column(pd.Int64Dtype(), Check.ge(0), nullable=True),
}

_RANGE_CHECKS = [
    Check(lambda df: df.groupby("method")["frames"].transform("nunique").eq(df["frames"].nunique()).all(),
          error="every method is scored on the same frame ranges"),
]

ReconstructionMetricsSchema = DataFrameSchema(
    {
        "method": Column(str, _nonempty),
        # latent tokens per clip; empty for the baselines, which are not tokenizers
        "tokens": Column(pd.Int64Dtype(), Check.ge(1), nullable=True),
        # bits per clip: a tokenizer's id information (an upper bound), a baseline's stored size
        # (the mean over clips of what a codec actually sent)
        "bits": Column(float, Check.gt(0.0)),
        **_QUALITY_COLUMNS,
    },
    strict=True,
    coerce=True,
    unique=["method", "frames"],
    checks=_RANGE_CHECKS,
    name="reconstruction_metrics",
)

ReconstructionBudgetSchema = DataFrameSchema(
    {
        "method": Column(str, _nonempty),
        "bits": Column(float, Check.gt(0.0)),
        **_QUALITY_COLUMNS,
    },
    strict=True,
    coerce=True,
    unique=["method", "frames"],
    checks=_RANGE_CHECKS,
    name="reconstruction_budget",
)

def _counts_beside_values(value: str, *counts: str) -> Check:
    """``value`` is missing exactly where its sample counts are (all of them)."""
    def check(df: pd.DataFrame) -> bool:
        missing = df[list(counts)].isna()
        return bool((missing.all(axis=1) == missing.any(axis=1)).all()
                    and (df[value].isna() == missing.all(axis=1)).all())

    return Check(check, error=f"{value} and its sample counts ({', '.join(counts)}) are given together or not at all")


# one row per method: the reconstruction scores (all frames, and frames 1..T-1) with rFVD and
# per-frame FID, each beside the number of clips (and frames) it was computed on
EvaluationMetricsSchema = DataFrameSchema(
    {
        "method": Column(str, _nonempty, unique=True),
        "tokens": Column(pd.Int64Dtype(), Check.ge(1), nullable=True),
        "bits": Column(float, Check.gt(0.0)),
        # test clips PSNR / SSIM / LPIPS are averaged over
        "quality_clips": Column(int, Check.ge(1)),
        "psnr": Column(float, Check.in_range(0.0, 100.0)),
        "ssim": Column(float, Check.in_range(-1.0, 1.0)),
        "lpips": Column(float, Check.ge(0.0)),
        # frames 1..T-1; empty for one-frame clips (images)
        "psnr_no_frame0": Column(float, Check.in_range(0.0, 100.0), nullable=True),
        "ssim_no_frame0": Column(float, Check.in_range(-1.0, 1.0), nullable=True),
        "lpips_no_frame0": Column(float, Check.ge(0.0), nullable=True),
        # rFVD (I3D, Kinetics-400) on fvd_clips clips on each side; empty where not computed
        "fvd": Column(float, Check.ge(0.0), nullable=True),
        "fvd_clips": Column(pd.Int64Dtype(), Check.ge(2), nullable=True),
        # per-frame FID (Inception pool3) on fid_images frames of fid_clips clips on each side
        "fid": Column(float, Check.ge(0.0), nullable=True),
        "fid_clips": Column(pd.Int64Dtype(), Check.ge(2), nullable=True),
        "fid_images": Column(pd.Int64Dtype(), Check.ge(2), nullable=True),
    },
    strict=True,
    coerce=True,
    checks=[
        _counts_beside_values("fvd", "fvd_clips"),
        _counts_beside_values("fid", "fid_clips", "fid_images"),
        Check(lambda df: (df["fid_images"].isna() | (df["fid_images"] % df["fid_clips"] == 0)).all(),
              error="fid_images is a whole number of frames per clip"),
        Check(lambda df: (df["fvd_clips"].isna() | (df["fvd_clips"] <= df["quality_clips"])).all(),
              error="rFVD uses at most the scored test clips"),
        Check(lambda df: (df["fid_clips"].isna() | (df["fid_clips"] <= df["quality_clips"])).all(),
              error="FID uses at most the scored test clips"),
    ],
    name="evaluation_metrics",
)


# The image cache (sweettok.data.images): one row per square image crop; held-out images
# come from other photographs (origins) than any training image
IMAGE_SOURCES = ["photo", "video_frame", "image"]

ImageIndexSchema = DataFrameSchema(
    {
        "image_id": Column(str, _nonempty, unique=True),
        # a scikit-image photograph, a frame of a training clip, or an image of the clip cache
        "source": Column(str, Check.isin(IMAGE_SOURCES)),
        # what it was cut from: the photograph's name or the video / image id
        "origin": Column(str, _nonempty),
        "split": Column(str, Check.isin(SPLITS)),
        # shorter edge (pixels) of the source after resizing, and the crop's top-left corner there
        "scale": Column(int, Check.ge(1)),
        "top": Column(int, Check.ge(0)),
        "left": Column(int, Check.ge(0)),
        "height": Column(int, Check.gt(0)),
        "width": Column(int, Check.gt(0)),
        **_SHARD_LOCATION,
    },
    strict=True,
    coerce=True,
    checks=[
        Check(lambda df: (df["height"] == df["width"]).all() and df["height"].nunique() <= 1,
              error="images are squares of one size"),
        Check(lambda df: not (set(df.loc[df["split"] == "train", "origin"])
                              & set(df.loc[df["split"] == "test", "origin"])),
              error="no held-out (test) image comes from a photograph or video a training image comes from"),
        Check(lambda df: (df["scale"] >= df["height"]).all(), error="scale is at least the crop's side"),
    ],
    name="image_index",
)

# Held-out image reconstruction (the image_finetune pipeline): one row per method
ImageMetricsSchema = DataFrameSchema(
    {
        "method": Column(str, _nonempty, unique=True),
        # "tokenizer" (a model's ids) or "baseline" (a thumbnail of known size)
        "kind": Column(str, Check.isin(["tokenizer", "baseline"])),
        # latent tokens per image; empty for baselines
        "tokens": Column(pd.Int64Dtype(), Check.ge(1), nullable=True),
        # bits per image: a tokenizer's id information (an upper bound), a thumbnail's stored size
        "bits": Column(float, Check.gt(0.0)),
        # held-out images scored
        "images": Column(int, Check.ge(1)),
        # PSNR of each image's MSE (dB), averaged over images
        "psnr": Column(float, Check.in_range(0.0, 100.0)),
        "ssim": Column(float, Check.in_range(-1.0, 1.0)),
        "lpips": Column(float, Check.ge(0.0)),
        # rFID (Inception pool3) between the held-out images and their reconstructions, on
        # fid_images images each side; empty where not computed
        "fid": Column(float, Check.ge(0.0), nullable=True),
        "fid_images": Column(pd.Int64Dtype(), Check.ge(2), nullable=True),
    },
    strict=True,
    coerce=True,
    checks=[
        Check(lambda df: (df["fid"].isna() == df["fid_images"].isna()).all(),
              error="fid and fid_images are given together or not at all"),
        Check(lambda df: (df["fid_images"].isna() | (df["fid_images"] <= df["images"])).all(),
              error="rFID uses at most the scored images"),
        Check(lambda df: ((df["kind"] == "tokenizer") == df["tokens"].notna()).all(),
              error="tokenizers, and only they, have a token count"),
    ],
    name="image_metrics",
)


def _ids_well_formed(ids: pd.Series) -> bool:
    """Every cell a non-empty 1-D array of non-negative integers, all of one length."""
    lengths = set()
    for cell in ids:
        arr = np.asarray(cell)
        if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu" or arr.min() < 0:
            return False
        lengths.add(arr.size)
    return len(lengths) <= 1


# The id table (sweettok.data.token_ids): one row per cached clip with its tokenizer ids
TokenIdsSchema = DataFrameSchema(
    {
        "clip_id": Column(str, _nonempty, unique=True),
        "video_id": Column(str, _nonempty),
        "label": Column(str, _nonempty),
        "label_index": Column(int, Check.ge(0)),
        "split": Column(str, Check.isin(SPLITS)),
        # sha256 of the tokenizer's weights file: ids mean nothing to another tokenizer
        "tokenizer": Column(str, Check.str_matches(r"^[0-9a-f]{64}$")),
        "ids": Column(object, Check(_ids_well_formed, element_wise=False,
                                    error="ids: each a non-empty 1-D array of non-negative integers, one length")),
    },
    strict=True,
    ordered=True,
    checks=[Check(lambda df: df["tokenizer"].nunique() <= 1, error="one tokenizer per id table")],
    name="token_ids",
)


# Clips sampled by the token LM (the lm pipeline): one row per sample, ids in the tokenizer's layout
GeneratedIdsSchema = DataFrameSchema(
    {
        "sample_id": Column(str, Check.str_matches(r"^sample_\d{5,}$"), unique=True),
        "label": Column(str, _nonempty),
        "label_index": Column(int, Check.ge(0)),
        "tokenizer": Column(str, Check.str_matches(r"^[0-9a-f]{64}$")),
        "ids": Column(object, Check(_ids_well_formed, element_wise=False,
                                    error="ids: each a non-empty 1-D array of non-negative integers, one length")),
    },
    strict=True,
    ordered=True,
    name="generated_ids",
)


CodebookWordsSchema = DataFrameSchema(
    {
        "word": Column(str, _nonempty),
        "pos": Column(str, Check.isin(["ADJ", "NOUN", "ADV", "VERB"])),
        "book": Column(str, Check.isin(["spatial", "temporal"])),
        "index": Column(int, Check.ge(0)),
        "caption_count": Column(int, Check.ge(0)),
        "source": Column(str, Check.isin(["captions", "general", "both"])),
    },
    strict=True,
    coerce=True,
    unique=["book", "word"],
    checks=[
        Check(lambda df: ((df["book"] == "spatial") == df["pos"].isin(["ADJ", "NOUN"])).all(),
              error="ADJ/NOUN belong to the spatial book, ADV/VERB to the temporal book"),
    ],
    name="codebook_words",
)

# The semantics pipeline (sweettok.report.words, sweettok.metrics.fewshot): the words of every token of
# the test clips, each class's distinctive words, and few-shot recognition from the words
WORD_VIEWS = ("spatial", "temporal")
_VIEW_POS = {"spatial": ("ADJ", "NOUN"), "temporal": ("ADV", "VERB")}
FEWSHOT_VIEWS = ("spatial", "temporal", "both")
FEWSHOT_LEARNERS = ("nearest_centroid",)

TokenWordsSchema = DataFrameSchema(
    {
        "clip_id": Column(str, _nonempty),
        "label": Column(str, _nonempty),
        "view": Column(str, Check.isin(list(WORD_VIEWS))),
        # index of the token within its view: spatial query j, or temporal token j (cell j // q, query j % q)
        "token": Column(int, Check.ge(0)),
        # the token's topk modifier words (adjectives / adverbs), nearest first, space-separated
        "modifiers": Column(str, Check.str_matches(r"^(\S+( \S+)*)?$")),
        # the noun (spatial) or verb (temporal)
        "head": Column(str, Check.str_matches(r"^\S+$")),
        "phrase": Column(str, _nonempty),
    },
    strict=True,
    coerce=True,
    unique=["clip_id", "view", "token"],
    checks=[Check(lambda df: (df["phrase"] == (df["modifiers"] + " " + df["head"]).str.strip()).all(),
                  error="phrase is the modifiers then the head")],
    name="token_words",
)
"""One row per (clip, latent token) of :func:`sweettok.report.words.words_table`."""

ClassWordsSchema = DataFrameSchema(
    {
        "label": Column(str, _nonempty),
        "view": Column(str, Check.isin(list(WORD_VIEWS))),
        "pos": Column(str, Check.isin(["ADJ", "NOUN", "ADV", "VERB"])),
        "word": Column(str, Check.str_matches(r"^\S+$")),
        # occurrences of the word (as this part of speech) in the class's tokens
        "count": Column(int, Check.ge(1)),
        # count / all words of this part of speech in the class's tokens
        "share": Column(float, Check.in_range(0.0, 1.0, include_min=False)),
        # share in the class / share over all classes (> 1: more frequent in this class)
        "lift": Column(float, Check.gt(0.0)),
    },
    strict=True,
    coerce=True,
    unique=["label", "view", "pos", "word"],
    checks=[Check(lambda df: all(p in _VIEW_POS[v] for v, p in zip(df["view"], df["pos"])),
                  error="adjectives and nouns are spatial, adverbs and verbs temporal")],
    name="class_words",
)
"""The distinctive words of each class (:func:`sweettok.report.words.class_words`)."""


FewShotSchema = DataFrameSchema(
    {
        "view": Column(str, Check.isin(list(FEWSHOT_VIEWS))),
        "ways": Column(int, Check.ge(2)),
        "shots": Column(int, Check.ge(1)),
        "queries": Column(int, Check.ge(1)),
        "episodes": Column(int, Check.ge(1)),
        # mean over episodes of the fraction of queries labelled correctly, and its confidence interval
        "accuracy": Column(float, Check.in_range(0.0, 1.0)),
        "ci_low": Column(float, Check.in_range(0.0, 1.0)),
        "ci_high": Column(float, Check.in_range(0.0, 1.0)),
        # accuracy of guessing: 1 / ways
        "chance": Column(float, Check.in_range(0.0, 0.5)),
        "learner": Column(str, Check.isin(list(FEWSHOT_LEARNERS))),
    },
    strict=True,
    coerce=True,
    unique=["view", "ways", "shots"],
    checks=[
        Check(lambda df: ((df["ci_low"] <= df["accuracy"]) & (df["accuracy"] <= df["ci_high"])).all(),
              error="ci_low <= accuracy <= ci_high"),
        Check(lambda df: np.allclose(df["chance"] * df["ways"], 1.0), error="chance is 1 / ways"),
    ],
    name="fewshot_metrics",
)
"""One row per (view, ways, shots) of :func:`sweettok.metrics.fewshot.run_fewshot`."""



SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "video_manifest": VideoManifestSchema,
    "video_rejects": VideoRejectsSchema,
    "captions": CaptionsSchema,
    "clip_index": ClipIndexSchema,
    "codebook_words": CodebookWordsSchema,
    "proxy_code_index": ProxyCodeIndexSchema,
    "reconstruction_metrics": ReconstructionMetricsSchema,
    "reconstruction_budget": ReconstructionBudgetSchema,
    "evaluation_metrics": EvaluationMetricsSchema,
    "image_index": ImageIndexSchema,
    "image_metrics": ImageMetricsSchema,
    "token_ids": TokenIdsSchema,
    "generated_ids": GeneratedIdsSchema,
    "token_words": TokenWordsSchema,
    "class_words": ClassWordsSchema,
    "fewshot": FewShotSchema,
}
