"""The video and image tokenizers a user loads, and exported model directories.

:class:`VideoTokenizer` is SweetTok with pixel output: encoder and MLC quantizer give
token ids, SweetTok's decoder gives logits over the proxy codebook, and a softmax-weighted
sum of the proxy codebook goes through the proxy's pixel decoder to frames. It is the model
phase 2 trains (only ``sweettok.decoder`` and the proxy's pixel decoder learn) and the model
evaluation and :mod:`sweettok.api` use.

:class:`ImageTokenizer` is the same network fine-tuned on images (the ``image_finetune``
pipeline): one frame, spatial tokens only. It is a model of its own kind
(``sweettok_image``), not a ``VideoTokenizer``, and refuses clips of more than one frame
(:class:`ModelKindError`): its temporal path was never trained together with its fine-tuned
spatial path. Loading either checkpoint as the other kind fails by its ``kind``.

Exported models: :func:`save_model` writes any of the project's models (``ProxyTokenizer``,
``SweetTok``, ``VideoTokenizer``, ``ImageTokenizer``, and the token LM ``TokenLM``) as one self-contained checkpoint directory in the format of
:mod:`sweettok.models.checkpoint` (``config.json`` naming its ``kind``, ``model.safetensors``
with the evaluation weights, and for models on a language codebook ``prior.safetensors`` +
``prior.json``), and :func:`load_model` rebuilds it strictly. :func:`load_model` also reads a
training step checkpoint (EMA weights when present), given the prior for SweetTok kinds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sweettok.files import verify_manifest
from sweettok.models.checkpoint import (EMA_FILE, MODEL_FILE, CheckpointError, load_module_weights,
                                        load_state_file, read_checkpoint_config, write_checkpoint)
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.lm import TokenLM, TokenLMConfig
from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig
from sweettok.models.sweettok import SweetTok

__all__ = ["IMAGE_PARTS", "KINDS", "ImageTokenizer", "ModelKindError", "VideoTokenizer", "load_model",
           "model_identity", "save_model"]

PRIOR_TENSORS = "prior.safetensors"
PRIOR_WORDS = "prior.json"


class ModelKindError(ValueError):
    """A model was asked for something its kind does not do (a video to the image tokenizer)."""


class _PixelTokenizer(nn.Module):
    """SweetTok + the proxy's pixel decoder: what the video and the image tokenizer share.

    Shapes: clips ``(B, C, T, H, W)`` (images ``(B, C, H, W)``) in [-0.5, 0.5] with
    ``T = 1 + 4k`` and ``H = W = cfg.resolution``; ids ``(B, (topk + 1) L)`` int64 (layout in
    :mod:`sweettok.models.quantizer`); reconstructions ``(B, C, T, H, W)``, unbounded (clamp
    to [-0.5, 0.5] for display). In eval mode everything is deterministic and
    ``decode_ids(ids, T) == decode_latents(latents, T)`` exactly.
    """

    PROXY_DECODER = ("decoder.", "head_first.", "head_tube.")

    def __init__(self, sweettok: SweetTok, proxy: ProxyTokenizer):
        super().__init__()
        if sweettok.cfg.proxy_vocab_size != proxy.cfg.codebook_size:
            raise ValueError(f"model.proxy_vocab_size={sweettok.cfg.proxy_vocab_size} but the proxy tokenizer has "
                             f"{proxy.cfg.codebook_size} codes")
        self.sweettok = sweettok
        self.proxy = proxy
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith("sweettok.decoder.")
                             or any(name.startswith("proxy." + pre) for pre in self.PROXY_DECODER))

    @property
    def cfg(self) -> SweetTokConfig:
        return self.sweettok.cfg

    def freeze_modes(self) -> None:
        """Frozen parts run in eval mode (no dropout) even while the rest trains."""
        for module in (self.sweettok.patch_embed, self.sweettok.encoder, self.sweettok.quantizer, self.proxy):
            module.eval()
        for name in ("decoder", "head_first", "head_tube"):
            getattr(self.proxy, name).train(self.training)

    def logits_to_pixels(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, V, S, g, g)`` -> clip ``(B, C, T, H, W)``."""
        probs = logits.float().softmax(dim=1)
        codes = torch.einsum("bvsgh,vd->bdsgh", probs, self.proxy.codebook_vectors())
        return self.proxy.decode_codes(codes)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip -> (quantized latents ``(B, L, 2e)``, ids ``(B, (topk + 1) L)``), without gradient."""
        with torch.no_grad():
            latents, ids, _ = self.sweettok.encode(x)
        return latents, ids

    def decode_latents(self, latents: torch.Tensor, frames: int) -> torch.Tensor:
        return self.logits_to_pixels(self.sweettok.decode_latents(latents, frames))

    def decode_ids(self, ids: torch.Tensor, frames: int) -> torch.Tensor:
        return self.logits_to_pixels(self.sweettok.decode_ids(ids, frames))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct clips ``(B, C, T, H, W)`` in [-0.5, 0.5] (unbounded output)."""
        latents, _ = self.encode(x)
        return self.decode_latents(latents, x.shape[2] if x.ndim == 5 else 1)


