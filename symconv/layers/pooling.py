"""Pooling derivations: max pooling (a subgradient, "unpooling") and average pooling (G/divisor).

Max pooling. ``y_o = Max(window)``; SymPy differentiates ``Max`` into
``Heaviside(x_k − Max(other entries))``, which is 1/2 where the maximum is tied: not a gradient
any framework uses. The derivation states its convention explicitly, the one of PyTorch's CPU
kernel: the whole upstream gradient goes to the *first* maximum in window scan order (rows, then
columns). As an expression, entry k of a window wins when it is greater than every entry before it
and not smaller than every entry after it::

    ∂y/∂x_k = Π_{j<k} [x_k > x_j] · Π_{j>k} [x_k ≥ x_j]      ([a > b] = Heaviside(a − b, 0))

Which entry wins depends on the values, so ``verify`` resolves the ``Max`` at concrete numbers
(given, or a default pattern with ties) and compares with "unpooling" computed directly.

Average pooling. ``y_o = (Σ window)/divisor_o``; the gradient spreads ``G_o/divisor_o`` over the
window. ``count_include_pad`` and ``ceil_mode`` change the divisor of border windows.
"""

from __future__ import annotations

import numbers
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from .base import Check, LayerDerivation, LayerVerifyResult, compare, object_array, symbol_array
from .pool_spec import AvgPool2dSpec, MaxPool2dSpec

ZERO = sp.Integer(0)


