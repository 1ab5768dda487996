"""Round trip of a video or image through the command line, with the PSNR of the result.

    python scripts/check_roundtrip.py make DIR              # the embedded 40-frame 100x72 test video + a PNG
    python scripts/check_roundtrip.py run FILE [--checkpoint DIR] [--size pad|crop]

``make`` renders a test-split video of the embedded synthetic dataset (an orbiting textured
object over a photograph, 40 frames of 100x72) to DIR/roundtrip.mp4 and its middle frame to
DIR/roundtrip.png. ``run`` calls ``sweettok encode`` then ``sweettok decode`` (to .npy, so the
numbers are not blurred by a video codec, and to .mp4/.png as a person would), reads both back,
and prints frames, size and PSNR against the source's decoded frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np


def _source_frames(path: Path) -> np.ndarray:
    from sweettok.data.video import IMAGE_SUFFIXES, frame_rgb, iter_frames_sequential, read_image_rgb

    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image_rgb(path)[None]  # as the tokenizer reads it
    return np.stack([frame_rgb(f) for f in iter_frames_sequential(path)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def make(directory: Path) -> None:
    from PIL import Image

    from sweettok.data.synthetic import SyntheticConfig, draw_spec, render_video, write_mp4

    cfg = dataclasses.replace(SyntheticConfig.from_dict({}), frames=40, height=72, width=100)
    frames = render_video(draw_spec(cfg, "Orbit", cfg.groups, 1), cfg)  # group `groups`: a test group
    directory.mkdir(parents=True, exist_ok=True)
    write_mp4(directory / "roundtrip.mp4", frames, fps=25)
    Image.fromarray(frames[len(frames) // 2]).save(directory / "roundtrip.png")
    print(f"wrote {directory / 'roundtrip.mp4'} ({frames.shape}) and {directory / 'roundtrip.png'}")


def run(path: Path, checkpoint: str | None, size: str) -> None:
    exe = str(Path(sys.executable).with_name("sweettok"))
    ck = ["--checkpoint", checkpoint] if checkpoint else []
    tokens = path.with_suffix(".npz")
    subprocess.run([exe, "encode", str(path), "-o", str(tokens), "--size", size, *ck], check=True)
    source = _source_frames(path)
    media = path.with_name(path.stem + "_recon" + (".png" if len(source) == 1 else ".mp4"))
    for out in (path.with_name(path.stem + "_recon.npy"), media):
        subprocess.run([exe, "decode", str(tokens), "-o", str(out), *ck], check=True)
        recon = np.load(out) if out.suffix == ".npy" else _source_frames(out)
        ref = source
        if size == "crop":
            h, w = source.shape[1:3]
            s = min(h, w)
            ref = source[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        print(f"{out.name}: {recon.shape[0]} frames of {recon.shape[2]}x{recon.shape[1]} "
              f"(source {source.shape[0]} of {source.shape[2]}x{source.shape[1]}); PSNR {psnr(ref, recon):.2f} dB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("directory", type=Path)
    r = sub.add_parser("run")
    r.add_argument("file", type=Path)
    r.add_argument("--checkpoint", default=None)
    r.add_argument("--size", default="pad", choices=("pad", "crop"))
    a = p.parse_args()
    make(a.directory) if a.cmd == "make" else run(a.file, a.checkpoint, a.size)


if __name__ == "__main__":
    main()
