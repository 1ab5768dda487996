"""Nodes of the `image_finetune` pipeline: the image set, image fine-tuning, held-out image scores.

Parameters (``image_finetune`` in ``conf/*/parameters_image_finetune.yml``): ``images``
(:class:`~sweettok.data.images.ImageSetConfig`), ``training``
(:class:`~sweettok.training.image_training.ImageFinetuneConfig`) and ``evaluation``
(:class:`~sweettok.metrics.image_reconstruction.ImageEvaluationConfig`).
"""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from sweettok.data.clips import ClipCache
from sweettok.data.images import ImageCache, ImageSetConfig, PendingImageCache
from sweettok.metrics.image_reconstruction import (ImageEvaluationConfig, image_evaluation_methods, image_figure,
                                                   log_image_table, pick_examples, score_images)
from sweettok.models.tokenizer import ImageTokenizer, VideoTokenizer
from sweettok.pipelines.records import final_model, params_hash
from sweettok.training.distributed import cleanup, select_device
from sweettok.training.image_training import ImageFinetuneConfig, finetune_images
from sweettok.training.rng import seed_everything

log = logging.getLogger(__name__)


def build_image_set(clip_cache: ClipCache, params: dict) -> PendingImageCache:
    """The image cache to write: photographs and frames of the training clips (see ``sweettok.data.images``)."""
    return PendingImageCache(ImageSetConfig.from_dict(params.get("images", {})), clip_cache)


def finetune_image_tokenizer(image_cache: ImageCache, tokenizer: VideoTokenizer, params: dict) -> ImageTokenizer:
    """Copy the video tokenizer into an image tokenizer, fine-tune it on the training images, return
    it with its EMA weights."""
    images = ImageSetConfig.from_dict(params.get("images", {}))
    cfg = ImageFinetuneConfig.from_dict(params.get("training", {}))
    if tokenizer.cfg.resolution != image_cache.resolution:
        raise ValueError(f"the video tokenizer takes {tokenizer.cfg.resolution} px frames but the image cache "
                         f"holds {image_cache.resolution} px images")
    provenance = {"video_tokenizer": getattr(tokenizer, "provenance", {}).get("run_checkpoint"),
                  "image_cache_sha256": image_cache.fingerprint(), "params_sha256": params_hash(params)}
    seed_everything(cfg.loop_config.seed)
    model = ImageTokenizer.from_video(tokenizer)
    result = finetune_images(model, image_cache.dataset("train", flip=images.flip), cfg, provenance=provenance)
    cleanup()
    return final_model("sweettok_image", result, cfg.run_dir, provenance, prior=tokenizer.sweettok.prior)


def evaluate_images(image_cache: ImageCache, tokenizer: VideoTokenizer, image_tokenizer: ImageTokenizer,
                    params: dict) -> tuple[pd.DataFrame, Figure]:
    """Held-out images: PSNR / SSIM / LPIPS / rFID of the video tokenizer (before fine-tuning), the
    image tokenizer (after) and baselines within the same bits; a figure of examples."""
    cfg = ImageEvaluationConfig.from_dict(params.get("evaluation", {}))
    device = select_device(cfg.device)
    heldout = image_cache.dataset("test")
    images = heldout.tensor()
    log.info("held-out images: %d from %s", len(images), ", ".join(sorted(heldout.index["origin"].unique())))
    methods, tokens, bits = image_evaluation_methods(tokenizer, image_tokenizer, cfg, device)
    table, recons = score_images(methods, images, tokens=tokens, bits=bits, fid=cfg.fid,
                                 fid_images=cfg.fid_images, batch_size=cfg.batch_size, device=device)
    log_image_table(table)
    picks = pick_examples(list(heldout.index["origin"]), cfg.figure_images)
    figure = image_figure(images, {k: recons[k] for k in methods}, picks,
                          titles=[heldout.index["origin"].iloc[i][:18] for i in picks])
    return table, figure
