"""Max-pooling and average pooling over the last two axes of an NCHW array, as PyTorch does them.

Output size, per axis (PyTorch's ``pooling_output_shape``)::

    out = floor((in + 2 pad - dilation (kernel - 1) - 1 + (stride - 1 if ceil_mode)) / stride) + 1
    and with ceil_mode, if the last window would start past the input and its left padding
    ((out - 1) stride >= in + pad), it is dropped: out - 1.

Max-pooling pads with -inf, reports the argmax as the flat index ``h*W + w`` into the input plane,
keeps the first of equal maxima in scan order and lets a NaN win (as PyTorch's CPU kernel);
its backward adds each upstream gradient to the input position of its window's maximum (the
subgradient of ``max``). Average pooling divides by the window size clipped to the padded input
(``count_include_pad``) or to the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.layers import Function, INDEX_CTYPE, Param, macros, render_layer

from .base import (
    C_TYPES, LayerKernel, check_shape, dims, dtype_name, flag, memoised, module_name, numel, pair,
    worth_threads,
)


def pooled_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's output size of one pooled axis (see the module docstring)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1  # floor division, also for a negative span
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _output_shape(
    input_shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int], dilation: tuple[int, int], ceil_mode: bool,
) -> tuple[int, int, int, int]:
    for axis in range(2):
        if padding[axis] > kernel[axis] // 2:
            raise ValueError(
                f"padding must be at most half of kernel_size, but got padding={padding} "
                f"and kernel_size={kernel}"
            )
    n, c, h, w = input_shape
    out = tuple(
        pooled_size(size, kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
        for a, size in enumerate((h, w))
    )
    if min(out) < 1:
        raise ValueError(
            f"input_shape {input_shape} is too small for kernel_size={kernel}, stride={stride}, "
            f"padding={padding}, dilation={dilation}: the output would be {out[0]}x{out[1]}"
        )
    return (n, c, out[0], out[1])


def _check_windows_reach_input(
    input_shape: tuple[int, ...], output_shape: tuple[int, ...], kernel: tuple[int, int],
    stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
) -> None:
    """Refuse layers where some window reads only padding (possible with a large dilation):
    such a window has no maximum and no argmax to report."""
    for axis, (size, out) in enumerate(zip(input_shape[2:], output_shape[2:])):
        for o in range(out):
            start = o * stride[axis] - padding[axis]
            taps = (start + k * dilation[axis] for k in range(kernel[axis]))
            if not any(0 <= t < size for t in taps):
                raise ValueError(
                    f"every pooling window must read at least one input element, but with "
                    f"input_shape {input_shape}, kernel_size={kernel}, stride={stride}, "
                    f"padding={padding}, dilation={dilation} window {o} along axis {axis + 2} "
                    f"reads only padding"
                )


def _sizes(x: tuple[int, ...], y: tuple[int, ...], k, s, p, d=None) -> dict[str, tuple[int, str]]:
    entries = {
        "N": (x[0], "batch size"), "C": (x[1], "channels"),
        "H": (x[2], "input height"), "W": (x[3], "input width"),
        "OH": (y[2], "output height"), "OW": (y[3], "output width"),
        "KH": (k[0], "window height"), "KW": (k[1], "window width"),
        "SH": (s[0], "vertical stride"), "SW": (s[1], "horizontal stride"),
        "PH": (p[0], "padding above and below"), "PW": (p[1], "padding left and right"),
    }
    if d is not None:
        entries |= {"DH": (d[0], "vertical dilation"), "DW": (d[1], "horizontal dilation")}
    return entries


def _arrays(x: tuple[int, ...], y: tuple[int, ...], extra: str = "") -> list[str]:
    return [
        f"x, dx   [n][c][h][w]    {' x '.join(map(str, x))}  (input, its gradient)",
        f"y, dy   [n][c][oh][ow]  {' x '.join(map(str, y))}  (output, its gradient){extra}",
    ]


# -- max-pooling -------------------------------------------------------------------------------


def render_maxpool(x, y, k, s, p, d, ceil_mode: bool, dtype: str):
    T = C_TYPES[dtype]
    name = module_name("maxpool2d", [dims(x), f"k{dims(k)}", f"s{dims(s)}", f"p{dims(p)}",
                                     f"d{dims(d)}", "ceil" if ceil_mode else "floor"], dtype)
    functions = (
        Function(
            "forward", "the maximum of each window and where it is",
            (Param("x", T, "input"), Param("y", T, "output: the window maxima", output=True),
             Param("indices", INDEX_CTYPE, "output: argmax as h*W + w in the input plane", output=True)),
            formula=("y[n][c][oh][ow] = max over the window of xpad[n][c][oh*SH + r*DH][ow*SW + t*DW]",
                     "xpad = x inside, -inf in the padding"),
        ),
        Function(
            "backward", "dL/dx: each dL/dy goes to its window's argmax",
            (Param("dy", T, "dL/dy"), Param("indices", INDEX_CTYPE, "argmax from forward"),
             Param("dx", T, "dL/dx", output=True)),
            returns=INDEX_CTYPE,
            formula=("dx[n][c][h][w] = sum of dy[n][c][o] over the outputs o with indices[n][c][o] == h*W + w",),
            returns_doc="the number of indices outside [0, H*W) (skipped, never written)",
        ),
    )
    work = numel(y) * k[0] * k[1]
    return render_layer(
        "maxpool2d", name=name, ctype=T,
        layer=f"2-d max-pooling, kernel {dims(k)}, stride {dims(s)}, padding {dims(p)}, "
              f"dilation {dims(d)}, ceil_mode={ceil_mode}",
        arrays=_arrays(x, y, "; indices int64, the same shape as y"),
        formula=["y = max over each window (padding is -inf); ties: the first maximum in row-major "
                 "order; NaN: the last NaN", "dx = scatter-add of dy to the argmax positions (the "
                 "subgradient of max)"],
        macros=macros(_sizes(x, y, k, s, p, d)), functions=functions, threaded=worth_threads(work),
    )


class MaxPool2dKernel(LayerKernel):
    """``forward(x) -> (y, indices)`` and ``backward(grad_out, indices) -> dx``."""

    def __init__(self, x, k, s, p, d, ceil_mode: bool, dtype: str) -> None:
        y = _output_shape(x, k, s, p, d, ceil_mode)
        _check_windows_reach_input(x, y, k, s, p, d)
        super().__init__(render_maxpool(x, y, k, s, p, d, ceil_mode, dtype), dtype, y)
        self.input_shape, self.kernel_size, self.stride = x, k, s
        self.padding, self.dilation, self.ceil_mode = p, d, ceil_mode
        self._x, self._g = self._ptr("x", x), self._ptr("grad_out", y)
        self._i = self._index_ptr("indices", y)
        self._forward, self._backward = self._c["forward"], self._c["backward"]

    def describe(self) -> str:
        return (f"maxpool2d {dims(self.input_shape)} kernel {dims(self.kernel_size)} stride "
                f"{dims(self.stride)} padding {dims(self.padding)} dilation {dims(self.dilation)}"
                f"{' ceil' if self.ceil_mode else ''}")

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px = self._x(x)
        y, py = self._out(self.output_shape)
        indices, pi = self._out(self.output_shape, np.dtype(np.int64))
        self._ready()
        self._forward(px, py, pi)
        return y, indices

    def backward(self, grad_out: np.ndarray, indices: np.ndarray) -> np.ndarray:
        pg, pi = self._g(grad_out), self._i(indices)
        dx, pdx = self._out(self.input_shape)
        self._ready()
        if self._backward(pg, pi, pdx):
            plane = self.input_shape[2] * self.input_shape[3]
            flat = np.asarray(indices).ravel()
            where = int(np.flatnonzero((flat < 0) | (flat >= plane))[0])
            raise ValueError(
                f"indices must be flat positions h*W + w in [0, {plane}) of an input plane of "
                f"{dims(self.input_shape[2:])}, but got {int(flat[where])} at "
                f"{tuple(int(i) for i in np.unravel_index(where, self.output_shape))}"
            )
        return dx


@memoised
def maxpool2d(
    input_shape: tuple[int, int, int, int], kernel_size: Any, stride: Any = None, padding: Any = 0,
    dilation: Any = 1, ceil_mode: bool = False, dtype: object = "float32",
) -> MaxPool2dKernel:
    """Max-pooling of NCHW ``input_shape`` with PyTorch's arguments (stride defaults to kernel_size)."""
    x = check_shape("input_shape", input_shape, 4)
    k = pair("kernel_size", kernel_size, 1)
    s = k if stride is None else pair("stride", stride, 1)
    return MaxPool2dKernel(x, k, s, pair("padding", padding, 0), pair("dilation", dilation, 1),
                           flag("ceil_mode", ceil_mode), dtype_name(dtype))


