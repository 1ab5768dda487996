"""Tiny models, images and caches for the image tests (imported by the tests of this folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sweettok.data.clips import CACHE_INDEX_FILE, INDEX_COLUMNS, ClipCache, ShardWriter, clip_checksum
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig
from sweettok.models.sweettok import SweetTok
from sweettok.models.tokenizer import VideoTokenizer

TINY = dict(input_frames=5, resolution=32, patch_size=8, width=32, heads=2, mlp_ratio=2.0,
            enc_spatial_depth=1, enc_temporal_depth=1, dec_spatial_depth=2, dec_temporal_depth=1,
            dec_temporal_after=[1], spatial_queries=4, temporal_query_grid=2, temporal_queries_per_cell=2,
            codebook_dim=8, gcn_hidden=16, gcn_dropout=0.1, proxy_vocab_size=40, head_hidden=32)


def make_video_tokenizer(seed: int = 0) -> VideoTokenizer:
    """A tiny video tokenizer (32 px, 5-frame clips, 4 spatial tokens) with random weights, eval mode."""
    torch.manual_seed(seed)
    proxy = ProxyTokenizer(ProxyTokenizerConfig(hidden_dim=16, num_blocks=1, codebook_size=40, norm_groups=4,
                                                sample_buffer_size=64))
    return VideoTokenizer(SweetTok(SweetTokConfig.from_dict(TINY), CodebookPrior.random(seed=1)), proxy).eval()


def smooth_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``(n, 3, size, size)`` in [-0.5, 0.5]: random colour gradients plus a blob (learnable, not noise)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        c0, c1, c2 = torch.rand(3, 3, generator=g) - 0.5
        cy, cx = torch.rand(2, generator=g)
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
        t = (xx + yy) / 2
        img = c0[:, None, None] * (1 - t) + c1[:, None, None] * t
        out.append((img * (1 - blob) + c2[:, None, None] * blob).clamp(-0.5, 0.5))
    return torch.stack(out)


def write_clip_cache(root: Path, clips: dict[str, tuple[str, np.ndarray]]) -> ClipCache:
    """A clip cache holding ``clip_id -> (split, uint8 (T, H, W, 3))`` (video id = clip id before '@')."""
    writer = ShardWriter(root, 1 << 20)
    rows = []
    for clip_id, (split, clip) in clips.items():
        shard, offset = writer.write(clip)
        video = clip_id.split("@")[0]
        rows.append({"clip_id": clip_id, "video_id": video, "label": "thing", "label_index": 0, "split": split,
                     "start_frame": 0, "frames": clip.shape[0], "height": clip.shape[1], "width": clip.shape[2],
                     "reader": "pil" if clip.shape[0] == 1 else "pyav", "shard": shard, "offset": offset,
                     "checksum": clip_checksum(clip)})
    writer.close()
    pd.DataFrame(rows, columns=INDEX_COLUMNS).to_parquet(root / CACHE_INDEX_FILE, index=False)
    return ClipCache(root)
