"""Scanning a dataset root into a manifest of usable files and a table of rejects.

Three layouts are understood (`sweettok.data.lists` parses their list files):

- ``ucf101``: ``<Class>/<name>.avi|mp4`` with ``ucfTrainTestlist/{classInd,trainlistNN,testlistNN}.txt``;
  the split lists are the authority, as in UCF-101's protocol.
- ``kinetics``: a CSV with columns ``youtube_id,time_start,time_end,label,split`` and clip files
  named ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` anywhere under the root (the layout of the
  common Kinetics downloaders). ``val``/``validate`` rows form the test split.
- ``imagenet``: ``train|val/<class>/*.JPEG|jpg|png`` images; ``val`` is the test split.
- ``folders``: videos in one folder per class, ``<class>/**/<video>``, at any depth. The split
  is the folders' when there are ``train/<class>/`` and ``test|val|valid|validation/<class>/``
  folders; otherwise ``test_fraction`` of each class goes to the test split, chosen by a hash
  of the names (the same files give the same split on every machine). Files in the same
  subfolder of a class (``<class>/<group>/...``: one actor, one source video) stay in one
  split, so that near-copies do not leak between them; a class with one group is all training.

Every path named by a data file is resolved and must stay inside the root; a path that
escapes it (``..``, an absolute path, a symlink out) is rejected, not opened. A file or list
line that cannot be used goes to the rejects table, once, with its first reason, and the
scan goes on.

Splits are checked for leakage: a file named by both split lists, or the same bytes
(sha256) under two names in different splits, is an error naming both entries
(``on_split_conflict: error``) or a reject of every name involved (``reject``). A split
that ends empty stops the scan unless it is listed in ``allow_empty_splits``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import posixpath
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sweettok.data.lists import Entry, Reject, parse_class_index, parse_kinetics_csv, parse_ucf_split_list
from sweettok.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Probe, ProbeError, probe_file
from sweettok.schemas import empty_splits

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "ucf101", "kinetics", "imagenet", "folders")
SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "test", "valid": "test", "validation": "test"}
"""Folder names (any case) that name a split in the ``folders`` layout, and the split they name."""
SPLIT_CONFLICT_POLICIES = ("error", "reject")
MANIFEST_COLUMNS = ["video_id", "path", "root", "label", "label_index", "split", "kind", "frames", "fps",
                    "width", "height", "size_bytes", "sha256", "reader"]
REJECT_COLUMNS = ["path", "reason", "detail", "source"]


class SplitError(ValueError):
    """The splits are not usable as they are: leakage between them, or one of them empty."""


@dataclass
class ScanResult:
    manifest: pd.DataFrame
    rejects: pd.DataFrame
    captions: pd.DataFrame
    summary: str = ""


def resolve_inside(root: Path, relpath: str) -> Path | None:
    """``root / relpath`` if it resolves to a place inside ``root``, else None."""
    if not relpath or Path(relpath).is_absolute():
        return None
    root_resolved = root.resolve()
    target = (root_resolved / relpath).resolve()
    return target if target.is_relative_to(root_resolved) else None


def _visible_dirs(path: Path) -> list[Path]:
    """Sub-folders of ``path`` in name order, without hidden ones (``.git``, ``.ipynb_checkpoints``)
    and macOS's ``__MACOSX``."""
    return sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith((".", "__MACOSX")))


def _iter_files_under(path: Path, suffixes: set[str]):
    """Files with one of ``suffixes`` (any case) anywhere under ``path``, hidden ones left out, as found."""
    return (p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts))


def _files_under(path: Path, suffixes: set[str]) -> list[Path]:
    """:func:`_iter_files_under`, sorted."""
    return sorted(_iter_files_under(path, suffixes))


def _split_dirs(root: Path) -> dict[Path, str]:
    return {d: SPLIT_FOLDERS[d.name.lower()] for d in _visible_dirs(root) if d.name.lower() in SPLIT_FOLDERS}


