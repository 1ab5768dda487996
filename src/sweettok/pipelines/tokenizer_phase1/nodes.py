"""Node of the `tokenizer_phase1` pipeline: SweetTok learns to predict the proxy code ids."""

from __future__ import annotations

import pandas as pd

from sweettok.data.clips import ClipDataset
from sweettok.data.codes import ClipsWithCodes, CodeTable
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.sweettok import SweetTok
from sweettok.pipelines.records import checkpoint_pointer, params_hash
from sweettok.training.distributed import cleanup
from sweettok.training.tokenizer_training import PhaseConfig, train_phase1


def check_model_matches_data(model_cfg: SweetTokConfig, patchify: dict, proxy: dict) -> None:
    """The model's clip shape and proxy vocabulary must agree with the cache and the proxy tokenizer."""
    if model_cfg.resolution != patchify["resolution"]:
        raise ValueError(f"model.resolution={model_cfg.resolution} but patchify.resolution={patchify['resolution']}")
    if model_cfg.proxy_vocab_size != proxy["model"]["codebook_size"]:
        raise ValueError(f"model.proxy_vocab_size={model_cfg.proxy_vocab_size} but proxy.model.codebook_size="
                         f"{proxy['model']['codebook_size']}")


def train_tokenizer_phase1(clip_index: pd.DataFrame, proxy_code_index: pd.DataFrame, language_codebook: CodebookPrior,
                           patchify: dict, proxy: dict, model: dict, params: dict) -> dict:
    """Train SweetTok on the training clips against their proxy codes; return the checkpoint record."""
    cfg = PhaseConfig.from_dict(params, "tokenizer_phase1")
    model_cfg = SweetTokConfig.from_dict(model)
    check_model_matches_data(model_cfg, patchify, proxy)
    dataset = ClipsWithCodes(ClipDataset(clip_index, patchify["shard_dir"], split="train"),
                             CodeTable(proxy_code_index, proxy["code_shard_dir"]))
    tokenizer = SweetTok(model_cfg, language_codebook)
    provenance = {"params_sha256": params_hash({"model": model, "phase1": params}),
                  "language_codebook": getattr(language_codebook, "metadata", {}).get("params_sha256")}
    result = train_phase1(tokenizer, dataset, cfg, provenance=provenance)
    cleanup()
    return checkpoint_pointer("sweettok", result, cfg.run_dir, {"model": model, "phase1": params})
