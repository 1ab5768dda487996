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


class FieldChecks:
    """Validation helpers for frozen parameter dataclasses; errors read ``<Class>.<field>: <message>``."""

    def _fail(self, name: str, message: str) -> None:
        raise ValueError(f"{type(self).__name__}.{name}: {message}")

    def _check_int(self, name: str, minimum: int) -> None:
        value = getattr(self, name)
        if not isinstance(value, int) or isinstance(value, bool):
            self._fail(name, f"must be an integer, got {value!r}")
        if value < minimum:
            self._fail(name, f"must be >= {minimum}, got {value}")

    def _check_float(self, name: str, minimum: float, inclusive: bool) -> None:
        """A number above ``minimum`` (or equal, if ``inclusive``), stored as a float."""
        value = getattr(self, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self._fail(name, f"must be a number, got {value!r}")
        if value < minimum or (not inclusive and value == minimum):
            bound = ">=" if inclusive else ">"
            self._fail(name, f"must be {bound} {minimum}, got {value}")
        object.__setattr__(self, name, float(value))
