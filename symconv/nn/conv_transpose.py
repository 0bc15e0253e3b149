"""``ConvTranspose2d``: "deconvolution is convolution".

A transposed convolution is the backward-data pass of an ordinary convolution: its forward is
that convolution's ``grad_input`` kernel, and its own backward needs only the convolution's
``forward`` (for dL/dx) and ``grad_weight`` (for dL/dW). No second implementation: all three are
the generated kernels of one :class:`~symconv.spec.ConvSpec`, built through :func:`symconv.build`.

The convolution ``C`` behind a transposed layer with input ``(N, in, H, W)``:

* ``C``'s input is the transposed layer's output ``(N, out, OH, OW)``, its output the
  transposed layer's input (so ``C``'s ``in_channels`` is ``out`` and its ``out_channels`` is
  ``in``), and ``C``'s weight ``(in, out/groups, kH, kW)`` is exactly PyTorch's weight layout
  for ``ConvTranspose2d``;
* ``OH = (H-1)·s - 2p + d·(kH-1) + output_padding + 1`` (PyTorch's formula); ``C`` pads ``p`` on
  the low side and ``p - output_padding`` on the high side, so that its output is exactly ``H``.
  When ``output_padding > p`` the last ``output_padding - p`` rows are outside every window: they
  get only the bias, and ``C`` is built for the rows before them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from codegen.kernel import ConvKernel

from ..api import build
from ..pipeline import dtype_name
from ..spec import ConvSpec
from ._args import MAX_ELEMENTS, fits, flag, generator, pair, positive, uniform
from .module import Module, Parameter, need_forward, saved_copy

_KERNEL_WHY = " (weight dimensions must be positive)"


class ConvTranspose2d(Module):
    """2-D transposed convolution with PyTorch's arguments, weight layout and initialisation.

    ``weight.data`` has shape ``(in_channels, out_channels // groups, kH, kW)`` and, with
    ``bias.data`` ``(out_channels,)``, starts as ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` where
    PyTorch's ``fan_in`` is ``out_channels // groups * kH * kW`` (computed from the weight's
    second axis). ``padding`` is an int or a pair (PyTorch's transposed layers take no strings).

    ``forward`` keeps a private copy of its input; ``backward`` accumulates into the grads.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int] = 1,
        dtype: object = "float32",
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = positive("in_channels", in_channels)
        self.out_channels = positive("out_channels", out_channels)
        self.kernel_size = pair("kernel_size", kernel_size, why=_KERNEL_WHY)
        self.stride = pair("stride", stride)
        self.padding = pair("padding", padding, minimum=0)
        self.output_padding = pair("output_padding", output_padding, minimum=0)
        self.dilation = pair("dilation", dilation)
        self.groups = positive("groups", groups)
        flag("bias", bias)
        self.dtype = dtype_name(dtype)
        for name, channels in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if channels % self.groups:
                raise ValueError(f"groups must divide {name}, but got {self.groups} and {channels}")
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(
                    f"output_padding must be smaller than stride or dilation on each axis, but got "
                    f"output_padding={self.output_padding}, stride={self.stride}, dilation={self.dilation}"
                )
        weight_shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        fits("in_channels, out_channels, groups and kernel_size", weight_shape)
        draw = generator(rng)
        bound = 1.0 / math.sqrt(weight_shape[1] * self.kernel_size[0] * self.kernel_size[1])
        self.weight = Parameter(uniform(draw, bound, weight_shape, self.dtype))
        self.register_parameter("bias", Parameter(uniform(draw, bound, (out_channels,), self.dtype)) if bias else None)
        self._kernels: dict[tuple[int, ...], tuple[ConvKernel, tuple[int, int]]] = {}
        self._input: np.ndarray | None = None

    # -- the convolution behind the layer --------------------------------------------------------
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """PyTorch's output shape for an input of ``input_shape`` ``(N, in_channels, H, W)``."""
        n, _, *spatial = input_shape
        sizes = tuple(
            (size - 1) * s - 2 * p + d * (k - 1) + op + 1
            for size, s, p, d, k, op in zip(
                spatial, self.stride, self.padding, self.dilation, self.kernel_size, self.output_padding
            )
        )
        if min(sizes) < 1:
            raise ValueError(f"x of shape {tuple(input_shape)} gives a non-positive output size {sizes}")
        shape = (n, self.out_channels, *sizes)
        if math.prod(shape) > MAX_ELEMENTS:
            raise ValueError(
                f"x of shape {tuple(input_shape)} gives an output of shape {shape}, but the output must have "
                f"at most 2^62 = {MAX_ELEMENTS} elements ({math.prod(shape)})"
            )
        return shape

    def kernel(self, input_shape: tuple[int, ...]) -> tuple[ConvKernel, tuple[int, int]]:
        """The convolution's kernels for this input shape, and the rows/columns appended after it."""
        found = self._kernels.get(input_shape)
        if found is None:
            output = self.output_shape(input_shape)
            extra = tuple(max(op - p, 0) for op, p in zip(self.output_padding, self.padding))
            spec = ConvSpec(
                input=(output[0], self.out_channels, output[2] - extra[0], output[3] - extra[1]),
                weight=self.weight.data.shape,
                stride=self.stride,
                padding=tuple((p, max(p - op, 0)) for p, op in zip(self.padding, self.output_padding)),
                dilation=self.dilation,
                groups=self.groups,
            )
            assert spec.output == tuple(input_shape), (spec.output, input_shape)  # the formula above
            found = self._kernels[input_shape] = (build(spec, self.dtype), extra)
        return found

    def _check_input(self, x: Any) -> None:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, but got {type(x).__name__}")
        if x.dtype != np.dtype(self.dtype):
            raise TypeError(f"x must be {self.dtype}, but got {x.dtype}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), but got {x.shape}")
        if min(x.shape[2:]) < 1:
            raise ValueError(f"x's spatial dimensions must be positive, but got {x.shape}")

    # -- the layer ---------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """``(N, in_channels, H, W)`` -> ``(N, out_channels, OH, OW)``: the convolution's grad_input."""
        self._check_input(x)
        kernel, extra = self.kernel(x.shape)
        kept = saved_copy(x)
        out = kernel.grad_input(kept, self.weight.data)
        if any(extra):
            out = np.pad(out, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
        if self.bias is not None:
            out += self.bias.data[:, None, None]
        self._input = kept
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """dL/dx is the convolution's forward of ``grad_out``; dL/dW its grad_weight."""
        x = need_forward(self._input)
        kernel, extra = self.kernel(x.shape)
        expected = self.output_shape(x.shape)
        if not isinstance(grad_out, np.ndarray):
            raise TypeError(f"grad_out must be a numpy.ndarray, but got {type(grad_out).__name__}")
        if grad_out.dtype != np.dtype(self.dtype):
            raise TypeError(f"grad_out must be {self.dtype}, but got {grad_out.dtype}")
        if grad_out.shape != expected:
            raise ValueError(f"grad_out must have shape {expected}, but got {grad_out.shape}")
        # C order whatever the caller's layout: the bias gradient is a numpy sum that follows the
        # memory order, and the result must not change with it (not one bit)
        grad_out = np.ascontiguousarray(grad_out)
        inside = grad_out[:, :, : expected[2] - extra[0], : expected[3] - extra[1]]
        inside = np.ascontiguousarray(inside)
        dx = kernel.forward(inside, self.weight.data)
        self.weight.accumulate(kernel.grad_weight(inside, x))
        if self.bias is not None:
            self.bias.accumulate(grad_out.sum(axis=(0, 2, 3)))
        return dx

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}", f"stride={self.stride}"]
        for name, default in (("padding", (0, 0)), ("output_padding", (0, 0)), ("dilation", (1, 1))):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self.dtype != "float32":
            parts.append(f"dtype={self.dtype!r}")
        return ", ".join(parts)
