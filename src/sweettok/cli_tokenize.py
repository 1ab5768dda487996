"""``sweettok encode | decode | generate | words | info CHECKPOINT | bench tokenizer``: the trained
tokenizer on your files, and clips sampled from the trained token LM.

Exit codes: 0 success; 2 a bad input (not a video or image, unreadable or truncated file,
bad arguments); 3 a missing, damaged or incompatible checkpoint; 4 a token file that is not
one, or was made by another checkpoint or layout version. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from sweettok.cli import arg, command

EXIT_INPUT, EXIT_CHECKPOINT, EXIT_TOKENS = 2, 3, 4
VIDEO_OUTPUTS = {".mp4", ".mkv", ".avi", ".webm", ".mov", ".gif"}
IMAGE_OUTPUTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _fail(message: str, code: int) -> int:
    print(f"sweettok: error: {message}", file=sys.stderr)
    return code


def _guarded(fn):
    """Map the API's errors to one stderr line and an exit code."""

    def run(args: argparse.Namespace) -> int:
        from sweettok.api import CheckpointError, InputError, TokenFileError

        try:
            return fn(args)
        except InputError as exc:
            return _fail(str(exc), EXIT_INPUT)
        except CheckpointError as exc:
            return _fail(str(exc), EXIT_CHECKPOINT)
        except TokenFileError as exc:
            return _fail(str(exc), EXIT_TOKENS)

    run.__doc__ = fn.__doc__
    return run


def _checkpoint_args() -> list:
    return [arg("--checkpoint", default=None,
                help="tokenizer checkpoint directory (default: the catalog's `tokenizer`, data/06_models/tokenizer)"),
            arg("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")]


def _load(args: argparse.Namespace):
    from sweettok.api import Tokenizer

    return Tokenizer.from_pretrained(args.checkpoint, device=args.device)


# ---------------------------------------------------------------------- encode / decode / words
@command("encode", help="tokenize a video (mp4, avi, mkv, webm, gif, animated webp or png, ...) or an image "
                    "(png, jpg, webp, tiff, ...) into an .npz token file",
         args=[arg("input", help="video or image file"), arg("-o", "--output", required=True, help="token file (.npz)"),
               arg("--size", choices=("pad", "crop"), default="pad",
                   help="pad: keep the whole frame (default); crop: the centre square"),
               *_checkpoint_args()])
