"""The transposed convolution ("deconvolution"): spec, derivation, and "deconvolution is convolution".

``torch.nn.ConvTranspose2d(in, out, kernel, stride, padding, output_padding, groups, bias,
dilation)``: every input entry scatters a copy of the filter, scaled by the entry, into the output
(stride apart, the first ``padding`` rows and columns cropped)::

    Y[n, o, y, x] = b[o] + Σ  X[n, c, h, w]·W[c, o', r, t]   over  h·s − p + r·d = y,  w·s − p + t·d = x

The derivation builds Y from this scatter definition, differentiates L = Σ G·Y with SymPy, and
compares with the *convolution's* derivation (``symconv.derive``) of the layer ``as_conv()`` —
the convolution that maps an array of Y's shape to one of X's shape with the same weight, stride,
padding, dilation and groups:

* forward:   Y      = that convolution's ∂L/∂X, with its upstream gradient replaced by X
* input:     ∂L/∂X  = that convolution's forward O, applied to G
* weight:    ∂L/∂W  = that convolution's ∂L/∂W, with its input G and its upstream gradient X

So a transposed convolution needs no kernels of its own: its forward is the convolution's
backward-data, its backward-data is the convolution's forward.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from ..derive import Derivation, derive
from ..spec import ConvSpec
from . import validate
from .base import Check, LayerDerivation, compare, object_array, symbol_array

#: Most entries of the input and of the output a symbolic derivation accepts.
MAX_ENTRIES = 144


@dataclass(frozen=True)
class ConvTranspose2dSpec:
    """Input (N, C_in, H, W), weight (C_in, C_out/groups, KH, KW) as PyTorch stores it.

    ``output_padding`` must be smaller than the stride (the rows it adds are then the ones the
    convolution's floor drops, so the identity with the convolution holds exactly).
    """

    input: tuple[int, ...]
    weight: tuple[int, ...]
    stride: Any = 1
    padding: Any = 0
    output_padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = False

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("input", validate.shape("input", self.input, 4))
        set_("weight", validate.shape("weight", self.weight, 4))
        set_("stride", validate.pair("stride", self.stride, 1))
        set_("padding", validate.pair("padding", self.padding, 0))
        set_("output_padding", validate.pair("output_padding", self.output_padding, 0))
        set_("dilation", validate.pair("dilation", self.dilation, 1))
        set_("groups", validate.positive_int("groups", self.groups))
        validate.flag("bias", self.bias)
        if self.weight[0] != self.input[1]:
            raise ValueError(
                f"weight must have the input's channels first (C_in = {self.input[1]}), but got weight {self.weight}"
            )
        if self.input[1] % self.groups:
            raise ValueError(f"groups must divide in_channels, but got {self.groups} and {self.input[1]}")
        for axis, op, s in zip(("height", "width"), self.output_padding, self.stride):
            if op >= s:
                raise ValueError(f"output_padding must be smaller than the stride, but got {op} and stride {s} ({axis})")
        if min(self.output[2:]) < 1:
            raise ValueError(f"the output must have a size >= 1 on every axis, but got {self.output}")
        validate.at_most("input entries", int(np.prod(self.input)), MAX_ENTRIES, "one equation per entry")
        validate.at_most("output entries", int(np.prod(self.output)), MAX_ENTRIES, "one equation per entry")

    @property
    def out_channels(self) -> int:
        return self.weight[1] * self.groups

    @property
    def output(self) -> tuple[int, int, int, int]:
        sizes = tuple(
            (size - 1) * s - 2 * p + d * (k - 1) + op + 1
            for size, s, p, d, k, op in zip(
                self.input[2:], self.stride, self.padding, self.dilation, self.weight[2:], self.output_padding
            )
        )
        return (self.input[0], self.out_channels, sizes[0], sizes[1])

    def as_conv(self) -> ConvSpec:
        """The convolution whose backward-data this layer's forward is: Y's shape → X's shape."""
        return ConvSpec(
            input=self.output,
            weight=self.weight,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )

    def describe(self) -> str:
        parts = [f"ConvTranspose2d, X {validate.dims(self.input)}, W {validate.dims(self.weight)}"]
        for name in ("stride", "padding", "output_padding", "dilation"):
            value = getattr(self, name)
            default = 1 if name in ("stride", "dilation") else 0
            if value != (default, default):
                parts.append(f"{name} {value[0] if value[0] == value[1] else value}")
        if self.groups != 1:
            parts.append(f"groups {self.groups}")
        if self.bias:
            parts.append("bias")
        return ", ".join(parts) + f" → Y {validate.dims(self.output)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": list(self.input),
            "weight": list(self.weight),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "output_padding": list(self.output_padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.bias,
        }


class ConvTranspose2dDerivation(LayerDerivation):
    """``conv`` is the convolution's ``Derivation`` (of ``spec.as_conv()``) it is compared with."""

    kind = "conv_transpose2d"

    def __init__(self, spec: ConvTranspose2dSpec) -> None:
        if not isinstance(spec, ConvTranspose2dSpec):
            raise TypeError(f"spec must be a ConvTranspose2dSpec, but got {type(spec).__name__}")
        super().__init__(spec)
        self.wrt = ("X", "W", "b") if spec.bias else ("X", "W")

    @cached_property
    def conv(self) -> Derivation:
        return derive(self.spec.as_conv())

    def _symbols(self) -> dict[str, np.ndarray]:
        arrays = {"X": symbol_array("X", self.spec.input), "W": symbol_array("W", self.spec.weight)}
        if self.spec.bias:
            arrays["b"] = symbol_array("b", (self.spec.out_channels,))
        return arrays

    def _forward(self) -> np.ndarray:
        """The scatter definition: each X entry adds X·W[c, o', :, :] to Y, stride apart."""
        spec = self.spec
        terms: dict[tuple[int, ...], list[sp.Expr]] = {o: [] for o in np.ndindex(*spec.output)}
        in_per_group, out_per_group = spec.input[1] // spec.groups, spec.weight[1]
        n_, c_, h_, w_ = spec.input
        for n, c, h, w in itertools.product(range(n_), range(c_), range(h_), range(w_)):
            group = c // in_per_group
            for o_local, r, t in itertools.product(range(out_per_group), range(spec.weight[2]), range(spec.weight[3])):
                y = h * spec.stride[0] - spec.padding[0] + r * spec.dilation[0]
                x = w * spec.stride[1] - spec.padding[1] + t * spec.dilation[1]
                if 0 <= y < spec.output[2] and 0 <= x < spec.output[3]:
                    o = group * out_per_group + o_local
                    terms[(n, o, y, x)].append(self.X[n, c, h, w] * self.W[c, o_local, r, t])
        bias = self.inputs.get("b")
        return object_array(
            spec.output, lambda o: sp.Add(*([bias[o[1]]] if bias is not None else []), *terms[o])
        )

    # -- the convolution's arrays, renamed into this layer's symbols ---------------------------------
    def _renamed(self, array: np.ndarray, mapping: dict[str, np.ndarray]) -> np.ndarray:
        rename: dict[sp.Symbol, sp.Symbol] = {}
        for conv_name, ours in mapping.items():
            rename.update(zip(getattr(self.conv, conv_name).ravel(), ours.ravel()))
        return object_array(array.shape, lambda i: sp.sympify(array[i]).xreplace(rename))

    def closed_form(self) -> dict[str, np.ndarray]:
        """From the convolution's derivation: its forward on G, its weight gradient of (G, X)."""
        out = {
            "dX": self._renamed(self.conv.O, {"X": self.G, "W": self.W}),
            "dW": self._renamed(self.conv.dW, {"X": self.G, "G": self.X}),
        }
        if self.spec.bias:
            G = self.G
            out["db"] = object_array((self.spec.out_channels,), lambda k: sp.Add(*G[:, k[0]].ravel()))
        return out

    @cached_property
    def as_conv_backward(self) -> np.ndarray:
        """The convolution's ∂L/∂X with its upstream gradient replaced by X (plus the bias)."""
        data = self._renamed(self.conv.dX, {"G": self.X, "W": self.W})
        if not self.spec.bias:
            return data
        return object_array(self.spec.output, lambda o: self.b[o[1]] + data[o])

    def rule_statement(self, gradient: str) -> str:
        return {
            "dX": "∂L/∂X = conv(G, W): the convolution's forward",
            "dW": "∂L/∂W = the convolution's weight gradient with input G and upstream gradient X",
            "db": "∂L/∂b = Σ over batch and positions of G",
        }[gradient]

    def _extra_checks(self) -> list[Check]:
        statement = "Y = the convolution's ∂L/∂X with ∂L/∂O := X (deconvolution is convolution)"
        return [compare("forward", statement, self.Y, self.as_conv_backward)]