def detect_layout(root: Path) -> str:
    if (root / "ucfTrainTestlist" / "classInd.txt").is_file():
        return "ucf101"
    if _kinetics_csv(root) is not None:
        return "kinetics"
    train = [d for d, split in _split_dirs(root).items() if split == "train"]
    if train and any(p.suffix.lower() in IMAGE_SUFFIXES for d in _visible_dirs(train[0]) for p in d.iterdir()):
        return "imagenet"
    # stops at the first video found: a large dataset is walked once, by the scan itself
    if any(next(_iter_files_under(d, VIDEO_SUFFIXES), None) is not None for d in _visible_dirs(root)):
        return "folders"
    raise ValueError(
        f"{root}: cannot tell the dataset layout (no ucfTrainTestlist/classInd.txt, no Kinetics CSV with "
        "youtube_id,time_start,time_end,label,split, no train/<class>/ images, no <class>/ folders of videos); "
        "set ingest.layout"
    )


def _kinetics_csv(root: Path) -> Path | None:
    for path in sorted(root.glob("*.csv")):
        with open(path, encoding="utf-8", errors="replace") as f:
            header = f.readline().lstrip("\ufeff")
        if {"youtube_id", "time_start", "time_end", "label", "split"} <= {c.strip() for c in header.split(",")}:
            return path
    return None


def _ucf101_entries(root: Path, split_index: int) -> tuple[list[Entry], list[Reject], list[str]]:
    lists = root / "ucfTrainTestlist"
    classes, rejects = parse_class_index(lists / "classInd.txt", "classInd.txt")
    if not classes:
        raise ValueError(f"{lists / 'classInd.txt'}: no usable '<index> <class name>' line")
    entries: list[Entry] = []
    for split, fname in (("train", f"trainlist{split_index:02d}.txt"), ("test", f"testlist{split_index:02d}.txt")):
        list_path = lists / fname
        if not list_path.is_file():
            raise FileNotFoundError(f"{list_path}: split list missing")
        found, bad = parse_ucf_split_list(list_path, fname, split, classes, root)
        entries += found
        rejects += bad
    return entries, rejects, [classes[i] for i in sorted(classes)]


def _kinetics_entries(root: Path) -> tuple[list[Entry], list[Reject], list[str]]:
    csv_path = _kinetics_csv(root)
    by_stem: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file():
            by_stem.setdefault(p.stem, p.relative_to(root).as_posix())
    rows, rejects = parse_kinetics_csv(csv_path, csv_path.name)
    entries = []
    for stem, label, split, source in rows:
        rel = by_stem.get(stem)
        if rel is None:
            rejects.append(Reject(stem, "missing_file", f"no clip file named {stem}.*", source))
            continue
        entries.append(Entry(rel, label, split, source))
    return entries, rejects, sorted({e.label for e in entries})


def _imagenet_entries(root: Path) -> tuple[list[Entry], list[Reject], list[str]]:
    entries = []
    for split_dir in ("train", "val"):
        base = root / split_dir
        if not base.is_dir():
            continue
        for p in sorted(base.glob("*/*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                entries.append(Entry(p.relative_to(root).as_posix(), p.parent.name,
                                     "train" if split_dir == "train" else "test", split_dir))
    return entries, [], sorted({e.label for e in entries})


def _hash_order(names: list[str]) -> list[str]:
    """``names`` in the order of their sha256: a fixed shuffle that does not depend on the machine."""
    return sorted(names, key=lambda n: hashlib.sha256(n.encode("utf-8")).hexdigest())


