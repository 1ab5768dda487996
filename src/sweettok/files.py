"""Files and directories written safely: one sha256 helper and one atomic-directory writer.

Every artefact directory of the project (checkpoints, exported models, the language
codebook, the clip cache, proxy codes) is written the same way::

    with atomic_directory(final) as tmp:
        ...write files into tmp...

The files go into a hidden sibling ``.<name>.tmp-<random>``; on success every file and the
folder are fsync'ed and the folder is renamed onto ``final`` (an existing one is moved aside
first and removed after, since a directory cannot be renamed onto a non-empty one). A crash
leaves at worst a hidden temporary that is never read and is removed by the next write of
the same directory. This module imports only the standard library: every layer may use it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_directory", "checksum_manifest", "fsync_dir", "sha256_file", "verify_manifest"]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(dirpath)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def checksum_manifest(directory: str | os.PathLike, names: Iterable[str]) -> dict[str, dict[str, int | str]]:
    """``{name: {"sha256", "bytes"}}`` of the named files of ``directory``."""
    d = Path(directory)
    return {n: {"sha256": sha256_file(d / n), "bytes": (d / n).stat().st_size} for n in names}


def verify_manifest(directory: str | os.PathLike, manifest: dict, checksums: bool = True) -> str | None:
    """``None`` when every file of ``manifest`` exists with its size (and sha256); else what is wrong."""
    d = Path(directory)
    for name, info in manifest.items():
        f = d / name
        if Path(name).name != name or not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != info.get("bytes"):
            return f"{name} has {f.stat().st_size} bytes, {info.get('bytes')} recorded"
        if checksums and sha256_file(f) != info.get("sha256"):
            return f"{name}: sha256 differs from the one recorded (corrupt or replaced)"
    return None


@contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``final`` atomically.

    Files keep the permissions the umask gives (some writers, safetensors among them, create
    files owner-only). On an exception the temporary is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
        mode = 0o666 & ~_umask()
        for path in tmp.rglob("*"):
            if path.is_file():
                os.chmod(path, mode)
        _fsync_tree(tmp)
        if final.exists():
            old = final.parent / f".{final.name}.tmp-old-{os.getpid()}-{secrets.token_hex(4)}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
