"""Node of the `tokenizer_phase2` pipeline: decoders trained for pixels, encoder frozen."""

from __future__ import annotations

import pandas as pd

from sweettok.data.clips import ClipDataset
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.pipelines.records import checkpoint_pointer, params_hash
from sweettok.training.distributed import cleanup
from sweettok.training.proxy_training import load_proxy
from sweettok.training.tokenizer_training import PhaseConfig, PixelTokenizer, load_sweettok, train_phase2


def train_tokenizer_phase2(clip_index: pd.DataFrame, tokenizer_phase1_model: dict, proxy_model: dict,
                           language_codebook: CodebookPrior, patchify: dict, params: dict) -> dict:
    """Start from phase 1 (EMA weights) and the trained proxy; return the final tokenizer's checkpoint record."""
    cfg = PhaseConfig.from_dict(params, "tokenizer_phase2")
    sweettok = load_sweettok(tokenizer_phase1_model["checkpoint"], language_codebook)
    model = PixelTokenizer(sweettok, load_proxy(proxy_model["checkpoint"]))
    clips = ClipDataset(clip_index, patchify["shard_dir"], split="train")
    provenance = {"phase1": tokenizer_phase1_model["checkpoint"], "proxy": proxy_model["checkpoint"],
                  "params_sha256": params_hash(params)}
    result = train_phase2(model, clips, cfg, provenance=provenance)
    cleanup()
    return checkpoint_pointer("sweettok_pixel", result, cfg.run_dir, params,
                              phase1=tokenizer_phase1_model["checkpoint"], proxy=proxy_model["checkpoint"])
