"""The defining formulas of the layers other than the convolution, as SymPy expressions.

One table, read by both halves of the project: the derivations differentiate these expressions
with SymPy (and print the steps), and the kernel generator prints the same expressions, and
their SymPy derivatives, as C. Nothing here is differentiated by hand.

Scalars are SymPy symbols; a layer over vectors (softmax, cross-entropy, batch normalisation)
is given as a function that builds its output equations for a concrete, small size.
"""

from __future__ import annotations

import sympy as sp

#: The input of an element-wise activation.
x = sp.Symbol("x", real=True)

#: Element-wise activations: name -> y(x). ReLU's derivative at 0 is taken as 0 (PyTorch's choice
#: of subgradient); SymPy's ``Heaviside(0)`` is made 0 where the derivative is printed.
ACTIVATIONS: dict[str, sp.Expr] = {
    "relu": sp.Max(x, 0),
    "sigmoid": 1 / (1 + sp.exp(-x)),
}

#: Value of the Heaviside step at 0 used for ReLU's subgradient.
HEAVISIDE_AT_ZERO = 0


def softmax(z: list[sp.Expr]) -> list[sp.Expr]:
    """``y_i = exp(z_i) / Σ_j exp(z_j)``."""
    total = sp.Add(*[sp.exp(v) for v in z])
    return [sp.exp(v) / total for v in z]


def cross_entropy(z: list[sp.Expr], t: list[sp.Expr]) -> sp.Expr:
    """``-Σ_i t_i log softmax(z)_i`` for one sample with one-hot (or soft) targets ``t``."""
    return -sp.Add(*[ti * sp.log(yi) for ti, yi in zip(t, softmax(z))])


def batch_norm(values: list[sp.Expr], gamma: sp.Expr, beta: sp.Expr, eps: sp.Expr) -> list[sp.Expr]:
    """Training-mode batch normalisation of the values of one channel (all of the batch and all
    positions): ``γ (x - μ) / sqrt(σ² + ε) + β`` with the batch mean ``μ`` and the biased batch
    variance ``σ²``."""
    m = len(values)
    mean = sp.Add(*values) / m
    var = sp.Add(*[(v - mean) ** 2 for v in values]) / m
    return [gamma * (v - mean) / sp.sqrt(var + eps) + beta for v in values]
