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
import numbers
from typing import Any

import numpy as np

from codegen.kernel import ConvKernel

from ..api import build
from ..pipeline import dtype_name
from ..spec import ConvSpec


class Parameter:
    """A trainable array: ``data`` (the values) and ``grad`` (the last gradient, or None)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints, as a pair (ranges are checked by ConvSpec)."""
    if _is_int(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name} must be an int or a pair of ints, but got {value!r}")


def _padding(value: Any) -> Any:
    """An int, a pair, a pair of (lo, hi) pairs, "valid" or "same" (checked by ConvSpec)."""
    if isinstance(value, str) or _is_int(value):
        return value if isinstance(value, str) else (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(tuple(v) if isinstance(v, (tuple, list)) else v for v in value)
    raise TypeError(f"padding must be an int, a pair, two (lo, hi) pairs, 'valid' or 'same', but got {value!r}")


def _positive(name: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, but got {value!r}")
    return int(value)


class Conv2d:
    """2-D convolution (cross-correlation) with PyTorch's parameters, shapes and initialisation.

    ``weight.data`` has shape ``(out_channels, in_channels // groups, kH, kW)``, ``bias.data``
    ``(out_channels,)``; both start as ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
    ``fan_in = in_channels // groups * kH * kW`` (PyTorch's kaiming-uniform with ``a=sqrt(5)``),
    drawn from ``rng`` (a ``numpy.random.Generator``, a seed, or None).

    ``padding`` is an int, a pair, a pair of ``(lo, hi)`` pairs (asymmetric), ``"valid"`` or
    ``"same"``. Inputs are ``(N, C, H, W)`` arrays of the layer's dtype.

    ``forward(x)`` keeps ``x`` for the backward pass; ``backward(grad_out)`` stores (overwrites,
    does not accumulate) ``weight.grad`` and ``bias.grad`` and returns ``dL/dx``.
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
        self.in_channels = _positive("in_channels", in_channels)
        self.out_channels = _positive("out_channels", out_channels)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.stride = _pair("stride", stride)
        self.padding = _padding(padding)
        self.dilation = _pair("dilation", dilation)
        self.groups = _positive("groups", groups)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, but got {bias!r}")
        self.dtype = dtype_name(dtype)
        weight_shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self._spec(self._probe_input(weight_shape), weight_shape, bias)  # validates all of the above
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        fan_in = weight_shape[1] * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(generator.uniform(-bound, bound, weight_shape).astype(self.dtype))
        self.bias = Parameter(generator.uniform(-bound, bound, out_channels).astype(self.dtype)) if bias else None
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
        out = kernel.forward(x, self.weight.data, None if self.bias is None else self.bias.data)
        self._input = x
        return out

    __call__ = forward

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Store ``weight.grad`` (and ``bias.grad``) for the last ``forward``, return ``dL/dx``."""
        if self._input is None:
            raise RuntimeError("backward needs a forward pass first: call forward(x) before backward(grad_out)")
        x = self._input
        dx, dw, db = self.kernel(x.shape).backward(x, self.weight.data, grad_out)
        self.weight.grad = dw
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def parameters(self) -> list[Parameter]:
        """``[weight, bias]`` (``[weight]`` without bias)."""
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def zero_grad(self) -> None:
        for parameter in self.parameters():
            parameter.grad = None

    def __repr__(self) -> str:
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
        return f"Conv2d({', '.join([head, *extras])})"
