"""Nodes of the `proxy` pipeline: train the proxy tokenizer, write its code ids."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd

from sweettok import __version__
from sweettok.data.clips import ClipDataset
from sweettok.pipelines.records import checkpoint_pointer, params_hash
from sweettok.training.distributed import cleanup, is_main_process, select_device
from sweettok.training.proxy_training import ProxyTrainingConfig, load_proxy, train_proxy, write_proxy_codes

log = logging.getLogger(__name__)


def train_proxy_tokenizer(clip_index: pd.DataFrame, patchify: dict, params: dict) -> dict:
    """Train the proxy tokenizer on the cached training clips; return its checkpoint record."""
    cfg = ProxyTrainingConfig.from_dict(params)
    clips = ClipDataset(clip_index, patchify["shard_dir"], split="train")
    provenance = {"clip_index_sha256": hashlib.sha256(pd.util.hash_pandas_object(clip_index).values.tobytes())
                  .hexdigest(), "params_sha256": params_hash(params), "code_version": __version__}
    result = train_proxy(clips, cfg, provenance=provenance)
    cleanup()
    return checkpoint_pointer("proxy_tokenizer", result, cfg.run_dir, params, train_clips=len(clips))


def write_codes(clip_index: pd.DataFrame, proxy_model: dict, patchify: dict, params: dict) -> pd.DataFrame:
    """Proxy code ids for every cached clip (train and test)."""
    cfg = ProxyTrainingConfig.from_dict(params)
    model = load_proxy(proxy_model["checkpoint"])
    clips = ClipDataset(clip_index, patchify["shard_dir"])
    if not is_main_process():
        raise RuntimeError("write_codes runs in one process")
    return write_proxy_codes(model, clips, cfg, device=select_device(cfg.loop_config.device))