class VideoTokenizer(_PixelTokenizer):
    """SweetTok with pixel output: decoder logits -> softmax -> proxy codebook -> proxy pixel decoder.

    Shapes: clips ``(B, C, T, H, W)`` (images ``(B, C, H, W)``) in [-0.5, 0.5] with
    ``T = 1 + 4k`` and ``H = W = cfg.resolution``; ids ``(B, (topk + 1) L)`` int64 (layout in
    :mod:`sweettok.models.quantizer`); reconstructions ``(B, C, T, H, W)``, unbounded (clamp
    to [-0.5, 0.5] for display). In eval mode everything is deterministic and
    ``decode_ids(ids, T) == decode_latents(latents, T)`` exactly.

    For training (phase 2) only ``sweettok.decoder`` and the proxy's pixel decoder
    (``decoder``, ``head_first``, ``head_tube``) are trainable; everything up to the quantized
    latents, and the proxy's encoder and codebook, are frozen.
    """


# Parameters of the one-frame (spatial) path, by part, as name prefixes of an ImageTokenizer.
# A one-frame input never reaches the temporal trunk, temporal queries, temporal decoder
# blocks or the proxy's tube head, so those stay frozen (and DDP sees no unused parameter).
IMAGE_PARTS: dict[str, tuple[str, ...]] = {
    "encoder": ("sweettok.patch_embed.first.", "sweettok.encoder.grid_pos", "sweettok.encoder.spatial_queries",
                "sweettok.encoder.spatial_query_pos", "sweettok.encoder.spatial_trunk.",
                "sweettok.encoder.spatial_query_blocks.", "sweettok.encoder.spatial_out.",
                "sweettok.quantizer.spatial."),
    "decoder": ("sweettok.decoder.spatial_in.", "sweettok.decoder.spatial_latent_pos", "sweettok.decoder.mask_token",
                "sweettok.decoder.grid_pos", "sweettok.decoder.slice_pos", "sweettok.decoder.spatial_latent_blocks.",
                "sweettok.decoder.spatial_blocks.", "sweettok.decoder.spatial_anchor.", "sweettok.decoder.head_norm.",
                "sweettok.decoder.head.", "proxy.decoder.", "proxy.head_first."),
}


