"""SweetTok: patch embedding, decoupled-query encoder, MLC quantizer and decoder in one module.

Shapes (``g = resolution / patch_size``, ``S = 1 + k`` slices of a ``T = 1 + 4k`` frame clip,
``Ls``/``Lt`` spatial/temporal latent tokens, ``e = codebook_dim``, ``V = proxy_vocab_size``):

- input: clip ``(B, C, T, H, W)`` or image ``(B, C, H, W)``, float in [-0.5, 0.5];
- latents: ``(B, Ls + Lt, 2e)`` (images ``(B, Ls, 2e)``), spatial tokens first;
- ids: ``(B, (topk + 1)(Ls + Lt))`` int64 (images ``(B, (topk + 1) Ls)``), layout in
  :mod:`sweettok.models.quantizer`;
- logits: ``(B, V, S, g, g)`` over the proxy codebook.

In eval mode everything is deterministic and ``decode_ids(ids, T)`` equals
``decode_latents(latents, T)`` exactly, because ``ids_to_latents(ids)`` reproduces the
quantized latents bit for bit.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.decoder import DecoupledQueryDecoder
from sweettok.models.encoder import DecoupledQueryEncoder
from sweettok.models.patchify import PatchEmbed, as_clip
from sweettok.models.quantizer import MotionLanguageCodebook

__all__ = ["SweetTok", "SweetTokOutput", "parameter_breakdown"]


def _init_weights(module: nn.Module) -> None:
    # ViT-style init; torch_geometric's GCN layers keep their own (glorot) init.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class SweetTok(nn.Module):
    """The SweetTok tokenizer (phase-1 form: it predicts proxy-code logits).

    Args:
        cfg: architecture.
        prior: the language codebook prior (words, frozen embeddings, co-occurrence graphs).
    """

    def __init__(self, cfg: SweetTokConfig, prior: CodebookPrior) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.encoder = DecoupledQueryEncoder(cfg)
        self.decoder = DecoupledQueryDecoder(cfg)
        self.patch_embed.apply(_init_weights)
        self.encoder.apply(_init_weights)
        self.decoder.apply(_init_weights)
        self.quantizer = MotionLanguageCodebook(cfg, prior)
        # Kept (not state: its tensors are also the quantizer's buffers) so that an exported model
        # carries its words and graph and loads without the language codebook it was trained on.
        self.prior = prior

    # ------------------------------------------------------------------ encode
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Clip or image -> (quantized latents, ids, aux).

        Args:
            x: ``(B, C, T, H, W)`` or ``(B, C, H, W)``, float in [-0.5, 0.5], ``T = 1 + 4k``.

        Returns:
            latents ``(B, L, 2e)`` (straight-through gradient to the encoder), ids ``(B, (topk + 1) L)``
            int64, and ``aux`` with ``loss`` (scalar MLC loss), ``commitment`` and ``codebook``
            (scalars), ``z`` (continuous latents ``(B, L, 2e)``), ``frames`` (T) and ``slices`` (S).
        """
        x = as_clip(x, self.cfg)
        frames = x.shape[2]
        slices = self.cfg.check_frames(frames)
        still = (self.patch_embed.still_tube(x)
                 if slices > 1 and self.cfg.first_difference == "still_tube" else None)
        zs, zt = self.encoder(self.patch_embed(x), still)
        latents, ids, loss, parts = self.quantizer(zs, zt)
        z = zs if zt is None else torch.cat([zs, zt], dim=1)
        aux = {"loss": loss, **parts, "z": z, "frames": frames, "slices": slices}
        return latents, ids, aux

    # ------------------------------------------------------------------ decode
    def _split_latents(self, latents: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        slices = self.cfg.check_frames(frames)
        want = self.cfg.num_latent_tokens(frames)
        if latents.ndim != 3 or latents.shape[1] != want or latents.shape[2] != self.cfg.latent_dim:
            raise ValueError(
                f"latents for T={frames} must be (B, {want}, {self.cfg.latent_dim}), got {tuple(latents.shape)}"
            )
        ls = self.cfg.spatial_queries
        return latents[:, :ls], (latents[:, ls:] if slices > 1 else None), slices

    def decode_latents(
        self, latents: torch.Tensor, frames: int, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Quantized latents ``(B, L, 2e)`` of a ``frames``-frame clip -> logits ``(B, V, S, g, g)``.

        With ``return_features=True`` also returns the decoder features entering the head,
        ``(B, S, g, g, D)``.
        """
        zs, zt, slices = self._split_latents(latents, frames)
        return self.decoder(zs, zt, slices, return_features=return_features)

    def ids_to_latents(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids ``(B, (topk + 1) L)`` or one clip's 1-D ids -> quantized latents ``(B, L, 2e)`` / ``(L, 2e)``,
        exact in eval mode."""
        return self.quantizer.ids_to_latents(ids, self.cfg.spatial_queries)

    def decode_ids(self, ids: torch.Tensor, frames: int) -> torch.Tensor:
        """Ids ``(B, (topk + 1) L)`` of ``frames``-frame clips -> logits ``(B, V, S, g, g)``."""
        if ids.ndim != 2 or ids.shape[1] != self.cfg.ids_per_clip(frames):
            raise ValueError(
                f"ids for T={frames} must be (B, {self.cfg.ids_per_clip(frames)}), got {tuple(ids.shape)}"
            )
        return self.decode_latents(self.ids_to_latents(ids), frames)

    def ids_to_words(self, ids: torch.Tensor) -> list:
        """Ids ``(n,)`` or ``(B, n)`` -> ``(word, pos)`` per id (see :meth:`MotionLanguageCodebook.ids_to_words`)."""
        return self.quantizer.ids_to_words(ids)

    def id_bits(self, frames: int) -> float:
        """Bits per ``frames``-frame clip (``frames=1``: per image) that the ids can carry at most.

        A latent token is the mean of ``topk`` distinct modifiers (an unordered set) and one
        head word: ``log2(C(n_mod, k)) + log2(n_head)`` bits, spatial tokens from adjectives and
        nouns, temporal tokens from adverbs and verbs.
        """
        q, cfg = self.quantizer, self.cfg
        spatial = math.log2(math.comb(q.n_adj, q.topk)) + math.log2(q.n_spatial - q.n_adj)
        temporal = math.log2(math.comb(q.n_adv, q.topk)) + math.log2(q.n_temporal - q.n_adv)
        n_temporal = cfg.num_latent_tokens(frames) - cfg.spatial_queries
        return cfg.spatial_queries * spatial + n_temporal * temporal

    def codebook_usage(self, ids: torch.Tensor) -> dict[str, float]:
        """Perplexity and fraction used of the adj/noun/adv/verb books over a batch of ids."""
        return self.quantizer.usage(ids, self.cfg.spatial_queries)

    # ------------------------------------------------------------------ train step
    def forward(self, x: torch.Tensor, return_features: bool = False) -> "SweetTokOutput":
        """Encode, quantize and decode.

        Args:
            x: ``(B, C, T, H, W)`` or ``(B, C, H, W)`` in [-0.5, 0.5].
            return_features: also return the decoder features ``(B, S, g, g, D)``.

        Returns:
            a :class:`SweetTokOutput`.
        """
        latents, ids, aux = self.encode(x)
        zs, zt, slices = self._split_latents(latents, aux["frames"])
        out = self.decoder(zs, zt, slices, return_features=return_features)
        logits, features = out if return_features else (out, None)
        stats = {
            "mlc_loss": float(aux["loss"].detach()),
            "commitment": float(aux["commitment"].detach()),
            "codebook": float(aux["codebook"].detach()),
            "diversity": float(aux["diversity"].detach()),
            **self.codebook_usage(ids),
        }
        return SweetTokOutput(logits=logits, mlc_loss=aux["loss"], stats=stats, latents=latents, ids=ids,
                              features=features)


@dataclass
class SweetTokOutput:
    """What :meth:`SweetTok.forward` returns.

    Attributes:
        logits: ``(B, V, S, g, g)`` over the proxy codebook.
        mlc_loss: the scalar MLC loss (differentiable).
        stats: floats ``mlc_loss``, ``commitment``, ``codebook``, ``diversity`` and the per-book
            usage (``adj_perplexity``, ``adj_used``, ... as in :meth:`SweetTok.codebook_usage`).
        latents: quantized latents ``(B, L, 2e)``.
        ids: token ids ``(B, (topk + 1) L)``.
        features: decoder features entering the head ``(B, S, g, g, D)``, when asked for.
    """

    logits: torch.Tensor
    mlc_loss: torch.Tensor
    stats: dict[str, float]
    latents: torch.Tensor
    ids: torch.Tensor
    features: torch.Tensor | None = None


# ---------------------------------------------------------------------- parameter accounting
_PARTS = (
    ("patch_embed", ("patch_embed.",)),
    ("encoder.spatial_trunk", ("encoder.grid_pos", "encoder.spatial_trunk.")),
    ("encoder.temporal_trunk", ("encoder.delta_pos", "encoder.anchor_pos", "encoder.temporal_trunk.")),
    ("encoder.queries", (
        "encoder.spatial_queries", "encoder.spatial_query_pos", "encoder.temporal_queries",
        "encoder.temporal_query_pos",
    )),
    ("encoder.spatial_query_blocks", ("encoder.spatial_query_blocks.",)),
    ("encoder.temporal_query_blocks", ("encoder.temporal_query_blocks.",)),
    ("encoder.out", ("encoder.spatial_out.", "encoder.temporal_out.")),
    ("quantizer.projector", ("quantizer.",)),
    ("decoder.spatial", (
        "decoder.spatial_in.", "decoder.spatial_latent_pos", "decoder.mask_token", "decoder.grid_pos",
        "decoder.slice_pos", "decoder.spatial_latent_blocks.", "decoder.spatial_blocks.", "decoder.spatial_anchor.",
    )),
    ("decoder.temporal", (
        "decoder.temporal_in.", "decoder.temporal_latent_pos", "decoder.temporal_latent_blocks.",
        "decoder.temporal_blocks.",
    )),
    ("decoder.head", ("decoder.head_norm.", "decoder.head.")),
)


def parameter_breakdown(model: SweetTok) -> "OrderedDict[str, int]":
    """Trainable parameter count per part, plus ``total`` and ``frozen_buffers`` (the word
    embeddings and graph of the quantizer, stored but not trained).

    Raises:
        RuntimeError: if a parameter falls in no part or in two (the table must add up).
    """
    counts: OrderedDict[str, int] = OrderedDict((name, 0) for name, _ in _PARTS)
    total = 0
    for pname, p in model.named_parameters():
        hits = [
            name
            for name, prefixes in _PARTS
            if any(pname == pre or pname.startswith(pre if pre.endswith(".") else pre + ".") for pre in prefixes)
        ]
        if len(hits) != 1:
            raise RuntimeError(f"parameter {pname} matches parts {hits}")
        counts[hits[0]] += p.numel()
        total += p.numel()
    counts["total"] = total
    counts["frozen_buffers"] = sum(b.numel() for b in model.buffers())
    return counts