@_guarded
def encode(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix != ".npz":
        return _fail(f"{out}: token files end in .npz", EXIT_INPUT)
    tok = _load(args)
    start = time.perf_counter()
    tokens = tok.encode(args.input, size=args.size)
    tokens.save(out)
    print(f"{args.input}: {tokens.frames} frame(s) of {tokens.width}x{tokens.height} -> {tokens.ids.shape[0]} "
          f"window(s) x {tokens.ids.shape[1]} ids in {time.perf_counter() - start:.2f} s; wrote {out}")
    return 0


def _write_frames(frames_iter, out: Path, fps: float) -> tuple[int, int, int]:
    """Write decoded windows to a video (near-lossless H.264, VP9 in .webm, yuv444p for odd sizes; or a
    GIF), an image or .npy."""
    import numpy as np

    suffix = out.suffix.lower()
    if suffix in (".npy", *IMAGE_OUTPUTS):
        frames = np.concatenate(list(frames_iter))
        if suffix == ".npy":
            np.save(out, frames, allow_pickle=False)
        else:
            if len(frames) != 1:
                raise ValueError(f"{out}: an image holds one frame, the tokens decode to {len(frames)}; "
                                 "write a video (.mp4) or .npy")
            from PIL import Image

            Image.fromarray(frames[0]).save(out)
        return frames.shape[0], frames.shape[2], frames.shape[1]
    if suffix not in VIDEO_OUTPUTS:
        raise ValueError(f"{out}: write {', '.join(sorted(VIDEO_OUTPUTS | IMAGE_OUTPUTS))} or .npy")
    from sweettok.data.video_writer import write_mp4

    return write_mp4(out, (frame for frames in frames_iter for frame in frames), fps=fps or 25)


@command("decode", help="decode an .npz token file to a video (mp4, mkv, webm, gif, ...), an image (png) or "
                    "frames (.npy)",
         args=[arg("tokens", help="token file (.npz) written by `sweettok encode`"),
               arg("-o", "--output", required=True, help="RECON.mp4, RECON.png or RECON.npy"),
               arg("--fps", type=float, default=None, help="frame rate of a video output (default: the source's)"),
               *_checkpoint_args()])
@_guarded
def decode(args: argparse.Namespace) -> int:
    from sweettok.api import Tokens

    tokens = Tokens.load(args.tokens)
    tok = _load(args)
    tok.check(tokens)
    out = Path(args.output)
    try:
        n, width, height = _write_frames(tok.iter_decode(tokens), out, args.fps or tokens.fps)
    except ValueError as exc:
        return _fail(str(exc), EXIT_INPUT)
    print(f"{args.tokens}: {n} frame(s) of {width}x{height}; wrote {out}")
    return 0


@command("generate", help="sample clips of a class from the trained token LM and decode them: videos (mp4, gif, "
                      "...), token files (.npz) or frames (.npy)",
         args=[arg("label", metavar="CLASS", help="class name (any case) or index; an unknown one lists them"),
               arg("-o", "--output", required=True,
                   help="OUT.mp4 (with -n > 1: OUT_00.mp4, OUT_01.mp4, ...), OUT.npz (token files for `sweettok "
                        "decode`) or OUT.npy (all samples, (n, T, H, W, 3) uint8)"),
               arg("-n", type=int, default=1, help="clips to sample (default 1)"),
               arg("--seed", type=int, default=0, help="the same seed, -n and settings give the same clips"),
               arg("--guidance", type=float, default=None, help="classifier-free guidance scale (default: the "
                                                                 "configuration's lm.sampling)"),
               arg("--temperature", type=float, default=None), arg("--top-k", type=int, default=None),
               arg("--top-p", type=float, default=None),
               arg("--fps", type=float, default=None, help="frame rate of a video output (default: lm.generation.fps)"),
               arg("--lm", default=None, help="token LM directory (default: the catalog's `token_lm`, "
                                               "data/06_models/token_lm)"),
               arg("--env", default="base", help="configuration environment of the sampling defaults"),
               *_checkpoint_args()])
@_guarded
def generate_clips(args: argparse.Namespace) -> int:
    import numpy as np

    from sweettok.api import Generator
    from sweettok.cli import load_params

    if args.n < 1:
        return _fail(f"-n must be at least 1, got {args.n}", EXIT_INPUT)
    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in VIDEO_OUTPUTS | {".npz", ".npy"}:
        return _fail(f"{out}: write {', '.join(sorted(VIDEO_OUTPUTS))}, .npz or .npy", EXIT_INPUT)
    lm_params = load_params(args.env).get("lm", {})
    sampling = dict(lm_params.get("sampling", {}))
    for key, value in (("guidance_scale", args.guidance), ("temperature", args.temperature),
                       ("top_k", args.top_k), ("top_p", args.top_p)):
        if value is not None:
            sampling[key] = value
    fps = args.fps or float((lm_params.get("generation") or {}).get("fps") or 8)
    gen = Generator.from_pretrained(args.lm, tokenizer=_load(args))
    samples = gen.sample(args.label, n=args.n, seed=args.seed, sampling=sampling, fps=fps)
    name = gen.classes[gen.class_index(args.label)]
    if suffix == ".npy":
        np.save(out, np.stack([gen.tokenizer.decode(t) for t in samples]), allow_pickle=False)
        written = [out]
    else:
        written = [out if args.n == 1 else out.with_name(f"{out.stem}_{i:02d}{out.suffix}") for i in range(args.n)]
        for tokens, path in zip(samples, written, strict=True):
            if suffix == ".npz":
                tokens.save(path)
            else:
                _write_frames(gen.tokenizer.iter_decode(tokens), path, fps)
    t, size = samples[0].frames, samples[0].width
    print(f"{args.n} clip(s) of class {name} ({t} frames of {size}x{size}, seed {args.seed}, guidance "
          f"{sampling.get('guidance_scale', 1.0)}); wrote " + ", ".join(str(p) for p in written))
    return 0


@command("words", help="the words of a token file, token by token (modifiers then the head word)",
         args=[arg("tokens", help="token file (.npz)"), arg("--json", action="store_true", help="print JSON"),
               *_checkpoint_args()])
@_guarded
def words(args: argparse.Namespace) -> int:
    from sweettok.api import Tokens

    tokens = Tokens.load(args.tokens)
    tok = _load(args)
    per_window = tok.words(tokens)
    group = tok.model.cfg.topk + 1
    spatial = tok.model.cfg.spatial_queries
    if args.json:
        print(json.dumps([[w for w, _ in window] for window in per_window]))
        return 0
    for i, window in enumerate(per_window):
        first = i * tokens.window
        last = min(tokens.frames, first + tokens.window) - 1
        phrases = [" ".join(w for w, _ in window[j:j + group]) for j in range(0, len(window), group)]
        print(f"window {i} (frames {first}-{last})")
        print("  spatial : " + " | ".join(phrases[:spatial]))
        if len(phrases) > spatial:
            print("  temporal: " + " | ".join(phrases[spatial:]))
    return 0


def checkpoint_info(args: argparse.Namespace) -> int:
    """``sweettok info CHECKPOINT``: what a tokenizer checkpoint is and what made it."""
    from sweettok.api import CheckpointError, Tokenizer

    try:
        info = Tokenizer.from_pretrained(args.checkpoint_dir, device="cpu").info()
    except CheckpointError as exc:
        return _fail(str(exc), EXIT_CHECKPOINT)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"tokenizer checkpoint {info['checkpoint']} (weights sha256 {info['identity'][:16]}...)")
    print(f"  input: {info['resolution']}x{info['resolution']} frames, windows of {info['window_frames']} frames")
    print(f"  ids: {info['ids_per_window']} per window ({info['latent_tokens_per_window']} tokens x "
          f"{info['topk'] + 1}), {info['ids_per_image']} per image")
    print("  vocabulary: " + ", ".join(f"{n} {k}" for k, n in info["vocabulary"].items()))
    print(f"  parameters: {info['parameters']:,}; token layout version {info['layout_version']}")
    prov = info["provenance"]
    if prov:
        print(f"  trained: step {prov.get('step')} of {prov.get('run_checkpoint')}, code {prov.get('code_version')}")
    return 0


