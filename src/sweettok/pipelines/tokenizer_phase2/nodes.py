"""Node of the `tokenizer_phase2` pipeline: decoders trained for pixels, encoder frozen."""

from __future__ import annotations

import copy

from sweettok.data.clips import ClipCache
from sweettok.models.proxy import ProxyTokenizer
from sweettok.models.sweettok import SweetTok
from sweettok.models.tokenizer import VideoTokenizer
from sweettok.pipelines.records import final_model, params_hash
from sweettok.training.distributed import cleanup
from sweettok.training.tokenizer_training import PhaseConfig, train_phase2


def train_tokenizer_phase2(clip_cache: ClipCache, tokenizer_phase1: SweetTok, proxy_tokenizer: ProxyTokenizer,
                           params: dict) -> VideoTokenizer:
    """Start from phase 1 (its EMA weights) and the trained proxy; return the video tokenizer (EMA weights).

    Trains copies: ``tokenizer_phase1`` and ``proxy_tokenizer`` are left as they came (a caller
    that goes on to score the proxy, like ``sweettok curve``, scores the proxy it trained, not
    the pixel decoder phase 2 tuned for SweetTok's soft codes).
    """
    cfg = PhaseConfig.from_dict(params, "tokenizer_phase2")
    model = VideoTokenizer(copy.deepcopy(tokenizer_phase1), copy.deepcopy(proxy_tokenizer))
    provenance = {"phase1": getattr(tokenizer_phase1, "provenance", {}), "params_sha256": params_hash(params),
                  "proxy": getattr(proxy_tokenizer, "provenance", {}).get("run_checkpoint"),
                  "clip_cache_sha256": clip_cache.fingerprint()}
    result = train_phase2(model, clip_cache.dataset("train"), cfg, provenance=provenance)
    cleanup()
    return final_model("sweettok_pixel", result, cfg.run_dir, provenance, prior=tokenizer_phase1.prior)
