"""Argument checks shared by the layer specs: every message names the argument, what was
expected and what was given."""

from __future__ import annotations

import numbers
from typing import Any, Sequence


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def shape(name: str, value: Any, ndim: int | tuple[int, ...], minimum: int = 1) -> tuple[int, ...]:
    """A tuple of ``ndim`` ints, each >= ``minimum`` (``ndim`` may be a tuple of allowed lengths)."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"{name} must be a tuple of ints, but got {value!r}")
    if not all(is_int(v) for v in value):
        raise TypeError(f"{name} must contain only ints, but got {tuple(value)!r}")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if len(value) not in allowed:
        expected = " or ".join(map(str, allowed))
        raise ValueError(f"{name} must have {expected} dimensions, but got {len(value)}: {tuple(value)!r}")
    if any(v < minimum for v in value):
        raise ValueError(f"{name} must have every size >= {minimum}, but got {tuple(value)!r}")
    return tuple(int(v) for v in value)


def pair(name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each >= ``minimum``."""
    values = (value, value) if is_int(value) else value
    if not isinstance(values, Sequence) or isinstance(values, str) or not all(is_int(v) for v in values):
        raise TypeError(f"{name} must be an int or a pair of ints, but got {value!r}")
    if len(values) != 2:
        raise ValueError(f"{name} must have one entry per spatial axis (2), but got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum} on every axis, but got {value!r}")
    return int(values[0]), int(values[1])


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, but got {value!r}")
    return value


def positive_int(name: str, value: Any) -> int:
    if not is_int(value):
        raise TypeError(f"{name} must be an int, but got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, but got {value!r}")
    return int(value)


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, but got {value!r}")
    return value


def at_most(name: str, count: int, limit: int, why: str) -> None:
    """Refuse a symbolic layer that would take too long to expand."""
    if count > limit:
        raise ValueError(f"{name} must be at most {limit} for a symbolic derivation ({why}), but got {count}")


def dims(values: Sequence[int]) -> str:
    return "×".join(map(str, values))