def _folders_entries(root: Path, test_fraction: float) -> tuple[list[Entry], list[Reject], list[str]]:
    entries: list[Entry] = []
    rejects: list[Reject] = []
    split_dirs = _split_dirs(root)
    if any(split == "train" for split in split_dirs.values()):
        for split_dir, split in split_dirs.items():
            for class_dir in _visible_dirs(split_dir):
                for p in _files_under(class_dir, VIDEO_SUFFIXES):
                    entries.append(Entry(p.relative_to(root).as_posix(), class_dir.name, split,
                                         f"{split_dir.name}/ folder"))
            for p in sorted(split_dir.iterdir()):
                if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file():
                    rejects.append(Reject(p.relative_to(root).as_posix(), "unknown_label",
                                          f"directly under {split_dir.name}/, in no class folder"))
        return entries, rejects, sorted({e.label for e in entries})
    for class_dir in _visible_dirs(root):
        groups: dict[str, list[str]] = defaultdict(list)
        for p in _files_under(class_dir, VIDEO_SUFFIXES):
            inner = p.relative_to(class_dir).parts
            groups[inner[0] if len(inner) > 1 else p.name].append(p.relative_to(root).as_posix())
        if not groups:
            continue
        order = _hash_order([f"{class_dir.name}/{g}" for g in groups])
        n_test = min(math.ceil(test_fraction * len(order)), len(order) - 1)
        test = set(order[:n_test])
        for g, files in groups.items():
            split = "test" if f"{class_dir.name}/{g}" in test else "train"
            entries += [Entry(rel, class_dir.name, split, f"{class_dir.name}/ folder, split by name hash")
                        for rel in files]
    for p in sorted(root.iterdir()):
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file():
            rejects.append(Reject(p.name, "unknown_label", "directly under the root, in no class folder"))
    return entries, rejects, sorted({e.label for e in entries})


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


def _conflict_error(kind: str, lines: list[str]) -> SplitError:
    shown = "\n  ".join(lines[:10]) + (f"\n  ... and {len(lines) - 10} more" if len(lines) > 10 else "")
    return SplitError(
        f"{len(lines)} {kind} between the train and test splits (test-set leakage):\n  {shown}\n"
        "Fix the split lists, or set ingest.on_split_conflict: reject to reject every name involved."
    )


def _split_list_conflicts(entries: list[Entry], policy: str) -> tuple[list[Entry], list[Reject], int]:
    """One entry per path: drop repeated lines of one split; a path in both splits is a conflict."""
    by_path: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_path[posixpath.normpath(e.relpath)].append(e)
    kept, rejects, repeats = [], [], 0
    conflicts = []
    for path, group in by_path.items():
        splits = {e.split for e in group}
        if len(splits) > 1:
            first = {s: next(e for e in group if e.split == s) for s in sorted(splits)}
            conflicts.append((path, " and ".join(f"{s} ({e.source})" for s, e in first.items())))
            continue
        repeats += len(group) - 1
        kept.append(group[0])
    if conflicts and policy == "error":
        raise _conflict_error("file(s) named in both split lists", [f"{p}: {where}" for p, where in conflicts])
    for path, where in conflicts:
        rejects.append(Reject(path, "in_both_splits", f"named by {where}", where))
    return kept, rejects, repeats


def _content_conflicts(rows: list[dict], policy: str) -> tuple[list[dict], list[Reject], int]:
    """Rows whose bytes (sha256) also stand under another name in the other split are a conflict."""
    by_hash: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_hash[r["sha256"]].append(r)
    dropped: set[int] = set()
    lines, rejects, same_split = [], [], 0
    for group in by_hash.values():
        if len(group) < 2:
            continue
        if len({r["split"] for r in group}) == 1:
            same_split += len(group) - 1
            continue
        names = ", ".join(f"{r['split']}:{r['path']}" for r in group)
        lines.append(f"sha256 {group[0]['sha256'][:12]}: {names}")
        for r in group:
            dropped.add(id(r))
            others = ", ".join(f"{o['split']}:{o['path']}" for o in group if o is not r)
            rejects.append(Reject(r["path"], "duplicate_content", f"same bytes as {others}", r["source"]))
    if lines and policy == "error":
        raise _conflict_error("set(s) of identical files under different names", lines)
    return [r for r in rows if id(r) not in dropped], rejects, same_split


def _probe_job(job: tuple[str, int]) -> tuple[Probe | None, tuple[str, str] | None]:
    """Probe in a worker process; a `ProbeError` comes back as (reason, detail), not raised."""
    path, min_frames = job
    try:
        return probe_file(Path(path), min_frames=min_frames), None
    except ProbeError as exc:
        return None, (exc.reason, exc.detail)


