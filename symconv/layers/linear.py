"""The fully connected layer: ``Y = X Wᵀ + b`` (the lecture's "stretch out into a long vector").

With X of shape (N, in) and W of shape (out, in), as ``torch.nn.Linear``::

    y[n,j] = b[j] + Σ_i x[n,i]·W[j,i]
    ∂L/∂W = Gᵀ X,    ∂L/∂X = G W,    ∂L/∂b = Σ_n G[n,:]

It is also a convolution: a rank-1 one with a kernel of size 1, ``ConvSpec(input=(N, in, 1),
weight=(out, in, 1), bias=True)``; ``verify`` checks that the convolution's derivation writes the
same forward equations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ..spec import ConvSpec
from . import validate
from .base import Check, LayerDerivation, compare, object_array, symbol_array

#: Most weights a symbolic linear layer may have.
MAX_WEIGHTS = 64


@dataclass(frozen=True)
class LinearSpec:
    """``torch.nn.Linear(in_features, out_features, bias=True)`` on a batch of ``batch`` vectors."""

    in_features: int
    out_features: int
    bias: bool = True
    batch: int = 1

    def __post_init__(self) -> None:
        for name in ("in_features", "out_features", "batch"):
            object.__setattr__(self, name, validate.positive_int(name, getattr(self, name)))
        validate.flag("bias", self.bias)
        validate.at_most("in_features × out_features", self.in_features * self.out_features, MAX_WEIGHTS, "one symbol per weight")
        validate.at_most("batch × in_features", self.batch * self.in_features, MAX_WEIGHTS, "one symbol per input")

    @property
    def input(self) -> tuple[int, int]:
        return (self.batch, self.in_features)

    @property
    def weight(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)

    @property
    def output(self) -> tuple[int, int]:
        return (self.batch, self.out_features)

    def as_conv(self) -> ConvSpec:
        """The same layer as a rank-1 convolution with kernel size 1."""
        return ConvSpec(input=(self.batch, self.in_features, 1), weight=(self.out_features, self.in_features, 1), bias=self.bias)

    def describe(self) -> str:
        bias = ", bias" if self.bias else ""
        return (
            f"Linear, X {validate.dims(self.input)} · Wᵀ (W {validate.dims(self.weight)}){bias} "
            f"→ Y {validate.dims(self.output)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias, "batch": self.batch}


class LinearDerivation(LayerDerivation):
    kind = "linear"

    def __init__(self, spec: LinearSpec) -> None:
        if not isinstance(spec, LinearSpec):
            raise TypeError(f"spec must be a LinearSpec, but got {type(spec).__name__}")
        super().__init__(spec)
        self.wrt = ("X", "W", "b") if spec.bias else ("X", "W")

    def _symbols(self) -> dict[str, np.ndarray]:
        arrays = {"X": symbol_array("X", self.spec.input), "W": symbol_array("W", self.spec.weight)}
        if self.spec.bias:
            arrays["b"] = symbol_array("b", (self.spec.out_features,))
        return arrays

    def _forward(self) -> np.ndarray:
        X, W = self.X, self.W
        b = self.inputs.get("b")

        def entry(o: tuple[int, ...]) -> sp.Expr:
            n, j = o
            terms = [X[n, i] * W[j, i] for i in range(self.spec.in_features)]
            return sp.Add(*([b[j]] if b is not None else []), *terms)

        return object_array(self.spec.output, entry)

    def closed_form(self) -> dict[str, np.ndarray]:
        """Matrix products of the symbol arrays: Gᵀ X, G W, and the column sums of G."""
        G, X, W = self.G, self.X, self.W
        out = {"dW": G.T.dot(X), "dX": G.dot(W)}
        if self.spec.bias:
            out["db"] = object_array((self.spec.out_features,), lambda j: sp.Add(*G[:, j[0]]))
        return out

    def rule_statement(self, gradient: str) -> str:
        return {"dW": "∂L/∂W = Gᵀ X", "dX": "∂L/∂X = G W", "db": "∂L/∂b = Σ_n G[n,:]"}[gradient]

    def _extra_checks(self) -> list[Check]:
        """The convolution's derivation of the rank-1, kernel-1 convolution writes the same Y."""
        from ..derive import derive

        conv = derive(self.spec.as_conv())
        rename = {conv.X[n, i, 0]: self.X[n, i] for n, i in np.ndindex(*self.spec.input)}
        rename.update({conv.W[j, i, 0]: self.W[j, i] for j, i in np.ndindex(*self.spec.weight)})
        if self.spec.bias:
            rename.update({conv.b[j]: self.b[j] for j in range(self.spec.out_features)})
        as_conv = object_array(self.spec.output, lambda o: conv.O[o[0], o[1], 0].xreplace(rename))
        return [compare("conv", "Y is the convolution ConvSpec(input=(N, in, 1), weight=(out, in, 1))", self.Y, as_conv)]
