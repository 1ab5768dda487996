"""DecoupledQueryEncoder: a clip -> spatial and temporal continuous latent tokens.

Two trunks read the patch grid ``v`` (``(B, 1+k, g, g, D)`` from :class:`PatchEmbed`):

- the spatial trunk, ``enc_spatial_depth`` self-attention blocks over the ``g*g`` patches of
  slice 0 (the first frame: appearance);
- the temporal trunk, ``enc_temporal_depth`` self-attention blocks over time at each patch
  location of ``delta-v[j] = v[j] - v[j-1]``, ``j = 1..k`` (motion, not appearance). Slice 0 comes
  from another embedder than the tubes, so for ``j = 1`` the reference (``first_difference:
  still_tube``) is frame 0 held still for a tube and embedded like a tube.

Two query streams read the trunks. ``Ls`` learned spatial queries pass through
``enc_spatial_depth`` blocks; block ``i`` cross-attends to spatial-trunk block ``i``'s output.
With ``spatial_query_anchor`` each spatial query first gets the mean embedded patch of its
own region of the first frame added (:func:`query_regions`).
``Lt = G*G*q`` learned temporal queries (``q`` per cell of a ``G x G`` grid over the patch grid)
pass through ``enc_temporal_depth`` blocks; block ``i`` lets the ``q`` queries of a cell attend to
each other and cross-attend to temporal-trunk block ``i``'s output at the cell's locations
(all ``k`` time steps). With ``G = g`` and ``q = 1`` this is the paper's one temporal query per
patch location. A DQAE module of the paper is here one trunk block plus one query block.

Each stream ends with LayerNorm -> Linear(D, 2e) -> l2-normalisation of each ``e``-wide half
(each half is matched against its own codebook by cosine similarity, see
:mod:`sweettok.models.quantizer`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from torch import nn

from sweettok.models.config import SweetTokConfig, query_regions
from sweettok.models.dqae import BlockStyle, DQAEBlock

__all__ = ["DecoupledQueryEncoder", "normalize_halves", "query_regions"]


def normalize_halves(z: torch.Tensor) -> torch.Tensor:
    """l2-normalise the two ``e``-wide halves of ``(..., 2e)`` latents separately."""
    e = z.shape[-1] // 2
    return torch.cat([F.normalize(z[..., :e], dim=-1), F.normalize(z[..., e:], dim=-1)], dim=-1)


def _block(
    cfg: SweetTokConfig, cross: bool, *, spatial: bool = False, trunk: bool = False, window: bool = False,
    causal: bool = False,
) -> DQAEBlock:
    """A block of the encoder: ``spatial`` sequences get rotary positions (``cfg.rope``), ``trunk``
    blocks a position generator (``cfg.peg``; not window blocks, as in the release)."""
    return DQAEBlock(
        cfg.width, cfg.heads, cfg.mlp_ratio, cfg.dropout, cross=cross, style=BlockStyle.of(cfg),
        self_attention="window" if window else "full", window=cfg.window_size, causal=causal,
        rope=cfg.rope and spatial, peg=cfg.peg if trunk and not window else "none",
    )


class DecoupledQueryEncoder(nn.Module):
    """Patch grid -> continuous latents.

    ``forward(v, still)`` takes the embedded grid ``(B, S, g, g, D)`` (``S = 1 + k`` slices), and
    ``still`` ``(B, 1, g, g, D)`` (:meth:`PatchEmbed.still_tube`, the first difference's reference;
    ``None`` uses slice 0), and returns
    ``(zs, zt)``: spatial latents ``(B, Ls, 2e)`` and temporal latents ``(B, Lt, 2e)``, each half
    unit-norm; ``zt`` is None when ``S == 1`` (an image has no motion).
    """

    def __init__(self, cfg: SweetTokConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        scale = d**-0.5
        windows = set(cfg.window_layers)
        if cfg.video_position_tables:
            self.grid_pos = nn.Parameter(scale * torch.randn(cfg.num_patches, d))
        self.spatial_trunk = nn.ModuleList(
            _block(cfg, cross=False, spatial=True, trunk=True, window=i + 1 in windows)
            for i in range(cfg.enc_spatial_depth)
        )
        # Plain learned queries (the paper) start with unit variance (norm ~sqrt(D)), not
        # d**-0.5 like the position tables: the cross-attention updates of the first steps grow
        # the residual stream ~6x, and small plain queries then all carry the same
        # attention-pooled vector (measured: rank 24 -> 1.1 within 6 steps). Large ones stay
        # distinct but are dominated by their own identity: after 300 phase-1 steps of the
        # base profile, 80 test clips gave ~1.4 different ids per spatial token. Anchored
        # queries (``spatial_query_anchor``) already differ by the content of their regions,
        # so they start small like the other tables. Temporal queries each read their own
        # cell, so they stay distinct and content-dependent without either measure.
        self.spatial_queries = nn.Parameter(
            (scale if cfg.spatial_query_anchor else 1.0) * torch.randn(cfg.spatial_queries, d)
        )
        self.spatial_query_pos = nn.Parameter(scale * torch.randn(cfg.spatial_queries, d))
        # a window layer's query block has no cross-attention (it reads the queries' own grid)
        self.spatial_query_blocks = nn.ModuleList(
            _block(cfg, cross=True, spatial=True, window=i + 1 in windows) for i in range(cfg.enc_spatial_depth)
        )
        self.spatial_out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.latent_dim))
        if cfg.has_temporal:
            if cfg.video_position_tables:
                # Delta index j = 1..k has its own embedding; differences cancel any slice embedding.
                self.delta_pos = nn.Parameter(scale * torch.randn(cfg.max_slices - 1, d))
            if cfg.temporal_anchor:
                self.anchor_pos = nn.Parameter(scale * torch.randn(d))
            self.temporal_trunk = nn.ModuleList(
                _block(cfg, cross=False, trunk=True, causal=cfg.temporal_causal) for _ in range(cfg.enc_temporal_depth)
            )
            self.temporal_queries = nn.Parameter(scale * torch.randn(cfg.temporal_queries, d))
            self.temporal_query_pos = nn.Parameter(scale * torch.randn(cfg.temporal_queries, d))
            self.temporal_query_blocks = nn.ModuleList(
                _block(cfg, cross=True) for _ in range(cfg.enc_temporal_depth)
            )
            self.temporal_out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.latent_dim))

    def forward(self, v: torch.Tensor, still: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, s = v.shape[:2]
        zs = self._spatial(v)
        zt = self._temporal(v, still) if s > 1 else None
        return zs, zt

    def _spatial(self, v: torch.Tensor) -> torch.Tensor:
        """``v``: ``(B, S, g, g, D)`` slice features -> ``(B, Ls, 2e)``.

        The trunk reads slice 0 (``spatial_trunk_input: first_frame``) or every slice, the query
        blocks then reading each trunk layer's output averaged over the slices (``all_slices``).
        """
        cfg = self.cfg
        b, g = v.shape[0], v.shape[2]
        src = v if cfg.spatial_trunk_input == "all_slices" else v[:, :1]
        n_src = src.shape[1]
        x = rearrange(src, "b s h w d -> (b s) (h w) d")
        if cfg.video_position_tables:
            x = x + self.grid_pos
        q = repeat(self.spatial_queries + self.spatial_query_pos, "l d -> b l d", b=b)
        rows, cols = query_regions(cfg.spatial_queries)
        if cfg.spatial_query_anchor:
            regions = F.adaptive_avg_pool2d(rearrange(v[:, 0], "b h w d -> b d h w"), (rows, cols))
            q = q + rearrange(regions, "b d r c -> b (r c) d")
        for trunk, query in zip(self.spatial_trunk, self.spatial_query_blocks):
            if trunk.peg is not None:
                x = trunk.peg.on_spatial(x, b, g)
            x = trunk(x, grid=(g, g))
            ctx = x if n_src == 1 else reduce(x, "(b s) l d -> b l d", "mean", b=b)
            q = query(q, ctx, grid=(rows, cols))
        return normalize_halves(self.spatial_out(q))

    def _temporal(self, v: torch.Tensor, still: torch.Tensor | None) -> torch.Tensor:
        """``v``: ``(B, S, g, g, D)`` with ``S >= 2`` -> ``(B, Lt, 2e)``."""
        cfg = self.cfg
        b, s, g = v.shape[0], v.shape[1], v.shape[2]
        c, n_q, big_g = cfg.cell_size, cfg.temporal_queries_per_cell, cfg.query_grid
        previous = v[:, :-1] if still is None else torch.cat([still, v[:, 1:-1]], dim=1)
        x = v[:, 1:] - previous  # (B, k, g, g, D): motion between consecutive slices
        if cfg.video_position_tables:
            grid_pos = rearrange(self.grid_pos, "(h w) d -> h w d", h=g)
            x = x + grid_pos + self.delta_pos[: s - 1, None, None, :]
        if cfg.temporal_anchor:
            # the first frame, embedded like a tube, as step 0 of every location's sequence: the
            # trunk reads motion relative to a known appearance
            anchor = still + self.anchor_pos
            if cfg.video_position_tables:
                anchor = anchor + grid_pos
            x = torch.cat([anchor, x], dim=1)
        x = rearrange(x, "b t h w d -> (b h w) t d")
        q = repeat(
            self.temporal_queries + self.temporal_query_pos,
            "(g1 g2 m) d -> (b g1 g2) m d", b=b, g1=big_g, g2=big_g, m=n_q,
        )
        for trunk, query in zip(self.temporal_trunk, self.temporal_query_blocks):
            if trunk.peg is not None:
                x = trunk.peg.on_temporal(x, b, g)
            x = trunk(x)
            # A cell's queries see every time step at each of its c*c locations.
            ctx = rearrange(x, "(b g1 s1 g2 s2) t d -> (b g1 g2) (t s1 s2) d", b=b, g1=big_g, g2=big_g, s1=c, s2=c)
            q = query(q, ctx)
        q = rearrange(q, "(b g1 g2) m d -> b (g1 g2 m) d", b=b, g1=big_g, g2=big_g)
        return normalize_halves(self.temporal_out(q))
