"""Building typed parameter dataclasses from the plain mappings Kedro and YAML give."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_mapping(cls: type[T], params: Mapping[str, Any], where: str) -> T:
    """``cls(**params)``, naming any unknown key (and ``where`` it was found) in the error."""
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: expected a mapping of parameters, got {type(params).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{where}: unknown parameter(s) {unknown}; known: {sorted(known)}")
    return cls(**dict(params))
