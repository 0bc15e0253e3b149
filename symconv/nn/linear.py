"""``Linear``: a fully connected layer.

The lectures' "stretch out into a long vector": ``y = x Wᵀ + b`` with ``x`` of shape
``(N, in)`` is the rank-1 convolution ``ConvSpec(input=(N, in, 1), weight=(out, in, 1))`` — each
output channel is a kernel as long as the vector, at the single position it fits
(:mod:`symconv.layers.linear` derives the layer and proves it is that convolution). It runs on its
own generated kernels (:func:`symconv.kernels.linear`), three matrix products whose loops suit
the shapes of a fully connected layer better than the convolution's; the arrays are only
reshaped (views, no copies) on the way in and out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..pipeline import dtype_name
from ._args import fits, flag, generator, positive, uniform
from ._kernels import layer_kernels
from .module import Module, Parameter, need_forward, saved_copy


class Linear(Module):
    """``y = x Wᵀ + b`` on the last axis of ``x`` (shape ``(*, in_features)``), like PyTorch.

    ``weight.data`` is ``(out_features, in_features)``, ``bias.data`` ``(out_features,)``, both
    initialised ``U(-1/sqrt(in_features), 1/sqrt(in_features))`` as PyTorch does.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: object = "float32",
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.in_features = positive("in_features", in_features)
        self.out_features = positive("out_features", out_features)
        fits("in_features and out_features", (self.out_features, self.in_features))
        flag("bias", bias)
        self.dtype = dtype_name(dtype)
        draw = generator(rng)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(uniform(draw, bound, (self.out_features, self.in_features), self.dtype))
        self.register_parameter("bias", Parameter(uniform(draw, bound, (self.out_features,), self.dtype)) if bias else None)
        self._kernels: dict[int, Any] = {}
        self._input: tuple[np.ndarray, tuple[int, ...]] | None = None

    def kernel(self, rows: int) -> Any:
        """The layer's kernels (a :class:`symconv.kernels.LinearKernel`) for ``rows`` input vectors
        (built on first use, then reused)."""
        found = self._kernels.get(rows)
        if found is None:
            found = layer_kernels().linear(rows, self.in_features, self.out_features, self.bias is not None, self.dtype)
            self._kernels[rows] = found
        return found

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``(*, in_features)`` -> ``(*, out_features)``."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, but got {type(x).__name__}")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (*, {self.in_features}), but got {x.shape}")
        kept = saved_copy(x).reshape(-1, self.in_features)
        bias = None if self.bias is None else self.bias.data
        out = self.kernel(kept.shape[0]).forward(kept, self.weight.data, bias)
        self._input = (kept, x.shape)
        return out.reshape(*x.shape[:-1], self.out_features)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Accumulate dL/dW (and dL/db) for the last ``forward``; return dL/dx."""
        kept, shape = need_forward(self._input)
        expected = (*shape[:-1], self.out_features)
        if not isinstance(grad_out, np.ndarray):
            raise TypeError(f"grad_out must be a numpy.ndarray, but got {type(grad_out).__name__}")
        if grad_out.shape != expected:
            raise ValueError(f"grad_out must have shape {expected}, but got {grad_out.shape}")
        g = grad_out.reshape(-1, self.out_features)
        dx, dw, db = self.kernel(kept.shape[0]).backward(kept, self.weight.data, g)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx.reshape(shape)

    def extra_repr(self) -> str:
        text = f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        return text + (f", dtype={self.dtype!r}" if self.dtype != "float32" else "")


class Flatten(Module):
    """Merge the axes ``start_dim..end_dim`` into one (PyTorch's defaults: all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, but got {value!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)
        self._shape: tuple[int, ...] | None = None

    def _axes(self, ndim: int) -> tuple[int, int]:
        start = self.start_dim + ndim if self.start_dim < 0 else self.start_dim
        end = self.end_dim + ndim if self.end_dim < 0 else self.end_dim
        if not (0 <= start < ndim and 0 <= end < ndim) or start > end:
            raise ValueError(
                f"start_dim={self.start_dim} and end_dim={self.end_dim} must name axes of x "
                f"(ndim {ndim}) with start_dim <= end_dim"
            )
        return start, end

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, but got {type(x).__name__}")
        start, end = self._axes(x.ndim)
        self._shape = x.shape
        return x.reshape(*x.shape[:start], math.prod(x.shape[start : end + 1]), *x.shape[end + 1 :])

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        shape = need_forward(self._shape)
        if not isinstance(grad_out, np.ndarray):
            raise TypeError(f"grad_out must be a numpy.ndarray, but got {type(grad_out).__name__}")
        if grad_out.size != math.prod(shape):
            raise ValueError(f"grad_out must have as many entries as x of shape {shape}, but got {grad_out.shape}")
        return grad_out.reshape(shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
