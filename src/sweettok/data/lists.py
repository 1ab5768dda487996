"""Reading a dataset's own list files, one line at a time, without ever stopping on one line.

Hand-written and downloaded lists hold names with spaces, quotes and non-ASCII characters,
Windows line ends, a byte-order mark, or a stray line that is not a list entry at all. Each
parser here turns every line into either an `Entry` (a file the dataset names, with its
label and split) or a `Reject` that keeps the line's text and says where it stood
(``<list file>:<line>``), so that one odd line costs one row in the rejects table and
nothing else.

Formats:

- UCF-101 ``classInd.txt``: ``<index> <class name>``; the name is the rest of the line.
- UCF-101 ``trainlistNN.txt``: ``<path> <class index>``; the path is everything before the
  trailing integer (so it may contain spaces). A line with no trailing integer takes its
  class from the path's first folder.
- UCF-101 ``testlistNN.txt``: ``<path>``, the whole line (a trailing integer is accepted
  when the whole line names no file).
- Kinetics-style CSV: ``youtube_id,time_start,time_end,label,split``, read with the
  ``csv`` module so that quoted fields with commas work.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

TEST_SPLIT_NAMES = {"test", "val", "valid", "validate", "validation"}
KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end", "label", "split")

_TRAILING_INT = re.compile(r"^(?P<path>.*\S)\s+(?P<index>[+-]?\d+)$")
_CLASS_LINE = re.compile(r"^(?P<index>\d+)\s+(?P<name>\S.*)$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Entry:
    """One file named by the dataset's lists, before probing.

    ``source`` is ``<list file>:<line>`` (or the list file alone when lines do not apply).
    """

    relpath: str
    label: str
    split: str
    source: str = ""


@dataclass(frozen=True)
class Reject:
    """A file or list line that cannot be used: ``reason`` is one of `schemas.REJECT_REASONS`."""

    path: str
    reason: str
    detail: str
    source: str = ""


def read_lines(path: Path, name: str) -> tuple[list[tuple[int, str]], list[Reject]]:
    """Non-blank lines of a text list as ``(line number, text)``, stripped of line ends and a BOM.

    A line that is not valid UTF-8, or that holds control characters, becomes a reject
    (``unparsable_line``) with its text shown as far as it can be decoded.
    """
    lines: list[tuple[int, str]] = []
    rejects: list[Reject] = []
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for lineno, chunk in enumerate(raw.split(b"\n"), 1):
        chunk = chunk.rstrip(b"\r")
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(Reject(chunk.decode("utf-8", errors="replace").strip(), "unparsable_line",
                                  f"not valid UTF-8 at byte {exc.start}", f"{name}:{lineno}"))
            continue
        text = text.strip()
        if not text:
            continue
        if _CONTROL.search(text):
            rejects.append(Reject(_CONTROL.sub("?", text), "unparsable_line", "control characters in the line",
                                  f"{name}:{lineno}"))
            continue
        lines.append((lineno, text))
    return lines, rejects


def _unquote(text: str) -> str:
    """Drop one pair of matching quotes around a whole path (``"a b.avi"`` -> ``a b.avi``)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def find_on_disk(root: Path, relpath: str) -> str:
    """The spelling of ``relpath`` that exists under ``root``: as written, with ``\\`` as ``/``, or
    in the other Unicode normal form (lists written on one system, files unpacked on another).
    The path as written when none exists.
    """
    candidates = [relpath]
    if "\\" in relpath:
        candidates.append(relpath.replace("\\", "/"))
    for form in ("NFC", "NFD"):
        candidates += [unicodedata.normalize(form, c) for c in list(candidates)]
    for candidate in dict.fromkeys(candidates):
        if (root / candidate).exists() or (root / candidate).is_symlink():
            return candidate
    return relpath


