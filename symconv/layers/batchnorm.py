"""Batch normalisation in training mode (``torch.nn.BatchNorm2d``): spec and derivation.

Per channel c the m = N·H·W values are normalised with the batch mean μ and the *biased* batch
variance σ² (``formulas.batch_norm``)::

    y_i = γ (x_i − μ)/σ̂ + β,    σ̂ = sqrt(σ² + ε),    x̂_i = (x_i − μ)/σ̂

SymPy differentiates through μ and σ² (every y_i depends on every x_j of its channel). The
closed forms checked against it are the Jacobian and the backward of the batch-norm paper::

    ∂y_i/∂x_j = γ/σ̂ · (δ_ij − 1/m − x̂_i x̂_j/m)
    ∂L/∂x_j   = γ/(m σ̂) · (m g_j − Σ_i g_i − x̂_j Σ_i g_i x̂_i)
    ∂L/∂γ = Σ_i g_i x̂_i,    ∂L/∂β = Σ_i g_i

Exactness: substituting ε = S² − σ² (S > 0) turns σ̂ into S, so every comparison is a rational
cancellation. The cost grows quickly with m, so m is limited.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from . import formulas, validate
from .base import Check, LayerDerivation, compare, object_array, symbol_array

#: Most values per channel (m = N·H·W): SymPy's cost grows fast with m.
MAX_PER_CHANNEL = 6
#: Most channels.
MAX_CHANNELS = 4

EPS = sp.Symbol("epsilon", positive=True)


@dataclass(frozen=True)
class BatchNorm2dSpec:
    """``torch.nn.BatchNorm2d(C, affine=...)`` in training mode on an input (N, C, H, W)."""

    input: tuple[int, ...] = (1, 1, 1, 3)
    affine: bool = True

    def __post_init__(self) -> None:
        shape = validate.shape("input", self.input, 4)
        validate.flag("affine", self.affine)
        n, c, h, w = shape
        validate.at_most("m = N·H·W (values per channel)", n * h * w, MAX_PER_CHANNEL, "SymPy's cost grows fast with m")
        validate.at_most("C (channels)", c, MAX_CHANNELS, "one derivation per channel")
        if n * h * w < 2:
            raise ValueError(f"input must have at least 2 values per channel (N·H·W) for a batch variance, but got {shape}")
        object.__setattr__(self, "input", shape)

    @property
    def output(self) -> tuple[int, ...]:
        return self.input

    @property
    def channels(self) -> int:
        return self.input[1]

    @property
    def per_channel(self) -> int:
        n, _, h, w = self.input
        return n * h * w

    def describe(self) -> str:
        affine = "γ, β" if self.affine else "no affine"
        return (
            f"BatchNorm2d (training), X {validate.dims(self.input)}, {affine}, "
            f"m = {self.per_channel} values per channel → Y {validate.dims(self.input)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"input": list(self.input), "affine": self.affine}


class BatchNorm2dDerivation(LayerDerivation):
    """``dX``, ``dgamma``, ``dbeta`` by SymPy; ``eps`` is the symbol ε (positive)."""

    kind = "batchnorm2d"

    def __init__(self, spec: BatchNorm2dSpec) -> None:
        if not isinstance(spec, BatchNorm2dSpec):
            raise TypeError(f"spec must be a BatchNorm2dSpec, but got {type(spec).__name__}")
        super().__init__(spec)
        self.wrt = ("X", "gamma", "beta") if spec.affine else ("X",)
        self.eps = EPS

    def _symbols(self) -> dict[str, np.ndarray]:
        arrays = {"X": symbol_array("X", self.spec.input)}
        c = self.spec.channels
        if self.spec.affine:
            arrays.update(gamma=symbol_array("gamma", (c,)), beta=symbol_array("beta", (c,)))
        else:  # PyTorch's affine=False is γ = 1, β = 0
            arrays.update(gamma=object_array((c,), lambda i: 1), beta=object_array((c,), lambda i: 0))
        return arrays

    def channel(self, c: int) -> list[tuple[int, ...]]:
        """The indices of channel c in scan order (n, h, w)."""
        n, _, h, w = self.spec.input
        return [(i, c, y, x) for i in range(n) for y in range(h) for x in range(w)]

    def _forward(self) -> np.ndarray:
        out = np.empty(self.spec.input, dtype=object)
        for c in range(self.spec.channels):
            indices = self.channel(c)
            values = formulas.batch_norm([self.X[i] for i in indices], self.gamma[c], self.beta[c], self.eps)
            for i, value in zip(indices, values):
                out[i] = value
        return out

    # -- the statistics, as expressions and as symbols for printing --------------------------------
    def mean(self, c: int) -> sp.Expr:
        return sp.Add(*(self.X[i] for i in self.channel(c))) / self.spec.per_channel

    def variance(self, c: int) -> sp.Expr:
        mu = self.mean(c)
        return sp.Add(*((self.X[i] - mu) ** 2 for i in self.channel(c))) / self.spec.per_channel

    @cached_property
    def scale_symbols(self) -> np.ndarray:
        """S[c] > 0 standing for σ̂ = sqrt(σ² + ε) in the exact comparisons."""
        return object_array((self.spec.channels,), lambda c: sp.Symbol(f"S[{c[0]}]", positive=True))

    @cached_property
    def _eps_subs(self) -> list[dict[sp.Symbol, sp.Expr]]:
        return [{self.eps: self.scale_symbols[c] ** 2 - self.variance(c)} for c in range(self.spec.channels)]

    def normalised(self, c: int, sigma: sp.Expr) -> dict[tuple[int, ...], sp.Expr]:
        """x̂_i = (x_i − μ)/σ̂ for channel c with the given σ̂."""
        mu = self.mean(c)
        return {i: (self.X[i] - mu) / sigma for i in self.channel(c)}

    def is_zero(self, difference: sp.Expr) -> bool:
        if difference == 0:
            return True
        # A difference involves one channel: σ̂ of that channel becomes S[c].
        used = difference.free_symbols
        for c, subs in enumerate(self._eps_subs):
            if any(self.X[i] in used for i in self.channel(c)):
                difference = difference.subs(subs)
                break
        return sp.cancel(difference) == 0

    gradient_is_zero = is_zero

    def sigma_hat(self, c: int) -> sp.Expr:
        return sp.sqrt(self.variance(c) + self.eps)

    # -- the closed forms ---------------------------------------------------------------------------
    def closed_form(self) -> dict[str, np.ndarray]:
        m = self.spec.per_channel
        dX = np.empty(self.spec.input, dtype=object)
        dgamma, dbeta = [], []
        for c in range(self.spec.channels):
            sigma = self.sigma_hat(c)
            xhat = self.normalised(c, sigma)
            g = {i: self.G[i] for i in self.channel(c)}
            sum_g = sp.Add(*g.values())
            sum_gx = sp.Add(*(g[i] * xhat[i] for i in g))
            for i in g:
                dX[i] = self.gamma[c] / (m * sigma) * (m * g[i] - sum_g - xhat[i] * sum_gx)
            dgamma.append(sum_gx)
            dbeta.append(sum_g)
        out = {"dX": dX}
        if self.spec.affine:
            out.update(dgamma=np.array(dgamma, dtype=object), dbeta=np.array(dbeta, dtype=object))
        return out

    def rule_statement(self, gradient: str) -> str:
        return {
            "dX": "∂L/∂x = γ/(m σ̂)·(m g − Σ g − x̂ Σ g x̂)",
            "dgamma": "∂L/∂γ = Σ g x̂",
            "dbeta": "∂L/∂β = Σ g",
        }[gradient]

    def jacobian_rule(self, c: int, i: tuple[int, ...], j: tuple[int, ...], sigma: sp.Expr) -> sp.Expr:
        xhat = self.normalised(c, sigma)
        m = self.spec.per_channel
        delta = sp.Integer(int(i == j))
        return self.gamma[c] / sigma * (delta - sp.Rational(1, m) - xhat[i] * xhat[j] / m)

    def _extra_checks(self) -> list[Check]:
        """The Jacobian of channel 0 against γ/σ̂ (δ_ij − 1/m − x̂_i x̂_j/m)."""
        indices = self.channel(0)
        size = (len(indices), len(indices))
        derived = object_array(size, lambda k: self.local[indices[k[0]]][self.X[indices[k[1]]]])
        rule = object_array(size, lambda k: self.jacobian_rule(0, indices[k[0]], indices[k[1]], self.sigma_hat(0)))
        statement = "∂y_i/∂x_j = γ/σ̂·(δ_ij − 1/m − x̂_i x̂_j/m) (channel 1)"
        return [compare("jacobian", statement, derived, rule, self.is_zero)]
