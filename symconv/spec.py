"""ConvSpec: one convolution layer, its shapes and hyper-parameters, validated.

Conventions follow PyTorch: input ``(N, C, *spatial)``, weight ``(K, C/groups, *kernel)``,
output ``(N, K, *out_spatial)``, with per axis

    out = floor((in + p_lo + p_hi - d*(k-1) - 1) / s) + 1

Everything is normalised in the constructor, so the rest of the code can rely on plain tuples of
ints: ``stride``, ``dilation`` and ``padding`` (a ``(lo, hi)`` pair per spatial axis).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Sequence

MIN_RANK, MAX_RANK = 1, 3

# Limits that keep every index the generated C computes inside a signed 64-bit ``ptrdiff_t``.
# An index is a flat offset into one array (below its element count) plus or minus a few
# hyper-parameter terms (a padding, a stride times a position, a dilated kernel reach), all bounded
# by the padded extent. Capping every array, the padded input included, at 2^62 elements and every
# hyper-parameter at 2^31 - 1 leaves at least a factor of two of headroom below 2^63 for those sums,
# and keeps each hyper-parameter a plain C integer constant. No real layer comes near either bound.
#: Most elements any array (input, padded input, weight, output) may have.
MAX_ELEMENTS = 2**62
#: Largest stride, dilation, padding (per side) or group count.
MAX_PARAMETER = 2**31 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _shape(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"{name} must be a tuple of ints, but got {value!r}")
    if not all(_is_int(v) for v in value):
        raise TypeError(f"{name} must contain only ints, but got {tuple(value)!r}")
    if not MIN_RANK + 2 <= len(value) <= MAX_RANK + 2:
        raise ValueError(
            f"{name} must have {MIN_RANK + 2} to {MAX_RANK + 2} dimensions "
            f"(N/K, C, then 1-3 spatial), but got {len(value)}: {tuple(value)!r}"
        )
    return tuple(int(v) for v in value)


def _per_axis(name: str, value: Any, rank: int, minimum: int) -> tuple[int, ...]:
    """An int or one int per spatial axis, each >= minimum."""
    values = (value,) * rank if _is_int(value) else value
    if not isinstance(values, Sequence) or isinstance(values, str) or not all(_is_int(v) for v in values):
        raise TypeError(f"{name} must be an int or a tuple of {rank} ints, but got {value!r}")
    if len(values) != rank:
        raise ValueError(f"{name} must have one entry per spatial axis ({rank}), but got {value!r}")
    for v in values:
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum} on every axis, but got {value!r}")
        if v > MAX_PARAMETER:
            raise ValueError(f"{name} must be at most {MAX_PARAMETER} (2^31 - 1) on every axis, but got {value!r}")
    return tuple(int(v) for v in values)


def _elements(shape: Sequence[int]) -> int:
    """Element count, an empty batch counted as one sample (its other sizes still reach the C)."""
    count = max(shape[0], 1)
    for size in shape[1:]:
        count *= size
    return count


def _check_elements(name: str, shape: Sequence[int]) -> None:
    count = _elements(shape)
    if count > MAX_ELEMENTS:
        per = " (an empty batch counted as one sample)" if shape[0] == 0 else ""
        raise ValueError(
            f"{name} must have at most 2^62 = {MAX_ELEMENTS} elements{per} so that 64-bit index "
            f"arithmetic cannot overflow, but got {tuple(shape)}: {count} elements"
        )


def _check_padding_limit(value: Any, pairs: Sequence[tuple[int, int]]) -> None:
    if max(max(pair) for pair in pairs) > MAX_PARAMETER:
        shown = f"{value!r} = {tuple(pairs)}" if isinstance(value, str) else repr(value)
        raise ValueError(f"padding must be at most {MAX_PARAMETER} (2^31 - 1) on every side, but got {shown}")


def _same_padding(in_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Padding that makes out = ceil(in / stride); the odd pixel goes to the high side.

    For stride 1 this is PyTorch's ``padding="same"``; for larger strides it is the usual
    TensorFlow "SAME" rule (PyTorch refuses strides > 1 with "same").
    """
    out = -(-in_size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - in_size, 0)
    return total // 2, total - total // 2