class ImageTokenizer(_PixelTokenizer):
    """The tokenizer fine-tuned on images: one frame in, spatial tokens only, one frame out.

    Shapes: images ``(B, C, H, W)`` (or one-frame clips ``(B, C, 1, H, W)``) in [-0.5, 0.5];
    latents ``(B, Ls, 2e)``; ids ``(B, (topk + 1) Ls)`` int64, the spatial part of the video
    layout (:mod:`sweettok.models.quantizer`); reconstructions have the input's rank,
    unbounded (clamp to [-0.5, 0.5] for display). In eval mode ``decode_ids(ids)`` equals
    ``decode_latents(latents)`` exactly.

    It has the video tokenizer's parameters (same names, so :meth:`from_video` is a copy), but
    is its own kind: anything with more than one frame raises :class:`ModelKindError`.
    Which parameters train is :meth:`set_trainable`'s choice (default: the decoder part of
    :data:`IMAGE_PARTS`, as in phase 2).
    """

    def __init__(self, sweettok: SweetTok, proxy: ProxyTokenizer):
        super().__init__(sweettok, proxy)
        self.set_trainable(("decoder",))

    @classmethod
    def from_video(cls, video: VideoTokenizer) -> "ImageTokenizer":
        """A copy of a video tokenizer's weights as an image tokenizer (the start of fine-tuning).

        Raises:
            ModelKindError: ``video`` is not a :class:`VideoTokenizer`.
        """
        if not isinstance(video, VideoTokenizer):
            raise ModelKindError(f"ImageTokenizer.from_video takes a video tokenizer (kind sweettok_pixel), "
                                 f"got a {type(video).__name__}")
        sweettok = SweetTok(video.sweettok.cfg, video.sweettok.prior)
        proxy = ProxyTokenizer(video.proxy.cfg)
        model = cls(sweettok, proxy)
        model.load_state_dict(video.state_dict(), strict=True)
        model.provenance = dict(getattr(video, "provenance", {}) or {})
        return model.train(video.training)

    def set_trainable(self, parts: tuple[str, ...] | list[str]) -> list[str]:
        """Train exactly the named parts of :data:`IMAGE_PARTS` (``encoder``, ``decoder``); freeze the rest.

        Returns:
            the trainable parameter names.
        """
        unknown = sorted(set(parts) - set(IMAGE_PARTS))
        if unknown or not parts:
            raise ValueError(f"trainable parts {list(parts)}: must be a non-empty subset of {sorted(IMAGE_PARTS)}")
        prefixes = tuple(pre for part in parts for pre in IMAGE_PARTS[part])
        names = []
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith(prefixes))
            if p.requires_grad:
                names.append(name)
        self.trainable_parts = tuple(parts)
        return names

    def freeze_modes(self) -> None:
        """Frozen parts run in eval mode (no dropout); the trained ones follow ``self.training``."""
        super().freeze_modes()
        if "encoder" in getattr(self, "trainable_parts", ()):
            for module in (self.sweettok.patch_embed, self.sweettok.encoder, self.sweettok.quantizer):
                module.train(self.training)

    @staticmethod
    def _frames(x: torch.Tensor) -> int:
        frames = x.shape[2] if x.ndim == 5 else 1
        if frames != 1:
            raise ModelKindError(
                f"an image tokenizer (kind sweettok_image) takes images (B, C, H, W) or one-frame clips, got "
                f"{frames} frames (shape {tuple(x.shape)}); its temporal path was not fine-tuned with its spatial "
                "path: tokenize videos with the video tokenizer (kind sweettok_pixel)")
        return 1

    @staticmethod
    def _one_frame(frames: int) -> None:
        if frames != 1:
            raise ModelKindError(f"an image tokenizer (kind sweettok_image) decodes one frame, asked for {frames}; "
                                 "decode video ids with the video tokenizer (kind sweettok_pixel)")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> (quantized latents ``(B, Ls, 2e)``, ids ``(B, (topk + 1) Ls)``), without gradient."""
        self._frames(x)
        return super().encode(x)

    def decode_latents(self, latents: torch.Tensor, frames: int = 1) -> torch.Tensor:
        """Latents ``(B, Ls, 2e)`` -> one-frame clips ``(B, C, 1, H, W)``."""
        self._one_frame(frames)
        return super().decode_latents(latents, 1)

    def decode_ids(self, ids: torch.Tensor, frames: int = 1) -> torch.Tensor:
        """Ids ``(B, (topk + 1) Ls)`` -> one-frame clips ``(B, C, 1, H, W)``."""
        self._one_frame(frames)
        return super().decode_ids(ids, 1)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training pass: (reconstruction with the input's rank, MLC loss (scalar)).

        Gradients reach the encoder (straight through the quantizer) when its part is
        trainable; otherwise the latents are computed without gradient.
        """
        self._frames(x)
        if "encoder" in self.trainable_parts:
            latents, _, aux = self.sweettok.encode(x)
            mlc = aux["loss"]
        else:
            with torch.no_grad():
                latents, _, _ = self.sweettok.encode(x)
            mlc = latents.new_zeros(())
        recon = super().decode_latents(latents, 1)
        return (recon if x.ndim == 5 else recon[:, :, 0]), mlc

    def forward(self, x: torch.Tensor, train_pass: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct images; ``(B, C, H, W)`` -> ``(B, C, H, W)``, ``(B, C, 1, H, W)`` -> the same.

        With ``train_pass=True``, :meth:`reconstruct` (reconstruction and MLC loss): training
        calls it through ``forward`` so that a DDP wrapper sees the pass.
        """
        if train_pass:
            return self.reconstruct(x)
        self._frames(x)
        latents, _ = super().encode(x)
        recon = super().decode_latents(latents, 1)
        return recon if x.ndim == 5 else recon[:, :, 0]


# ---------------------------------------------------------------------- exported models
KINDS = ("proxy_tokenizer", "sweettok", "sweettok_pixel", "sweettok_image", "token_lm")
_KIND_WORDS = {"sweettok_pixel": " (a video tokenizer)", "sweettok_image": " (an image tokenizer, one frame only)"}


def describe_model(model: nn.Module) -> tuple[dict[str, Any], CodebookPrior | None]:
    """``model_config`` (with its ``kind``) and the prior a model is built from."""
    if isinstance(model, (VideoTokenizer, ImageTokenizer)):
        kind = "sweettok_image" if isinstance(model, ImageTokenizer) else "sweettok_pixel"
        return ({"kind": kind, "sweettok": model.sweettok.cfg.to_dict(),
                 "proxy": model.proxy.cfg.to_dict()}, model.sweettok.prior)
    if isinstance(model, SweetTok):
        return {"kind": "sweettok", **model.cfg.to_dict()}, model.prior
    if isinstance(model, ProxyTokenizer):
        return {"kind": "proxy_tokenizer", **model.cfg.to_dict()}, None
    if isinstance(model, TokenLM):
        return {"kind": "token_lm", **model.cfg.to_dict()}, None
    raise TypeError(f"cannot export a {type(model).__name__}: not one of the project's models")


def _build(config: Mapping[str, Any], prior: CodebookPrior | None, where: Path) -> nn.Module:
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in KINDS:
        raise CheckpointError(f"{where}: model kind {kind!r} is not one of {KINDS}")
    if kind in ("proxy_tokenizer", "token_lm"):
        try:
            if kind == "token_lm":
                return TokenLM(TokenLMConfig.from_dict(config))
            return ProxyTokenizer(ProxyTokenizerConfig.from_dict(config))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}/config.json: its model configuration does not fit this code ({exc})") \
                from None
    if prior is None:
        raise CheckpointError(f"{where}: a {kind} model needs its language codebook, and the checkpoint has "
                              f"no {PRIOR_TENSORS}")
    try:
        if kind == "sweettok":
            return SweetTok(SweetTokConfig.from_dict(config), prior)
        pixel = ImageTokenizer if kind == "sweettok_image" else VideoTokenizer
        return pixel(SweetTok(SweetTokConfig.from_dict(dict(config["sweettok"])), prior),
                     ProxyTokenizer(ProxyTokenizerConfig.from_dict(dict(config["proxy"]))))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}/config.json: its model configuration does not fit this code ({exc})") \
            from None


def save_model(model: nn.Module, directory: str | Path, provenance: Mapping[str, Any] | None = None) -> Path:
    """Export ``model``'s current weights (use the EMA weights: load them first) to ``directory``, atomically."""
    config, prior = describe_model(model)
    extra_states, extra_json = {}, {}
    if prior is not None:
        tensors, words = prior.to_state()
        extra_states[PRIOR_TENSORS] = tensors
        extra_json[PRIOR_WORDS] = words
    return write_checkpoint(directory, model_state=model.state_dict(), model_config=config,
                            extra_states=extra_states, extra_json=extra_json,
                            provenance=dict(provenance or getattr(model, "provenance", {}) or {}))


def _read_prior(path: Path, meta: dict) -> CodebookPrior | None:
    if PRIOR_TENSORS not in meta.get("files", {}):
        return None
    try:
        words = json.loads((path / PRIOR_WORDS).read_text(encoding="utf-8"))
        return CodebookPrior.from_state(load_state_file(path / PRIOR_TENSORS), words)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: its language codebook cannot be read ({exc})") from None


def load_model(directory: str | Path, kind: str | tuple[str, ...] | None = None, prior: CodebookPrior | None = None,
               use_ema: bool = True, verify: bool = True) -> nn.Module:
    """A model from a checkpoint directory, strictly, in eval mode on the CPU.

    Args:
        directory: an exported model (:func:`save_model`) or a training step checkpoint.
        kind: the kind(s) expected (``proxy_tokenizer``, ``sweettok``, ``sweettok_pixel`` (video),
            ``sweettok_image``).
        prior: the language codebook, for a step checkpoint of a SweetTok kind (an exported
            model carries its own; a given prior then wins).
        use_ema: a step checkpoint's ``ema.safetensors`` rather than its raw weights, when present.
        verify: check every file's size and sha256 against ``config.json`` first.

    Raises:
        CheckpointError: missing or damaged directory, another kind, missing/unexpected keys.
    """
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    meta = read_checkpoint_config(path)
    if verify:
        problem = verify_manifest(path, meta.get("files", {}))
        if problem or MODEL_FILE not in meta.get("files", {}):
            raise CheckpointError(f"{path}: damaged checkpoint ({problem or 'no ' + MODEL_FILE})")
    config = meta.get("model_config") or {}
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted is not None and config.get("kind") not in wanted:
        got = config.get("kind")
        raise CheckpointError(f"{path}: a {got!r} checkpoint{_KIND_WORDS.get(got, '')}, expected "
                              + " or ".join(f"{k}{_KIND_WORDS.get(k, '')}" for k in wanted))
    model = _build(config, prior if prior is not None else _read_prior(path, meta), path)
    weights = path / EMA_FILE if use_ema and EMA_FILE in meta.get("files", {}) else path / MODEL_FILE
    load_module_weights(model, weights)
    model.provenance = dict(meta.get("provenance") or {})
    return model.eval()


def model_identity(directory: str | Path) -> str:
    """A short identity of a checkpoint: sha256 of its weights file, as recorded in ``config.json``."""
    meta = read_checkpoint_config(directory)
    return str(meta["files"][MODEL_FILE]["sha256"])