# ---------------------------------------------------------------------- bench
@command("bench tokenizer",
         help="encode and decode clips per second and peak memory of a tokenizer checkpoint; JSON report",
         args=[*_checkpoint_args(), arg("--clips", type=int, default=16, help="clips per timed pass"),
               arg("--batch", type=int, default=8, help="clips per forward pass"),
               arg("--repeats", type=int, default=3, help="timed passes (the median is reported)"),
               arg("--height", type=int, default=240), arg("--width", type=int, default=320),
               arg("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"),
               arg("--out", default="data/08_reporting/bench_tokenizer.json", help="JSON output path")])
@_guarded
def bench_tokenizer(args: argparse.Namespace) -> int:
    import statistics

    import numpy as np
    import torch

    from sweettok.api import Tokenizer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    tok = Tokenizer.from_pretrained(args.checkpoint, device=args.device, batch_size=args.batch)
    frames = args.clips * tok.window
    # a moving gradient with noise: content does not change the work, only the shapes do
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:args.height, 0:args.width].astype(np.int32)
    video = np.empty((frames, args.height, args.width, 3), np.uint8)
    for t in range(frames):  # frame by frame: the input costs its own size in memory, nothing more
        base = (((x + 3 * t) % 256) * 3 // 5 + ((y + t) % 256) * 2 // 5).astype(np.uint8)
        video[t] = np.stack([base, base[:, ::-1], np.roll(base, 7, axis=1)], -1)
        video[t] = np.minimum(video[t], 247) + rng.integers(0, 8, video[t].shape, dtype=np.uint8)
    rss_input = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sync = torch.cuda.synchronize if tok.device.type == "cuda" else (lambda: None)
    if tok.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(tok.device)
    tokens = tok.encode(video[: tok.window * min(args.batch, args.clips)])  # warm-up
    tok.decode(tokens)
    enc, dec = [], []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        tokens = tok.encode(video)
        sync()
        enc.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = tok.decode(tokens)
        sync()
        dec.append(time.perf_counter() - start)
    assert out.shape == video.shape
    report = {
        "checkpoint": str(tok.path), "identity": tok.checkpoint, "device": str(tok.device),
        "threads": torch.get_num_threads(), "clips": args.clips, "batch": args.batch,
        "clip": [tok.window, args.height, args.width, 3], "model_input": [3, tok.window, tok.resolution, tok.resolution],
        "encode_seconds": enc, "decode_seconds": dec,
        "encode_clips_per_s": args.clips / statistics.median(enc),
        "decode_clips_per_s": args.clips / statistics.median(dec),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_before_timing_mib": rss_input,
        "input_mib": video.nbytes / 2**20,
        "peak_cuda_mib": (torch.cuda.max_memory_allocated(tok.device) / 2**20 if tok.device.type == "cuda" else None),
        "note": "end to end from uint8 frames: resize/pad, encode, decode, crop and resize back; median of repeats",
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{tok.path}: encode {report['encode_clips_per_s']:.2f} clips/s, decode {report['decode_clips_per_s']:.2f} "
          f"clips/s ({args.clips} clips of {tok.window}x{args.height}x{args.width}, batch {args.batch}, "
          f"{report['device']}, {report['threads']} threads); peak RSS {report['peak_rss_mib']:.0f} MiB "
          f"({report['peak_rss_before_timing_mib']:.0f} MiB with the model and the {report['input_mib']:.0f} MiB "
          "input loaded)"
          + (f", peak CUDA {report['peak_cuda_mib']:.0f} MiB" if report["peak_cuda_mib"] is not None else "")
          + f"; wrote {out_path}")
    return 0