# -- average pooling ---------------------------------------------------------------------------


def render_avgpool(x, y, k, s, p, ceil_mode: bool, count_include_pad: bool, dtype: str):
    T = C_TYPES[dtype]
    name = module_name("avgpool2d", [dims(x), f"k{dims(k)}", f"s{dims(s)}", f"p{dims(p)}",
                                     "ceil" if ceil_mode else "floor",
                                     "incl" if count_include_pad else "excl"], dtype)
    divisor = ("the window's size within the padded input" if count_include_pad
               else "the number of input elements in the window")
    functions = (
        Function("forward", "the mean of each window",
                 (Param("x", T, "input"), Param("y", T, "output: window means", output=True)),
                 formula=("y[n][c][oh][ow] = (sum of x over the window inside the input) / divisor",
                          f"divisor = {divisor}")),
        Function("backward", "dL/dx: each dL/dy shared equally by its window's inputs",
                 (Param("dy", T, "dL/dy"), Param("dx", T, "dL/dx", output=True)),
                 formula=("dx[n][c][h][w] = sum over the windows containing (h, w) of dy / divisor",)),
    )
    entries = _sizes(x, y, k, s, p) | {"COUNT_INCLUDE_PAD": (int(count_include_pad), "1: padding counts in the divisor")}
    return render_layer(
        "avgpool2d", name=name, ctype=T,
        layer=f"2-d average pooling, kernel {dims(k)}, stride {dims(s)}, padding {dims(p)}, "
              f"ceil_mode={ceil_mode}, count_include_pad={count_include_pad}",
        arrays=_arrays(x, y),
        formula=["y = sum over each window / divisor (padding adds 0)", f"divisor = {divisor}",
                 "dx = dy / divisor added to every input of the window"],
        macros=macros(entries), functions=functions, threaded=worth_threads(numel(y) * k[0] * k[1]),
    )


