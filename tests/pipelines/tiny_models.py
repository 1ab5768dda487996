"""A tiny video tokenizer with random weights for pipeline tests (9-frame 32 x 32 clips)."""

from __future__ import annotations

from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig
from sweettok.models.sweettok import SweetTok
from sweettok.models.tokenizer import VideoTokenizer

FRAMES, RES = 9, 32
TINY = dict(input_frames=FRAMES, resolution=RES, patch_size=8, width=32, heads=2, mlp_ratio=2.0,
            enc_spatial_depth=1, enc_temporal_depth=1, dec_spatial_depth=1, dec_temporal_depth=1,
            dec_temporal_after=[1], spatial_queries=4, temporal_query_grid=2, temporal_queries_per_cell=2,
            codebook_dim=8, gcn_hidden=16, proxy_vocab_size=40, head_hidden=32)


def tiny_proxy() -> ProxyTokenizer:
    return ProxyTokenizer(ProxyTokenizerConfig(hidden_dim=16, num_blocks=1, codebook_size=40, norm_groups=4,
                                               sample_buffer_size=64))


def tiny_video_tokenizer(proxy: ProxyTokenizer | None = None) -> VideoTokenizer:
    """SweetTok of :data:`TINY` on a random language codebook, with ``proxy`` (a new tiny one by default)."""
    return VideoTokenizer(SweetTok(SweetTokConfig.from_dict(TINY), CodebookPrior.random(seed=1)),
                          proxy or tiny_proxy()).eval()
