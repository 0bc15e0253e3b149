"""Element-wise activations (ReLU, sigmoid): spec and derivation.

The forward expression comes from ``formulas.ACTIVATIONS``; SymPy differentiates it. Two rules
are checked on the way:

* sigmoid: SymPy's ``exp(−x)/(1 + exp(−x))²`` equals ``s(1 − s)`` (the lecture's simplification);
* ReLU: SymPy's derivative of ``Max(x, 0)`` is ``Heaviside(x)``, whose value at 0 SymPy leaves as
  1/2; the derivation takes the subgradient 0 there, as PyTorch does (``Heaviside(x, 0)``), so the
  gradient is ``G`` where ``x > 0`` and 0 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from . import formulas, validate
from .base import Check, LayerDerivation, object_array, symbol_array

#: Most entries a symbolic activation may have (a page is meant to be read).
MAX_ENTRIES = 64

KINDS = tuple(formulas.ACTIVATIONS)


@dataclass(frozen=True)
class ActivationSpec:
    """An element-wise activation ``kind`` ("relu" or "sigmoid") on an array of ``shape``."""

    kind: str
    shape: tuple[int, ...] = (1, 3)

    def __post_init__(self) -> None:
        validate.choice("kind", self.kind, KINDS)
        shape = validate.shape("shape", self.shape, (1, 2, 3, 4))
        validate.at_most("the number of entries", int(np.prod(shape)), MAX_ENTRIES, "one equation per entry")
        object.__setattr__(self, "shape", shape)

    @property
    def output(self) -> tuple[int, ...]:
        return self.shape

    def describe(self) -> str:
        name = {"relu": "ReLU", "sigmoid": "Sigmoid"}[self.kind]
        size = validate.dims(self.shape)
        return f"{name}, X {size} → Y {size} (element-wise)"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shape": list(self.shape)}


def with_relu_convention(expr: sp.Expr) -> sp.Expr:
    """``Heaviside(a)`` -> ``Heaviside(a, 0)``: ReLU'(0) = 0, PyTorch's subgradient."""
    return expr.replace(
        lambda e: isinstance(e, sp.Heaviside) and e.args[1] != formulas.HEAVISIDE_AT_ZERO,
        lambda e: sp.Heaviside(e.args[0], formulas.HEAVISIDE_AT_ZERO),
    )


def piecewise_zero(difference: sp.Expr) -> bool:
    """Exact zero test for expressions with Heaviside steps: rewritten as Piecewise, simplified."""
    if difference == 0:
        return True
    return sp.simplify(sp.piecewise_fold(difference.rewrite(sp.Piecewise))) == 0


class ActivationDerivation(LayerDerivation):
    """``Y = f(X)`` entry by entry, ``∂L/∂X = G ⊙ f'(X)``."""

    wrt = ("X",)

    def __init__(self, spec: ActivationSpec) -> None:
        super().__init__(spec)
        self.kind = spec.kind

    @property
    def formula(self) -> sp.Expr:
        return formulas.ACTIVATIONS[self.spec.kind]

    def _symbols(self) -> dict[str, np.ndarray]:
        return {"X": symbol_array("X", self.spec.shape)}

    def _forward(self) -> np.ndarray:
        X = self.X
        return object_array(self.spec.shape, lambda i: self.formula.subs(formulas.x, X[i]))

    # -- the rules --------------------------------------------------------------------------------
    @property
    def raw_derivative(self) -> sp.Expr:
        """SymPy's derivative of the defining formula, before any convention: f'(x)."""
        return sp.diff(self.formula, formulas.x)

    @property
    def rule(self) -> sp.Expr:
        """The lecture's form of f'(x), in terms of x and y = f(x)."""
        y = sp.Symbol("y", real=True)
        if self.kind == "sigmoid":
            return y * (1 - y)
        return sp.Piecewise((sp.Integer(1), formulas.x > 0), (sp.Integer(0), True))

    def local_derivative(self, o: tuple[int, ...], symbol: sp.Symbol) -> sp.Expr:
        return with_relu_convention(sp.diff(self.Y[o], symbol))

    def gradient_is_zero(self, difference: sp.Expr) -> bool:
        return piecewise_zero(difference) if self.kind == "relu" else sp.simplify(difference) == 0

    def closed_form(self) -> dict[str, np.ndarray]:
        """sigmoid: G·y(1 − y) with y the forward value; ReLU: G where x > 0, else 0."""
        X, G, Y = self.X, self.G, self.Y
        if self.kind == "sigmoid":
            return {"dX": object_array(X.shape, lambda i: G[i] * Y[i] * (1 - Y[i]))}
        return {"dX": object_array(X.shape, lambda i: sp.Piecewise((G[i], X[i] > 0), (0, True)))}

    def rule_statement(self, gradient: str) -> str:
        if self.kind == "sigmoid":
            return "∂L/∂x = ∂L/∂y · y(1 − y)"
        return "∂L/∂x = ∂L/∂y where x > 0, else 0 (ReLU'(0) = 0 as PyTorch)"

    def _extra_checks(self) -> list[Check]:
        x = formulas.x
        y = self.formula
        raw = self.raw_derivative
        if self.kind == "sigmoid":
            ok = sp.simplify(raw - y * (1 - y)) == 0
            return [Check("rule", "d/dx 1/(1 + e^(−x)) = s(1 − s) with s the sigmoid", ok, 1)]
        # SymPy: Max(x, 0)' = Heaviside(x) with Heaviside(0) = 1/2; the convention moves it to 0.
        convention = with_relu_convention(raw)
        values = {v: convention.subs(x, v) for v in (-1, 0, 1)}
        ok = raw == sp.Heaviside(x) and values == {-1: 0, 0: 0, 1: 1}
        detail = f"SymPy: d/dx Max(x, 0) = {raw}, which is {raw.subs(x, 0)} at x = 0; taken as 0"
        return [Check("rule", "d/dx Max(x, 0) = 1 for x > 0, 0 for x ≤ 0 (subgradient 0 at 0)", ok, 3, detail)]

    def resolved(self, values: Any) -> np.ndarray:
        """∂L/∂X at concrete inputs (G left symbolic): the subgradient convention applied."""
        values = np.asarray(values)
        if values.shape != self.spec.shape:
            raise ValueError(f"values must have shape {self.spec.shape}, but got {values.shape}")
        subs = {s: sp.nsimplify(v) for s, v in zip(self.X.ravel(), values.ravel())}
        return object_array(self.spec.shape, lambda i: self.dX[i].subs(subs))

