"""Argument checks shared by the layers: one place, so every layer words its errors the same way.

Each helper takes the argument's name, so the message names what the caller got wrong:
``kernel_size must be a positive int or a pair of positive ints, but got 0``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


#: The largest kernel size, stride, padding or dilation (as the convolution's ``ConvSpec``): the
#: generated C writes them as constants and multiplies them by indices in 64-bit arithmetic.
MAX_PARAMETER = 2**31 - 1
#: The most elements one array may have (so that 64-bit index arithmetic cannot overflow).
MAX_ELEMENTS = 2**62


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type where a size or count was expected (``"3"``, ``2.0``, ``True``).

    A TypeError; also a ValueError, because the first versions of the layers reported these cases
    as ValueError and callers may catch that.
    """


def is_int(value: Any) -> bool:
    """A true integer (``True``/``False`` are not sizes, and neither is ``"3"`` or ``3.0``)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive(name: str, value: Any) -> int:
    """A positive int; a non-int is a TypeError, an int below 1 a ValueError."""
    if not is_int(value):
        raise ArgumentTypeError(f"{name} must be a positive int, but got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, but got {value!r}")
    return int(value)


def non_negative(name: str, value: Any) -> int:
    """An int >= 0."""
    if not is_int(value):
        raise ArgumentTypeError(f"{name} must be a non-negative int, but got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, but got {value!r}")
    return int(value)


def pair(name: str, value: Any, minimum: int = 1, why: str = "") -> tuple[int, int]:
    """An int or a pair of ints, each >= ``minimum`` and at most ``MAX_PARAMETER``, as a pair
    (``why`` is appended to a range error)."""
    values = (value, value) if is_int(value) else value
    if not (isinstance(values, (tuple, list)) and len(values) == 2 and all(is_int(v) for v in values)):
        raise ArgumentTypeError(f"{name} must be an int or a pair of ints, but got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum} on both axes, but got {value!r}{why}")
    if max(values) > MAX_PARAMETER:
        raise ValueError(f"{name} must be at most {MAX_PARAMETER} (2^31 - 1) on both axes, but got {value!r}")
    return (int(values[0]), int(values[1]))


def fits(names: str, shape: tuple[int, ...]) -> None:
    """Refuse a parameter array of more than ``MAX_ELEMENTS`` elements (``names``: the arguments
    that give its shape, for the message)."""
    count = 1
    for extent in shape:
        count *= extent
    if count > MAX_ELEMENTS:
        raise ValueError(
            f"{names} must give at most 2^62 = {MAX_ELEMENTS} parameters, but got shape {shape}: {count} elements"
        )


def flag(name: str, value: Any) -> bool:
    """A real bool (``1`` or ``"yes"`` is refused: a typo should not flip an option)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, but got {value!r}")
    return bool(value)


def real(name: str, value: Any, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number, optionally ``>= minimum`` (``> minimum`` if ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, but got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int (or Fraction) beyond the float range
        raise ValueError(f"{name} must be finite, but got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, but got {value!r}")
    if minimum is not None and (number <= minimum if strict else number < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, but got {value!r}")
    return number


def generator(value: Any, name: str = "rng") -> np.random.Generator:
    """A ``numpy.random.Generator`` from a Generator, a non-negative int seed, or None (fresh entropy).

    Checked here rather than handed to numpy, whose errors for ``-1`` or ``"seed"`` do not say
    which argument was wrong.
    """
    if isinstance(value, np.random.Generator):
        return value
    if value is None:
        return np.random.default_rng()
    if not is_int(value):
        raise ArgumentTypeError(
            f"{name} must be a numpy.random.Generator, a non-negative int seed or None, but got {value!r}"
        )
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int seed, but got {value!r}")
    return np.random.default_rng(int(value))


def float_array(name: str, value: Any) -> np.ndarray:
    """A float32 or float64 ndarray (the dtypes the kernels are generated for)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, but got {type(value).__name__}")
    if value.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, but got {value.dtype}")
    return value


def uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """``U(-bound, bound)`` of ``shape``: PyTorch's default initialisation of conv and linear layers
    (kaiming-uniform with ``a = sqrt(5)`` gives ``bound = 1 / sqrt(fan_in)`` for weight and bias)."""
    return rng.uniform(-bound, bound, shape).astype(dtype)


def grad_array(grad_out: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``grad_out`` checked against the output of the last forward (the shape and dtype it had)."""
    if not isinstance(grad_out, np.ndarray):
        raise TypeError(f"grad_out must be a numpy.ndarray, but got {type(grad_out).__name__}")
    if grad_out.dtype != dtype:
        raise TypeError(f"grad_out must be {dtype}, but got {grad_out.dtype}")
    if grad_out.shape != tuple(shape):
        raise ValueError(f"grad_out must have shape {tuple(shape)}, but got {grad_out.shape}")
    return grad_out
