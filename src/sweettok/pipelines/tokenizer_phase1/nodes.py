"""Node of the `tokenizer_phase1` pipeline: SweetTok learns to predict the proxy code ids."""

from __future__ import annotations

from sweettok.data.clips import ClipCache
from sweettok.data.codes import ClipsWithCodes, CodeTable
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.proxy import ProxyTokenizer
from sweettok.models.sweettok import SweetTok
from sweettok.pipelines.records import final_model, params_hash
from sweettok.training.distributed import cleanup
from sweettok.training.rng import seed_everything
from sweettok.training.tokenizer_training import PhaseConfig, train_phase1


def check_model_matches_data(model_cfg: SweetTokConfig, clip_cache: ClipCache, proxy: ProxyTokenizer) -> None:
    """The model's clip shape and proxy vocabulary must agree with the cache and the proxy tokenizer."""
    if model_cfg.resolution != clip_cache.resolution:
        raise ValueError(f"model.resolution={model_cfg.resolution} but the clip cache holds "
                         f"{clip_cache.resolution}x{clip_cache.resolution} clips (patchify.resolution)")
    if model_cfg.input_frames < clip_cache.frames:
        raise ValueError(f"model.input_frames={model_cfg.input_frames} but the clip cache holds "
                         f"{clip_cache.frames}-frame clips (patchify.frames)")
    if model_cfg.proxy_vocab_size != proxy.cfg.codebook_size:
        raise ValueError(f"model.proxy_vocab_size={model_cfg.proxy_vocab_size} but the proxy tokenizer has "
                         f"{proxy.cfg.codebook_size} codes (proxy.model.codebook_size)")


def train_tokenizer_phase1(clip_cache: ClipCache, proxy_codes: CodeTable, proxy_tokenizer: ProxyTokenizer,
                           language_codebook: CodebookPrior, model: dict, params: dict) -> SweetTok:
    """Train SweetTok on the training clips against their proxy codes; return it with its EMA weights."""
    cfg = PhaseConfig.from_dict(params, "tokenizer_phase1")
    model_cfg = SweetTokConfig.from_dict(model)
    check_model_matches_data(model_cfg, clip_cache, proxy_tokenizer)
    dataset = ClipsWithCodes(clip_cache.dataset("train"), proxy_codes)
    provenance = {"params_sha256": params_hash({"model": model, "phase1": params}),
                  "clip_cache_sha256": clip_cache.fingerprint(),
                  "language_codebook": getattr(language_codebook, "metadata", {}).get("parameters_sha256"),
                  "proxy_tokenizer": getattr(proxy_tokenizer, "provenance", {}).get("run_checkpoint")}
    seed_everything(cfg.loop_config.seed)  # the initial weights follow the seed
    result = train_phase1(SweetTok(model_cfg, language_codebook), dataset, cfg, provenance=provenance)
    cleanup()
    return final_model("sweettok", result, cfg.run_dir, provenance, prior=language_codebook)
