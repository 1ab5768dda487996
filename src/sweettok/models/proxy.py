"""The proxy tokenizer: a conventional per-patch VQ tokenizer (OmniTokenizer-like).

SweetTok's phase 1 learns to predict this model's code ids, and phase 2 decodes
``softmax(logits) @ codebook_vectors()`` with this model's pixel decoder
(``decode_codes``). Its token grid is therefore SweetTok's decoder output grid:

    clip (B, C, 1 + tp*k, H, W)  ->  ids (B, 1 + k, H/p, W/p)

Frame 0 is cut into ``1 x p x p`` patches (slice 0), frames ``1..tp*k`` into ``tp x p x p``
tubes (slices ``1..k``); images are one-frame clips. Patch contents are flattened in
``(c, t, ph, pw)`` order, the same as ``sweettok.models.patchify``.

Pieces:
- encoder: per-slice linear patch embedding (frame-0 patches and tubes have different
  lengths), then residual 3x3x3 conv blocks over the ``(1 + k, h, w)`` grid, then a
  1x1x1 projection to ``code_dim``;
- quantizer: an l2-normalised codebook ``(V, code_dim)`` (paper: 8192 x 8); nearest code by
  cosine similarity, straight-through gradient, loss
  ``||sg(z) - q||^2 + beta ||z - sg(q)||^2``. With ``codebook_init: kmeans`` the first
  training forward seeds the codebook by spherical k-means++ on that batch's encoder
  outputs (random unit directions leave most codes unreachable and let the encoder's
  outputs collapse onto a few of them in the first steps); dead codes (used fewer than
  ``dead_usage_threshold`` times over ``restart_every`` training forwards) are re-seeded
  from recent encoder outputs, keeping the codebook in use;
- pixel decoder: 1x1x1 projection, residual conv blocks, per-slice linear heads back to
  patches/tubes.

Values: clips in ``[-0.5, 0.5]``; reconstructions are unbounded (trained towards that range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from sweettok.typed_params import FieldChecks, from_mapping

__all__ = ["ProxyOutput", "ProxyTokenizer", "ProxyTokenizerConfig", "spherical_kmeans"]


def spherical_kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator,
                     noise: float = 0.01) -> torch.Tensor:
    """``k`` unit centres of unit vectors ``x`` ``(N, d)``: k-means++ seeding by cosine distance,
    then ``iters`` Lloyd steps (assign by largest cosine, centre = normalised mean; a centre
    that loses all its points keeps its place).

    With fewer points than centres, or where the seeding runs out of distinct points, the
    remaining centres are points drawn again with ``noise`` added, so no two centres coincide.
    """
    n = x.shape[0]
    centres = torch.empty(k, x.shape[1], dtype=x.dtype)
    first = int(torch.randint(n, (1,), generator=generator))
    centres[0] = x[first]
    dist2 = (1.0 - x @ centres[0]).clamp_min(0.0)  # cosine distance to the nearest centre so far
    for j in range(1, k):
        total = float(dist2.sum())
        if total <= 1e-12:  # every point already is a centre: fill the rest with jittered draws
            pick = torch.randint(n, (k - j,), generator=generator)
            extra = x[pick] + noise * torch.randn(k - j, x.shape[1], generator=generator, dtype=x.dtype)
            centres[j:] = F.normalize(extra, dim=1)
            break
        idx = int(torch.multinomial(dist2, 1, generator=generator))
        centres[j] = x[idx]
        dist2 = torch.minimum(dist2, (1.0 - x @ centres[j]).clamp_min(0.0))
    for _ in range(iters):
        assign = (x @ centres.t()).argmax(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        live = counts > 0
        centres[live] = F.normalize(sums[live], dim=1)
    return centres


@dataclass(frozen=True)
class ProxyTokenizerConfig(FieldChecks):
    """Architecture and codebook maintenance of the proxy tokenizer.

    Attributes:
        in_channels: colour channels (3).
        patch_size: spatial patch side ``p`` (paper 8); frame sides must be multiples.
        temporal_patch_size: frames per tube after frame 0 (paper 4).
        hidden_dim: channels of the conv trunks of encoder and decoder.
        num_blocks: residual blocks in the encoder and in the decoder.
        norm_groups: GroupNorm groups (must divide ``hidden_dim``).
        codebook_size: ``V`` (paper 8192).
        code_dim: codebook vector width (paper 8).
        commitment_beta: weight of the commitment term ``||z - sg(q)||^2``.
        restart_every: training forward passes between dead-code checks (0 disables).
        dead_usage_threshold: a code used fewer times than this since the last check is dead.
        sample_buffer_size: recent (normalised) encoder outputs kept to re-seed dead codes.
        restart_noise: std of the noise added to a re-seeded code before renormalising,
            so that codes seeded from the same region do not coincide.
        codebook_init: ``kmeans`` (seed the codebook from the first training batch's encoder
            outputs by spherical k-means++ and ``kmeans_iters`` Lloyd steps) or ``random``
            (unit-norm random directions, kept as they are).
        kmeans_iters: Lloyd iterations after the k-means++ seeding.
    """

    in_channels: int = 3
    patch_size: int = 8
    temporal_patch_size: int = 4
    hidden_dim: int = 128
    num_blocks: int = 2
    norm_groups: int = 8
    codebook_size: int = 8192
    code_dim: int = 8
    commitment_beta: float = 0.25
    restart_every: int = 200
    dead_usage_threshold: float = 1.0
    sample_buffer_size: int = 8192
    restart_noise: float = 0.01
    codebook_init: str = "kmeans"
    kmeans_iters: int = 10

    def __post_init__(self) -> None:
        for name in (
            "in_channels",
            "patch_size",
            "temporal_patch_size",
            "hidden_dim",
            "num_blocks",
            "norm_groups",
            "codebook_size",
            "code_dim",
            "sample_buffer_size",
        ):
            self._check_int(name, 1)
        self._check_int("restart_every", 0)
        self._check_int("kmeans_iters", 0)
        if self.codebook_init not in ("kmeans", "random"):
            self._fail("codebook_init", f"must be 'kmeans' or 'random', got {self.codebook_init!r}")
        for name in ("commitment_beta", "dead_usage_threshold", "restart_noise"):
            self._check_float(name, 0.0, inclusive=True)
        if self.hidden_dim % self.norm_groups:
            self._fail("hidden_dim", f"must be divisible by norm_groups ({self.norm_groups}), got {self.hidden_dim}")
        if self.codebook_size < 2:
            self._fail("codebook_size", f"must be >= 2, got {self.codebook_size}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "proxy.model") -> ProxyTokenizerConfig:
        """Build from the mapping at key path ``where``; errors name ``<where>.<field>`` (unknown keys too)."""
        return from_mapping(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Token grid ``(1 + k, H/p, W/p)`` of a clip; raises naming the bad dimension."""
        if frames < 1 or (frames - 1) % self.temporal_patch_size:
            raise ValueError(f"clip has T={frames} frames; the proxy needs 1 + {self.temporal_patch_size}*k")
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"frames of {height}x{width} are not multiples of patch_size={self.patch_size}")
        return 1 + (frames - 1) // self.temporal_patch_size, height // self.patch_size, width // self.patch_size


