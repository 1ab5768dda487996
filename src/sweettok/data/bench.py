"""Benchmark: reading test clips from the clip cache against decoding them from the videos.

Both sides produce the same float tensors (C, T, H, W) in [-0.5, 0.5] for the same clips,
measured one after the other in one process; the JSON holds both throughputs and their
ratio (the ratio is the figure to quote: absolute times on shared machines are noisy).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sweettok.data.clips import ClipDataset, resize_and_crop
from sweettok.data.video import read_frames


def _decode_clip(path: Path, start: int, frames: int, stride: int, resolution: int) -> torch.Tensor:
    raw = read_frames(path, list(range(start, start + (frames - 1) * stride + 1, stride)))
    clip = torch.from_numpy(resize_and_crop(raw, resolution)).permute(3, 0, 1, 2)
    return clip.float() / 255.0 - 0.5


def bench_cache(index_path: str, manifest_path: str, shard_dir: str, out: str, split: str = "test",
                frame_stride: int = 1, repeats: int = 3) -> dict:
    """Time reading every ``split`` clip from the cache and from the mp4 files; write JSON to ``out``."""
    index = pd.read_parquet(index_path)
    index = index[index["split"] == split].reset_index(drop=True)
    manifest = pd.read_parquet(manifest_path).set_index("video_id")
    if index.empty:
        raise ValueError(f"{index_path}: no {split} clips to benchmark")
    dataset = ClipDataset(index, shard_dir)
    resolution = int(index["height"].iloc[0])

    def from_cache() -> float:
        return float(sum(dataset[i]["clip"].sum() for i in range(len(dataset))))

    def from_video() -> float:
        total = 0.0
        for row in index.itertuples(index=False):
            video = manifest.loc[row.video_id]
            clip = _decode_clip(Path(video["root"]) / video["path"], int(row.start_frame), int(row.frames),
                                frame_stride, resolution)
            total += float(clip.sum())
        return total

    # the two paths must agree on the pixels (they share the resize), so they time the same work
    first = dataset[0]["clip"]
    row = index.iloc[0]
    video = manifest.loc[row.video_id]
    direct = _decode_clip(Path(video["root"]) / video["path"], int(row.start_frame), int(row.frames),
                          frame_stride, resolution)
    max_diff = float((first - direct).abs().max())

    timings: dict[str, list[float]] = {"cache": [], "decode": []}
    for _ in range(repeats):
        for name, fn in (("cache", from_cache), ("decode", from_video)):
            t0 = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - t0)
    n = len(index)
    cache_s, decode_s = float(np.median(timings["cache"])), float(np.median(timings["decode"]))
    result = {
        "split": split,
        "clips": n,
        "clip_shape": [3, int(row.frames), resolution, resolution],
        "repeats": repeats,
        "cache_seconds_median": cache_s,
        "decode_seconds_median": decode_s,
        "cache_clips_per_s": n / cache_s,
        "decode_clips_per_s": n / decode_s,
        "cache_over_decode_throughput": decode_s / cache_s,
        "max_abs_pixel_diff_cache_vs_decode": max_diff,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2))
    return result
