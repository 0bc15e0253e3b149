"""Element-wise activations (``ReLU``, ``Sigmoid``) and ``Softmax``, on generated kernels.

The kernels' arithmetic is printed from the SymPy formulas (ReLU's subgradient is 0 at 0, as
PyTorch's; the sigmoid's derivative ``s(1 - s)``; the softmax Jacobian ``y_i(δ_ij - y_j)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._args import float_array, grad_array, is_int
from ._kernels import layer_kernels
from .module import Module, need_forward, saved_copy


class _Elementwise(Module):
    """An activation applied entry by entry to an array of any shape."""

    kind = ""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        if inplace is not False:
            raise ValueError(f"inplace must be False (in-place activations are not supported), but got {inplace!r}")
        self._saved: tuple[Any, np.ndarray, np.ndarray, tuple[int, ...]] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        float_array("x", x)
        kept = saved_copy(x)
        if x.size == 0:  # an empty batch: nothing to compute, no kernel to build
            self._saved = (None, kept, kept, x.shape)
            return np.empty(x.shape, x.dtype)
        # a 0-d array is one element: the kernel of shape (1,) computes it (a view, no copy)
        kept = kept.reshape(x.shape or (1,))
        kernel = layer_kernels().activation(self.kind, kept.shape, x.dtype.name)
        y = kernel.forward(kept)
        # The caller owns y and may change it: keep a copy for the backward pass.
        self._saved = (kernel, kept, y.copy(), x.shape)
        return y.reshape(x.shape)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        kernel, x, y, shape = need_forward(self._saved)
        grad_array(grad_out, shape, x.dtype)
        if kernel is None:
            return np.zeros(shape, x.dtype)
        return kernel.backward(x, y, grad_out.reshape(x.shape)).reshape(shape)


class ReLU(_Elementwise):
    """``max(x, 0)``; the gradient at ``x == 0`` is 0 (PyTorch's subgradient)."""

    kind = "relu"


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``; its derivative ``s(1 - s)`` is taken from the saved output."""

    kind = "sigmoid"


class Softmax(Module):
    """``exp(x_i) / Σ_j exp(x_j)`` over ``dim`` of an ``(N, C)`` array (``dim`` 1 or -1)."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        if not is_int(dim):
            raise TypeError(f"dim must be an int, but got {dim!r}")
        if dim not in (1, -1):
            raise ValueError(f"dim must be 1 (or -1): softmax over the classes of (N, C) arrays, but got {dim}")
        self.dim = int(dim)
        self._saved: tuple[Any, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        float_array("x", x)
        if x.ndim != 2:
            raise ValueError(f"x must have shape (N, C), but got {x.shape}")
        if x.size == 0:  # no rows, or rows of no classes: an empty result
            self._saved = (None, np.empty(x.shape, x.dtype))
            return np.empty(x.shape, x.dtype)
        kernel = layer_kernels().softmax(x.shape, x.dtype.name)
        y = kernel.forward(x)
        self._saved = (kernel, y.copy())
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        kernel, y = need_forward(self._saved)
        grad_array(grad_out, y.shape, y.dtype)
        if kernel is None:
            return np.zeros(y.shape, y.dtype)
        return kernel.backward(y, grad_out)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
