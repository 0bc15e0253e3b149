"""Pooling layers (MaxPool2d, AvgPool2d): specs, output size and windows, as PyTorch defines them.

Output size per axis (PyTorch's ``pooling_output_shape``)::

    out = floor_or_ceil((in + 2p − d(k − 1) − 1) / s) + 1
    with ceil_mode, a last window that would start in the right padding is dropped.

Max pooling pads with −∞ (padding never wins), average pooling with zeros; the average's divisor
is the window's size clipped to the padded input (``count_include_pad=True``) or the number of
real entries in it (``count_include_pad=False``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import validate

#: Most input entries a symbolic pooling derivation accepts.
MAX_INPUT = 256


def output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    reach = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (reach + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _window_params(
    input: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any
) -> tuple[tuple[int, ...], tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    shape = validate.shape("input", input, 4)
    kernel = validate.pair("kernel_size", kernel_size, 1)
    strides = kernel if stride is None else validate.pair("stride", stride, 1)
    pads = validate.pair("padding", padding, 0)
    dil = validate.pair("dilation", dilation, 1)
    for axis, k, p in zip(("height", "width"), kernel, pads):
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half the kernel size on every axis, but got padding {p} "
                f"for kernel {k} on the {axis} axis"
            )
    validate.at_most("the number of input entries", int(np.prod(shape)), MAX_INPUT, "one equation per entry")
    return shape, kernel, strides, pads, dil


def _output(spec: "PoolWindows") -> tuple[int, int, int, int]:
    n, c, h, w = spec.input
    sizes = tuple(
        output_size(size, k, s, p, d, spec.ceil_mode)
        for size, k, s, p, d in zip((h, w), spec.kernel_size, spec.stride, spec.padding, spec.dilation)
    )
    if min(sizes) < 1:
        raise ValueError(
            f"input must be at least as large as the (dilated) kernel after padding, but got input "
            f"{h}×{w}, kernel {spec.kernel_size}, padding {spec.padding}, dilation {spec.dilation}: "
            f"output {sizes[0]}×{sizes[1]}"
        )
    return n, c, sizes[0], sizes[1]


class PoolWindows:
    """What both pooling specs share: output size, windows in scan order, description."""

    input: tuple[int, ...]
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool

    def _normalise(self, dilation: Any) -> None:
        shape, kernel, strides, pads, dil = _window_params(
            self.input, self.kernel_size, self.stride, self.padding, dilation
        )
        for name, value in (("input", shape), ("kernel_size", kernel), ("stride", strides), ("padding", pads)):
            object.__setattr__(self, name, value)
        if "dilation" in self.__dataclass_fields__:  # type: ignore[attr-defined]
            object.__setattr__(self, "dilation", dil)
        object.__setattr__(self, "ceil_mode", validate.flag("ceil_mode", self.ceil_mode))
        _output(self)

    @property
    def output(self) -> tuple[int, int, int, int]:
        return _output(self)

    def window(self, out: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
        """Input indices of output entry ``out`` in scan order (rows, then columns), padding skipped."""
        n, c, i, j = out
        rows = [i * self.stride[0] - self.padding[0] + r * self.dilation[0] for r in range(self.kernel_size[0])]
        cols = [j * self.stride[1] - self.padding[1] + t * self.dilation[1] for t in range(self.kernel_size[1])]
        h, w = self.input[2:]
        return [(n, c, y, x) for y, x in itertools.product(rows, cols) if 0 <= y < h and 0 <= x < w]

    def _options(self) -> list[str]:
        parts = [f"kernel {_axes(self.kernel_size)}", f"stride {_axes(self.stride)}"]
        if any(self.padding):
            parts.append(f"padding {_axes(self.padding)}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation {_axes(self.dilation)}")
        if self.ceil_mode:
            parts.append("ceil_mode")
        return parts

    def _common_dict(self) -> dict[str, Any]:
        return {
            "input": list(self.input),
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "ceil_mode": self.ceil_mode,
        }


def _axes(values: tuple[int, int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"({values[0]}, {values[1]})"


@dataclass(frozen=True)
class MaxPool2dSpec(PoolWindows):
    """``torch.nn.MaxPool2d(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False)``
    on an input of shape (N, C, H, W)."""

    input: Any
    kernel_size: Any = 2
    stride: Any = None
    padding: Any = 0
    dilation: Any = 1
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        self._normalise(self.dilation)

    def describe(self) -> str:
        return f"MaxPool2d, X {validate.dims(self.input)}, {', '.join(self._options())} → Y {validate.dims(self.output)}"

    def to_dict(self) -> dict[str, Any]:
        return {**self._common_dict(), "dilation": list(self.dilation)}


@dataclass(frozen=True)
class AvgPool2dSpec(PoolWindows):
    """``torch.nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True)`` on an input (N, C, H, W); ``divisor_override`` is not supported."""

    input: Any
    kernel_size: Any = 2
    stride: Any = None
    padding: Any = 0
    ceil_mode: bool = False
    count_include_pad: bool = True

    def __post_init__(self) -> None:
        self._normalise(1)
        object.__setattr__(self, "count_include_pad", validate.flag("count_include_pad", self.count_include_pad))

    @property
    def dilation(self) -> tuple[int, int]:  # type: ignore[override]
        return (1, 1)

    def divisor(self, out: tuple[int, ...]) -> int:
        """PyTorch's divisor for output entry ``out``: the window clipped to the padded input
        (count_include_pad) or to the input itself."""
        sizes = []
        for axis, o in enumerate(out[2:]):
            start = o * self.stride[axis] - self.padding[axis]
            end = min(start + self.kernel_size[axis], self.input[2 + axis] + self.padding[axis])
            if not self.count_include_pad:
                start, end = max(start, 0), min(end, self.input[2 + axis])
            sizes.append(end - start)
        return math.prod(sizes)

    def describe(self) -> str:
        options = self._options() + ([] if self.count_include_pad else ["count_include_pad=False"])
        return f"AvgPool2d, X {validate.dims(self.input)}, {', '.join(options)} → Y {validate.dims(self.output)}"

    def to_dict(self) -> dict[str, Any]:
        return {**self._common_dict(), "count_include_pad": self.count_include_pad}
