"""``MaxPool2d`` and ``AvgPool2d``, with PyTorch's arguments; the work is in generated kernels.

Max pooling's backward is the lectures' "unpooling": each upstream gradient goes to the input
position that was the maximum of its window (the index the forward recorded; ties as PyTorch's
CPU kernel resolves them), and positions that were never a maximum get zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._args import flag, float_array, grad_array, pair
from ._kernels import layer_kernels
from .module import Module, need_forward


def _pool_input(x: Any) -> np.ndarray:
    float_array("x", x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), but got {x.shape}")
    if min(x.shape[1:]) < 1:  # only the batch may be empty (as in PyTorch)
        raise ValueError(f"x must have positive channels, height and width, but got shape {x.shape}")
    return x


def _check_padding(padding: tuple[int, int], kernel_size: tuple[int, int]) -> None:
    if any(2 * p > k for p, k in zip(padding, kernel_size)):
        raise ValueError(
            f"padding must be at most half of kernel_size, but got padding={padding} and kernel_size={kernel_size}"
        )


class _EmptyBatch:
    """What an empty batch's forward keeps instead of a kernel: the input shape."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.input_shape = input_shape


def _empty_batch_output(x: np.ndarray, kernel_size, stride, padding, dilation, ceil_mode: bool, windows: bool):
    """The output shape for an input with N = 0, checked as a non-empty batch's would be."""
    from ..kernels.pooling import _check_windows_reach_input, _output_shape

    probe = (1, *x.shape[1:])  # the checks of one sample (they do not depend on N)
    shape = _output_shape(probe, kernel_size, stride, padding, dilation, ceil_mode)
    if windows:
        _check_windows_reach_input(probe, shape, kernel_size, stride, padding, dilation)
    return (0, *shape[1:])


class MaxPool2d(Module):
    """2-D max pooling; ``stride`` defaults to ``kernel_size``. ``return_indices=True`` makes
    ``forward`` return ``(y, indices)`` (flat ``h*W + w`` positions in each input plane)."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = pair("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else pair("stride", stride)
        self.padding = pair("padding", padding, minimum=0)
        self.dilation = pair("dilation", dilation)
        self.return_indices = flag("return_indices", return_indices)
        self.ceil_mode = flag("ceil_mode", ceil_mode)
        _check_padding(self.padding, self.kernel_size)
        self._saved: tuple[Any, np.ndarray, np.dtype] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        _pool_input(x)
        if x.shape[0] == 0:  # an empty batch: the shape of the result, and nothing to compute
            shape = _empty_batch_output(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, True)
            y, indices = np.empty(shape, x.dtype), np.empty(shape, np.int64)
            self._saved = (_EmptyBatch(x.shape), indices, y.dtype)
            return (y, indices.copy()) if self.return_indices else y
        kernel = layer_kernels().maxpool2d(
            x.shape, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, x.dtype.name
        )
        y, indices = kernel.forward(x)
        self._saved = (kernel, indices, y.dtype)
        return (y, indices.copy()) if self.return_indices else y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        kernel, indices, dtype = need_forward(self._saved)
        grad_array(grad_out, indices.shape, dtype)
        if isinstance(kernel, _EmptyBatch):
            return np.zeros(kernel.input_shape, dtype)
        return kernel.backward(grad_out, indices)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """2-D average pooling; ``stride`` defaults to ``kernel_size``; ``count_include_pad`` decides
    whether padded zeros count in the divisor. ``divisor_override`` is not supported."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = pair("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else pair("stride", stride)
        self.padding = pair("padding", padding, minimum=0)
        self.ceil_mode = flag("ceil_mode", ceil_mode)
        self.count_include_pad = flag("count_include_pad", count_include_pad)
        if divisor_override is not None:
            raise ValueError(f"divisor_override is not supported (must be None), but got {divisor_override!r}")
        _check_padding(self.padding, self.kernel_size)
        self._saved: tuple[Any, tuple[int, ...], np.dtype] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        _pool_input(x)
        if x.shape[0] == 0:  # an empty batch: the shape of the result, and nothing to compute
            shape = _empty_batch_output(x, self.kernel_size, self.stride, self.padding, (1, 1), self.ceil_mode, False)
            self._saved = (_EmptyBatch(x.shape), shape, x.dtype)
            return np.empty(shape, x.dtype)
        kernel = layer_kernels().avgpool2d(
            x.shape, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad, x.dtype.name
        )
        y = kernel.forward(x)
        self._saved = (kernel, y.shape, y.dtype)
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        kernel, shape, dtype = need_forward(self._saved)
        grad_array(grad_out, shape, dtype)
        if isinstance(kernel, _EmptyBatch):
            return np.zeros(kernel.input_shape, dtype)
        return kernel.backward(grad_out)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"ceil_mode={self.ceil_mode}, count_include_pad={self.count_include_pad}"
        )
