"""Softmax over classes, and softmax cross-entropy: specs and derivations.

Softmax (over dim 1 of an (N, C) array, from ``formulas.softmax``). SymPy differentiates every
``y_i`` with respect to every ``x_j`` of the same sample; the lecture's Jacobian is
``∂y_i/∂x_j = y_i(δ_ij − y_j)``, and the chain rule gives ``∂L/∂x_j = y_j(G_j − Σ_i G_i y_i)``.

Cross-entropy (``formulas.cross_entropy``, PyTorch's ``CrossEntropyLoss`` with mean or sum
reduction). The loss of sample n is ``−Σ_i t_i log softmax(x)_i``; SymPy differentiates the
logarithm of the quotient as it stands. The result simplifies to ``y_j Σ_i t_i − t_j``, which is
the fused gradient ``y − t`` once the targets sum to one (a one-hot class, or a probability
vector). Targets are symbols ``T[n,i]`` with that constraint stated, or concrete class indices.

Exactness: every expression here is a rational function of ``exp(x_k)``; substituting
``x_k = log(u_k)`` with positive ``u_k`` makes the comparisons plain rational cancellation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from . import formulas, validate
from .base import Check, LayerDerivation, compare, object_array, symbol_array

#: Most entries (N·C) a symbolic softmax may have.
MAX_ENTRIES = 24

REDUCTIONS = ("mean", "sum")


def _shape(value: Any) -> tuple[int, int]:
    shape = validate.shape("shape", value, 2)
    validate.at_most("N × C", shape[0] * shape[1], MAX_ENTRIES, "every pair of classes is differentiated")
    return shape  # type: ignore[return-value]


def exp_free_zero(difference: sp.Expr, logits: np.ndarray) -> bool:
    """Exact zero test for rational functions of ``exp(x)``: x = log(u), u > 0, then cancel."""
    if difference == 0:
        return True
    subs = {x: sp.log(sp.Symbol(f"u_{i}", positive=True)) for i, x in enumerate(logits.ravel())}
    return sp.cancel(difference.xreplace(subs)) == 0


@dataclass(frozen=True)
class SoftmaxSpec:
    """``torch.nn.Softmax(dim=1)`` on an (N, C) array."""

    shape: tuple[int, ...] = (1, 3)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _shape(self.shape))

    @property
    def output(self) -> tuple[int, ...]:
        return self.shape

    def describe(self) -> str:
        return f"Softmax over dim 1, X {validate.dims(self.shape)} → Y {validate.dims(self.shape)}"

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}


@dataclass(frozen=True)
class CrossEntropySpec:
    """``torch.nn.CrossEntropyLoss(reduction=...)`` of logits (N, C). ``target``: None for
    symbolic targets ``T[n,i]`` that sum to one per sample, or N class indices."""

    shape: tuple[int, ...] = (1, 3)
    target: tuple[int, ...] | None = None
    reduction: str = "mean"

    def __post_init__(self) -> None:
        shape = _shape(self.shape)
        object.__setattr__(self, "shape", shape)
        validate.choice("reduction", self.reduction, REDUCTIONS)
        if self.target is not None:
            target = validate.shape("target", self.target, len(self.target) if isinstance(self.target, (tuple, list)) else 1, minimum=0)
            if len(target) != shape[0]:
                raise ValueError(f"target must have one class index per sample ({shape[0]}), but got {target!r}")
            if any(t >= shape[1] for t in target):
                raise ValueError(f"target must hold class indices below C = {shape[1]}, but got {target!r}")
            object.__setattr__(self, "target", target)

    @property
    def output(self) -> tuple[int, ...]:
        return ()

    def describe(self) -> str:
        target = "targets T (Σ_i T[n,i] = 1)" if self.target is None else f"classes {list(self.target)}"
        return f"CrossEntropyLoss ({self.reduction}), logits X {validate.dims(self.shape)}, {target} → scalar Y"

    def to_dict(self) -> dict[str, Any]:
        target = None if self.target is None else list(self.target)
        return {"shape": list(self.shape), "target": target, "reduction": self.reduction}


class SoftmaxDerivation(LayerDerivation):
    """Softmax; ``jacobian[n][i, j]`` is SymPy's ``∂y[n,i]/∂x[n,j]``."""

    kind = "softmax"
    wrt = ("X",)

    def __init__(self, spec: SoftmaxSpec) -> None:
        if not isinstance(spec, SoftmaxSpec):
            raise TypeError(f"spec must be a SoftmaxSpec, but got {type(spec).__name__}")
        super().__init__(spec)

    def _symbols(self) -> dict[str, np.ndarray]:
        return {"X": symbol_array("X", self.spec.shape)}

    def _forward(self) -> np.ndarray:
        rows = [formulas.softmax(list(self.X[n])) for n in range(self.spec.shape[0])]
        return object_array(self.spec.shape, lambda o: rows[o[0]][o[1]])

    def is_zero(self, difference: sp.Expr) -> bool:
        return exp_free_zero(difference, self.X)

    gradient_is_zero = is_zero

    @cached_property
    def output_symbols(self) -> np.ndarray:
        """``y[n,i]`` as symbols, to write the closed forms the way the lecture does."""
        return symbol_array("Y", self.spec.shape)

    def jacobian_rule(self, n: int, i: int, j: int, y: np.ndarray) -> sp.Expr:
        """The lecture's ``y_i(δ_ij − y_j)`` in terms of ``y`` (symbols or forward expressions)."""
        return y[n, i] * (sp.KroneckerDelta(i, j) - y[n, j])

    def closed_form(self) -> dict[str, np.ndarray]:
        """``∂L/∂x_j = y_j (G_j − Σ_i G_i y_i)`` per sample."""
        G, Y = self.G, self.Y

        def entry(index: tuple[int, ...]) -> sp.Expr:
            n, j = index
            return Y[n, j] * (G[n, j] - sp.Add(*(G[n, i] * Y[n, i] for i in range(self.spec.shape[1]))))

        return {"dX": object_array(self.spec.shape, entry)}

    def rule_statement(self, gradient: str) -> str:
        return "∂L/∂x_j = y_j (G_j − Σ_i G_i y_i)"

    def _extra_checks(self) -> list[Check]:
        n_rows, classes = self.spec.shape
        derived = object_array((n_rows, classes, classes), lambda k: sp.diff(self.Y[k[0], k[1]], self.X[k[0], k[2]]))
        rule = object_array((n_rows, classes, classes), lambda k: self.jacobian_rule(k[0], k[1], k[2], self.Y))
        return [compare("jacobian", "∂y_i/∂x_j = y_i(δ_ij − y_j)", derived, rule, self.is_zero)]


