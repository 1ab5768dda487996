"""Motion-enhanced Language Codebook (MLC): quantize latents to words.

Codebooks
---------
Two books are built from a :class:`~sweettok.models.codebook_prior.CodebookPrior`:

- spatial: adjectives (ids ``[0, n_adj)``) then nouns (``[n_adj, Ns)``);
- temporal: adverbs then verbs (``[0, n_adv)``, ``[n_adv, Nt)`` within the book).

A book's vectors are ``F(E)``: a two-layer GCN projector ``F`` (GCNConv -> ReLU -> dropout ->
GCNConv, hidden width ``gcn_hidden``, output width ``e``) applied to the frozen word embeddings
``E`` (registered buffers, never trained) over the word co-occurrence graph. The graph's
symmetric normalisation ``D^-1/2 (A + I) D^-1/2`` (self-loops added here, weighted by the
co-occurrence counts) is computed once at construction and stored as buffers, so the GCN layers
run with ``normalize=False``: nothing is cached on a device and the result is deterministic.
Only ``F`` is trained.

Normalisation
-------------
Each of the four books (adjectives, nouns, adverbs, verbs) is centred: the mean of ``F``'s
outputs over the book's entries is subtracted from each of them (``SweetTokConfig.codebook_center``,
default true; a book of a single word is left as it is). Then each book vector is l2-normalised;
each ``e``-wide half of a latent ``z`` (width ``2e``) is l2-normalised. Nearest entries are then
those of largest cosine similarity (equivalently, smallest Euclidean distance between unit
vectors). Centring and normalisation are part of the book, so quantization and
:meth:`MotionLanguageCodebook.ids_to_latents` see the same vectors.

Why the books are centred (the collapse it fixes)
-------------------------------------------------
Text embeddings of words are far from isotropic (MiniLM words of the real vocabulary: mean
pairwise cosine 0.29) and ``F`` makes it worse: its ReLU features are non-negative, so at
initialisation the mean entry carries about half of every entry's squared norm (0.54 spatial,
0.49 temporal) and the normalised entries have a mean pairwise cosine of 0.55. Every ``z_q`` then
lies near one common direction, and the commitment term ``||sg(z_q) - z||^2``, whose gradient on
the latents is 4-6x that of the cross-entropy at the start of phase 1, pulls all latents towards it
(the per-token commitment gradients share one direction: ``|mean g| / mean |g|`` = 0.74). In a
phase-1 run (base profile, lr 1e-3) every latent of the batch points the same way after 10-25
steps and each book uses 1% of its entries, even with ``F`` frozen. Training ``F`` deepens the
collapse: the codebook term moves the selected entries towards the latents through weights and
biases shared by all entries, so it moves the whole book, and the common part grows to 0.85.
Subtracting the book's mean removes exactly that shared part: a shift of every entry by the
same vector (``F``'s output bias, which now gets no gradient, or the mean of what ``F``'s shared
weights add) cancels out. The entries are spread around the origin (mean pairwise cosine 0) and
the common share of the commitment gradient falls to 0.16 (spatial) / 0.13 (temporal).
``F`` itself, the frozen embeddings and the graph are unchanged.

Quantization of one latent token ``z = [z_m, z_h]``
---------------------------------------------------
- ``z_m`` (modifier half) -> the ``topk`` (default 2) most similar adjectives (adverbs), in order
  of decreasing similarity; ``z_q,m`` = their mean (a mean of unit vectors, not renormalised).
- ``z_h`` (head half) -> the most similar noun (verb); ``z_q,h`` = that vector.
- ``z_q = [z_q,m, z_q,h]``. The decoder receives ``z_q`` with a straight-through gradient to
  ``z``, written so that its *value* is bit-for-bit ``z_q`` (``sg(z_q) + (z - sg(z))``, and
  ``z - sg(z)`` is exactly 0) so that decoding ids reproduces it exactly.
- Loss (release ordering): ``mean((sg(z_q) - z)^2) + beta * mean((z_q - sg(z))^2)`` for each
  half, summed over the two halves and over the spatial and temporal books. The first term
  commits the encoder; the second trains the projector ``F``.
- Optional, training only (``SweetTokConfig.code_diversity_weight``, 0 in the paper profile):
  plus ``weight * diversity`` (:meth:`MotionLanguageCodebook.diversity`). Centring fixes the
  collapse that the commitment term causes, but a second one remains: on the CPU profile the
  straight-through cross-entropy gradient alone (MLC weight 0) still brings every book down to
  2-8 entries in use within ~100 phase-1 steps, and the decoder then predicts little more than
  each position's usual proxy code. Rewarding different clips for taking different entries at
  the same token position keeps the latents spread by content (300-step probe: test clips per
  spatial token with different ids 37 of 40 instead of 20, cross-entropy 4.79 instead of 5.20).

Id layout
---------
Per clip a 1-D int64 array: all spatial tokens, then all temporal tokens; ``n = topk + 1`` ids
per latent token (``SweetTokConfig.ids_per_token``), token-major: token ``j`` gives
``(modifier_1, ..., modifier_topk, head)`` at positions ``n * j .. n * j + n - 1``, modifiers in
order of decreasing similarity (``modifier_1`` the nearest), the head word last. With the
paper's ``topk = 2`` that is ``(modifier_1, modifier_2, head)``, 3 ids per token. Spatial ids
index the spatial word list ``[0, Ns)`` (adjectives ``[0, n_adj)``, nouns ``[n_adj, Ns)``).
Temporal ids are offset by ``Ns``: ``Ns + index into the temporal word list`` (adverbs
``[Ns, Ns + n_adv)``, verbs ``[Ns + n_adv, Ns + Nt)``). So every id in ``[0, Ns + Nt)`` names
exactly one word. Batched: ``(B, (topk + 1) * (Ls + Lt))``; images ``(B, (topk + 1) * Ls)``.
Spatial token ``j`` is spatial query ``j``; temporal token ``j`` is the query ``j % q`` of
temporal cell ``j // q`` (cells row-major on the ``G x G`` grid). Ids are only meaningful to a
model of the same ``topk``: the checkpoint's config carries it.
"""

