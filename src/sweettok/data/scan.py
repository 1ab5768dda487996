"""Scanning a dataset root into a manifest of usable files and a table of rejects.

Three layouts are understood:

- ``ucf101``: ``<Class>/<name>.avi|mp4`` with ``ucfTrainTestlist/{classInd,trainlistNN,testlistNN}.txt``;
  the split lists are the authority, as in UCF-101's protocol.
- ``kinetics``: a CSV with columns ``youtube_id,time_start,time_end,label,split`` and clip files
  named ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` anywhere under the root (the layout of the
  common Kinetics downloaders). ``val``/``validate`` rows form the test split.
- ``imagenet``: ``train|val/<class>/*.JPEG|jpg|png`` images; ``val`` is the test split.

Every path named by a data file is resolved and must stay inside the root; a path that
escapes it (``..``, an absolute path, a symlink out) is rejected, not opened. A file that
cannot be used goes to the rejects table with its reason and the scan goes on.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sweettok.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ProbeError, probe_file

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "ucf101", "kinetics", "imagenet")
TEST_SPLIT_NAMES = {"test", "val", "valid", "validate", "validation"}


@dataclass(frozen=True)
class Entry:
    """One file named by the dataset's own lists, before probing."""

    relpath: str
    label: str
    split: str


@dataclass
class ScanResult:
    manifest: pd.DataFrame
    rejects: pd.DataFrame
    captions: pd.DataFrame


def resolve_inside(root: Path, relpath: str) -> Path | None:
    """``root / relpath`` if it resolves to a place inside ``root``, else None."""
    if not relpath or Path(relpath).is_absolute():
        return None
    root_resolved = root.resolve()
    target = (root_resolved / relpath).resolve()
    return target if target.is_relative_to(root_resolved) else None


def detect_layout(root: Path) -> str:
    if (root / "ucfTrainTestlist" / "classInd.txt").is_file():
        return "ucf101"
    if any(_is_kinetics_csv(p) for p in sorted(root.glob("*.csv"))):
        return "kinetics"
    if (root / "train").is_dir() and any((root / "train").iterdir()):
        return "imagenet"
    raise ValueError(
        f"{root}: cannot tell the dataset layout (no ucfTrainTestlist/classInd.txt, no Kinetics CSV with "
        "youtube_id,time_start,time_end,label,split, no train/<class>/ folders); set ingest.layout"
    )


def _is_kinetics_csv(path: Path) -> bool:
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    return {"youtube_id", "time_start", "time_end", "label", "split"} <= set(header)