class CrossEntropyDerivation(LayerDerivation):
    """Softmax cross-entropy; ``dX`` is SymPy's derivative of the log of the quotient, ``fused``
    the closed form ``(y − t)·G/N`` it is checked against."""

    kind = "cross_entropy"
    wrt = ("X",)

    def __init__(self, spec: CrossEntropySpec) -> None:
        if not isinstance(spec, CrossEntropySpec):
            raise TypeError(f"spec must be a CrossEntropySpec, but got {type(spec).__name__}")
        super().__init__(spec)

    def _symbols(self) -> dict[str, np.ndarray]:
        shape = self.spec.shape
        if self.spec.target is None:
            targets = symbol_array("T", shape)
        else:  # one-hot rows of the class indices
            targets = object_array(shape, lambda o: int(self.spec.target[o[0]] == o[1]))
        return {"X": symbol_array("X", shape), "T": targets}

    @property
    def scale(self) -> sp.Expr:
        return sp.Rational(1, self.spec.shape[0]) if self.spec.reduction == "mean" else sp.Integer(1)

    @cached_property
    def per_sample(self) -> list[sp.Expr]:
        """ℓ_n = −Σ_i t_i log softmax(x_n)_i, from ``formulas.cross_entropy``."""
        return [formulas.cross_entropy(list(self.X[n]), list(self.T[n])) for n in range(self.spec.shape[0])]

    def _forward(self) -> np.ndarray:
        out = np.empty((), dtype=object)
        out[()] = self.scale * sp.Add(*self.per_sample)
        return out

    @cached_property
    def probabilities(self) -> np.ndarray:
        """softmax(x) per sample, the forward expressions of y."""
        rows = [formulas.softmax(list(self.X[n])) for n in range(self.spec.shape[0])]
        return object_array(self.spec.shape, lambda o: rows[o[0]][o[1]])

    @cached_property
    def output_symbols(self) -> np.ndarray:
        """``y[n,i]`` (the probabilities) as symbols, for the printed closed form."""
        return symbol_array("P", self.spec.shape)

    def is_zero(self, difference: sp.Expr) -> bool:
        """Exact, with the constraint Σ_i t_i = 1 substituted (t_{n,C−1} = 1 − Σ the others)."""
        return exp_free_zero(difference.xreplace(self.target_constraint), self.X)

    gradient_is_zero = is_zero

    @cached_property
    def target_constraint(self) -> dict[sp.Symbol, sp.Expr]:
        if self.spec.target is not None:
            return {}
        last = self.spec.shape[1] - 1
        return {self.T[n, last]: 1 - sp.Add(*self.T[n, :last]) for n in range(self.spec.shape[0])}

    @cached_property
    def unconstrained(self) -> np.ndarray:
        """What the derivative simplifies to before the targets' sum is used: (y_j Σ_i t_i − t_j)·G·scale."""
        G, P, T = self.G[()], self.probabilities, self.T
        return object_array(
            self.spec.shape, lambda o: G * self.scale * (P[o] * sp.Add(*T[o[0]]) - T[o])
        )

    def closed_form(self) -> dict[str, np.ndarray]:
        """The fused gradient ``(y − t)·G/N`` (``/N`` for the mean)."""
        G, P, T = self.G[()], self.probabilities, self.T
        return {"dX": object_array(self.spec.shape, lambda o: G * self.scale * (P[o] - T[o]))}

    def rule_statement(self, gradient: str) -> str:
        scale = "/N" if self.spec.reduction == "mean" else ""
        return f"∂L/∂x = (y − t)·G{scale} with y = softmax(x), the targets summing to 1"

    def _extra_checks(self) -> list[Check]:
        """Before the constraint: the derivative is y_j Σ t − t_j (exact, with t free)."""
        statement = "∂L/∂x_j = (y_j Σ_i t_i − t_j)·G·scale, for any targets"
        check = compare("unconstrained", statement, self.dX, self.unconstrained, lambda d: exp_free_zero(d, self.X))
        return [check]

