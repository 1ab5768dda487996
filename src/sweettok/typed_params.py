"""Building typed parameter dataclasses from the plain mappings Kedro and YAML give.

Errors name the full key path of the bad parameter, e.g.
``tokenizer_phase2.loop.batch_size: must be an integer >= 1, got 0``. No config stores where
it sits: a config raises :class:`ParamError` for its own field, and each :func:`from_mapping`
the error passes through on its way out puts its own key in front. So a sub-config built by
its owner (``nested_config(self, LoopConfig, self.loop, "loop")``) inside a config built with
``from_mapping(PhaseConfig, params, "tokenizer_phase2")`` reports
``tokenizer_phase2.loop.<field>``, at any depth.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["FieldChecks", "ParamError", "from_mapping", "nested_config"]


def _join(prefix: str | None, key: str) -> str:
    return f"{prefix}.{key}" if prefix and key else (prefix or key)


class ParamError(ValueError):
    """Bad parameter(s), each named by its key path: ``<path>: <what is wrong>`` (several joined by ``; ``).

    Args:
        key: the key path below ``owner`` (a field name, or ``loop.batch_size`` for a nested one).
        message: what is wrong, with the bad value.
        owner: shown in front of ``key`` while the error has not passed through a
            :func:`from_mapping` (a config built directly in code): the config's class name.
        more: further ``(key, message)`` problems of the same owner.
    """

    def __init__(self, key: str, message: str, *, owner: str | None = None,
                 more: Sequence[tuple[str, str]] = ()) -> None:
        self.problems = [(key, message), *more]
        self.owner = owner
        super().__init__(str(self))

    def __str__(self) -> str:
        return "; ".join(f"{_join(self.owner, key)}: {message}" for key, message in self.problems)

    def __reduce__(self):  # picklable across worker processes
        (key, message), *more = self.problems
        return _rebuild, (key, message, self.owner, more)

    @property
    def keys(self) -> list[str]:
        """The key path of every problem, as shown in the message."""
        return [_join(self.owner, key) for key, _ in self.problems]

    def under(self, prefix: str, owner: str | None = None) -> ParamError:
        """The same problems seen from one level up: every key prefixed with ``prefix``."""
        (key, message), *more = self.problems
        error = ParamError(_join(prefix, key), message, owner=owner,
                           more=[(_join(prefix, k), m) for k, m in more])
        return error.with_traceback(self.__traceback__)


def _rebuild(key: str, message: str, owner: str | None, more: list) -> ParamError:
    return ParamError(key, message, owner=owner, more=more)


def _unknown(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.65)
    if close:
        return f"unknown parameter; did you mean {close[0]!r}?"
    return f"unknown parameter; known: {', '.join(sorted(known))}"


def from_mapping(cls: type[T], params: Mapping[str, Any], where: str, given: Mapping[str, Any] | None = None) -> T:
    """``cls(**params, **given)``, every error naming its full key path below ``where``.

    Args:
        cls: a dataclass whose ``__post_init__`` raises :class:`ParamError` for bad values.
        params: the mapping found at key path ``where`` of the parameters.
        where: that key path (``"tokenizer_phase2"``, or ``"loop"`` for a sub-config whose
            owner is being built: the owner's own ``from_mapping`` adds its prefix).
        given: fields the caller supplies (e.g. the schedule's ``total_steps``, which is the
            loop's); ``params`` may not set them.

    Raises:
        ParamError: for an unknown key (suggesting the closest known one), a missing required
            key, a value that is not a mapping, or any field the class rejects.
    """
    if not isinstance(params, Mapping):
        raise ParamError(where, f"expected a mapping of parameters, got {type(params).__name__} {params!r}")
    given = dict(given or {})
    init = [f for f in fields(cls) if f.init]
    known = [f.name for f in init if f.name not in given]
    unknown = sorted(str(k) for k in params if k not in known)
    if unknown:
        problems = [(_join(where, key), f"given by the enclosing config ({given[key]!r}), not a parameter here"
                     if key in given else _unknown(key, known)) for key in unknown]
        raise ParamError(*problems[0], more=problems[1:])
    missing = [f.name for f in init if f.name not in params and f.name not in given
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        problems = [(_join(where, key), "required parameter missing") for key in missing]
        raise ParamError(*problems[0], more=problems[1:])
    try:
        return cls(**dict(params), **given)
    except ParamError as exc:
        raise exc.under(where) from None


def nested_config(owner: object, cls: type[T], params: Mapping[str, Any], key: str,
                  given: Mapping[str, Any] | None = None) -> T:
    """The sub-config at ``key`` of ``owner`` (a config being validated): :func:`from_mapping`
    with path ``key``; built directly, ``owner``'s errors then read ``<Owner>.<key>.<field>: ...``."""
    try:
        return from_mapping(cls, params, key, given)
    except ParamError as exc:
        raise exc.under("", owner=type(owner).__name__) from None


class FieldChecks:
    """Validation helpers for frozen parameter dataclasses; errors are :class:`ParamError` naming the field."""

    def _fail(self, name: str, message: str) -> None:
        raise ParamError(name, message, owner=type(self).__name__)

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