from __future__ import annotations

import math
import multiprocessing.util
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

with warnings.catch_warnings():
    # torch_geometric 2.8 scripts helpers at import time, which torch 2.14 flags as deprecated.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
    from torch_geometric.nn import GCNConv
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

from sweettok.models.codebook_prior import CodebookPrior, WordGraph
from sweettok.models.config import SweetTokConfig
from sweettok.models.encoder import normalize_halves

__all__ = ["GCNProjector", "MotionLanguageCodebook", "QuantizerOutput", "BOOK_NAMES"]

BOOK_NAMES = ("adj", "noun", "adv", "verb")

# torch-geometric renders GCNConv's ``propagate`` from a template into a temporary ``.py`` file
# (``<tmp>/torch_geometric.nn.conv.gcn_conv_GCNConv_propagate_*.py``) the first time a process
# builds a GCNConv, imports it, and never deletes it: every run and test process left one in
# the temporary folder.
_GCN_TEMPLATE_MODULE = f"{GCNConv.__module__}_{GCNConv.__name__}_propagate"


def _gcn_conv(in_dim: int, out_dim: int) -> GCNConv:
    """A GCNConv without normalisation or self-loops (the graph is normalised once, here); when
    building it wrote torch-geometric's template file, that file goes when the process exits
    (the module stays loaded until then, so tracebacks and ``inspect`` still find its source).

    A multiprocessing finalizer, not ``atexit``: worker processes (LaneRunner's lanes, data
    loader workers) end without running ``atexit`` handlers but do run these; the main process
    runs them at exit too, and a forked child skips its parent's."""
    fresh = _GCN_TEMPLATE_MODULE not in sys.modules
    conv = GCNConv(in_dim, out_dim, normalize=False, add_self_loops=False)
    written = getattr(sys.modules.get(_GCN_TEMPLATE_MODULE), "__file__", None)
    if fresh and written:
        path = Path(written)
        if path.parent.resolve() == Path(tempfile.gettempdir()).resolve() and path.name.startswith(
                _GCN_TEMPLATE_MODULE + "_"):
            multiprocessing.util.Finalize(None, path.unlink, kwargs={"missing_ok": True}, exitpriority=0)
    return conv


