"""How well a trained SweetTok and its proxy tokenizer bring back flat colours.

Builds clips of one flat colour: the background colours of the test clips whose first frame
has the flattest top and bottom borders (4 rows each), and the six pure primaries and
secondaries. Reconstructs them with both tokenizers and reports the mean absolute error per
channel of each reconstruction's mean colour (pixel scale [-0.5, 0.5]), and how flat the
reconstruction is (its standard deviation over pixels and frames). Writes JSON and, with
--figure, one row per colour: the input, the proxy's and SweetTok's reconstruction (middle
frame).

    python scripts/flat_colours.py --out data/08_reporting/flat_colours.json --figure flat.png

Run after `make run` (it reads the trained models and the clip cache under data/).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sweettok.data.clips import ClipCache
from sweettok.metrics.image_codec import to_uint8
from sweettok.models.tokenizer import load_model

PURE = {
    "yellow": (0.5, 0.5, -0.5),
    "magenta": (0.5, -0.5, 0.5),
    "cyan": (-0.5, 0.5, 0.5),
    "red": (0.5, -0.5, -0.5),
    "green": (-0.5, 0.5, -0.5),
    "blue": (-0.5, -0.5, 0.5),
}


def flattest_backgrounds(clips: torch.Tensor, count: int, rows: int = 4) -> tuple[list[int], torch.Tensor]:
    """Indices of the ``count`` clips whose first frame's top and bottom ``rows`` vary least,
    and those borders' mean colours ``(count, C)``. ``clips`` is ``(N, C, T, H, W)``."""
    if clips.shape[-2] < 2 * rows:
        raise ValueError(f"frames of height {clips.shape[-2]} have no {rows}-row top and bottom borders")
    first = clips[:, :, 0]
    border = torch.cat([first[:, :, :rows].flatten(2), first[:, :, -rows:].flatten(2)], dim=2)
    order = border.std(dim=2).mean(dim=1).argsort()[:count]
    return order.tolist(), border[order].mean(dim=2)


def colour_errors(reconstruction: torch.Tensor, colours: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip: mean absolute error per channel of the clamped reconstruction's mean colour
    against ``colours``, and the reconstruction's standard deviation over pixels and frames."""
    r = reconstruction.clamp(-0.5, 0.5)
    error = (r.mean(dim=(2, 3, 4)) - colours).abs().mean(dim=1)
    spread = r.std(dim=(2, 3, 4)).mean(dim=1)
    return error, spread


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", default="data/06_models/tokenizer")
    parser.add_argument("--proxy", default="data/06_models/proxy_tokenizer")
    parser.add_argument("--clip-cache", default="data/03_primary/clip_cache")
    parser.add_argument("--backgrounds", type=int, default=4, help="flattest test clips to take colours from")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")
    parser.add_argument("--figure", type=Path, default=None, help="PNG: input | proxy | SweetTok per colour")
    args = parser.parse_args(argv)

    tokenizer = load_model(args.tokenizer).eval()
    proxy = load_model(args.proxy).eval()
    test = ClipCache(args.clip_cache).dataset("test")
    if len(test) == 0:
        raise SystemExit(f"no test clips in {args.clip_cache}")
    shape = test[0]["clip"].shape[1:]  # (T, H, W) of the flat clips
    # only the first frame is ranked: keep that, not every whole clip
    first_frames = torch.stack([test[i]["clip"][:, :1] for i in range(len(test))])
    picked, backgrounds = flattest_backgrounds(first_frames, min(args.backgrounds, len(test)))
    names = [f"test clip {i}" for i in picked] + list(PURE)
    colours = torch.cat([backgrounds, torch.tensor(list(PURE.values()))])
    flat = colours[:, :, None, None, None].expand(-1, -1, *shape).contiguous()
    nb = len(picked)

    result: dict = {"colours": {n: [round(v, 4) for v in c.tolist()] for n, c in zip(names, colours)}}
    recon = {}
    with torch.no_grad():
        recon["proxy tokenizer"] = proxy(flat).reconstruction
        recon["SweetTok"] = tokenizer(flat)
    for method, r in recon.items():
        error, spread = colour_errors(r, colours)
        result[method] = {
            "error": {n: round(e, 4) for n, e in zip(names, error.tolist())},
            "error_backgrounds": round(error[:nb].mean().item(), 4),
            "error_all": round(error.mean().item(), 4),
            "spread_backgrounds": round(spread[:nb].mean().item(), 4),
        }
        print(f"{method:16s} error: backgrounds {result[method]['error_backgrounds']:.3f} "
              f"all {result[method]['error_all']:.3f}  spread (backgrounds) {result[method]['spread_backgrounds']:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.figure:
        from PIL import Image

        middle = flat.shape[2] // 2
        rows = [np.concatenate([to_uint8(v[k, :, middle]) for v in (flat, recon["proxy tokenizer"], recon["SweetTok"])], 1)
                for k in range(len(colours))]
        grid = np.concatenate(rows, 0)
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(args.figure)
    return result


if __name__ == "__main__":
    main()
