"""Ingest and patchify a folder of varied video files, then audit every cached clip.

    python scripts/check_ingest.py make  DIR        # write a UCF-101-style folder of varied files
    python scripts/check_ingest.py audit DIR [--out verdicts.csv] [--numbered]

``make`` writes videos of real photographs (scikit-image's) under a slow camera pan and zoom,
in many codecs and containers (H.264, HEVC 8/10-bit, AV1, VP8, VP9, MPEG-4 Part 2 with
B-frames in AVI, DivX 3, MPEG-2 program stream, MJPEG, FFV1, ProRes, FLV, WMV, MPEG-TS,
variable frame rate, a portrait phone video stored on its side with a display rotation), at
odd sizes and with long names holding spaces and non-ASCII characters, plus a few broken
files. Every frame carries its own number as eight black or
white blocks in its top-left corner, so that a frame's identity can be read from its pixels.

``audit`` runs ingest (`scan_dataset`) and patchify (`build_clip_cache`) on any UCF-101-style
folder and compares every cached clip with the same frames decoded sequentially and
resized the same way; ``--numbered`` also reads the frame numbers of files that ``make``
wrote. It prints one verdict per file and writes them to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

# 'make' writes its files with PyAV alone, independent of the code under test; the project's
# modules are imported in 'audit' only. (decord loaded before PyAV breaks PyAV's libvpx encoder
# in the same process; sweettok.data.video imports PyAV first for that reason.)

LONG = "a very long file name with spaces, accents (é, ü, ø), CJK 動画 and emoji-free punctuation [1] & more"

# (class, file name, codec, container format, width, height, frames, fps, pix_fmt, options, B-frames, GOP)
FILES = [
    ("Walk", "h264 320x240 ucf-like.mp4", "libx264", "mp4", 320, 240, 150, 25, "yuv420p", {"crf": "23"}, 3, 250),
    ("Walk", "h264 100x72.mkv", "libx264", "matroska", 100, 72, 40, 30, "yuv420p", {"crf": "20"}, 3, 250),
    ("Walk", "mpeg4 B-frames gop12.avi", "mpeg4", "avi", 320, 240, 200, 25, "yuv420p", {"qscale": "4"}, 2, 12),
    ("Walk", "divx3 176x144.avi", "msmpeg4v3", "avi", 176, 144, 120, 25, "yuv420p", {"qscale": "4"}, 0, 50),
    ("Walk", "mjpeg odd 161x91.avi", "mjpeg", "avi", 161, 91, 60, 24, "yuvj420p", {}, 0, 1),
    ("Run", "vp9 odd 161x91.webm", "libvpx-vp9", "webm", 161, 91, 90, 30, "yuv420p", {"crf": "32", "b": "0"}, 0, 60),
    ("Run", "vp8 256x144.webm", "libvpx", "webm", 256, 144, 80, 30, "yuv420p", {"crf": "10", "b": "1M"}, 0, 60),
    ("Run", "mpeg2 program stream.mpg", "mpeg2video", "mpeg", 352, 288, 120, 25, "yuv420p", {"qscale": "3"}, 2, 15),
    ("Run", "hevc 320x180.mp4", "libx265", "mp4", 320, 180, 100, 30, "yuv420p", {"crf": "26", "x265-params": "log-level=none"}, 3, 60),
    ("Run", "hevc 10-bit phone-like.mov", "libx265", "mov", 320, 180, 64, 30, "yuv420p10le", {"crf": "26", "x265-params": "log-level=none"}, 3, 30),
    ("Jump", "av1 192x108.mkv", "libsvtav1", "matroska", 192, 108, 60, 24, "yuv420p", {"crf": "40", "preset": "12"}, 0, 32),
    ("Jump", "flv1 320x240.flv", "flv", "flv", 320, 240, 60, 25, "yuv420p", {"qscale": "4"}, 0, 30),
    ("Jump", "wmv2 320x240.wmv", "wmv2", "asf", 320, 240, 60, 25, "yuv420p", {"qscale": "4"}, 0, 30),
    ("Jump", "h264 transport stream.ts", "libx264", "mpegts", 320, 240, 100, 25, "yuv420p", {"crf": "23"}, 3, 50),
    ("Jump", "h264 1280x720 hd.mov", "libx264", "mov", 1280, 720, 48, 30, "yuv420p", {"crf": "28", "preset": "ultrafast"}, 3, 24),
    ("Wave", "ffv1 lossless odd 97x61.mkv", "ffv1", "matroska", 97, 61, 40, 25, "yuv420p", {}, 0, 1),
    ("Wave", "prores 422 10-bit.mov", "prores_ks", "mov", 160, 96, 40, 25, "yuv422p10le", {}, 0, 1),
    ("Wave", "h264 4-4-4 odd 101x73.mp4", "libx264", "mp4", 101, 73, 48, 25, "yuv444p", {"crf": "18"}, 2, 24),
    ("Wave", f"{LONG}.mp4", "libx264", "mp4", 240, 136, 60, 25, "yuv420p", {"crf": "23"}, 3, 250),
]
CLASSES = ["Walk", "Run", "Jump", "Wave"]


def number_blocks(frame: np.ndarray, number: int) -> None:
    """Write ``number`` (0-255) as eight 8-pixel black/white blocks along the top-left edge."""
    for bit in range(8):
        frame[0:8, bit * 8 : (bit + 1) * 8] = 255 if (number >> bit) & 1 else 0


def read_number(frame: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if frame[2:6, bit * 8 + 2 : bit * 8 + 6].mean() > 128)


def photo_frames(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """A real photograph under a slow pan and zoom, each frame numbered."""
    from skimage import data as skdata
    from skimage.transform import resize

    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]
    photo = getattr(skdata, names[seed % len(names)])()
    photo = photo[..., :3] if photo.ndim == 3 else np.repeat(photo[..., None], 3, axis=2)
    ph, pw = photo.shape[:2]
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        t = i / max(n - 1, 1)
        scale = 0.6 + 0.25 * t
        ch, cw = int(ph * scale), int(min(pw, ph * scale * width / height))
        top, left = int((ph - ch) * (0.2 + 0.5 * t)), int((pw - cw) * (0.8 - 0.6 * t))
        crop = photo[top : top + ch, left : left + cw]
        out[i] = (resize(crop, (height, width), anti_aliasing=True) * 255).round().astype(np.uint8)
        number_blocks(out[i], i)
    return out


def encode(path: Path, frames: np.ndarray, codec: str, fmt: str, fps: int, pix_fmt: str, options: dict,
           b_frames: int, gop: int, vfr: bool = False, rotation: int = 0) -> None:
    """Write ``frames`` as stored; ``rotation``: a display rotation (degrees counter-clockwise) for
    players to apply, as phones write portrait videos."""
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            if vfr:  # 40 ms and 80 ms steps alternating in runs, like a phone that drops frames
                frame.pts, frame.time_base = t, Fraction(1, 1000)
                t += 80 if (i // 7) % 2 else 40
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for k, (label, name, codec, fmt, w, h, n, fps, pix, opts, bf, gop) in enumerate(FILES):
        rel = f"{label}/{name}"
        (root / label).mkdir(exist_ok=True)
        try:
            encode(root / rel, photo_frames(n, h, w, k), codec, fmt, fps, pix, opts, bf, gop)
        except Exception as exc:  # an encoder this PyAV build lacks, or a size it refuses
            print(f"skipped {rel}: {type(exc).__name__}: {exc}", file=sys.stderr)
            (root / rel).unlink(missing_ok=True)
            continue
        (test if k % 3 == 2 else train).append((rel, CLASSES.index(label) + 1))
        print(f"wrote {rel}", file=sys.stderr)
    encode(root / "Wave/h264 variable frame rate.mp4", photo_frames(90, 144, 192, 7), "libx264", "mp4", 25,
           "yuv420p", {"crf": "23"}, 2, 48, vfr=True)
    train.append(("Wave/h264 variable frame rate.mp4", 4))
    # a phone's portrait video: upright 108 x 192 frames stored on their side (turned a quarter
    # counter-clockwise) with a display rotation of -90 (a quarter clockwise) that puts them upright
    upright = photo_frames(60, 192, 108, 8)
    encode(root / "Wave/h264 portrait phone rotation.mp4", np.ascontiguousarray(np.rot90(upright, 1, axes=(1, 2))),
           "libx264", "mp4", 30, "yuv420p", {"crf": "23"}, 2, 30, rotation=-90)
    train.append(("Wave/h264 portrait phone rotation.mp4", 4))
    # broken files a real collection has
    good = (root / "Walk/h264 320x240 ucf-like.mp4").read_bytes()
    (root / "Walk/cut short.mp4").write_bytes(good[: len(good) // 3])
    mkv = (root / "Walk/h264 100x72.mkv").read_bytes()
    (root / "Walk/cut short.mkv").write_bytes(mkv[: len(mkv) // 2])
    (root / "Run/actually text.avi").write_text("this is not a video\n")
    import av

    with av.open(str(root / "Run/audio only.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for _ in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    train += [("Walk/cut short.mp4", 1), ("Walk/cut short.mkv", 1), ("Run/actually text.avi", 2),
              ("Run/audio only.mp4", 2)]
    lists = root / "ucfTrainTestlist"
    lists.mkdir(exist_ok=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(CLASSES, 1)))
    (lists / "trainlist01.txt").write_text("".join(f"{rel} {i}\r\n" for rel, i in train), encoding="utf-8")
    (lists / "testlist01.txt").write_text("".join(f"{rel}\r\n" for rel, _ in test), encoding="utf-8")


def describe(path: Path) -> str:
    import av

    with av.open(str(path)) as container:
        s = container.streams.video[0]
        return f"{s.codec_context.name}/{s.codec_context.pix_fmt} in {container.format.name.split(',')[0]}"


def audit(root: Path, out: Path | None, numbered: bool, frames: int, resolution: int) -> pd.DataFrame:
    from sweettok.data.clips import ClipCacheConfig, ClipDataset, build_clip_cache, read_windows, resize_and_crop
    from sweettok.data.scan import scan_dataset
    from sweettok.data.video import frame_rgb, iter_frames_sequential

    t0 = time.perf_counter()
    scan = scan_dataset(root, min_frames=frames, on_split_conflict="reject", progress=False)
    t_ingest = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as shard_dir:
        cfg = ClipCacheConfig(frames=frames, resolution=resolution, train_clips_per_video=3)
        t0 = time.perf_counter()
        index = build_clip_cache(scan.manifest, cfg, shard_dir, progress=False)
        t_patchify = time.perf_counter() - t0
        clips = ClipDataset(index, shard_dir, verify=True)
        rows = []
        for video in scan.manifest.itertuples(index=False):
            path = root / video.path
            sequential = np.stack([frame_rgb(f) for f in iter_frames_sequential(path)])
            mine = np.flatnonzero(index["video_id"].to_numpy() == video.video_id)
            exact = all(np.array_equal(clips.read_uint8(int(i)),
                                       resize_and_crop(sequential[index.at[int(i), "start_frame"]:][:frames], resolution))
                        for i in mine)
            numbers_ok = ""
            if numbered:
                starts = index.loc[mine, "start_frame"].astype(int).tolist()
                windows, _ = read_windows(path, video.reader, starts, frames, 1)
                numbers_ok = all([read_number(f) for f in clip] == list(range(s, s + frames)) for s, clip in windows)
            rows.append({"file": video.path, "codec": describe(path), "size": f"{video.width}x{video.height}",
                         "frames": video.frames, "split": video.split, "reader": video.reader,
                         "clips": len(mine), "clip readers": ",".join(sorted(set(index.loc[mine, "reader"]))),
                         "cache = sequential decode": exact, "frame numbers right": numbers_ok, "verdict": "kept"})
        for r in scan.rejects.itertuples(index=False):
            rows.append({"file": r.path, "verdict": f"rejected: {r.reason} ({r.detail})"})
    table = pd.DataFrame(rows)
    table[["frames", "clips"]] = table[["frames", "clips"]].astype("Int64")
    print(scan.summary)
    print(f"ingest {t_ingest:.1f} s, patchify {t_patchify:.1f} s; {len(index)} clips")
    with pd.option_context("display.max_colwidth", 70, "display.width", 250, "display.max_columns", 20):
        print(table.astype(object).fillna("").to_string(index=False))
    if out is not None:
        table.to_csv(out, index=False)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("make").add_argument("root", type=Path)
    a = sub.add_parser("audit")
    a.add_argument("root", type=Path)
    a.add_argument("--out", type=Path)
    a.add_argument("--numbered", action="store_true", help="files written by 'make': check frame numbers too")
    a.add_argument("--frames", type=int, default=17)
    a.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.what == "make":
        make(args.root)
        return 0
    table = audit(args.root, args.out, args.numbered, args.frames, args.resolution)
    kept = table[table["verdict"] == "kept"]
    bad = kept[(kept["cache = sequential decode"] != True) | (args.numbered & (kept["frame numbers right"] != True))]  # noqa: E712
    return 1 if len(bad) else 0


if __name__ == "__main__":
    sys.exit(main())