def default_values(shape: tuple[int, ...]) -> np.ndarray:
    """Small integers with repeats, so some windows have a tied maximum (a fixed pattern)."""
    flat = [((5 * i + 3) % 7) // 2 for i in range(int(np.prod(shape)))]
    return np.array(flat, dtype=np.int64).reshape(shape)


def exact(value: Any) -> sp.Expr:
    """A number as an exact SymPy number (floats by their shortest decimal)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"values must be numbers, but got {value!r}")
    if isinstance(value, (int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"values must be real numbers, but got {value!r}")
    try:
        number = float(value)
    except (OverflowError, TypeError, ValueError):  # a Fraction beyond the float range
        raise ValueError(f"values must be finite numbers, but got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"values must be finite numbers, but got {value!r}")
    return sp.Rational(repr(number))


def first_max_indicator(entries: list[sp.Symbol], k: int) -> sp.Expr:
    """1 when ``entries[k]`` is the first maximum of ``entries`` (scan order), else 0."""
    xk = entries[k]
    before = [sp.Heaviside(xk - xj, 0) for xj in entries[:k]]
    after = [sp.Heaviside(xk - xj, 1) for xj in entries[k + 1 :]]
    return sp.Mul(*before, *after)


class MaxPool2dDerivation(LayerDerivation):
    """Max pooling. ``local`` holds the subgradient convention; ``sympy_local`` what SymPy's
    ``diff`` of ``Max`` gives; ``values`` the numbers ``verify`` resolves the maxima at."""

    kind = "maxpool2d"
    wrt = ("X",)

    def __init__(self, spec: MaxPool2dSpec, values: Any = None) -> None:
        if not isinstance(spec, MaxPool2dSpec):
            raise TypeError(f"spec must be a MaxPool2dSpec, but got {type(spec).__name__}")
        super().__init__(spec)
        if values is None:
            values = default_values(spec.input)
        array = np.asarray(values, dtype=object)
        if array.shape != spec.input:
            raise ValueError(f"values must have the input's shape {spec.input}, but got {array.shape}")
        self.values = object_array(spec.input, lambda i: exact(array[i]))

    def _symbols(self) -> dict[str, np.ndarray]:
        return {"X": symbol_array("X", self.spec.input)}

    def window(self, o: tuple[int, ...]) -> list[sp.Symbol]:
        return [self.X[i] for i in self.spec.window(o)]

    def _forward(self) -> np.ndarray:
        return object_array(self.spec.output, lambda o: sp.Max(*self.window(o)))

    def local_derivative(self, o: tuple[int, ...], symbol: sp.Symbol) -> sp.Expr:
        # The convention needs the window's scan order (Max sorts its arguments).
        order = self.window(o)
        return first_max_indicator(order, order.index(symbol))

    @cached_property
    def sympy_local(self) -> dict[tuple[int, ...], dict[sp.Symbol, sp.Expr]]:
        """SymPy's own ``diff`` of each ``Max`` (Heaviside with value 1/2 at a tie)."""
        return {o: {s: sp.diff(self.Y[o], s) for s in grads} for o, grads in self.local.items()}

    # -- at concrete numbers ---------------------------------------------------------------------
    @cached_property
    def _subs(self) -> dict[sp.Symbol, sp.Expr]:
        return dict(zip(self.X.ravel(), self.values.ravel()))

    @cached_property
    def resolved(self) -> np.ndarray:
        """∂L/∂X at ``values`` (G symbolic): the chain-rule sum with every Max resolved."""
        return object_array(self.spec.input, lambda i: self.dX[i].xreplace(self._subs))

    @cached_property
    def forward_values(self) -> np.ndarray:
        return object_array(self.spec.output, lambda o: self.Y[o].xreplace(self._subs))

    def closed_form(self) -> dict[str, np.ndarray]:
        """Unpooling at ``values``: each G_o goes to its window's first maximum (found by a plain
        scan, not by SymPy)."""
        out = object_array(self.spec.input, lambda i: ZERO)
        for o in np.ndindex(*self.spec.output):
            positions = self.spec.window(o)
            numbers = [self.values[p] for p in positions]
            best = max(range(len(numbers)), key=numbers.__getitem__)  # max() keeps the first of ties
            out[positions[best]] += self.G[o]
        return {"dX": out}

    def tied_windows(self) -> list[tuple[int, ...]]:
        """Outputs whose window holds its maximum more than once at ``values``."""
        tied = []
        for o in np.ndindex(*self.spec.output):
            numbers = [self.values[p] for p in self.spec.window(o)]
            if numbers.count(max(numbers)) > 1:
                tied.append(o)
        return tied

    def verify(self) -> LayerVerifyResult:
        if self._verified is None:
            checks = [self._sympy_agrees(), self._forward_is_max()]
            checks.append(compare("dX", self.rule_statement("dX"), self.resolved, self.closed_form()["dX"]))
            self._verified = LayerVerifyResult(self.spec.describe(), tuple(checks))
        return self._verified

    def rule_statement(self, gradient: str) -> str:
        return "∂L/∂x = Σ of ∂L/∂y over the windows whose first maximum is x (unpooling), at the values"

    def _forward_is_max(self) -> Check:
        expected = object_array(self.spec.output, lambda o: max(self.values[p] for p in self.spec.window(o)))
        return compare("forward", "Y at the values is each window's maximum", self.forward_values, expected)

    def _sympy_agrees(self) -> Check:
        """Where a window's maximum is unique, SymPy's Heaviside derivative and the convention agree;
        at a tie SymPy gives 1/2 to each tied entry and the convention all to the first."""
        tied = set(self.tied_windows())
        compared = 0
        for o, grads in self.sympy_local.items():
            if o in tied:
                continue
            for symbol, derivative in grads.items():
                compared += 1
                if derivative.xreplace(self._subs) != self.local[o][symbol].xreplace(self._subs):
                    return Check("sympy", "SymPy's d Max agrees with the convention", False, compared, f"at {o}, {symbol}")
        detail = f"{len(tied)} window(s) with a tied maximum, where SymPy's Heaviside(0) = 1/2 is replaced"
        return Check("sympy", "SymPy's diff of Max equals the first-maximum rule where the maximum is unique", True, compared, detail)


class AvgPool2dDerivation(LayerDerivation):
    """Average pooling: ``y_o = Σ window / divisor_o`` and ``∂L/∂x = Σ_{o ∋ x} G_o / divisor_o``."""

    kind = "avgpool2d"
    wrt = ("X",)

    def __init__(self, spec: AvgPool2dSpec) -> None:
        if not isinstance(spec, AvgPool2dSpec):
            raise TypeError(f"spec must be an AvgPool2dSpec, but got {type(spec).__name__}")
        super().__init__(spec)

    def _symbols(self) -> dict[str, np.ndarray]:
        return {"X": symbol_array("X", self.spec.input)}

    def _forward(self) -> np.ndarray:
        def entry(o: tuple[int, ...]) -> sp.Expr:
            total = sp.Add(*(self.X[i] for i in self.spec.window(o)))
            return sp.Mul(sp.Rational(1, self.spec.divisor(o)), total, evaluate=False)

        return object_array(self.spec.output, entry)

    @cached_property
    def divisors(self) -> np.ndarray:
        return np.array([self.spec.divisor(o) for o in np.ndindex(*self.spec.output)]).reshape(self.spec.output)

    def closed_form(self) -> dict[str, np.ndarray]:
        """Spread G_o / divisor_o over every real entry of window o."""
        out = object_array(self.spec.input, lambda i: ZERO)
        for o in np.ndindex(*self.spec.output):
            share = self.G[o] / self.spec.divisor(o)
            for position in self.spec.window(o):
                out[position] += share
        return {"dX": out}

    def rule_statement(self, gradient: str) -> str:
        return "∂L/∂x = Σ over the windows containing x of ∂L/∂y / divisor"