class GCNProjector(nn.Module):
    """``F``: frozen word embeddings ``(n, E)`` -> codebook vectors ``(n, e)`` over a fixed graph.

    Holds the graph as buffers: ``embeddings`` ``(n, E)``, ``edge_index`` ``(2, n_edges + n)``
    (self-loops appended) and ``edge_norm`` ``(n_edges + n,)``, the GCN-normalised weights.
    ``conv1`` / ``conv2`` (torch-geometric ``GCNConv``) hold the two layers' weights.

    The two layers are computed as sparse matrix products with the normalised adjacency
    ``Â = D^-1/2 (A + I) D^-1/2`` (``Â[target, source] = edge_norm``, a CSR matrix built once
    per device), in the cheaper order of each layer:

    - layer 1: ``relu((Â E) W1^T + b1)``. ``E`` is frozen, so ``Â E`` is computed once and
      cached; a step does no message passing at the ``hidden`` width at all;
    - layer 2: ``Â (h W2^T) + b2``: message passing at the output width ``e`` (<= ``hidden``).

    Equal to torch-geometric's message passing (:meth:`message_passing`, kept as the
    reference) within float rounding; on the paper profile's books (~10k words, 200k edges)
    it replaces two scatter-adds at 512 channels per step with one sparse product at ``e``.
    """

    def __init__(self, graph: WordGraph, hidden: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        n = graph.n_words
        edge_index, edge_norm = gcn_norm(
            graph.edge_index.long(), graph.edge_weight.float(), num_nodes=n, add_self_loops=True
        )
        self.register_buffer("embeddings", graph.embeddings.detach().float().clone())
        self.register_buffer("edge_index", edge_index.contiguous())
        self.register_buffer("edge_norm", edge_norm.contiguous())
        self.conv1 = _gcn_conv(graph.embed_dim, hidden)
        self.conv2 = _gcn_conv(hidden, out_dim)
        self.dropout = dropout
        self._cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None  # (key, Â, Â E)

    def adjacency(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(``Â`` as a sparse CSR ``(n, n)`` matrix, ``Â E`` ``(n, E)``), rebuilt only when the graph
        buffers move or change (device, storage or in-place version)."""
        bufs = (self.embeddings, self.edge_index, self.edge_norm)
        key = tuple((b.device, b.data_ptr(), b._version) for b in bufs)
        if self._cache is None or self._cache[0] != key:
            n = self.embeddings.shape[0]
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*[Ss]parse.*")  # beta-state notices
                coo = torch.sparse_coo_tensor(self.edge_index.flip(0), self.edge_norm, (n, n)).coalesce()
                adj = coo.to_sparse_csr()
                propagated = torch.sparse.mm(adj, self.embeddings)
            self._cache = (key, adj, propagated)
        return self._cache[1], self._cache[2]

    def forward(self) -> torch.Tensor:
        """Returns the raw ``(n, e)`` codebook (not yet centred or normalised)."""
        adj, propagated = self.adjacency()
        h = F.relu(F.linear(propagated, self.conv1.lin.weight, self.conv1.bias))
        h = F.dropout(h, p=self.dropout, training=self.training)
        return torch.sparse.mm(adj, F.linear(h, self.conv2.lin.weight)) + self.conv2.bias

    def message_passing(self) -> torch.Tensor:
        """The same codebook through torch-geometric's ``GCNConv`` message passing (the reference)."""
        h = F.relu(self.conv1(self.embeddings, self.edge_index, self.edge_norm))
        h = F.dropout(h, p=self.dropout, training=self.training)
        return self.conv2(h, self.edge_index, self.edge_norm)


@dataclass
class QuantizerOutput:
    """Result of quantizing one book's latents.

    Attributes:
        z_q: ``(B, L, 2e)`` quantized latents (straight-through gradient to ``z``).
        ids: ``(B, L, topk + 1)`` int64 ids in the global id space (see module docstring).
        loss: scalar MLC loss of this book.
        commitment: scalar ``mean((sg(z_q) - z)^2)`` summed over halves.
        codebook: scalar ``mean((z_q - sg(z))^2)`` summed over halves (before ``beta``).
        diversity: scalar code-diversity term (before its weight; 0 unless training with
            ``code_diversity_weight > 0``).
    """

    z_q: torch.Tensor
    ids: torch.Tensor
    loss: torch.Tensor
    commitment: torch.Tensor
    codebook: torch.Tensor
    diversity: torch.Tensor


class MotionLanguageCodebook(nn.Module):
    """The MLC quantizer: spatial (adj+noun) and temporal (adv+verb) language codebooks.

    Args:
        cfg: model config (``codebook_dim``, ``gcn_hidden``, ``gcn_dropout``, ``topk``, ``beta``,
            ``codebook_center``).
        prior: the words, frozen embeddings and co-occurrence graphs.

    Raises:
        ValueError: if a modifier list is shorter than ``topk`` or a book has no head words.
    """

    def __init__(self, cfg: SweetTokConfig, prior: CodebookPrior) -> None:
        super().__init__()
        self.cfg = cfg
        self.topk = cfg.topk
        self.beta = cfg.beta
        self.center = cfg.codebook_center
        for name, graph in (("spatial", prior.spatial), ("temporal", prior.temporal)):
            if graph.n_first < cfg.topk:
                raise ValueError(
                    f"CodebookPrior.{name}: {graph.n_first} modifier words, fewer than SweetTokConfig.topk={cfg.topk}"
                )
            if graph.n_words == graph.n_first:
                raise ValueError(f"CodebookPrior.{name}: no head words (nouns/verbs)")
        self.spatial = GCNProjector(prior.spatial, cfg.gcn_hidden, cfg.codebook_dim, cfg.gcn_dropout)
        self.temporal = GCNProjector(prior.temporal, cfg.gcn_hidden, cfg.codebook_dim, cfg.gcn_dropout)
        self.n_spatial = prior.spatial.n_words
        self.n_temporal = prior.temporal.n_words
        self.n_adj = prior.spatial.n_first
        self.n_adv = prior.temporal.n_first
        # Python lists, not state: the words travel with the prior, the vectors with the weights.
        self.words = list(prior.spatial.words) + list(prior.temporal.words)
        self.pos = list(prior.spatial.pos) + list(prior.temporal.pos)

    # ------------------------------------------------------------------ codebooks
    @property
    def vocab_size(self) -> int:
        """Size of the global id space ``Ns + Nt``."""
        return self.n_spatial + self.n_temporal

    def _finish(self, vecs: torch.Tensor) -> torch.Tensor:
        """One book's raw ``F`` outputs ``(n, e)`` -> its entries: centred (if configured) and unit."""
        if self.center and vecs.shape[0] > 1:
            vecs = vecs - vecs.mean(dim=0, keepdim=True)
        return F.normalize(vecs, dim=-1)

    def _book(self, which: str) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Finished (modifier vectors ``(n_mod, e)``, head vectors ``(n_head, e)``, id offset)."""
        if which == "spatial":
            vecs, n_mod, offset = self.spatial(), self.n_adj, 0
        else:
            vecs, n_mod, offset = self.temporal(), self.n_adv, self.n_spatial
        return self._finish(vecs[:n_mod]), self._finish(vecs[n_mod:]), offset

    def codebooks(self) -> dict[str, torch.Tensor]:
        """The four books ``{"adj", "noun", "adv", "verb"}`` as quantization uses them, each ``(n, e)``."""
        adj, noun, _ = self._book("spatial")
        adv, verb, _ = self._book("temporal")
        return {"adj": adj, "noun": noun, "adv": adv, "verb": verb}

    @staticmethod
    def _lookup(mods: torch.Tensor, heads: torch.Tensor, mod_idx: torch.Tensor, head_idx: torch.Tensor) -> torch.Tensor:
        """Latents from book-local indices: ``mod_idx`` ``(..., k)``, ``head_idx`` ``(...)`` -> ``(..., 2e)``.

        The single place that turns indices into vectors, used by both quantization and
        :meth:`ids_to_latents` so that the two agree bit for bit.
        """
        zm = F.embedding(mod_idx, mods).mean(dim=-2)
        zh = F.embedding(head_idx, heads)
        return torch.cat([zm, zh], dim=-1)

    # ------------------------------------------------------------------ quantization
    def quantize(self, z: torch.Tensor, which: str) -> QuantizerOutput:
        """Quantize ``z`` ``(B, L, 2e)`` against the ``which`` (``"spatial"``/``"temporal"``) book."""
        e = self.cfg.codebook_dim
        if z.shape[-1] != 2 * e:
            raise ValueError(f"latents have width {z.shape[-1]}, expected 2 * codebook_dim = {2 * e}")
        mods, heads, offset = self._book(which)
        z = normalize_halves(z)
        zm, zh = z[..., :e], z[..., e:]
        with torch.no_grad():
            # Cosine similarity of unit vectors; topk returns the k best in decreasing order.
            mod_idx = torch.topk(zm @ mods.T, self.topk, dim=-1).indices
            head_idx = torch.argmax(zh @ heads.T, dim=-1)
        z_q = self._lookup(mods, heads, mod_idx, head_idx)
        commitment = z.new_zeros(())
        codebook = z.new_zeros(())
        for sl in (slice(0, e), slice(e, 2 * e)):
            commitment = commitment + torch.mean((z_q[..., sl].detach() - z[..., sl]) ** 2)
            codebook = codebook + torch.mean((z_q[..., sl] - z[..., sl].detach()) ** 2)
        loss = commitment + self.beta * codebook
        diversity = z.new_zeros(())
        if self.training and self.cfg.code_diversity_weight > 0:
            diversity = self.diversity(z, mods, heads)
            loss = loss + self.cfg.code_diversity_weight * diversity
        # Straight-through with the exact value of z_q: z - sg(z) is exactly zero.
        z_st = z_q.detach() + (z - z.detach())
        n_mod = mods.shape[0]
        ids = torch.cat([mod_idx, (head_idx + n_mod).unsqueeze(-1)], dim=-1) + offset
        return QuantizerOutput(z_st, ids, loss, commitment, codebook, diversity)

    def diversity(self, z: torch.Tensor, mods: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """The code-diversity term of ``SweetTokConfig.code_diversity_weight`` for latents ``(B, L, 2e)``.

        Per half (modifier against ``mods``, head word against ``heads``): with soft
        assignments ``p = softmax(cos(z_half, entries) / tau)``, the mean entropy of ``p`` minus
        the mean over positions of the entropy of ``p`` averaged over the batch. It is 0 when
        every clip has the same assignment at a position and falls towards ``-log B`` as the
        ``B`` clips take confident, different entries there. Positions are kept apart so that
        latents cannot satisfy it by differing by position only.
        """
        e, tau = self.cfg.codebook_dim, self.cfg.code_diversity_tau
        z = normalize_halves(z)
        total = z.new_zeros(())
        for half, book in ((z[..., :e], mods), (z[..., e:], heads)):
            p = torch.softmax(half @ book.T / tau, dim=-1)  # (B, L, n)
            per_latent = -(p * torch.log(p.clamp_min(1e-12))).sum(-1).mean()
            mean_p = p.mean(dim=0)  # (L, n): over the clips, per position
            per_position = -(mean_p * torch.log(mean_p.clamp_min(1e-12))).sum(-1).mean()
            total = total + per_latent - per_position
        return total

    def forward(
        self, zs: torch.Tensor, zt: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Quantize spatial and (optional) temporal latents (in float32, autocast off).

        Args:
            zs: ``(B, Ls, 2e)`` spatial latents.
            zt: ``(B, Lt, 2e)`` temporal latents, or None for images.

        Returns:
            ``(latents, ids, loss, parts)``: latents ``(B, Ls [+ Lt], 2e)`` (spatial first), ids
            ``(B, (topk + 1) * (Ls [+ Lt]))`` int64 in the layout of the module docstring, the scalar MLC
            loss, and its parts (``commitment``, ``codebook``, ``diversity``) as scalars.
        """
        # Quantize in float32 whatever the autocast context: nearest-neighbour ranks and the
        # id -> latent lookup must not depend on reduced-precision rounding.
        with torch.autocast(device_type=zs.device.type, enabled=False):
            outs = [self.quantize(zs.float(), "spatial")]
            if zt is not None:
                outs.append(self.quantize(zt.float(), "temporal"))
        latents = torch.cat([o.z_q for o in outs], dim=1)
        ids = torch.cat([o.ids.flatten(1) for o in outs], dim=1)
        loss = sum((o.loss for o in outs), start=zs.new_zeros(()))
        parts = {
            "commitment": sum((o.commitment for o in outs), start=zs.new_zeros(())),
            "codebook": sum((o.codebook for o in outs), start=zs.new_zeros(())),
            "diversity": sum((o.diversity for o in outs), start=zs.new_zeros(())),
        }
        return latents, ids, loss, parts

    # ------------------------------------------------------------------ ids
    def split_ids(self, ids: torch.Tensor, n_spatial_tokens: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, nL)`` ids -> spatial ``(B, Ls, n)`` and temporal ``(B, Lt, n)`` (None if absent), ``n = topk + 1``."""
        n = self.topk + 1
        if ids.ndim != 2 or ids.shape[1] % n:
            raise ValueError(
                f"ids must be (B, {n} * n_tokens) ({n} ids per token for topk={self.topk}), "
                f"got shape {tuple(ids.shape)}"
            )
        tokens = ids.reshape(ids.shape[0], -1, n)
        if tokens.shape[1] < n_spatial_tokens:
            raise ValueError(f"ids hold {tokens.shape[1]} tokens, fewer than the {n_spatial_tokens} spatial tokens")
        s, t = tokens[:, :n_spatial_tokens], tokens[:, n_spatial_tokens:]
        return s, (t if t.shape[1] else None)

    def _check_range(self, tok: torch.Tensor, which: str) -> None:
        if which == "spatial":
            lo_m, hi_m, hi = 0, self.n_adj, self.n_spatial
        else:
            lo_m, hi_m, hi = self.n_spatial, self.n_spatial + self.n_adv, self.vocab_size
        mods, head = tok[..., :-1], tok[..., -1]
        if tok.numel() and (
            int(mods.min()) < lo_m or int(mods.max()) >= hi_m or int(head.min()) < hi_m or int(head.max()) >= hi
        ):
            raise ValueError(
                f"{which} ids out of range: modifiers must lie in [{lo_m}, {hi_m}) and head words in [{hi_m}, {hi})"
            )

    def ids_to_latents(self, ids: torch.Tensor, n_spatial_tokens: int) -> torch.Tensor:
        """Quantized latents ``(B, L, 2e)`` from ids ``(B, (topk + 1) L)`` (or one clip's ``((topk + 1) L,)``).

        Uses the same codebook computation and lookup as quantization, so in eval mode the result
        equals the latents :meth:`forward` returned for these ids exactly (any batch size). In
        training mode the GCN dropout makes the codebook itself random.
        """
        squeeze = ids.ndim == 1
        if squeeze:
            ids = ids.unsqueeze(0)
        s, t = self.split_ids(ids.long(), n_spatial_tokens)
        outs = []
        with torch.autocast(device_type=ids.device.type, enabled=False):
            for tok, which in ((s, "spatial"), (t, "temporal")):
                if tok is None:
                    continue
                self._check_range(tok, which)
                mods, heads, offset = self._book(which)
                n_mod = mods.shape[0]
                outs.append(self._lookup(mods, heads, tok[..., :-1] - offset, tok[..., -1] - offset - n_mod))
        latents = torch.cat(outs, dim=1)
        return latents[0] if squeeze else latents

    def ids_to_words(self, ids: torch.Tensor) -> list:
        """Words of ids: ``(n,)`` -> ``[(word, pos), ...]``; ``(B, n)`` -> a list of such lists.

        ``pos`` is ``ADJ``/``NOUN`` for spatial ids and ``ADV``/``VERB`` for temporal ids.
        """
        if ids.ndim == 2:
            return [self.ids_to_words(row) for row in ids]
        if ids.ndim != 1:
            raise ValueError(f"ids must be (n,) or (B, n), got shape {tuple(ids.shape)}")
        values = ids.tolist()
        bad = [v for v in values if not 0 <= v < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad[:5]} outside [0, {self.vocab_size})")
        return [(self.words[v], self.pos[v]) for v in values]

    # ------------------------------------------------------------------ usage statistics
    def usage(self, ids: torch.Tensor, n_spatial_tokens: int) -> dict[str, float]:
        """Codebook usage of a batch of ids, per book (``adj``, ``noun``, ``adv``, ``verb``).

        Returns ``{book}_perplexity`` (exp of the entropy of the empirical id distribution,
        1 .. book size) and ``{book}_used`` (fraction of the book's entries that occur, 0 .. 1).
        Temporal books are absent for image ids.
        """
        s, t = self.split_ids(ids.long(), n_spatial_tokens)
        stats: dict[str, float] = {}
        groups = [("adj", s[..., :-1], 0, self.n_adj), ("noun", s[..., -1], self.n_adj, self.n_spatial - self.n_adj)]
        if t is not None:
            base = self.n_spatial
            groups += [
                ("adv", t[..., :-1], base, self.n_adv),
                ("verb", t[..., -1], base + self.n_adv, self.n_temporal - self.n_adv),
            ]
        for name, sel, offset, size in groups:
            counts = torch.bincount((sel.reshape(-1) - offset).cpu(), minlength=size).double()
            p = counts / counts.sum().clamp_min(1)
            entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
            stats[f"{name}_perplexity"] = math.exp(entropy)
            stats[f"{name}_used"] = float((counts > 0).double().mean().item())
        return stats
