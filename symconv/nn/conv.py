"""``Conv2d``: a 2-D convolution layer on numpy arrays, shaped and initialised like PyTorch's.

The arithmetic runs in the generated C kernels (:func:`symconv.build`), one set per input shape,
built on first use and reused (and cached on disk across processes).

>>> import numpy as np
>>> from symconv.nn import Conv2d
>>> layer = Conv2d(1, 6, 5, rng=0)
>>> out = layer(np.zeros((2, 1, 28, 28), np.float32))
>>> out.shape, layer.backward(np.ones_like(out)).shape, layer.weight.grad.shape
((2, 6, 24, 24), (2, 1, 28, 28), (6, 1, 5, 5))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from codegen.kernel import ConvKernel

from ..api import build
from ..pipeline import dtype_name
from ..spec import ConvSpec
from ._args import flag, generator, is_int, pair, positive, uniform
from .module import Module, Parameter, need_forward, saved_copy


def _padding(value: Any) -> Any:
    """An int, a pair, a pair of (lo, hi) pairs, "valid" or "same" (ranges are checked by ConvSpec)."""
    if isinstance(value, str) or is_int(value):
        return value if isinstance(value, str) else (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(tuple(v) if isinstance(v, (tuple, list)) else v for v in value)
    raise TypeError(f"padding must be an int, a pair, two (lo, hi) pairs, 'valid' or 'same', but got {value!r}")


#: Appended to a kernel_size range error: the same rule as ConvSpec's for the weight's shape.
_KERNEL_WHY = " (weight dimensions must be positive)"


class Conv2d(Module):
    """2-D convolution (cross-correlation) with PyTorch's parameters, shapes and initialisation.

    ``weight.data`` has shape ``(out_channels, in_channels // groups, kH, kW)``, ``bias.data``
    ``(out_channels,)``; both start as ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
    ``fan_in = in_channels // groups * kH * kW`` (PyTorch's kaiming-uniform with ``a=sqrt(5)``),
    drawn from ``rng`` (a ``numpy.random.Generator``, a non-negative int seed, or None).

    ``padding`` is an int, a pair, a pair of ``(lo, hi)`` pairs (asymmetric), ``"valid"`` or
    ``"same"``. Inputs are ``(N, C, H, W)`` arrays of the layer's dtype.

    ``forward(x)`` keeps a private copy of ``x`` for the backward pass (so changing ``x``
    afterwards does not change the gradients); ``backward(grad_out)`` adds ``dL/dW`` and
    ``dL/db`` into ``weight.grad`` and ``bias.grad`` (accumulating, as PyTorch does, until
    ``zero_grad()``) and returns ``dL/dx``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Any = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: object = "float32",
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = positive("in_channels", in_channels)
        self.out_channels = positive("out_channels", out_channels)
        self.kernel_size = pair("kernel_size", kernel_size, why=_KERNEL_WHY)
        self.stride = pair("stride", stride)
        self.padding = _padding(padding)
        self.dilation = pair("dilation", dilation)
        self.groups = positive("groups", groups)
        flag("bias", bias)
        self.dtype = dtype_name(dtype)
        weight_shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self._spec(self._probe_input(weight_shape), weight_shape, bias)  # validates all of the above
        draw = generator(rng)
        bound = 1.0 / math.sqrt(weight_shape[1] * self.kernel_size[0] * self.kernel_size[1])
        self.weight = Parameter(uniform(draw, bound, weight_shape, self.dtype))
        self.register_parameter("bias", Parameter(uniform(draw, bound, (out_channels,), self.dtype)) if bias else None)
        self._kernels: dict[tuple[int, ...], ConvKernel] = {}
        self._input: np.ndarray | None = None

    # -- helpers -------------------------------------------------------------------------------
    def _probe_input(self, weight_shape: tuple[int, ...]) -> tuple[int, ...]:
        """An input shape just large enough for the kernel (to validate the hyper-parameters)."""
        reach = [max(1, d * (k - 1) + 1) for k, d in zip(self.kernel_size, self.dilation)]
        return (1, self.in_channels, *reach)

    def _spec(self, input_shape: tuple[int, ...], weight_shape: tuple[int, ...], bias: bool) -> ConvSpec:
        return ConvSpec(
            input=input_shape,
            weight=weight_shape,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=bias,
        )

    def kernel(self, input_shape: tuple[int, ...]) -> ConvKernel:
        """The compiled kernels for inputs of ``input_shape`` (built on first use, then reused)."""
        found = self._kernels.get(input_shape)
        if found is None:
            spec = self._spec(input_shape, self.weight.data.shape, self.bias is not None)
            found = self._kernels[input_shape] = build(spec, self.dtype)
        return found

    def _check_input(self, x: Any) -> None:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, but got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), but got {x.shape}")

    # -- the layer -----------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """The layer's output for ``x`` of shape ``(N, in_channels, H, W)``; keeps ``x`` for backward."""
        self._check_input(x)
        kernel = self.kernel(x.shape)
        kept = saved_copy(x)
        out = kernel.forward(kept, self.weight.data, None if self.bias is None else self.bias.data)
        self._input = kept
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Add ``dL/dW`` (and ``dL/db``) for the last ``forward`` into the grads, return ``dL/dx``."""
        x = need_forward(self._input)
        dx, dw, db = self.kernel(x.shape).backward(x, self.weight.data, grad_out)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        extras = []
        if self.stride != (1, 1):
            extras.append(f"stride={self.stride}")
        if self.padding not in ((0, 0), "valid"):
            extras.append(f"padding={self.padding!r}")
        if self.dilation != (1, 1):
            extras.append(f"dilation={self.dilation}")
        if self.groups != 1:
            extras.append(f"groups={self.groups}")
        if self.bias is None:
            extras.append("bias=False")
        if self.dtype != "float32":
            extras.append(f"dtype={self.dtype!r}")
        head = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        return ", ".join([head, *extras])
