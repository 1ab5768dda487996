"""Image files read the way a viewer shows them: 16-bit depth, transparency, EXIF orientation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sweettok.data.video import IMAGE_SUFFIXES, container_of, probe_file, read_frames, read_image_rgb


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    levels = np.array([[0, 257 * 64, 257 * 128, 65535]], np.uint16).repeat(3, axis=0)
    Image.fromarray(levels).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")  # Pillow keeps 16 bits
    rgb = read_image_rgb(tmp_path / "g16.png")
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0, :, 0].tolist() == [0, 64, 128, 255]  # convert("RGB") alone gives [0, 255, 255, 255]
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_float_image_in_unit_range_is_scaled(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(tmp_path / "f.tiff")
    assert read_image_rgb(tmp_path / "f.tiff")[0, :, 1].tolist() == [0, 128, 255]


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # transparent: its stored black must not show
    rgba[1, 0] = (0, 0, 255, 128)  # half blue
    rgba[1, 1] = (0, 255, 0, 0)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = read_image_rgb(tmp_path / "a.png").astype(int)
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[0, 1].tolist() == [255, 255, 255] and rgb[1, 1].tolist() == [255, 255, 255]
    assert abs(rgb[1, 0, 0] - 127) <= 1 and rgb[1, 0, 2] == 255


def test_exif_orientation_is_applied_in_the_pixels_and_the_probe(tmp_path):
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, :10] = 255  # a white left third
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    im.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    rgb = read_image_rgb(tmp_path / "phone.jpg")
    assert rgb.shape == (30, 20, 3)  # upright: portrait
    assert rgb[:8].mean() > 200 and rgb[-8:].mean() < 50  # the white third is now on top
    probe = probe_file(tmp_path / "phone.jpg")
    assert (probe.kind, probe.width, probe.height) == ("image", 20, 30)


def test_tiff_is_an_image_and_gif_a_video(tmp_path):
    assert {".tif", ".tiff"} <= IMAGE_SUFFIXES
    frames = [Image.fromarray(np.full((16, 24, 3), 40 * i, np.uint8)) for i in range(5)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=40, loop=0)
    assert container_of((tmp_path / "a.gif").read_bytes()[:512]) == "gif"
    probe = probe_file(tmp_path / "a.gif")
    assert (probe.kind, probe.frames, probe.width, probe.height, probe.reader) == ("video", 5, 24, 16, "pyav")
    got = read_frames(tmp_path / "a.gif", [4, 1], reader=probe.reader)  # what the clip cache reads
    assert got.shape == (2, 16, 24, 3) and abs(int(got[0].mean()) - 160) <= 2 and abs(int(got[1].mean()) - 40) <= 2
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "t.tif")
    assert read_image_rgb(tmp_path / "t.tif")[0, 0].tolist() == [200, 200, 200]


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "CMYK"])
def test_plain_modes_read_as_before(tmp_path, mode):
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (12, 9, 3), dtype=np.uint8)).convert(mode)
    im.save(tmp_path / "x.png" if mode != "CMYK" else tmp_path / "x.jpg")
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    with Image.open(path) as ref:
        expected = np.asarray(ref.convert("RGB"))
    assert np.array_equal(read_image_rgb(path), expected)


def _write_rotated_mp4(path, rotation: int, frames: int = 6) -> np.ndarray:
    """An H.264 MP4 of 48 x 64 stored frames (white left quarter) with a display rotation, as a
    phone writes a portrait video; returns the stored frame."""
    import av

    stored = np.zeros((48, 64, 3), np.uint8)
    stored[:, :16] = 255
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(rotation)
        for _ in range(frames):
            c.mux(s.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        c.mux(s.encode())
    return stored


@pytest.mark.parametrize("rotation, white_edge", [(90, "bottom"), (-90, "top"), (180, "right")])
def test_display_rotation_is_applied_like_a_player(tmp_path, rotation, white_edge):
    _write_rotated_mp4(tmp_path / "phone.mp4", rotation)
    probe = probe_file(tmp_path / "phone.mp4")
    upright = read_frames(tmp_path / "phone.mp4", [0, probe.frames - 1], reader=probe.reader)
    portrait = rotation % 180 != 0
    assert (probe.width, probe.height) == ((48, 64) if portrait else (64, 48))
    assert upright.shape == (2, probe.height, probe.width, 3)
    edges = {"top": upright[:, :10], "bottom": upright[:, -10:], "left": upright[:, :, :10],
             "right": upright[:, :, -10:]}
    assert edges[white_edge].mean() > 200, {k: round(float(v.mean())) for k, v in edges.items()}
    assert sum(v.mean() > 200 for v in edges.values()) == 1