def _padding(value: Any, rank: int, spatial, kernel, stride, dilation) -> tuple[tuple[int, int], ...]:
    if isinstance(value, str):
        if value == "valid":
            return ((0, 0),) * rank
        if value == "same":
            return tuple(_same_padding(*args) for args in zip(spatial, kernel, stride, dilation))
        raise ValueError(f'padding must be an int, a tuple, "valid" or "same", but got {value!r}')
    entries = (value,) * rank if _is_int(value) else value
    if not isinstance(entries, Sequence):
        raise TypeError(f"padding must be an int, {rank} ints, or {rank} (lo, hi) pairs, but got {value!r}")
    if len(entries) != rank:
        raise ValueError(
            f"padding must be an int, {rank} ints, or {rank} (lo, hi) pairs, but got {value!r}"
        )
    pairs = []
    for entry in entries:
        pair = (entry, entry) if _is_int(entry) else entry
        if (
            not isinstance(pair, Sequence)
            or isinstance(pair, str)
            or len(pair) != 2
            or not all(_is_int(p) for p in pair)
        ):
            raise TypeError(f"padding entries must be ints or (lo, hi) pairs of ints, but got {value!r}")
        if min(pair) < 0:
            raise ValueError(f"padding must be >= 0, but got {value!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


@dataclass(frozen=True, init=False)
class ConvSpec:
    """A convolution layer (cross-correlation, as in every framework).

    >>> ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)).output
    (1, 1, 2, 2)
    """

    input: tuple[int, ...]
    weight: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    bias: bool

    def __init__(
        self,
        input: Sequence[int],
        weight: Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Any = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        x_shape, w_shape = _shape("input", input), _shape("weight", weight)
        if len(x_shape) != len(w_shape):
            raise ValueError(
                f"input and weight must have the same number of dimensions, "
                f"but got {len(x_shape)} ({x_shape}) and {len(w_shape)} ({w_shape})"
            )
        rank = len(x_shape) - 2
        for name, shape in (("input", x_shape), ("weight", w_shape)):
            if min(shape[1:]) < 1 or shape[0] < 0:
                raise ValueError(f"{name} dimensions must be positive, but got {shape}")
        if w_shape[0] < 1:
            raise ValueError(f"weight must have at least one output channel, but got {w_shape}")
        if not _is_int(groups):
            raise TypeError(f"groups must be an int, but got {groups!r}")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, but got {groups}")
        channels, out_channels = x_shape[1], w_shape[0]
        if channels % groups:
            raise ValueError(f"groups must divide in_channels, but got {groups} and {channels}")
        if out_channels % groups:
            raise ValueError(f"groups must divide out_channels, but got {groups} and {out_channels}")
        if w_shape[1] != channels // groups:
            raise ValueError(
                f"weight.shape[1] must be in_channels / groups = {channels} / {groups} = "
                f"{channels // groups}, but got {w_shape[1]} (weight {w_shape})"
            )
        if groups > MAX_PARAMETER:
            raise ValueError(f"groups must be at most {MAX_PARAMETER} (2^31 - 1), but got {groups}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, but got {bias!r}")
        _check_elements("input", x_shape)
        _check_elements("weight", w_shape)
        stride_ = _per_axis("stride", stride, rank, 1)
        dilation_ = _per_axis("dilation", dilation, rank, 1)
        padding_ = _padding(padding, rank, x_shape[2:], w_shape[2:], stride_, dilation_)
        _check_padding_limit(padding, padding_)
        for axis, (size, (lo, hi), k, d) in enumerate(zip(x_shape[2:], padding_, w_shape[2:], dilation_)):
            reach = d * (k - 1) + 1
            if size + lo + hi < reach:
                raise ValueError(
                    f"kernel does not fit in the padded input on spatial axis {axis}: dilated kernel "
                    f"extent {reach} > padded input {size} + {lo} + {hi} = {size + lo + hi}"
                )
        padded = x_shape[:2] + tuple(size + lo + hi for size, (lo, hi) in zip(x_shape[2:], padding_))
        _check_elements("the padded input (input plus padding)", padded)
        out_spatial = tuple(
            (p - d * (k - 1) - 1) // s + 1 for p, k, s, d in zip(padded[2:], w_shape[2:], stride_, dilation_)
        )
        _check_elements("the output", (x_shape[0], out_channels, *out_spatial))
        for field, value in (
            ("input", x_shape),
            ("weight", w_shape),
            ("stride", stride_),
            ("padding", padding_),
            ("dilation", dilation_),
            ("groups", int(groups)),
            ("bias", bias),
        ):
            object.__setattr__(self, field, value)

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        """Number of spatial axes (1, 2 or 3)."""
        return len(self.input) - 2

    @property
    def batch(self) -> int:
        return self.input[0]

    @property
    def in_channels(self) -> int:
        return self.input[1]

    @property
    def out_channels(self) -> int:
        return self.weight[0]

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.input[2:]

    @property
    def kernel(self) -> tuple[int, ...]:
        return self.weight[2:]

    @property
    def pad_lo(self) -> tuple[int, ...]:
        return tuple(lo for lo, _ in self.padding)

    @property
    def pad_hi(self) -> tuple[int, ...]:
        return tuple(hi for _, hi in self.padding)

    @property
    def out_spatial(self) -> tuple[int, ...]:
        return tuple(
            (size + lo + hi - d * (k - 1) - 1) // s + 1
            for size, (lo, hi), k, s, d in zip(
                self.spatial, self.padding, self.kernel, self.stride, self.dilation
            )
        )

    @property
    def output(self) -> tuple[int, ...]:
        """Shape of the output (and of the upstream gradient G)."""
        return (self.batch, self.out_channels, *self.out_spatial)

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return (self.out_channels,)

    def macs(self) -> int:
        """Multiply-accumulates of one forward pass (each gradient pass costs the same)."""
        n, k = self.batch, self.out_channels
        out = 1
        for v in self.out_spatial + self.kernel:
            out *= v
        return n * k * self.in_per_group * out

    def describe(self) -> str:
        """One line, e.g. ``X 1×1×3×3 ⋆ W 1×1×2×2, stride 1, no padding → O 1×1×2×2``."""

        def dims(shape: Sequence[int]) -> str:
            return "×".join(map(str, shape))

        def axes(values: Sequence[Any]) -> str:
            return str(values[0]) if len(set(values)) == 1 else "(" + ", ".join(map(str, values)) + ")"

        parts = [f"X {dims(self.input)} ⋆ W {dims(self.weight)}", f"stride {axes(self.stride)}"]
        if any(lo or hi for lo, hi in self.padding):
            sym = all(lo == hi for lo, hi in self.padding)
            parts.append("padding " + (axes(self.pad_lo) if sym else str(self.padding)))
        else:
            parts.append("no padding")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation {axes(self.dilation)}")
        if self.groups != 1:
            parts.append(f"groups {self.groups}")
        if self.bias:
            parts.append("bias")
        return ", ".join(parts) + f" → O {dims(self.output)}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready); ``ConvSpec(**spec.to_dict())`` rebuilds the spec."""
        return {
            "input": list(self.input),
            "weight": list(self.weight),
            "stride": list(self.stride),
            "padding": [list(p) for p in self.padding],
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.bias,
        }