def parse_class_index(path: Path, name: str) -> tuple[dict[int, str], list[Reject]]:
    """``classInd.txt`` -> {index: class name}; bad or repeated lines become rejects."""
    lines, rejects = read_lines(path, name)
    classes: dict[int, str] = {}
    for lineno, text in lines:
        where = f"{name}:{lineno}"
        match = _CLASS_LINE.match(text)
        if match is None:
            rejects.append(Reject(text, "unparsable_line", "expected '<index> <class name>'", where))
            continue
        index, label = int(match["index"]), match["name"]
        if index in classes:
            rejects.append(Reject(text, "unparsable_line", f"class index {index} already names {classes[index]!r}",
                                  where))
        elif label in classes.values():
            rejects.append(Reject(text, "unparsable_line", f"class {label!r} listed under two indices", where))
        else:
            classes[index] = label
    return classes, rejects


def parse_ucf_split_list(path: Path, name: str, split: str, classes: dict[int, str],
                         root: Path) -> tuple[list[Entry], list[Reject]]:
    """One UCF-101 train or test list -> entries and rejects (see the module docstring)."""
    lines, rejects = read_lines(path, name)
    entries: list[Entry] = []
    folder_classes = set(classes.values())
    for lineno, text in lines:
        where = f"{name}:{lineno}"
        match = _TRAILING_INT.match(text)
        whole = find_on_disk(root, _unquote(text)) if match is None or split == "test" else None
        if match is None or (whole is not None and (root / whole).exists()):
            rel, index = whole, None
        else:
            rel, index = find_on_disk(root, _unquote(match["path"])), int(match["index"])
        if not rel:
            rejects.append(Reject(text, "unparsable_line", "no path before the class index", where))
            continue
        if index is not None:
            if index not in classes:
                rejects.append(Reject(rel, "unknown_label", f"class index {index} not in classInd.txt", where))
                continue
            label = classes[index]
        else:
            parts = Path(rel).parts
            label = parts[0] if len(parts) > 1 else ""
            if label not in folder_classes:
                rejects.append(Reject(rel, "unknown_label", f"folder {label!r} not in classInd.txt", where))
                continue
        entries.append(Entry(rel, label, split, where))
    return entries, rejects


def parse_kinetics_csv(path: Path, name: str) -> tuple[list[tuple[str, str, str, str]], list[Reject]]:
    """A Kinetics-style CSV -> ``(file stem, label, split, source)`` rows and rejects.

    The stem is ``<youtube_id>_<start:06d>_<end:06d>``, the name the common downloaders give.
    ``val``/``validate``/``test`` rows form the test split.
    """
    rows: list[tuple[str, str, str, str]] = []
    rejects: list[Reject] = []
    lines, bad = read_lines(path, name)
    rejects += bad
    text = "\n".join(t for _, t in lines)
    line_numbers = [n for n, _ in lines]
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    columns = {c.strip(): i for i, c in enumerate(header)}
    missing = [c for c in KINETICS_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a Kinetics list has {list(KINETICS_COLUMNS)}")
    for record in reader:
        # csv.reader counts physical lines; map back to the file's own line numbers
        lineno = line_numbers[min(reader.line_num, len(line_numbers)) - 1]
        where = f"{name}:{lineno}"
        raw = ",".join(record)
        if len(record) != len(header):
            rejects.append(Reject(raw, "unparsable_line", f"{len(record)} fields, the header has {len(header)}",
                                  where))
            continue
        field = {c: record[i].strip() for c, i in columns.items()}
        try:
            start, end = int(float(field["time_start"])), int(float(field["time_end"]))
        except ValueError:
            rejects.append(Reject(raw, "unparsable_line", "time_start/time_end are not numbers", where))
            continue
        if not field["youtube_id"] or not field["label"]:
            rejects.append(Reject(raw, "unparsable_line", "empty youtube_id or label", where))
            continue
        split = "test" if field["split"].lower() in TEST_SPLIT_NAMES else "train"
        rows.append((f"{field['youtube_id']}_{start:06d}_{end:06d}", field["label"], split, where))
    return rows, rejects