class AvgPool2dKernel(LayerKernel):
    """``forward(x) -> y`` and ``backward(grad_out) -> dx``."""

    def __init__(self, x, k, s, p, ceil_mode: bool, count_include_pad: bool, dtype: str) -> None:
        y = _output_shape(x, k, s, p, (1, 1), ceil_mode)
        super().__init__(render_avgpool(x, y, k, s, p, ceil_mode, count_include_pad, dtype), dtype, y)
        self.input_shape, self.kernel_size, self.stride, self.padding = x, k, s, p
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self._x, self._g = self._ptr("x", x), self._ptr("grad_out", y)
        self._forward, self._backward = self._c["forward"], self._c["backward"]

    def describe(self) -> str:
        return (f"avgpool2d {dims(self.input_shape)} kernel {dims(self.kernel_size)} stride "
                f"{dims(self.stride)} padding {dims(self.padding)}{' ceil' if self.ceil_mode else ''}"
                f"{'' if self.count_include_pad else ' exclude-pad'}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._into_new(self._forward, self.output_shape, self._x(x))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return self._into_new(self._backward, self.input_shape, self._g(grad_out))


@memoised
def avgpool2d(
    input_shape: tuple[int, int, int, int], kernel_size: Any, stride: Any = None, padding: Any = 0,
    ceil_mode: bool = False, count_include_pad: bool = True, dtype: object = "float32",
) -> AvgPool2dKernel:
    """Average pooling of NCHW ``input_shape`` with PyTorch's arguments (no divisor_override)."""
    x = check_shape("input_shape", input_shape, 4)
    k = pair("kernel_size", kernel_size, 1)
    s = k if stride is None else pair("stride", stride, 1)
    return AvgPool2dKernel(x, k, s, pair("padding", padding, 0), flag("ceil_mode", ceil_mode),
                           flag("count_include_pad", count_include_pad), dtype_name(dtype))
