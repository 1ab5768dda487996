"""DQAE building blocks: pre-norm transformer blocks with optional cross-attention.

A DQAE module is self-attention, cross-attention (when it has a context) and a feed-forward
layer, each pre-normed and residual. What makes it spatial or temporal is only how a feature
grid ``(B, T, H, W, D)`` is cut into sequences:

- DQAE_s attends over space: ``(B*T) x (H*W) x D`` (:class:`DQAESpatial`);
- DQAE_t attends over time: ``(B*H*W) x T x D`` (:class:`DQAETemporal`).

Attention goes through :func:`torch.nn.functional.scaled_dot_product_attention`.

The blocks take the architecture options of :class:`sweettok.models.config.SweetTokConfig`
that the official release uses (each off by default, see :class:`BlockStyle` and the block
arguments): cosine attention (l2-normalised queries and keys with learned per-channel scales
and a fixed temperature), no biases, a gated-GELU feed-forward, 2-D rotary positions
(:func:`rope_tables`), learned null key/values in cross-attention, causal self-attention,
window attention with a relative position bias (:class:`WindowAttention`) and a depthwise 3-D
convolutional position generator (:class:`PositionGenerator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

__all__ = [
    "Attention", "BlockStyle", "FeedForward", "DQAEBlock", "DQAESpatial", "DQAETemporal",
    "PositionGenerator", "WindowAttention", "apply_rope", "cosine_qk", "rope_tables",
]


@dataclass(frozen=True)
class BlockStyle:
    """How every attention and feed-forward layer of the model is built.

    Args:
        attention: ``softmax`` (scaled dot product, scale ``head_dim ** -0.5``) or ``cosine``
            (queries and keys l2-normalised per head, multiplied by learned per-channel scales
            that start at 1, then a fixed scale ``attention_scale``; the release's attention).
        attention_scale: the fixed scale of cosine attention (release: 8).
        bias: biases in the attention and feed-forward Linears and in the blocks' LayerNorms.
        feed_forward: ``gelu`` (Linear -> GELU -> Linear, hidden ``mlp_ratio * D``) or ``geglu``
            (Linear -> GELU-gated product -> Linear, hidden ``int(mlp_ratio * 2/3 * D)``, about
            the same parameters and FLOPs).
    """

    attention: str = "softmax"
    attention_scale: float = 8.0
    bias: bool = True
    feed_forward: str = "gelu"

    @classmethod
    def of(cls, cfg: Any) -> "BlockStyle":
        """The style of a :class:`~sweettok.models.config.SweetTokConfig`."""
        return cls(cfg.attention, cfg.attention_scale, cfg.bias, cfg.feed_forward)


# ---------------------------------------------------------------------- rotary positions
def rope_tables(
    rows: int, cols: int, head_dim: int, theta: float = 10000.0,
    device: torch.device | None = None, dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines of 2-D rotary positions for a ``rows x cols`` grid read row-major.

    Channels are rotated in pairs ``(2j, 2j+1)``. Pair ``j`` turns by ``x * f`` when ``j`` is even
    and by ``y * f`` when odd, with ``f = theta ** (-4 * (j // 2) / head_dim)`` and ``(x, y)`` the
    column and row of the position: half the pairs encode the column and half the row, each over
    ``head_dim / 4`` frequencies.

    Returns:
        ``(cos, sin)``, each ``(rows * cols, head_dim)`` (the angle repeated over each pair's two
        channels).
    """
    if head_dim % 4:
        raise ValueError(f"2-D rotary positions need a head width divisible by 4, got {head_dim}")
    pos = torch.arange(rows * cols, device=device)
    x, y = (pos % cols).float(), (pos // cols).float()
    freqs = theta ** (-torch.arange(0, head_dim, 4, device=device).float() / head_dim)  # head_dim / 4
    angles = torch.stack([torch.outer(x, freqs), torch.outer(y, freqs)], dim=-1).flatten(1)  # (N, head_dim / 2)
    angles = angles.repeat_interleave(2, dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _turn_pairs(t: torch.Tensor) -> torch.Tensor:
    """``(a, b) -> (-b, a)`` on each channel pair ``(2j, 2j+1)``."""
    pairs = t.unflatten(-1, (-1, 2))
    return torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)


def apply_rope(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the channel pairs of ``t`` ``(..., L, head_dim)`` by the tables of :func:`rope_tables`."""
    return t * cos + _turn_pairs(t) * sin


class _CosineQK(torch.autograd.Function):
    """``F.normalize(apply_rope(x, cos, sin), dim=-1) * scale`` (``cos is None``: no rotation).

    Autograd through the plain expression keeps the rotated and the normalised tensors, each as
    large as the queries (or keys), for backward; this keeps only ``x`` (a view of the qkv
    projection, alive anyway), the inverse norms and the small tables, and recomputes the rest.
    """

    @staticmethod
    def forward(ctx, x, scale, cos, sin, eps):  # noqa: ANN001, ANN205
        r = x if cos is None else x * cos + _turn_pairs(x) * sin
        inv = torch.linalg.vector_norm(r, dim=-1, keepdim=True).clamp_min(eps).reciprocal()
        ctx.eps = eps
        ctx.save_for_backward(x, inv, scale, cos, sin)
        return r * inv * scale

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        x, inv, scale, cos, sin = ctx.saved_tensors
        turned = cos is not None
        u = (x * cos + _turn_pairs(x) * sin if turned else x) * inv  # the normalised rows
        grad_scale = None
        if ctx.needs_input_grad[1]:
            grad_scale = (g * u).flatten(0, -2).sum(0).to(scale.dtype)
        gu = g * scale
        # d(r / max(|r|, eps)): (gu - u <u, gu>) / |r| where |r| > eps; gu / eps where clamped
        live = inv < 1.0 / ctx.eps
        gr = (gu - u * ((u * gu).sum(-1, keepdim=True) * live)) * inv
        grad_x = gr * cos - _turn_pairs(gr) * sin if turned else gr  # the rotation's transpose
        return grad_x, grad_scale, None, None, None


def cosine_qk(
    x: torch.Tensor, scale: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None, eps: float = 1e-12,
) -> torch.Tensor:
    """Queries or keys ``(..., L, head_dim)`` of cosine attention: rotated by ``rope`` (the
    ``(cos, sin)`` tables of :func:`rope_tables`) when given, l2-normalised, times ``scale``
    ``(head_dim,)``. Equal to ``F.normalize(apply_rope(x, cos, sin), dim=-1, eps=eps) * scale`` in
    value and gradient, with less memory kept for backward."""
    cos, sin = rope if rope is not None else (None, None)
    return _CosineQK.apply(x, scale, cos, sin, eps)


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None, else cross-attention.

    Args:
        width: model width ``D`` (queries and context share it).
        heads: number of heads (``D % heads == 0``).
        dropout: attention-weight dropout, active in training only.
        cross: build separate query and key/value projections for a context.
        style: :class:`BlockStyle` (softmax or cosine attention, biases).
        null_kv: learned key/value pairs prepended to every context (cross-attention only), so a
            query can attend to "nothing" (release: 2 in its decoder).
        causal: position ``i`` attends to positions ``<= i`` only (self-attention only).
    """

    def __init__(
        self, width: int, heads: int, dropout: float, cross: bool,
        style: BlockStyle | None = None, null_kv: int = 0, causal: bool = False,
    ) -> None:
        super().__init__()
        style = style or BlockStyle()
        self.heads = heads
        self.dropout = dropout
        self.cross = cross
        self.causal = causal and not cross
        bias = style.bias
        if cross:
            self.q = nn.Linear(width, width, bias=bias)
            self.kv = nn.Linear(width, 2 * width, bias=bias)
        else:
            self.qkv = nn.Linear(width, 3 * width, bias=bias)
        self.out = nn.Linear(width, width, bias=bias)
        head_dim = width // heads
        self.cosine = style.attention == "cosine"
        self.scale = style.attention_scale if self.cosine else None
        if self.cosine:
            self.q_scale = nn.Parameter(torch.ones(head_dim))
            self.k_scale = nn.Parameter(torch.ones(head_dim))
        self.null_kv = nn.Parameter(torch.randn(heads, 2, null_kv, head_dim)) if cross and null_kv else None

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, groups: int = 1,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Attend.

        Args:
            x: ``(N, L, D)`` queries.
            context: ``(N / groups, M, D)`` keys/values for cross-attention. Query sequence
                ``i`` attends to context ``i // groups``: the context's keys and values are
                projected once and shared by ``groups`` consecutive query sequences (e.g. the
                ``1+k`` slices of one clip attending to that clip's spatial latents).
            groups: query sequences per context sequence.
            rope: ``(cos, sin)`` tables ``(L, head_dim)`` of :func:`rope_tables`, applied to the
                queries and keys of self-attention.

        Returns:
            ``(N, L, D)``.
        """
        h = self.heads
        if self.cross:
            if context is None:
                raise ValueError("cross-attention needs a context")
            q = rearrange(self.q(x), "n l (h d) -> n h l d", h=h)
            k, v = rearrange(self.kv(context), "n m (two h d) -> two n h m d", two=2, h=h)
            if self.null_kv is not None:
                nk, nv = repeat(self.null_kv.to(k.dtype), "h two m d -> two n h m d", n=k.shape[0])
                k, v = torch.cat([nk, k], dim=2), torch.cat([nv, v], dim=2)
            if groups > 1:
                k = repeat(k, "n h m d -> (n g) h m d", g=groups)
                v = repeat(v, "n h m d -> (n g) h m d", g=groups)
        else:
            q, k, v = rearrange(self.qkv(x), "n l (three h d) -> three n h l d", three=3, h=h)
            if rope is not None:
                rope = tuple(t.to(q.dtype) for t in rope)
                if not self.cosine:
                    q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if self.cosine:  # the rotation (self-attention with rope) happens inside cosine_qk
            rope = rope if not self.cross else None
            q = cosine_qk(q, self.q_scale.to(q.dtype), rope)
            k = cosine_qk(k, self.k_scale.to(k.dtype), rope)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal, scale=self.scale
        )
        return self.out(rearrange(y, "n h l d -> n l (h d)"))


class WindowAttention(nn.Module):
    """Self-attention within non-overlapping ``window x window`` squares of a grid, with a learned
    relative position bias per head (the release's two window layers of its encoder).

    Queries, keys and values come from one Linear without bias; the output projection has one.
    ``forward(x, rows, cols)``: ``x`` ``(N, rows * cols, D)`` read row-major; ``rows`` and ``cols``
    must be multiples of ``window``.
    """

    def __init__(self, width: int, heads: int, window: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.window, self.dropout = heads, window, dropout
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width)
        self.relative_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_bias, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]) + (window - 1)  # (2, w*w, w*w), each in [0, 2w-2]
        self.register_buffer("relative_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)

    def forward(self, x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        w, h = self.window, self.heads
        if rows % w or cols % w or x.shape[1] != rows * cols:
            raise ValueError(f"window attention needs a {rows} x {cols} grid in multiples of {w}, "
                             f"got sequences of {x.shape[1]}")
        n = x.shape[0]
        win = rearrange(x, "n (r wr c wc) d -> (n r c) (wr wc) d", r=rows // w, wr=w, c=cols // w, wc=w)
        q, k, v = rearrange(self.qkv(win), "m l (three h d) -> three m h l d", three=3, h=h)
        bias = rearrange(self.relative_bias[self.relative_index], "i j h -> h i j").to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
        y = self.out(rearrange(y, "m h l d -> m l (h d)"))
        return rearrange(y, "(n r c) (wr wc) d -> n (r wr c wc) d", n=n, r=rows // w, c=cols // w, wr=w)


class PositionGenerator(nn.Module):
    """Depthwise 3x3x3 convolution over a feature grid, added to it: a conditional position
    encoding (the release's PEG). ``causal`` pads time on the past side only, so slice ``t``
    sees slices ``t-2..t``; otherwise ``t-1..t+1``.

    ``forward(x)`` takes ``(B, T, H, W, D)`` and returns ``x + conv(x)`` of the same shape;
    :meth:`on_spatial` and :meth:`on_temporal` take the sequences a block works on.
    """

    def __init__(self, width: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.conv = nn.Conv3d(width, width, 3, groups=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = rearrange(x, "b t h w d -> b d t h w")
        g = F.pad(g, (1, 1, 1, 1, 2, 0) if self.causal else (1, 1, 1, 1, 1, 1))
        return x + rearrange(self.conv(g), "b d t h w -> b t h w d")

    def on_spatial(self, x: torch.Tensor, batch: int, rows: int) -> torch.Tensor:
        """``x`` ``((B T), (H W), D)``."""
        g = self(rearrange(x, "(b t) (h w) d -> b t h w d", b=batch, h=rows))
        return rearrange(g, "b t h w d -> (b t) (h w) d")

    def on_temporal(self, x: torch.Tensor, batch: int, rows: int) -> torch.Tensor:
        """``x`` ``((B H W), T, D)``."""
        g = self(rearrange(x, "(b h w) t d -> b t h w d", b=batch, h=rows, w=x.shape[0] // (batch * rows)))
        return rearrange(g, "b t h w d -> (b h w) t d")


class FeedForward(nn.Module):
    """``gelu``: Linear -> GELU -> dropout -> Linear -> dropout, hidden width ``mlp_ratio * D``.
    ``geglu``: Linear(D, 2h) -> ``a * GELU(gate)`` -> dropout -> Linear(h, D) -> dropout with
    ``h = int(mlp_ratio * 2/3 * D)`` (see :class:`BlockStyle`).

    Without dropout (every profile) the activation and the second Linear run as one autograd
    step that recomputes the activation in backward (:class:`_ActivationLinear`): the same values
    and gradients, with the activation's output no longer kept for backward."""

    def __init__(self, width: int, mlp_ratio: float, dropout: float, style: BlockStyle | None = None) -> None:
        super().__init__()
        style = style or BlockStyle()
        self.gated = style.feed_forward == "geglu"
        if self.gated:
            hidden = int(mlp_ratio * (2 / 3) * width)
            self.net = nn.Sequential(
                nn.Linear(width, 2 * hidden, bias=style.bias), _GEGLU(), nn.Dropout(dropout),
                nn.Linear(hidden, width, bias=style.bias), nn.Dropout(dropout),
            )
        else:
            hidden = int(round(width * mlp_ratio))
            self.net = nn.Sequential(
                nn.Linear(width, hidden, bias=style.bias), nn.GELU(), nn.Dropout(dropout),
                nn.Linear(hidden, width, bias=style.bias), nn.Dropout(dropout),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.net[2].p > 0 and self.training:
            return self.net(x)
        fc1, fc2 = self.net[0], self.net[3]
        return _ActivationLinear.apply(fc1(x), fc2.weight, fc2.bias, self.gated)


def _activation(h: torch.Tensor, gated: bool) -> torch.Tensor:
    if not gated:
        return F.gelu(h)
    a, gate = h.chunk(2, dim=-1)
    return a * F.gelu(gate)


class _ActivationLinear(torch.autograd.Function):
    """``F.linear(act(h), weight, bias)`` with ``act`` GELU or ``a * GELU(gate)`` (``h = [a, gate]``).

    Autograd through the two steps keeps ``h`` (for the activation's gradient) and ``act(h)`` (for
    the weight's), together 2x (GELU) or 1.5x (GEGLU) the size of ``h`` for every token of every
    feed-forward layer; this keeps ``h`` only and recomputes ``act(h)`` in backward. Under autocast
    the product runs in the autocast dtype, as ``F.linear`` would.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, gated):  # noqa: ANN001, ANN205
        device = h.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
        ctx.gated, ctx.dtype = gated, dtype
        ctx.save_for_backward(h, weight, bias)
        with torch.autocast(device, enabled=False):
            return F.linear(_activation(h, gated).to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype))

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        h, weight, bias = ctx.saved_tensors
        g = g.to(ctx.dtype)
        g2 = g.reshape(-1, g.shape[-1])
        grad_weight = grad_bias = grad_h = None
        if ctx.needs_input_grad[1]:
            act = _activation(h, ctx.gated).to(ctx.dtype)
            grad_weight = g2.t().mm(act.reshape(-1, act.shape[-1])).to(weight.dtype)
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = g2.sum(0).to(bias.dtype)
        if ctx.needs_input_grad[0]:
            grad_act = g.matmul(weight.to(ctx.dtype)).to(h.dtype)
            if ctx.gated:
                a, gate = h.chunk(2, dim=-1)
                grad_h = torch.cat(
                    [grad_act * F.gelu(gate), torch.ops.aten.gelu_backward(grad_act * a, gate)], dim=-1
                )
            else:
                grad_h = torch.ops.aten.gelu_backward(grad_act, h)
        return grad_h, grad_weight, grad_bias, None


class _GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _activation(x, gated=True)


class DQAEBlock(nn.Module):
    """One pre-norm block over sequences ``(N, L, D)``: self-attn, [cross-attn], feed-forward.

    The context of the cross-attention gets its own LayerNorm because it comes from another
    residual stream (a trunk layer or the latents) whose scale this block does not control.

    Args:
        width, heads, mlp_ratio, dropout: sizes.
        cross: a cross-attention layer (then ``forward`` needs a context).
        style: :class:`BlockStyle`.
        self_attention: ``full`` (every position of a sequence), ``window`` (a
            :class:`WindowAttention` of side ``window``; such a block has no cross-attention) or
            ``none`` (cross-attention and feed-forward only).
        null_kv, causal: see :class:`Attention`.
        rope: rotary positions in the self-attention (``forward`` then needs ``grid``).
        peg: ``none``, ``causal`` or ``centered``: the block owns a :class:`PositionGenerator`
            as ``self.peg``, which the caller applies to the grid before the block (only the
            caller knows how its sequences tile the grid).
    """

    def __init__(
        self, width: int, heads: int, mlp_ratio: float, dropout: float, cross: bool,
        style: BlockStyle | None = None, self_attention: str = "full", window: int = 8,
        null_kv: int = 0, causal: bool = False, rope: bool = False, peg: str = "none",
    ) -> None:
        super().__init__()
        style = style or BlockStyle()
        if self_attention not in ("full", "window", "none"):
            raise ValueError(f"self_attention must be full, window or none, got {self_attention!r}")
        self.attention_kind = self_attention
        self.rope = rope and self_attention == "full"
        self._rope_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.peg = PositionGenerator(width, causal=peg == "causal") if peg != "none" else None
        if self_attention != "none":
            self.norm_self = nn.LayerNorm(width, bias=style.bias)
        if self_attention == "full":
            self.self_attn = Attention(width, heads, dropout, cross=False, style=style, causal=causal)
        elif self_attention == "window":
            self.self_attn = WindowAttention(width, heads, window, dropout)
        self.has_cross = cross and self_attention != "window"
        if self.has_cross:
            self.norm_cross = nn.LayerNorm(width, bias=style.bias)
            self.norm_context = nn.LayerNorm(width, bias=style.bias)
            self.cross_attn = Attention(width, heads, dropout, cross=True, style=style, null_kv=null_kv)
        self.norm_ff = nn.LayerNorm(width, bias=style.bias)
        self.ff = FeedForward(width, mlp_ratio, dropout, style)
        self.heads = heads

    def _rope(self, rows: int, cols: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (rows, cols, x.device)
        if key not in self._rope_cache:
            self._rope_cache[key] = rope_tables(rows, cols, x.shape[-1] // self.heads, device=x.device)
        return self._rope_cache[key]

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, groups: int = 1,
        grid: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """``x``: ``(N, L, D)``; ``context``: ``(N / groups, M, D)`` or None; ``grid``: ``(rows, cols)``
        with ``rows * cols = L`` for rotary positions and window attention. Returns ``(N, L, D)``."""
        if self.attention_kind == "full":
            rope = None
            if self.rope:
                if grid is None:
                    raise ValueError("this block uses rotary positions and needs the grid of its sequences")
                rope = self._rope(*grid, x)
            x = x + self.self_attn(self.norm_self(x), rope=rope)
        elif self.attention_kind == "window":
            if grid is None:
                raise ValueError("window attention needs the grid of its sequences")
            x = x + self.self_attn(self.norm_self(x), *grid)
        if self.has_cross:
            if context is None:
                raise ValueError("this DQAE block has cross-attention and needs a context")
            x = x + self.cross_attn(self.norm_cross(x), self.norm_context(context), groups=groups)
        return x + self.ff(self.norm_ff(x))


class DQAESpatial(DQAEBlock):
    """DQAE_s: attention over the ``H*W`` patches of each slice.

    ``forward(x, context)`` takes a grid ``x`` of shape ``(B, T, H, W, D)`` and, when the block has
    cross-attention, ``context`` ``(B, M, D)`` shared by all ``T`` slices of a clip (e.g. the
    spatial latents). Its position generator (if any) runs on the grid first. Returns
    ``(B, T, H, W, D)``.
    """

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if self.peg is not None:
            x = self.peg(x)
        b, t, hh, ww, _ = x.shape
        seq = rearrange(x, "b t h w d -> (b t) (h w) d")
        seq = super().forward(seq, context, groups=t, grid=(hh, ww))
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
        if self.peg is not None:
            x = self.peg(x)
        b, t, hh, ww, _ = x.shape
        # Locations ordered cell-major so that the cell's context serves cell*cell consecutive sequences.
        seq = rearrange(x, "b t (g1 s1) (g2 s2) d -> (b g1 g2 s1 s2) t d", s1=cell, s2=cell)
        ctx = None if context is None else rearrange(context, "b g1 g2 m d -> (b g1 g2) m d")
        seq = super().forward(seq, ctx, groups=cell * cell)
        return rearrange(
            seq, "(b g1 g2 s1 s2) t d -> b t (g1 s1) (g2 s2) d", b=b, g1=hh // cell, g2=ww // cell, s1=cell, s2=cell
        )
