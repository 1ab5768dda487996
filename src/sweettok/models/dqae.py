"""DQAE building blocks: pre-norm transformer blocks with optional cross-attention.

A DQAE module is self-attention, cross-attention (when it has a context) and a feed-forward
layer, each pre-normed and residual. What makes it spatial or temporal is only how a feature
grid ``(B, T, H, W, D)`` is cut into sequences:

- DQAE_s attends over space: ``(B*T) x (H*W) x D`` (:class:`DQAESpatial`);
- DQAE_t attends over time: ``(B*H*W) x T x D`` (:class:`DQAETemporal`).

Attention goes through :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

__all__ = ["Attention", "FeedForward", "DQAEBlock", "DQAESpatial", "DQAETemporal"]


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None, else cross-attention.

    Args:
        width: model width ``D`` (queries and context share it).
        heads: number of heads (``D % heads == 0``).
        dropout: attention-weight dropout, active in training only.
        cross: build separate query and key/value projections for a context.
    """

    def __init__(self, width: int, heads: int, dropout: float, cross: bool) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.cross = cross
        if cross:
            self.q = nn.Linear(width, width)
            self.kv = nn.Linear(width, 2 * width)
        else:
            self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, groups: int = 1) -> torch.Tensor:
        """Attend.

        Args:
            x: ``(N, L, D)`` queries.
            context: ``(N / groups, M, D)`` keys/values for cross-attention. Query sequence
                ``i`` attends to context ``i // groups``: the context's keys and values are
                projected once and shared by ``groups`` consecutive query sequences (e.g. the
                ``1+k`` slices of one clip attending to that clip's spatial latents).
            groups: query sequences per context sequence.

        Returns:
            ``(N, L, D)``.
        """
        h = self.heads
        if self.cross:
            if context is None:
                raise ValueError("cross-attention needs a context")
            q = rearrange(self.q(x), "n l (h d) -> n h l d", h=h)
            k, v = rearrange(self.kv(context), "n m (two h d) -> two n h m d", two=2, h=h)
            if groups > 1:
                k = repeat(k, "n h m d -> (n g) h m d", g=groups)
                v = repeat(v, "n h m d -> (n g) h m d", g=groups)
        else:
            q, k, v = rearrange(self.qkv(x), "n l (three h d) -> three n h l d", three=3, h=h)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out(rearrange(y, "n h l d -> n l (h d)"))


class FeedForward(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout, hidden width ``mlp_ratio * D``."""

    def __init__(self, width: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(round(width * mlp_ratio))
        self.net = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DQAEBlock(nn.Module):
    """One pre-norm block over sequences ``(N, L, D)``: self-attn, [cross-attn], feed-forward.

    The context of the cross-attention gets its own LayerNorm because it comes from another
    residual stream (a trunk layer or the latents) whose scale this block does not control.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float, cross: bool) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(width)
        self.self_attn = Attention(width, heads, dropout, cross=False)
        self.has_cross = cross
        if cross:
            self.norm_cross = nn.LayerNorm(width)
            self.norm_context = nn.LayerNorm(width)
            self.cross_attn = Attention(width, heads, dropout, cross=True)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = FeedForward(width, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, groups: int = 1) -> torch.Tensor:
        """``x``: ``(N, L, D)``; ``context``: ``(N / groups, M, D)`` or None. Returns ``(N, L, D)``."""
        x = x + self.self_attn(self.norm_self(x))
        if self.has_cross:
            if context is None:
                raise ValueError("this DQAE block has cross-attention and needs a context")
            x = x + self.cross_attn(self.norm_cross(x), self.norm_context(context), groups=groups)
        return x + self.ff(self.norm_ff(x))


class DQAESpatial(DQAEBlock):
    """DQAE_s: attention over the ``H*W`` patches of each slice.

    ``forward(x, context)`` takes a grid ``x`` of shape ``(B, T, H, W, D)`` and, when the block has
    cross-attention, ``context`` ``(B, M, D)`` shared by all ``T`` slices of a clip (e.g. the
    spatial latents). Returns ``(B, T, H, W, D)``.
    """

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        b, t, hh, ww, _ = x.shape
        seq = rearrange(x, "b t h w d -> (b t) (h w) d")
        seq = super().forward(seq, context, groups=t)
        return rearrange(seq, "(b t) (h w) d -> b t h w d", b=b, h=hh)


class DQAETemporal(DQAEBlock):
    """DQAE_t: attention over the ``T`` slices at each patch location.

    ``forward(x, context, cell)`` takes a grid ``x`` ``(B, T, H, W, D)`` and, when the block has
    cross-attention, ``context`` ``(B, G, G, M, D)``: ``M`` tokens per cell of a ``G x G`` grid of
    cells, each cell covering ``cell x cell`` patch locations (``H = G * cell``). Every location
    attends over time and to the context tokens of its cell. Returns ``(B, T, H, W, D)``.
    """

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, context: torch.Tensor | None = None, cell: int = 1
    ) -> torch.Tensor:
        b, t, hh, ww, _ = x.shape
        # Locations ordered cell-major so that the cell's context serves cell*cell consecutive sequences.
        seq = rearrange(x, "b t (g1 s1) (g2 s2) d -> (b g1 g2 s1 s2) t d", s1=cell, s2=cell)
        ctx = None if context is None else rearrange(context, "b g1 g2 m d -> (b g1 g2) m d")
        seq = super().forward(seq, ctx, groups=cell * cell)
        return rearrange(
            seq, "(b g1 g2 s1 s2) t d -> b t (g1 s1) (g2 s2) d", b=b, g1=hh // cell, g2=ww // cell, s1=cell, s2=cell
        )