@dataclass
class ProxyOutput:
    """Result of ``ProxyTokenizer.forward``.

    Attributes:
        reconstruction: ``(B, C, T, H, W)`` decoded clip.
        ids: ``(B, 1 + k, H/p, W/p)`` int64 code ids in ``[0, V)``.
        vq_loss: scalar codebook + commitment loss.
        perplexity: scalar ``exp(entropy)`` of this batch's code histogram (all ranks).
        usage_fraction: scalar fraction of the codebook used since the last dead-code check.
    """

    reconstruction: torch.Tensor
    ids: torch.Tensor
    vq_loss: torch.Tensor
    perplexity: torch.Tensor
    usage_fraction: torch.Tensor


class _ResBlock3d(nn.Module):
    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _mark_seeded(module: "ProxyTokenizer", _incompatible) -> None:
    module.codebook_seeded.fill_(1)


class ProxyTokenizer(nn.Module):
    """Per-patch VQ tokenizer; see the module docstring.

    Buffers (saved with the weights, so restarts resume exactly): ``code_usage`` (V,)
    counts since the last check, ``forwards_since_check``, ``sample_buffer``
    ``(S, code_dim)`` with ``samples_seen``, and ``restarted_total``.
    """

    def __init__(self, cfg: ProxyTokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, p, tp, hdim = cfg.in_channels, cfg.patch_size, cfg.temporal_patch_size, cfg.hidden_dim
        self.embed_first = nn.Linear(c * p * p, hdim)
        self.embed_tube = nn.Linear(c * tp * p * p, hdim)
        self.encoder = nn.Sequential(
            *[_ResBlock3d(hdim, cfg.norm_groups) for _ in range(cfg.num_blocks)],
            nn.GroupNorm(cfg.norm_groups, hdim),
            nn.SiLU(),
            nn.Conv3d(hdim, cfg.code_dim, 1),
        )
        # Unit-norm random directions: every code starts reachable by cosine similarity.
        self.codebook = nn.Parameter(F.normalize(torch.randn(cfg.codebook_size, cfg.code_dim), dim=1))
        self.decoder = nn.Sequential(
            nn.Conv3d(cfg.code_dim, hdim, 1),
            *[_ResBlock3d(hdim, cfg.norm_groups) for _ in range(cfg.num_blocks)],
            nn.GroupNorm(cfg.norm_groups, hdim),
            nn.SiLU(),
        )
        self.head_first = nn.Linear(hdim, c * p * p)
        self.head_tube = nn.Linear(hdim, c * tp * p * p)
        self.register_buffer("code_usage", torch.zeros(cfg.codebook_size))
        self.register_buffer("forwards_since_check", torch.zeros((), dtype=torch.long))
        self.register_buffer("sample_buffer", torch.zeros(cfg.sample_buffer_size, cfg.code_dim))
        self.register_buffer("samples_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("restarted_total", torch.zeros((), dtype=torch.long))
        # 1 once the codebook was seeded from data, when seeding is off, or once weights were
        # loaded (a resumed run or an exported model never seeds again). Not saved: loading
        # any state dict sets it.
        self.register_buffer("codebook_seeded", torch.tensor(int(cfg.codebook_init == "random"), dtype=torch.long),
                             persistent=False)
        self.register_load_state_dict_post_hook(_mark_seeded)

    # ------------------------------------------------------------------ codebook
    def codebook_vectors(self) -> torch.Tensor:
        """The l2-normalised codebook, ``(V, code_dim)`` (differentiable)."""
        return F.normalize(self.codebook, dim=1)

    def _nearest(self, z: torch.Tensor, book: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        # Chunked so that (N x V) similarities never exist in full (61k x 8192 at paper size);
        # a chunk is 4096 x V floats (128 MiB for V = 8192).
        ids = torch.empty(z.shape[0], dtype=torch.long, device=z.device)
        with torch.no_grad():
            for s in range(0, z.shape[0], chunk):
                ids[s : s + chunk] = (z[s : s + chunk] @ book.t()).argmax(dim=1)
        return ids

    # ------------------------------------------------------------------ encoder
    def _patchify(self, clip: torch.Tensor) -> torch.Tensor:
        p, tp = self.cfg.patch_size, self.cfg.temporal_patch_size
        first = rearrange(clip[:, :, :1], "b c 1 (h ph) (w pw) -> b 1 h w (c ph pw)", ph=p, pw=p)
        feats = [self.embed_first(first)]
        if clip.shape[2] > 1:
            tubes = rearrange(clip[:, :, 1:], "b c (t pt) (h ph) (w pw) -> b t h w (c pt ph pw)", pt=tp, ph=p, pw=p)
            feats.append(self.embed_tube(tubes))
        return rearrange(torch.cat(feats, dim=1), "b t h w d -> b d t h w")

    def _check_clip(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.ndim == 4:
            clip = clip.unsqueeze(2)
        if clip.ndim != 5 or clip.shape[1] != self.cfg.in_channels:
            raise ValueError(
                f"expected (B, {self.cfg.in_channels}, T, H, W) clips or (B, {self.cfg.in_channels}, H, W) "
                f"images, got {tuple(clip.shape)}"
            )
        self.cfg.grid(*clip.shape[2:])
        return clip

    def encode_latents(self, clip: torch.Tensor) -> torch.Tensor:
        """Continuous, l2-normalised encoder outputs.

        Args:
            clip: ``(B, C, 1 + tp*k, H, W)`` or image ``(B, C, H, W)`` in ``[-0.5, 0.5]``.

        Returns:
            ``(B, code_dim, 1 + k, H/p, W/p)`` unit vectors along dim 1.
        """
        clip = self._check_clip(clip)
        return F.normalize(self.encoder(self._patchify(clip)), dim=1)

    @torch.no_grad()
    def encode(self, clip: torch.Tensor) -> torch.Tensor:
        """Code ids ``(B, 1 + k, H/p, W/p)`` int64 of clips/images in ``[-0.5, 0.5]``."""
        z = self.encode_latents(clip)
        b, d, t, h, w = z.shape
        flat = rearrange(z, "b d t h w -> (b t h w) d")
        return self._nearest(flat, self.codebook_vectors()).view(b, t, h, w)

    # ------------------------------------------------------------------ decoder
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Pixels from code vectors.

        Args:
            codes: ``(B, code_dim, 1 + k, h, w)``: codebook rows, or (phase 2 of SweetTok)
                probability-weighted mixtures of them.

        Returns:
            ``(B, C, 1 + tp*k, h*p, w*p)`` clip (a one-frame clip when ``1 + k == 1``).
        """
        if codes.ndim != 5 or codes.shape[1] != self.cfg.code_dim:
            raise ValueError(f"expected (B, {self.cfg.code_dim}, 1+k, h, w) code vectors, got {tuple(codes.shape)}")
        p, tp, c = self.cfg.patch_size, self.cfg.temporal_patch_size, self.cfg.in_channels
        feats = rearrange(self.decoder(codes), "b d t h w -> b t h w d")
        first = rearrange(self.head_first(feats[:, :1]), "b 1 h w (c ph pw) -> b c 1 (h ph) (w pw)", c=c, ph=p, pw=p)
        if feats.shape[1] == 1:
            return first
        rest = rearrange(
            self.head_tube(feats[:, 1:]), "b t h w (c pt ph pw) -> b c (t pt) (h ph) (w pw)", c=c, pt=tp, ph=p, pw=p
        )
        return torch.cat([first, rest], dim=2)

    def decode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Pixels ``(B, C, 1 + tp*k, H, W)`` from ids ``(B, 1 + k, H/p, W/p)``."""
        if ids.ndim != 4 or ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"expected (B, 1+k, h, w) integer ids, got {tuple(ids.shape)} {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.cfg.codebook_size):
            raise ValueError(f"ids must lie in [0, {self.cfg.codebook_size}), got [{int(ids.min())}, {int(ids.max())}]")
        codes = self.codebook_vectors()[ids.long()]  # (B, t, h, w, d)
        return self.decode_codes(rearrange(codes, "b t h w d -> b d t h w"))

    # ------------------------------------------------------------------ training
    def forward(self, clip: torch.Tensor) -> ProxyOutput:
        """Encode, quantize (straight-through) and decode.

        In training mode this also maintains usage statistics and restarts dead codes.
        Under torch.distributed (every rank must call forward with the same batch size)
        the counts are summed and the recent samples gathered over ranks, and re-seeded
        codes are taken from rank 0, so codebook and buffers stay identical everywhere.

        Args:
            clip: ``(B, C, 1 + tp*k, H, W)`` or ``(B, C, H, W)`` in ``[-0.5, 0.5]``.
        """
        clip = self._check_clip(clip)
        if self.training:
            self._maybe_restart_dead_codes()
        z = self.encode_latents(clip)
        b, d, t, h, w = z.shape
        flat = rearrange(z, "b d t h w -> (b t h w) d")
        if self.training and not int(self.codebook_seeded):
            self._seed_codebook(flat.detach())
        book = self.codebook_vectors()
        ids = self._nearest(flat.detach(), book.detach())
        q = book[ids]
        vq_loss = F.mse_loss(q, flat.detach()) + self.cfg.commitment_beta * F.mse_loss(flat, q.detach())
        q_st = flat + (q - flat).detach()
        counts = torch.bincount(ids, minlength=self.cfg.codebook_size).float()
        if self.training:
            counts = self._record_usage(counts, flat.detach())
        probs = counts / counts.sum().clamp_min(1.0)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-12))).sum())
        usage = (self.code_usage > 0).float().mean() if self.training else (counts > 0).float().mean()
        recon = self.decode_codes(rearrange(q_st, "(b t h w) d -> b d t h w", b=b, t=t, h=h, w=w))
        return ProxyOutput(recon, ids.view(b, t, h, w), vq_loss, perplexity.detach(), usage.detach())

    @torch.no_grad()
    def _record_usage(self, counts: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size() if _distributed() else 1
        size = self.sample_buffer.shape[0]
        # Keep a random subset of this batch's encoder outputs, at most a 1/world share
        # of the ring buffer per rank.
        keep = min(flat.shape[0], -(-size // world))
        if keep < flat.shape[0]:
            flat = flat[torch.randperm(flat.shape[0], device=flat.device)[:keep]]
        flat = flat.to(self.sample_buffer.dtype).contiguous()
        if world > 1:
            # Every rank records every rank's samples, so all buffers stay identical.
            dist.all_reduce(counts)
            gathered = [torch.empty_like(flat) for _ in range(world)]
            dist.all_gather(gathered, flat)
            flat = torch.cat(gathered)[:size]
        self.code_usage += counts
        self.forwards_since_check += 1
        start = int(self.samples_seen) % size
        idx = (torch.arange(flat.shape[0], device=flat.device) + start) % size
        self.sample_buffer[idx] = flat
        self.samples_seen += flat.shape[0]
        return counts

    @torch.no_grad()
    def _seed_codebook(self, flat: torch.Tensor) -> None:
        """Spherical k-means++ on ``flat`` (unit vectors; all ranks' under torch.distributed)."""
        if _distributed():
            gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, flat.contiguous())
            flat = torch.cat(gathered)
        # rank 0 computes; the generator is seeded from the data so reruns give the same codebook
        gen = torch.Generator(device="cpu").manual_seed(int(self.cfg.codebook_size) * 7919 + flat.shape[0])
        centres = spherical_kmeans(flat.float().cpu(), self.cfg.codebook_size, self.cfg.kmeans_iters, gen,
                                   self.cfg.restart_noise)
        self.codebook.data.copy_(centres.to(self.codebook.device, self.codebook.dtype))
        if _distributed():
            dist.broadcast(self.codebook.data, src=0)
        self.codebook_seeded.fill_(1)

    @torch.no_grad()
    def _maybe_restart_dead_codes(self) -> None:
        every = self.cfg.restart_every
        if every == 0 or int(self.forwards_since_check) < every:
            return
        filled = min(int(self.samples_seen), self.sample_buffer.shape[0])
        dead = (self.code_usage < self.cfg.dead_usage_threshold).nonzero().flatten()
        if filled > 0 and dead.numel() > 0:
            pick = torch.randint(0, filled, (dead.numel(),), device=dead.device)
            seeds = self.sample_buffer[pick]
            seeds = seeds + self.cfg.restart_noise * torch.randn_like(seeds)
            self.codebook.data[dead] = F.normalize(seeds, dim=1).to(self.codebook.dtype)
            self.restarted_total += dead.numel()
            if _distributed():
                # Ranks drew different random picks (their RNGs differ): adopt rank 0's codebook.
                dist.broadcast(self.codebook.data, src=0)
        self.code_usage.zero_()
        self.forwards_since_check.zero_()

    def num_tokens(self, frames: int, height: int, width: int) -> int:
        """Number of code ids of one clip."""
        return math.prod(self.cfg.grid(frames, height, width))
