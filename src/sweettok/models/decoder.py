"""DecoupledQueryDecoder: quantized latents -> per-cell logits over the proxy codebook.

The latents enter through Linear(2e, D) plus a learned position embedding (separate for the
spatial and the temporal latents). A learned mask token, plus a patch-position and a
slice-position embedding (without ``video_position_tables``: the patch positions only, the
position generators telling the slices apart), is tiled over the output grid ``(1+k) x g x g``.

- ``dec_spatial_depth`` DQAE_s modules: a latent block refines the spatial latents
  (self-attention over the ``Ls`` latents) and a grid block lets every slice attend over its
  ``g*g`` cells and cross-attend to that module's spatial latents.
- ``dec_temporal_depth`` DQAE_t modules, run after the spatial layers listed in
  ``dec_temporal_after`` (release: after 2, 4, 6, 8 of 8): a latent block refines the temporal
  latents (self-attention among the ``q`` latents of a cell) and a grid block attends over the
  ``1+k`` slices at each location (unless ``dec_temporal_self_attention`` is off, as in the
  release) and cross-attends to the temporal latents of its cell.
- Head: LayerNorm -> 1x1 conv (D -> head_hidden) -> tanh -> 1x1 conv (head_hidden -> V). A 1x1
  convolution on a grid is a Linear applied per cell, which is how it is written here.

Images (one slice, no temporal latents) use the spatial modules only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from sweettok.models.config import SweetTokConfig, query_regions
from sweettok.models.dqae import BlockStyle, DQAEBlock, DQAESpatial, DQAETemporal

__all__ = ["DecoupledQueryDecoder"]


class DecoupledQueryDecoder(nn.Module):
    """Latents -> logits.

    ``forward(zs, zt, slices)``: spatial latents ``(B, Ls, 2e)``, temporal latents ``(B, Lt, 2e)``
    (None for an image), number of output slices ``S = 1 + k``. Returns logits
    ``(B, V, S, g, g)`` and, with ``return_features=True``, also the features that enter the head
    (before its LayerNorm) ``(B, S, g, g, D)``.
    """

    def __init__(self, cfg: SweetTokConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        scale = d**-0.5
        blk = dict(width=d, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout, style=BlockStyle.of(cfg))
        self.spatial_in = nn.Linear(cfg.latent_dim, d)
        self.spatial_latent_pos = nn.Parameter(scale * torch.randn(cfg.spatial_queries, d))
        if cfg.decoder_spatial_anchor:
            self.spatial_anchor = nn.Linear(cfg.latent_dim, d)
        self.mask_token = nn.Parameter(scale * torch.randn(d))
        self.grid_pos = nn.Parameter(scale * torch.randn(cfg.num_patches, d))
        if cfg.video_position_tables:
            self.slice_pos = nn.Parameter(scale * torch.randn(cfg.max_slices, d))
        self.spatial_latent_blocks = nn.ModuleList(
            DQAEBlock(cross=False, rope=cfg.rope, **blk) for _ in range(cfg.dec_spatial_depth)
        )
        self.spatial_blocks = nn.ModuleList(
            DQAESpatial(cross=True, rope=cfg.rope, peg=cfg.peg, null_kv=cfg.null_kv, **blk)
            for _ in range(cfg.dec_spatial_depth)
        )
        if cfg.has_temporal:
            self.temporal_in = nn.Linear(cfg.latent_dim, d)
            self.temporal_latent_pos = nn.Parameter(scale * torch.randn(cfg.temporal_queries, d))
            self.temporal_latent_blocks = nn.ModuleList(
                DQAEBlock(cross=False, **blk) for _ in range(cfg.dec_temporal_depth)
            )
            self.temporal_blocks = nn.ModuleList(
                DQAETemporal(
                    cross=True, null_kv=cfg.null_kv,
                    self_attention="full" if cfg.dec_temporal_self_attention else "none", **blk,
                )
                for _ in range(cfg.dec_temporal_depth)
            )
        # 1-based spatial layer number -> index of the temporal module that follows it.
        self._temporal_after = {layer: i for i, layer in enumerate(cfg.temporal_after)} if cfg.has_temporal else {}
        self.head_norm = nn.LayerNorm(d)
        self.head = nn.Sequential(nn.Linear(d, cfg.head_hidden), nn.Tanh(), nn.Linear(cfg.head_hidden, cfg.proxy_vocab_size))

    def forward(
        self, zs: torch.Tensor, zt: torch.Tensor | None, slices: int, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        b, g = zs.shape[0], cfg.grid_size
        if zs.shape[1:] != (cfg.spatial_queries, cfg.latent_dim):
            raise ValueError(
                f"spatial latents must be (B, {cfg.spatial_queries}, {cfg.latent_dim}), got {tuple(zs.shape)}"
            )
        if not 1 <= slices <= cfg.max_slices:
            raise ValueError(f"slices must be in [1, {cfg.max_slices}], got {slices}")
        if slices > 1:
            if zt is None or zt.shape != (b, cfg.temporal_queries, cfg.latent_dim):
                got = None if zt is None else tuple(zt.shape)
                raise ValueError(
                    f"a {slices}-slice clip needs temporal latents (B, {cfg.temporal_queries}, {cfg.latent_dim}), got {got}"
                )

        ls = self.spatial_in(zs) + self.spatial_latent_pos
        lt = None
        if slices > 1:
            assert zt is not None
            big_g, n_q = cfg.query_grid, cfg.temporal_queries_per_cell
            lt = self.temporal_in(zt) + self.temporal_latent_pos
            lt = rearrange(lt, "b (g1 g2 m) d -> (b g1 g2) m d", g1=big_g, g2=big_g, m=n_q)

        grid_pos = rearrange(self.grid_pos, "(h w) d -> h w d", h=g)[None]
        if cfg.video_position_tables:
            pos = self.slice_pos[:slices, None, None, :] + grid_pos + self.mask_token
        else:  # the position generators tell the slices apart
            pos = (grid_pos + self.mask_token).expand(slices, -1, -1, -1)
        x = repeat(pos, "t h w d -> b t h w d", b=b)

        latent_grid = query_regions(cfg.spatial_queries)
        if cfg.decoder_spatial_anchor:  # each cell starts from its own region's spatial latent
            regions = rearrange(self.spatial_anchor(zs), "b (r c) d -> b d r c", r=latent_grid[0])
            anchor = F.interpolate(regions, size=(g, g), mode="nearest")
            x = x + rearrange(anchor, "b d h w -> b 1 h w d")
        for i, (latent_block, grid_block) in enumerate(zip(self.spatial_latent_blocks, self.spatial_blocks)):
            ls = latent_block(ls, grid=latent_grid)
            x = grid_block(x, ls)
            j = self._temporal_after.get(i + 1)
            if j is not None and lt is not None:
                lt = self.temporal_latent_blocks[j](lt)
                ctx = rearrange(lt, "(b g1 g2) m d -> b g1 g2 m d", b=b, g1=cfg.query_grid, g2=cfg.query_grid)
                x = self.temporal_blocks[j](x, ctx, cell=cfg.cell_size)

        logits = rearrange(self.head(self.head_norm(x)), "b t h w v -> b v t h w")
        if return_features:
            return logits, x
        return logits
