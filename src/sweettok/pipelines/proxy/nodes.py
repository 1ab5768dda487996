"""Nodes of the `proxy` pipeline: train the proxy tokenizer, write its code ids."""

from __future__ import annotations

import logging

from sweettok import __version__
from sweettok.data.clips import ClipCache
from sweettok.data.codes import PendingProxyCodes
from sweettok.models.proxy import ProxyTokenizer
from sweettok.pipelines.records import final_model, params_hash
from sweettok.training.distributed import cleanup, is_main_process, select_device
from sweettok.training.proxy_training import ProxyTrainingConfig, proxy_code_items, train_proxy

log = logging.getLogger(__name__)


def train_proxy_tokenizer(clip_cache: ClipCache, params: dict) -> ProxyTokenizer:
    """Train the proxy tokenizer on the cached training clips; return it with its EMA weights."""
    cfg = ProxyTrainingConfig.from_dict(params)
    clips = clip_cache.dataset("train")
    provenance = {"clip_cache_sha256": clip_cache.fingerprint(), "params_sha256": params_hash(params),
                  "code_version": __version__, "train_clips": len(clips)}
    result = train_proxy(clips, cfg, provenance=provenance)
    cleanup()
    return final_model("proxy_tokenizer", result, cfg.run_dir, provenance)


def encode_proxy_codes(clip_cache: ClipCache, proxy_tokenizer: ProxyTokenizer, params: dict) -> PendingProxyCodes:
    """Proxy code ids for every cached clip (train and test), written when the catalog saves them."""
    cfg = ProxyTrainingConfig.from_dict(params)
    if not is_main_process():
        raise RuntimeError("encode_proxy_codes runs in one process")
    device = select_device(cfg.loop_config.device)
    return PendingProxyCodes(lambda: proxy_code_items(proxy_tokenizer, clip_cache.dataset(), cfg, device))