def _probe_all(jobs: list[tuple[str, int]], workers: int, desc: str, progress: bool):
    """`_probe_job` over ``jobs`` in order, in ``workers`` processes (spawned: the parent may hold
    threads and decoder state that a fork would copy)."""
    from tqdm.auto import tqdm

    if workers <= 1 or len(jobs) < 2:
        yield from tqdm(map(_probe_job, jobs), total=len(jobs), desc=desc, disable=not progress)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pool.map(_probe_job, jobs, chunksize=max(1, min(16, len(jobs) // (4 * workers))))
        yield from tqdm(results, total=len(jobs), desc=desc, disable=not progress)


def scan_dataset(root: str | Path, layout: str = "auto", min_frames: int = 17, split_index: int = 1,
                 on_split_conflict: str = "error", allow_empty_splits: tuple[str, ...] | list[str] = (),
                 workers: int = 1, progress: bool = True, test_fraction: float = 0.2) -> ScanResult:
    """Scan a dataset root; probe and hash every file its lists name.

    Args:
        root: the dataset root.
        layout: one of `LAYOUTS`.
        min_frames: videos with fewer frames are rejected as ``too_short`` (one clip's length).
        split_index: which UCF-101 split lists to use (1-3).
        on_split_conflict: ``error`` (raise `SplitError` naming both entries) or ``reject`` (reject
            every name involved) for a file in both splits or the same bytes in two splits.
        allow_empty_splits: splits that may end with no file; any other empty split raises `SplitError`.
        workers: processes that probe files in parallel (each decodes whole videos).
        test_fraction: the ``folders`` layout without split folders: the share of each class's
            groups that goes to the test split (rounded up; at least one group stays in training).

    Returns:
        the manifest (one row per usable file, with the reader that returns its frames
        correctly), the rejects (path, reason, detail, source: ``<list>:<line>`` where a list
        named it), the captions of kept videos (empty when the dataset has no ``captions.csv``)
        and a summary for people.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"dataset root {root_path} does not exist")
    if layout not in LAYOUTS:
        raise ValueError(f"ingest.layout={layout!r}: must be one of {LAYOUTS}")
    if on_split_conflict not in SPLIT_CONFLICT_POLICIES:
        raise ValueError(f"ingest.on_split_conflict={on_split_conflict!r}: must be one of {SPLIT_CONFLICT_POLICIES}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"ingest.test_fraction={test_fraction!r}: must lie strictly between 0 and 1")
    if layout == "auto":
        layout = detect_layout(root_path)
    make = {"ucf101": lambda: _ucf101_entries(root_path, split_index),
            "kinetics": lambda: _kinetics_entries(root_path),
            "imagenet": lambda: _imagenet_entries(root_path),
            "folders": lambda: _folders_entries(root_path, test_fraction)}[layout]
    entries, rejects, classes = make()
    named = {posixpath.normpath(e.relpath) for e in entries} | {posixpath.normpath(r.path) for r in rejects}
    entries, conflict_rejects, repeated_lines = _split_list_conflicts(entries, on_split_conflict)
    rejects += conflict_rejects
    label_index = {c: i for i, c in enumerate(classes)}

    rows: list[dict] = []
    root_resolved = root_path.resolve()
    to_probe: list[tuple[Entry, Path]] = []
    for entry in entries:
        path = resolve_inside(root_path, entry.relpath)
        if path is None:
            rejects.append(Reject(entry.relpath, "path_escapes_root", f"resolves outside {root_path}", entry.source))
        elif not path.is_file():
            rejects.append(Reject(entry.relpath, "missing_file", "named by the dataset's lists but not on disk",
                                  entry.source))
        else:
            to_probe.append((entry, path))
    jobs = [(str(path), 1 if layout == "imagenet" else min_frames) for _, path in to_probe]
    probes = _probe_all(jobs, workers, f"probing {layout} files", progress)
    for (entry, path), (probe, error) in zip(to_probe, probes):
        if error is not None:
            rejects.append(Reject(entry.relpath, *error, entry.source))
            continue
        if probe.note:
            log.info("%s: read sequentially (%s)", entry.relpath, probe.note)
        rel = path.relative_to(root_resolved).as_posix()
        rows.append({
            "video_id": rel.rsplit(".", 1)[0], "path": rel, "root": str(root), "label": entry.label,
            "label_index": label_index[entry.label], "split": entry.split, "kind": probe.kind,
            "frames": probe.frames, "fps": probe.fps, "width": probe.width, "height": probe.height,
            "size_bytes": probe.size_bytes, "sha256": probe.sha256, "reader": probe.reader, "source": entry.source,
        })
    rows, content_rejects, same_split_copies = _content_conflicts(rows, on_split_conflict)
    rejects += content_rejects
    if layout == "ucf101":
        # a video on disk that no split list names is reported, not silently dropped
        for p in sorted(root_path.glob("*/*")):
            rel = p.relative_to(root_path).as_posix()
            if p.suffix.lower() in VIDEO_SUFFIXES and posixpath.normpath(rel) not in named:
                rejects.append(Reject(rel, "not_in_split_lists", "on disk but in no train/test list"))

    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)  # drops the working 'source' column
    ids = manifest["video_id"].duplicated(keep="first")
    manifest.loc[ids, "video_id"] = manifest.loc[ids, "path"]  # a.avi and a.mp4: the second keeps its suffix
    # one row per bad file, with its first reason
    seen: set[str] = set()
    unique_rejects = []
    for r in rejects:
        key = posixpath.normpath(r.path) if r.reason != "unparsable_line" else f"{r.source}\0{r.path}"
        if key not in seen:
            seen.add(key)
            unique_rejects.append(r)
    reject_table = pd.DataFrame([[r.path, r.reason, r.detail, r.source] for r in unique_rejects],
                                columns=REJECT_COLUMNS)

    captions = _read_captions(root_path)
    cap_rows = [
        {"video_id": r.video_id, "label": r.label, "split": r.split, "caption": captions[r.path][0],
         "tagged": captions[r.path][1]}
        for r in manifest.itertuples(index=False) if r.path in captions
    ]
    caption_table = pd.DataFrame(cap_rows, columns=["video_id", "label", "split", "caption", "tagged"])

    summary = ingest_summary(root_path, layout, manifest, reject_table, repeated_lines, same_split_copies)
    for line in summary.splitlines():
        log.info(line)
    for split in empty_splits(manifest["split"], allow_empty_splits)[:1]:
        reasons = ", ".join(f"{k} {n}" for k, n in sorted(Counter(r.reason for r in unique_rejects).items()))
        raise SplitError(f"ingest of {root_path}: the {split} split is empty after ingest (rejects: "
                         f"{reasons or 'no file was named for it'}). Fix the split lists, or add the split to "
                         "ingest.allow_empty_splits.")
    return ScanResult(manifest, reject_table, caption_table, summary)


def ingest_summary(root: Path, layout: str, manifest: pd.DataFrame, rejects: pd.DataFrame,
                   repeated_lines: int = 0, same_split_copies: int = 0) -> str:
    """The lines a person reads at the end of ingest: kept by split, rejected by reason, readers used."""
    def counts(series: pd.Series) -> str:
        return ", ".join(f"{k} {n}" for k, n in sorted(Counter(series).items())) or "none"

    lines = [
        f"ingest of {root} ({layout}): kept {len(manifest)} ({counts(manifest['split'])}); "
        f"rejected {len(rejects)}",
        f"  rejected by reason: {counts(rejects['reason'])}",
        f"  readers: {counts(manifest['reader'])} (decord = random access checked against sequential "
        "decoding; pyav = sequential decoding)",
    ]
    if repeated_lines or same_split_copies:
        lines.append(f"  also: {repeated_lines} repeated list line(s) ignored; {same_split_copies} file(s) "
                     "with the same bytes as another file of the same split kept")
    return "\n".join(lines)