def _ucf101_entries(root: Path, split_index: int) -> tuple[list[Entry], list[tuple[str, str, str]], list[str]]:
    lists = root / "ucfTrainTestlist"
    classes: list[str] = []
    for line in (lists / "classInd.txt").read_text().splitlines():
        if line.strip():
            idx, name = line.split()
            if int(idx) != len(classes) + 1:
                raise ValueError(f"{lists / 'classInd.txt'}: class indices must run 1, 2, ...; got {idx} for {name}")
            classes.append(name)
    entries: list[Entry] = []
    rejects: list[tuple[str, str, str]] = []
    for split, fname in (("train", f"trainlist{split_index:02d}.txt"), ("test", f"testlist{split_index:02d}.txt")):
        list_path = lists / fname
        if not list_path.is_file():
            raise FileNotFoundError(f"{list_path}: split list missing")
        for lineno, line in enumerate(list_path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            rel = parts[0]
            if len(parts) > 1:
                idx = int(parts[1])
                if not 1 <= idx <= len(classes):
                    rejects.append((rel, "unknown_label", f"{fname}:{lineno}: class index {idx} not in classInd.txt"))
                    continue
                label = classes[idx - 1]
            else:
                label = Path(rel).parts[0] if len(Path(rel).parts) > 1 else ""
                if label not in classes:
                    rejects.append((rel, "unknown_label", f"{fname}:{lineno}: folder {label!r} not in classInd.txt"))
                    continue
            entries.append(Entry(rel, label, split))
    return entries, rejects, classes


def _kinetics_entries(root: Path) -> tuple[list[Entry], list[tuple[str, str, str]], list[str]]:
    csv_path = next(p for p in sorted(root.glob("*.csv")) if _is_kinetics_csv(p))
    by_stem: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file():
            by_stem.setdefault(p.stem, p.relative_to(root).as_posix())
    entries, rejects = [], []
    for row in pd.read_csv(csv_path, dtype={"youtube_id": str}).itertuples(index=False):
        stem = f"{row.youtube_id}_{int(row.time_start):06d}_{int(row.time_end):06d}"
        split = "test" if str(row.split).lower() in TEST_SPLIT_NAMES else "train"
        rel = by_stem.get(stem)
        if rel is None:
            rejects.append((stem, "missing_file", f"{csv_path.name}: no clip file named {stem}.*"))
            continue
        entries.append(Entry(rel, str(row.label), split))
    return entries, rejects, sorted({e.label for e in entries})


def _imagenet_entries(root: Path) -> tuple[list[Entry], list[tuple[str, str, str]], list[str]]:
    entries = []
    for split_dir in ("train", "val"):
        base = root / split_dir
        if not base.is_dir():
            continue
        for p in sorted(base.glob("*/*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                entries.append(Entry(p.relative_to(root).as_posix(), p.parent.name, "train" if split_dir == "train" else "test"))
    return entries, [], sorted({e.label for e in entries})


def _read_captions(root: Path) -> dict[str, tuple[str, str]]:
    path = root / "captions.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"path", "caption"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    tagged = table["tagged"] if "tagged" in table.columns else [""] * len(table)
    return {p: (c, t) for p, c, t in zip(table["path"], table["caption"], tagged)}


def scan_dataset(root: str | Path, layout: str = "auto", min_frames: int = 17, split_index: int = 1,
                 progress: bool = True) -> ScanResult:
    """Scan a dataset root; probe and hash every file its lists name.

    Args:
        root: the dataset root.
        layout: one of `LAYOUTS`.
        min_frames: videos with fewer frames are rejected as ``too_short`` (one clip's length).
        split_index: which UCF-101 split lists to use (1-3).

    Returns:
        the manifest (one row per usable file), the rejects (path, reason, detail) and the
        captions of kept videos (empty when the dataset has no ``captions.csv``).
    """
    from tqdm.auto import tqdm

    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"dataset root {root_path} does not exist")
    if layout not in LAYOUTS:
        raise ValueError(f"ingest.layout={layout!r}: must be one of {LAYOUTS}")
    if layout == "auto":
        layout = detect_layout(root_path)
    make = {"ucf101": lambda: _ucf101_entries(root_path, split_index),
            "kinetics": lambda: _kinetics_entries(root_path),
            "imagenet": lambda: _imagenet_entries(root_path)}[layout]
    entries, rejects, classes = make()
    label_index = {c: i for i, c in enumerate(classes)}

    rows = []
    listed: set[Path] = set()
    for entry in tqdm(entries, desc=f"probing {layout} files", disable=not progress):
        path = resolve_inside(root_path, entry.relpath)
        if path is None:
            rejects.append((entry.relpath, "path_escapes_root", f"resolves outside {root_path}"))
            continue
        listed.add(path)
        if not path.is_file():
            rejects.append((entry.relpath, "missing_file", "named by the dataset's lists but not on disk"))
            continue
        try:
            probe = probe_file(path, min_frames=1 if layout == "imagenet" else min_frames)
        except ProbeError as exc:
            rejects.append((entry.relpath, exc.reason, exc.detail))
            continue
        rel = path.relative_to(root_path.resolve()).as_posix()
        rows.append({
            "video_id": rel.rsplit(".", 1)[0],
            "path": rel,
            "root": str(root),
            "label": entry.label,
            "label_index": label_index[entry.label],
            "split": entry.split,
            "kind": probe.kind,
            "frames": probe.frames,
            "fps": probe.fps,
            "width": probe.width,
            "height": probe.height,
            "size_bytes": probe.size_bytes,
            "sha256": probe.sha256,
        })
    if layout == "ucf101":
        # a video on disk that no split list names is reported, not silently dropped
        for p in sorted(root_path.resolve().glob("*/*")):
            if p.suffix.lower() in VIDEO_SUFFIXES and p not in listed:
                rejects.append((p.relative_to(root_path.resolve()).as_posix(), "not_in_split_lists",
                                "on disk but in no train/test list"))

    columns = ["video_id", "path", "root", "label", "label_index", "split", "kind", "frames", "fps",
               "width", "height", "size_bytes", "sha256"]
    manifest = pd.DataFrame(rows, columns=columns)
    dup = manifest["video_id"].duplicated(keep="first")
    for rel in manifest.loc[dup, "path"]:
        log.warning("%s: listed twice, keeping the first entry", rel)
    manifest = manifest[~dup].reset_index(drop=True)
    reject_table = pd.DataFrame(rejects, columns=["path", "reason", "detail"])

    captions = _read_captions(root_path)
    cap_rows = [
        {"video_id": r.video_id, "label": r.label, "split": r.split, "caption": captions[r.path][0],
         "tagged": captions[r.path][1]}
        for r in manifest.itertuples(index=False) if r.path in captions
    ]
    caption_table = pd.DataFrame(cap_rows, columns=["video_id", "label", "split", "caption", "tagged"])

    by_reason = Counter(reject_table["reason"])
    log.info(
        "ingest %s (%s): kept %d (%s); rejected %d%s",
        root_path, layout, len(manifest),
        ", ".join(f"{s} {n}" for s, n in manifest["split"].value_counts().sort_index().items()) or "none",
        len(reject_table),
        "".join(f"; {reason}: {n}" for reason, n in sorted(by_reason.items())),
    )
    return ScanResult(manifest, reject_table, caption_table)
