"""A class-conditional decoder-only transformer over SweetTok's token ids, and its sampler.

Vocabulary layout (:class:`LMVocabulary`)
-----------------------------------------
A tokenizer id already names one word (:mod:`sweettok.models.quantizer`, "Id layout"): spatial
ids ``[0, Ns)`` (adjectives ``[0, n_adj)``, nouns ``[n_adj, Ns)``), temporal ids ``[Ns, Ns + Nt)``
(adverbs, then verbs). The LM keeps those numbers and appends its own tokens after them::

    [0, W)            the tokenizer's ids, unchanged (W = Ns + Nt words)
    W + c             class c, for c in [0, classes)
    W + classes       the null class (no condition; classifier-free guidance)
    W + classes + 1   separator between the spatial and the temporal ids

A clip of ``n = topk + 1`` ids per latent token, ``Ls`` spatial and ``Lt`` temporal tokens is the
sequence ``[class] + n*Ls spatial ids + [sep] + n*Lt temporal ids`` of ``S = n (Ls + Lt) + 2``
tokens. The model reads the first ``S - 1`` (``block_size``) and predicts the last ``S - 1``;
the class token is given, never predicted, and the separator is forced, so it is not scored.

Each position can only hold one part of speech: within a latent token the first ``topk`` ids
are modifiers (adjectives / adverbs) and the last one the head (noun / verb). The LM's
distribution at a position is normalised over that part of speech only
(:meth:`LMVocabulary.legal_mask`), in the loss and in sampling, so every sample decodes.

Sampling (:func:`generate`) draws one position at a time with temperature, top-k, top-p and
classifier-free guidance (``logits = uncond + scale * (cond - uncond)``; training drops the
class with ``cond_dropout`` so the unconditional model exists). With ``use_cache=True`` each
step feeds only the new token and attends over cached keys/values (cost linear in length);
without, it re-reads the whole prefix. Draws use one uniform number per row and step from the
given generator (inverse CDF), so both paths give the same tokens for the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sweettok.typed_params import FieldChecks, from_mapping

__all__ = ["KVCache", "LMVocabulary", "SamplingConfig", "TokenLM", "TokenLMConfig", "generate", "logits_loss", "sequence_nll"]


@dataclass(frozen=True)
class TokenLMConfig(FieldChecks):
    """The LM's vocabulary layout (from the tokenizer it models) and its size.

    Attributes:
        n_adj, n_noun, n_adv, n_verb: the tokenizer's four books (``SweetTok.quantizer``).
        topk: modifiers per latent token (ids per token = topk + 1).
        spatial_tokens, temporal_tokens: latent tokens per clip (Ls, Lt).
        classes: class labels the LM is conditioned on.
        width, depth, heads, mlp_ratio, dropout: the transformer (pre-norm GPT blocks, learned
            positions, tied input/output embeddings).
        attention_dropout: dropout on the attention weights (``None``: ``dropout``). On the CPU
            any value above 0 takes attention off the fused kernel onto the explicit softmax path
            and draws a ``(B, heads, T, T)`` mask per layer: with 16 x 289-token sequences, a
            training step of the base LM took 0.79 s with 0.1 everywhere and 0.45 s with
            dropout 0 (2 threads, side by side).
    """

    n_adj: int
    n_noun: int
    n_adv: int
    n_verb: int
    topk: int
    spatial_tokens: int
    temporal_tokens: int
    classes: int
    width: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    attention_dropout: float | None = None

    def __post_init__(self) -> None:
        for name in ("n_adj", "n_noun", "n_adv", "n_verb", "topk", "spatial_tokens", "classes", "width", "depth",
                     "heads"):
            self._check_int(name, 1)
        self._check_int("temporal_tokens", 0)
        if self.topk > min(self.n_adj, self.n_adv):
            self._fail("topk", f"must be <= the adjective ({self.n_adj}) and adverb ({self.n_adv}) counts")
        if self.width % self.heads:
            self._fail("heads", f"must divide width={self.width}, got {self.heads}")
        self._check_float("mlp_ratio", 0.0, inclusive=False)
        self._check_float("dropout", 0.0, inclusive=True)
        if self.dropout >= 1.0:
            self._fail("dropout", f"must be < 1, got {self.dropout}")
        if self.attention_dropout is not None:
            self._check_float("attention_dropout", 0.0, inclusive=True)
            if self.attention_dropout >= 1.0:
                self._fail("attention_dropout", f"must be < 1, got {self.attention_dropout}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "lm.model") -> TokenLMConfig:
        return from_mapping(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_tokenizer(cls, sweettok_model: nn.Module, frames: int, classes: int, **size: Any) -> TokenLMConfig:
        """The layout of ``sweettok_model``'s (a :class:`~sweettok.models.sweettok.SweetTok`) ids for
        ``frames``-frame clips, with the transformer sizes in ``size``."""
        q, cfg = sweettok_model.quantizer, sweettok_model.cfg
        return cls(n_adj=q.n_adj, n_noun=q.n_spatial - q.n_adj, n_adv=q.n_adv, n_verb=q.n_temporal - q.n_adv,
                   topk=q.topk, spatial_tokens=cfg.spatial_queries,
                   temporal_tokens=cfg.num_latent_tokens(frames) - cfg.spatial_queries, classes=classes, **size)


class LMVocabulary:
    """Where everything is in the LM's vocabulary and sequences (see the module docstring)."""

    def __init__(self, cfg: TokenLMConfig):
        self.cfg = cfg
        self.n = cfg.topk + 1
        self.spatial_words = cfg.n_adj + cfg.n_noun
        self.words = self.spatial_words + cfg.n_adv + cfg.n_verb
        self.null_class = self.words + cfg.classes
        self.sep = self.null_class + 1
        self.size = self.sep + 1
        self.spatial_ids = self.n * cfg.spatial_tokens
        self.temporal_ids = self.n * cfg.temporal_tokens
        self.clip_ids = self.spatial_ids + self.temporal_ids
        self.sep_position = 1 + self.spatial_ids
        self.sequence_length = self.clip_ids + 2
        self.block_size = self.sequence_length - 1

    def class_token(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.cfg.classes):
            raise ValueError(f"class labels must be in [0, {self.cfg.classes}), got {labels.min()}..{labels.max()}")
        return labels + self.words

    def position_ranges(self) -> list[tuple[int, int]]:
        """``[low, high)`` of the tokens each sequence position may hold (``S`` entries)."""
        cfg, n = self.cfg, self.n
        adj, noun = (0, cfg.n_adj), (cfg.n_adj, self.spatial_words)
        adv, verb = (self.spatial_words, self.spatial_words + cfg.n_adv), (self.spatial_words + cfg.n_adv, self.words)
        ranges = [(self.words, self.null_class + 1)]
        ranges += [adj if j % n < cfg.topk else noun for j in range(self.spatial_ids)]
        ranges += [(self.sep, self.sep + 1)]
        ranges += [adv if j % n < cfg.topk else verb for j in range(self.temporal_ids)]
        return ranges

    def legal_mask(self) -> torch.Tensor:
        """Bool ``(S, size)``: which tokens each position may hold."""
        mask = torch.zeros(self.sequence_length, self.size, dtype=torch.bool)
        for p, (lo, hi) in enumerate(self.position_ranges()):
            mask[p, lo:hi] = True
        return mask

    def scored_positions(self) -> torch.Tensor:
        """Bool ``(S - 1,)`` over target positions ``1..S-1``: False where the token is forced (separator)."""
        scored = torch.ones(self.block_size, dtype=torch.bool)
        scored[self.sep_position - 1] = False
        return scored

    def to_sequence(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Tokenizer ids ``(B, clip_ids)`` + labels ``(B,)`` -> LM sequences ``(B, S)`` int64."""
        if ids.ndim != 2 or ids.shape[1] != self.clip_ids:
            raise ValueError(f"expected ids of shape (B, {self.clip_ids}), got {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.words):
            raise ValueError(f"ids must be in [0, {self.words}), got {int(ids.min())}..{int(ids.max())}")
        b = ids.shape[0]
        sep = torch.full((b, 1), self.sep, dtype=torch.long, device=ids.device)
        return torch.cat([self.class_token(labels.long())[:, None], ids[:, : self.spatial_ids].long(), sep,
                          ids[:, self.spatial_ids:].long()], dim=1)

    def to_ids(self, seq: torch.Tensor) -> torch.Tensor:
        """LM sequences ``(B, S)`` -> tokenizer ids ``(B, clip_ids)``."""
        return torch.cat([seq[:, 1 : self.sep_position], seq[:, self.sep_position + 1 :]], dim=1)


class KVCache:
    """Keys and values of every layer for a batch, preallocated to the block size."""

    def __init__(self, layers: int, batch: int, heads: int, length: int, head_dim: int, device, dtype):
        shape = (batch, heads, length, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.length = 0


class _Attention(nn.Module):
    def __init__(self, cfg: TokenLMConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.dropout = cfg.dropout if cfg.attention_dropout is None else cfg.attention_dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        causal = True
        if cache is not None:
            start = cache.length
            cache.k[layer][:, :, start : start + t] = k
            cache.v[layer][:, :, start : start + t] = v
            k, v = cache.k[layer][:, :, : start + t], cache.v[layer][:, :, : start + t]
            # one new query attends to every cached key; a longer chunk only from an empty cache
            if start > 0:
                if t != 1:
                    raise ValueError("a filled KV cache takes one token at a time")
                causal = False
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, cfg: TokenLMConfig):
        super().__init__()
        hidden = int(cfg.width * cfg.mlp_ratio)
        self.norm1 = nn.LayerNorm(cfg.width)
        self.attn = _Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, hidden), nn.GELU(), nn.Linear(hidden, cfg.width),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cache, layer)
        return x + self.mlp(self.norm2(x))


class TokenLM(nn.Module):
    """Decoder-only transformer over LM sequences (layout: :class:`LMVocabulary`).

    ``forward(tokens (B, t))`` with ``t <= block_size`` -> logits ``(B, t, size)`` for the next
    token at each position (positions start at 0, or at ``cache.length`` with a cache).
    """

    def __init__(self, cfg: TokenLMConfig):
        super().__init__()
        self.cfg = cfg
        self.vocab = LMVocabulary(cfg)
        self.token_embed = nn.Embedding(self.vocab.size, cfg.width)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.vocab.block_size, cfg.width))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        self.register_buffer("legal", self.vocab.legal_mask(), persistent=False)
        self.apply(self._init)
        nn.init.normal_(self.pos_embed, std=0.02)
        for block in self.blocks:  # GPT-2: residual projections scaled by depth
            nn.init.normal_(block.attn.proj.weight, std=0.02 / math.sqrt(2 * cfg.depth))
            nn.init.normal_(block.mlp[2].weight, std=0.02 / math.sqrt(2 * cfg.depth))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        start = cache.length if cache is not None else 0
        t = tokens.shape[1]
        if start + t > self.vocab.block_size:
            raise ValueError(f"{start + t} positions exceed the block size {self.vocab.block_size}")
        x = self.drop(self.token_embed(tokens) + self.pos_embed[:, start : start + t])
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += t
        # tied output embedding: logits over the whole vocabulary
        return self.norm(x) @ self.token_embed.weight.t()

    def new_cache(self, batch: int) -> KVCache:
        p = self.token_embed.weight
        return KVCache(self.cfg.depth, batch, self.cfg.heads, self.vocab.block_size, self.cfg.width // self.cfg.heads,
                       p.device, p.dtype)

    def masked_log_probs(self, logits: torch.Tensor, first_target: int = 1) -> torch.Tensor:
        """Log-probabilities normalised over each position's legal tokens (illegal ones ``-inf``).

        ``logits (B, t, size)`` predict sequence positions ``first_target .. first_target + t - 1``.
        """
        legal = self.legal[first_target : first_target + logits.shape[1]]
        return logits.float().masked_fill(~legal, float("-inf")).log_softmax(dim=-1)


def sequence_nll(model: TokenLM, seq: torch.Tensor, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(training loss, NLL in nats per id), each a scalar mean over the scored targets of ``seq (B, S)``."""
    return logits_loss(model, model(seq[:, :-1]), seq, label_smoothing)


def logits_loss(model: TokenLM, logits: torch.Tensor, seq: torch.Tensor,
                label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sequence_nll` from the logits ``(B, S - 1, size)`` of ``model(seq[:, :-1])``.

    Label smoothing spreads ``label_smoothing`` of the target mass uniformly over the position's
    legal tokens only (illegal tokens have probability 0 and would make the smoothed loss infinite).
    """
    logp = model.masked_log_probs(logits)
    scored = model.vocab.scored_positions().to(seq.device)
    nll = -logp.gather(-1, seq[:, 1:, None])[..., 0][:, scored]
    if label_smoothing <= 0:
        return nll.mean(), nll.mean().detach()
    legal = model.legal[1:][scored]
    uniform = -(logp[:, scored].masked_fill(~legal, 0.0).sum(-1) / legal.sum(-1))
    return ((1 - label_smoothing) * nll + label_smoothing * uniform).mean(), nll.mean().detach()


@dataclass(frozen=True)
class SamplingConfig(FieldChecks):
    """How to draw token sequences.

    Attributes:
        temperature: logits are divided by it (> 0).
        top_k: keep the k most likely legal tokens (0 = all).
        top_p: keep the smallest set of most likely tokens whose mass reaches p (1.0 = all).
        guidance_scale: classifier-free guidance; 1.0 = the conditional model alone, 0 = unconditional.
        use_cache: KV cache (linear cost in length) or re-reading the prefix (quadratic).
        batch_size: sequences drawn together.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    guidance_scale: float = 1.0
    use_cache: bool = True
    batch_size: int = 32

    def __post_init__(self) -> None:
        self._check_float("temperature", 0.0, inclusive=False)
        self._check_int("top_k", 0)
        self._check_float("top_p", 0.0, inclusive=False)
        if self.top_p > 1.0:
            self._fail("top_p", f"must be in (0, 1], got {self.top_p}")
        self._check_float("guidance_scale", 0.0, inclusive=True)
        if not isinstance(self.use_cache, bool):
            self._fail("use_cache", f"must be true or false, got {self.use_cache!r}")
        self._check_int("batch_size", 1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "lm.sampling") -> SamplingConfig:
        return from_mapping(cls, d, where)


def _filter(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k then top-p on ``(B, V)`` logits (illegal tokens already ``-inf``)."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass before it already reaches top_p (the most likely always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def generate(model: TokenLM, labels: torch.Tensor, cfg: SamplingConfig | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one clip's ids per label: ``labels (B,)`` int -> tokenizer ids ``(B, clip_ids)`` int64.

    Runs in eval mode on the model's device; ``generator`` (on the CPU) makes it repeatable.
    """
    cfg = cfg or SamplingConfig()
    vocab = model.vocab
    device = model.token_embed.weight.device
    was_training = model.training
    model.eval()
    try:
        out = []
        for chunk in labels.long().split(cfg.batch_size):
            out.append(_generate_batch(model, chunk.to(device), cfg, generator))
        return vocab.to_ids(torch.cat(out)) if out else torch.zeros(0, vocab.clip_ids, dtype=torch.long)
    finally:
        model.train(was_training)


def _generate_batch(model: TokenLM, labels: torch.Tensor, cfg: SamplingConfig,
                    generator: torch.Generator | None) -> torch.Tensor:
    vocab = model.vocab
    b = labels.shape[0]
    guided = cfg.guidance_scale != 1.0
    first = vocab.class_token(labels)
    if guided:
        first = torch.cat([first, torch.full_like(first, vocab.null_class)])
    seq = first[:, None]
    cache = model.new_cache(seq.shape[0]) if cfg.use_cache else None
    step_input = seq
    for pos in range(1, vocab.sequence_length):
        logits = model(step_input if cache is not None else seq, cache)[:, -1].float()
        if guided:
            cond, uncond = logits[:b], logits[b:]
            logits = uncond + cfg.guidance_scale * (cond - uncond)
        legal = model.legal[pos]
        if legal.sum() == 1:  # forced (the separator)
            nxt = torch.full((b,), int(legal.nonzero()[0, 0]), dtype=torch.long, device=seq.device)
        else:
            logits = _filter(logits.masked_fill(~legal, float("-inf")) / cfg.temperature, cfg.top_k, cfg.top_p)
            cdf = logits.softmax(-1).double().cumsum(-1)
            u = torch.rand(b, generator=generator, dtype=torch.float64).to(seq.device) * cdf[:, -1]
            nxt = torch.searchsorted(cdf, u[:, None], right=True)[:, 0].clamp(max=logits.shape[-1] - 1)
            # a draw on the boundary of a zero-mass token must not pick it
            nxt = torch.where(torch.isneginf(logits.gather(-1, nxt[:, None]))[:, 0], logits.argmax(-1), nxt)
        if guided:
            nxt = torch.cat([nxt, nxt])
        step_input = nxt[:, None]
        seq = torch.cat([seq, step_input], dim=1)
    return seq[:b]
