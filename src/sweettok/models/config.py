"""Typed, validated configuration of the SweetTok model.

Every width, depth, head count, patch size, query count and codebook size of the model is a
field of :class:`SweetTokConfig`; nothing in ``sweettok.models`` hard-codes one. A config is
validated when it is built and every error names the offending field, e.g.
``SweetTokConfig.width: must be divisible by heads (4), got 130`` (built from parameters with
:meth:`SweetTokConfig.from_dict`: ``model.width: ...``).

Two profiles live in ``conf/base/parameters_model.yml`` (small, CPU) and
``conf/paper/parameters_model.yml`` (the paper's 17x256x256 model); both are plain mappings
that :meth:`SweetTokConfig.from_dict` turns into a config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sweettok.typed_params import FieldChecks, from_mapping

__all__ = ["SweetTokConfig", "evenly_spaced_after", "query_regions"]


def query_regions(n_queries: int) -> tuple[int, int]:
    """Rows x columns of the grid the spatial latents are arranged in.

    The most square factorisation ``rows * cols = n_queries`` with ``rows <= cols`` (32 -> 4 x 8,
    256 -> 16 x 16). Anchored spatial queries average the patch grid pooled (adaptively) to this
    shape; rotary positions and window attention over the spatial latents use it as their grid.
    """
    rows = max(d for d in range(1, int(n_queries**0.5) + 1) if n_queries % d == 0)
    return rows, n_queries // rows


def evenly_spaced_after(n_spatial: int, n_temporal: int) -> tuple[int, ...]:
    """1-based decoder spatial layers after which a temporal layer runs, spread evenly.

    ``evenly_spaced_after(8, 4) == (1, 3, 5, 7)``. (The release places them after layers 2, 4,
    6 and 8: its list ``[1, 3, 5, 7]`` is compared with 0-based layer indices.)
    """
    return tuple((i * n_spatial) // n_temporal + 1 for i in range(n_temporal))


@dataclass(frozen=True)
class SweetTokConfig(FieldChecks):
    """Architecture of a SweetTok tokenizer.

    Geometry:
        input_frames: longest clip the model takes (frames, ``1 + temporal_patch_size * k``);
            position tables are sized for it and shorter clips of ``1 + 4j`` frames use a prefix.
            It is also the clip length that :meth:`num_latent_tokens` uses by default.
        resolution: frame height = width in pixels; inputs must have exactly this size.
        in_channels: colour channels (3 for RGB).
        patch_size: spatial patch side ``p`` in pixels.
        temporal_patch_size: frames per tube after frame 0 (paper: 4).
        patch_input_norm: LayerNorm over each flattened patch/tube before its Linear (the paper's
            LayerNorm -> Linear -> LayerNorm). Note that it removes each patch's mean and scale,
            so a patch's overall brightness never reaches the model; ``False`` keeps
            Linear -> LayerNorm only.

    Transformer (shared by encoder and decoder):
        width: hidden width ``D``.
        heads: attention heads (``width % heads == 0``).
        mlp_ratio: feed-forward hidden width = ``mlp_ratio * width``.
        dropout: dropout on attention weights and feed-forward outputs (0 in the paper).
        enc_spatial_depth / enc_temporal_depth: DQAE_s / DQAE_t modules of the encoder. Each
            module is one trunk block (over patches or delta-v) plus one query block that
            cross-attends to that trunk block's output.
        dec_spatial_depth / dec_temporal_depth: DQAE_s / DQAE_t modules of the decoder.
        dec_temporal_after: 1-based indices of decoder spatial layers after which a temporal
            layer runs (release: ``(2, 4, 6, 8)``; the paper does not say). ``None`` spreads them evenly.

    Latent queries:
        spatial_queries: number of spatial latent tokens ``Ls`` (paper 256).
        spatial_query_anchor: add to each spatial query the average of the first frame's
            embedded patches over its own region (the grid cut into ``Ls`` regions, see
            :func:`sweettok.models.config.query_regions`). Off (the paper's plain learned
            queries), every query reads the same attention-pooled average of the frame at the
            start of training, and in short CPU runs the spatial tokens stay almost the same
            for every clip; on, each token starts from its own part of the frame.
        decoder_spatial_anchor: the decoder's mirror of ``spatial_query_anchor``: every output
            cell of every slice starts from (a Linear of) the spatial latent of its own region,
            besides the learned mask token and positions, instead of finding it by attention.
        temporal_query_grid: side ``G`` of the grid of temporal-query cells; must divide the
            patch grid ``resolution / patch_size``. ``None`` = one cell per patch location (the
            paper's arrangement, 32 for 256 px / p=8). Each cell's queries cross-attend to the
            delta-v trunk at the ``(grid/G)^2`` patch locations it covers.
        temporal_queries_per_cell: queries per cell ``q``; ``Lt = G * G * q`` (paper 1024).
        first_difference: what the first temporal difference ``delta-v[1]`` subtracts from the
            first tube's features. ``still_tube``: the tube embedder's features of frame 0
            repeated over a tube, so that every difference compares two outputs of the same
            embedder and a still clip gives zero motion. ``mixed``: the frame-0 patch features
            (a different embedder: the difference then is no motion signal; kept to reproduce
            older checkpoints and the measurement that replaced it).
        temporal_anchor: the temporal trunk's sequence at each location starts with frame 0
            embedded like a tube (the still-tube features) before the ``k`` differences, so the
            temporal tokens read motion against a known appearance. Needs ``first_difference:
            still_tube``.

    Motion-enhanced language codebook (MLC):
        codebook_dim: ``e``; a latent token has width ``2e`` (modifier half, head-word half).
        gcn_hidden: hidden width of the two-layer GCN projector (paper 512).
        gcn_dropout: dropout between the GCN layers (release: ``F.dropout`` default, 0.5).
        topk: modifier entries averaged per token (paper 2); a token has ``topk + 1`` ids.
        beta: weight of the codebook term ``||z_q - sg(z)||^2`` (paper 0.25).
        codebook_center: subtract each book's mean vector (the mean of ``F``'s outputs over the
            book's entries, adjectives/nouns/adverbs/verbs separately) before l2-normalising the
            entries (default true). Text embeddings of words share a large common direction, so
            uncentred entries all point roughly the same way; the commitment term then pulls every
            latent towards that one direction and the books collapse within tens of steps (see
            :mod:`sweettok.models.quantizer`). ``false`` gives the release's uncentred books.
        code_diversity_weight: weight of a code-diversity term added to the MLC loss while
            training (0 = the paper's loss, the default). For every book half it is the mean
            entropy of each latent's soft assignment minus, per token position, the entropy of
            the assignment averaged over the clips of the batch: it pays the encoder for giving
            different clips different entries at the same position, and for confident choices.
            Without it the four books fall to a few entries within ~100 phase-1 steps on the
            CPU profile, since the straight-through cross-entropy gradient pulls all latents
            together (see the README).
        code_diversity_tau: temperature of those soft assignments (cosine similarity / tau).

    Block style and positions (the release's choices where the paper is silent; every default
    is the plain pre-norm transformer with learned position tables):
        attention: ``softmax`` (scaled dot product) or ``cosine`` (queries and keys l2-normalised
            per head with learned per-channel scales and the fixed scale ``attention_scale``;
            release: cosine, 8).
        attention_scale: the fixed scale of cosine attention.
        bias: biases in the attention and feed-forward Linears and the blocks' LayerNorms
            (release: none).
        feed_forward: ``gelu`` or ``geglu`` (a GELU-gated feed-forward with hidden width
            ``int(mlp_ratio * 2/3 * width)``; release: geglu).
        rope: 2-D rotary positions in every self-attention over a spatial sequence: the patch
            grid (encoder spatial trunk, decoder DQAE_s) and the spatial latents (arranged as
            the :func:`query_regions` grid, 16 x 16 for 256). Needs a
            head width divisible by 4. Release: on.
        peg: a position generator (depthwise 3x3x3 convolution over slices x rows x columns,
            added to the features) before every block of the encoder's two trunks and of the
            decoder's DQAE_s: ``none``, ``causal`` (time padded on the past side; release) or
            ``centered``.
        video_position_tables: the learned tables of patch positions in the encoder and of
            difference/slice indices in the encoder and decoder. The release has none of them
            (its PEGs and rotary positions place patches and slices); the decoder's table of
            grid positions and the latents' tables stay either way. ``false`` needs a ``peg``.
        temporal_causal: causal self-attention over time in the encoder's temporal trunk
            (release: on).
        null_kv: learned key/value pairs prepended to the context of the decoder's
            cross-attention (DQAE_s and DQAE_t), so a cell can attend to nothing (release: 2).
        spatial_trunk_input: ``first_frame`` (the paper: the spatial trunk reads slice 0) or
            ``all_slices`` (the release: it runs on every slice, and spatial query layer ``i``
            reads trunk layer ``i``'s output averaged over the slices; 5x the trunk's cost).
        window_layers: 1-based encoder spatial layers whose trunk block and query block use
            ``window_size`` x ``window_size`` window self-attention with a relative position
            bias instead of global attention, and no cross-attention (release: ``[3, 4]``,
            8 x 8). The patch grid and the spatial-latent grid must be multiples of the window.
        window_size: side of those windows.
        dec_temporal_self_attention: the decoder's DQAE_t modules have self-attention over time
            (the paper: every module has self-attention, feed-forward and cross-attention);
            ``false`` gives the release's cross-attention + feed-forward only.

    Decoder head:
        proxy_vocab_size: ``V``, size of the proxy tokenizer's codebook the decoder predicts.
        head_hidden: width of the head between its two 1x1 convolutions (release ``2 * width``).
    """

    input_frames: int = 17
    resolution: int = 64
    in_channels: int = 3
    patch_size: int = 8
    temporal_patch_size: int = 4
    patch_input_norm: bool = True
    width: int = 128
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    enc_spatial_depth: int = 4
    enc_temporal_depth: int = 2
    dec_spatial_depth: int = 4
    dec_temporal_depth: int = 2
    dec_temporal_after: tuple[int, ...] | None = None
    spatial_queries: int = 32
    spatial_query_anchor: bool = False
    decoder_spatial_anchor: bool = False
    temporal_query_grid: int | None = None
    temporal_queries_per_cell: int = 1
    first_difference: str = "still_tube"
    temporal_anchor: bool = False
    codebook_dim: int = 32
    gcn_hidden: int = 128
    gcn_dropout: float = 0.1
    topk: int = 2
    beta: float = 0.25
    codebook_center: bool = True
    code_diversity_weight: float = 0.0
    code_diversity_tau: float = 0.1
    attention: str = "softmax"
    attention_scale: float = 8.0
    bias: bool = True
    feed_forward: str = "gelu"
    rope: bool = False
    peg: str = "none"
    video_position_tables: bool = True
    temporal_causal: bool = False
    null_kv: int = 0
    spatial_trunk_input: str = "first_frame"
    window_layers: tuple[int, ...] = ()
    window_size: int = 8
    dec_temporal_self_attention: bool = True
    proxy_vocab_size: int = 1024
    head_hidden: int = 256

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        positive_ints = (
            "input_frames", "resolution", "in_channels", "patch_size", "temporal_patch_size",
            "width", "heads", "enc_spatial_depth", "dec_spatial_depth", "spatial_queries",
            "temporal_queries_per_cell", "codebook_dim", "gcn_hidden", "topk",
            "proxy_vocab_size", "head_hidden",
        )
        for name in positive_ints:
            self._check_int(name, minimum=1)
        for name in ("enc_temporal_depth", "dec_temporal_depth"):
            self._check_int(name, minimum=0)
        for name in ("patch_input_norm", "codebook_center", "spatial_query_anchor", "decoder_spatial_anchor",
                     "temporal_anchor", "bias", "rope",
                     "video_position_tables", "temporal_causal", "dec_temporal_self_attention"):
            if not isinstance(getattr(self, name), bool):
                self._fail(name, f"must be true or false, got {getattr(self, name)!r}")
        for name in ("mlp_ratio", "beta", "code_diversity_tau"):
            self._check_float(name, minimum=0.0, inclusive=False)
        for name in ("dropout", "gcn_dropout"):
            self._check_float(name, minimum=0.0, inclusive=True)
            if getattr(self, name) >= 1.0:
                self._fail(name, f"must be in [0, 1), got {getattr(self, name)}")
        self._check_float("code_diversity_weight", minimum=0.0, inclusive=True)
        if self.first_difference not in ("still_tube", "mixed"):
            self._fail("first_difference", f"must be 'still_tube' or 'mixed', got {self.first_difference!r}")
        for name, allowed in (("attention", ("softmax", "cosine")), ("feed_forward", ("gelu", "geglu")),
                              ("peg", ("none", "causal", "centered")),
                              ("spatial_trunk_input", ("first_frame", "all_slices"))):
            if getattr(self, name) not in allowed:
                self._fail(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        self._check_float("attention_scale", minimum=0.0, inclusive=False)
        self._check_int("null_kv", minimum=0)
        self._check_int("window_size", minimum=1)
        if self.rope and (self.width // self.heads) % 4:
            self._fail("rope", f"needs a head width (width / heads) divisible by 4, got {self.width // self.heads}")
        if not self.video_position_tables and self.peg == "none":
            self._fail("video_position_tables", "false needs a peg (causal or centered) to place patches and slices")
        self._check_window_layers()
        if self.temporal_anchor and self.first_difference != "still_tube":
            self._fail("temporal_anchor", "needs first_difference: still_tube")
        if self.width % self.heads:
            self._fail("width", f"must be divisible by heads ({self.heads}), got {self.width}")
        if self.resolution % self.patch_size:
            self._fail("resolution", f"must be divisible by patch_size ({self.patch_size}), got {self.resolution}")
        if (self.input_frames - 1) % self.temporal_patch_size:
            self._fail(
                "input_frames",
                f"must be 1 + {self.temporal_patch_size} * k (k >= 0), got {self.input_frames}",
            )
        grid = self.resolution // self.patch_size
        if self.temporal_query_grid is not None:
            self._check_int("temporal_query_grid", minimum=1)
            if grid % self.temporal_query_grid:
                self._fail(
                    "temporal_query_grid",
                    f"must divide the patch grid side {grid} (resolution / patch_size), "
                    f"got {self.temporal_query_grid}",
                )
        if self.dec_temporal_after is not None:
            after = self.dec_temporal_after
            if isinstance(after, list):
                # YAML gives lists; keep the frozen dataclass hashable and comparable.
                after = tuple(after)
                object.__setattr__(self, "dec_temporal_after", after)
            if not isinstance(after, tuple) or not all(
                isinstance(a, int) and not isinstance(a, bool) for a in after
            ):
                self._fail("dec_temporal_after", f"must be a list of integers, got {after!r}")
            if len(after) != self.dec_temporal_depth:
                self._fail(
                    "dec_temporal_after",
                    f"must list one layer per decoder temporal module ({self.dec_temporal_depth}), got {list(after)}",
                )
            if any(a < 1 or a > self.dec_spatial_depth for a in after) or list(after) != sorted(set(after)):
                self._fail(
                    "dec_temporal_after",
                    f"must be strictly increasing layer numbers in [1, {self.dec_spatial_depth}], got {list(after)}",
                )
        elif self.dec_temporal_depth > self.dec_spatial_depth:
            self._fail(
                "dec_temporal_depth",
                f"cannot exceed dec_spatial_depth ({self.dec_spatial_depth}) when dec_temporal_after is not given, "
                f"got {self.dec_temporal_depth}",
            )
        if self.enc_temporal_depth == 0 and self.dec_temporal_depth > 0 or (
            self.enc_temporal_depth > 0 and self.dec_temporal_depth == 0
        ):
            self._fail(
                "enc_temporal_depth",
                "encoder and decoder must both have temporal modules or both have none "
                f"(got enc_temporal_depth={self.enc_temporal_depth}, dec_temporal_depth={self.dec_temporal_depth})",
            )

    def _check_window_layers(self) -> None:
        layers = self.window_layers
        if isinstance(layers, list):
            layers = tuple(layers)
            object.__setattr__(self, "window_layers", layers)
        if not isinstance(layers, tuple) or not all(isinstance(a, int) and not isinstance(a, bool) for a in layers):
            self._fail("window_layers", f"must be a list of integers, got {layers!r}")
        if not layers:
            return
        if any(a < 1 or a > self.enc_spatial_depth for a in layers) or list(layers) != sorted(set(layers)):
            self._fail("window_layers", f"must be strictly increasing layer numbers in [1, {self.enc_spatial_depth}], "
                                        f"got {list(layers)}")
        if len(layers) == self.enc_spatial_depth:
            self._fail("window_layers", "must leave at least one global layer (window layers have no cross-attention, "
                                        "so the spatial queries would never read the trunk)")
        rows, cols = query_regions(self.spatial_queries)
        w = self.window_size
        if (self.resolution // self.patch_size) % w or rows % w or cols % w:
            self._fail("window_layers", f"need the patch grid ({self.resolution // self.patch_size}) and the spatial-"
                                        f"latent grid ({rows} x {cols}) in multiples of window_size {w}")

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "model") -> "SweetTokConfig":
        """Build from a plain mapping (e.g. the ``model`` parameters) found at key path ``where``.

        Raises:
            sweettok.typed_params.ParamError: (a ValueError) naming every unknown key, or the
                first invalid field, as ``<where>.<field>``.
        """
        return from_mapping(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able mapping; ``from_dict(to_dict())`` gives an equal config."""
        out = dataclasses.asdict(self)
        if out["dec_temporal_after"] is not None:
            out["dec_temporal_after"] = list(out["dec_temporal_after"])
        out["window_layers"] = list(out["window_layers"])
        return out

    def replace(self, **changes: Any) -> "SweetTokConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ derived sizes
    @property
    def grid_size(self) -> int:
        """Patch-grid side ``resolution / patch_size`` (paper 32)."""
        return self.resolution // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patch locations per slice, ``grid_size ** 2``."""
        return self.grid_size**2

    @property
    def latent_dim(self) -> int:
        """Width of one latent token, ``2 * codebook_dim``."""
        return 2 * self.codebook_dim

    @property
    def query_grid(self) -> int:
        """Side ``G`` of the temporal-query cell grid."""
        return self.grid_size if self.temporal_query_grid is None else self.temporal_query_grid

    @property
    def cell_size(self) -> int:
        """Patch locations per temporal-query cell side, ``grid_size / G``."""
        return self.grid_size // self.query_grid

    @property
    def temporal_queries(self) -> int:
        """Number of temporal latent tokens ``Lt = G * G * q`` (paper 1024)."""
        return self.query_grid**2 * self.temporal_queries_per_cell

    @property
    def max_slices(self) -> int:
        """Latent slices of the longest clip, ``1 + (input_frames - 1) / temporal_patch_size``."""
        return 1 + (self.input_frames - 1) // self.temporal_patch_size

    @property
    def temporal_after(self) -> tuple[int, ...]:
        """Resolved :attr:`dec_temporal_after`."""
        if self.dec_temporal_after is not None:
            return self.dec_temporal_after
        return evenly_spaced_after(self.dec_spatial_depth, self.dec_temporal_depth)

    @property
    def has_temporal(self) -> bool:
        """Whether the model has a temporal path (video); without it only images work."""
        return self.enc_temporal_depth > 0

    def check_frames(self, frames: int) -> int:
        """Validate a clip length and return its slice count ``1 + k``.

        Raises:
            ValueError: if ``frames`` is not ``1 + temporal_patch_size * k`` or exceeds
                ``input_frames`` (or is > 1 for a model without a temporal path).
        """
        tp = self.temporal_patch_size
        if not isinstance(frames, int) or frames < 1 or (frames - 1) % tp:
            raise ValueError(
                f"clip has T={frames} frames; SweetTok takes 1 + {tp}k frames (1, {1 + tp}, {1 + 2 * tp}, ...)"
            )
        if frames > self.input_frames:
            raise ValueError(
                f"clip has T={frames} frames; this model is configured for at most input_frames={self.input_frames}"
            )
        if frames > 1 and not self.has_temporal:
            raise ValueError(f"clip has T={frames} frames but this model has no temporal modules (images only)")
        return 1 + (frames - 1) // tp

    def num_latent_tokens(self, frames: int | None = None) -> int:
        """Latent tokens per clip: ``Ls`` for an image (T=1), ``Ls + Lt`` for a video."""
        frames = self.input_frames if frames is None else frames
        self.check_frames(frames)
        return self.spatial_queries + (self.temporal_queries if frames > 1 else 0)

    @property
    def ids_per_token(self) -> int:
        """Ids per latent token, ``topk + 1``: the ``topk`` modifiers, then the head word."""
        return self.topk + 1

    def ids_per_clip(self, frames: int | None = None) -> int:
        """Token ids per clip, ``(topk + 1) * num_latent_tokens(frames)`` (layout: :mod:`sweettok.models.quantizer`)."""
        return self.ids_per_token * self.num_latent_tokens(frames)
