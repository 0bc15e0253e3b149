"""The lecture's array operations as unevaluated SymPy nodes, so identities print like formulas.

``∂L/∂F = X ⋆ ∂L/∂O`` is the SymPy expression ``Eq(Derivative(L, W), XCorr(X, G))``; each printer
has one method per node below. The nodes only print: the arithmetic behind them is in
``symconv.proof``, which is what proves the identities.
"""

from __future__ import annotations

from typing import Sequence

import sympy as sp


class XCorr(sp.Function):
    """``a ⋆ b``: valid cross-correlation."""

    nargs = 2


class Pad(sp.Function):
    """``pad(a)``: zero padding by ``(lo, hi)`` per axis."""

    nargs = 2


class Dilate(sp.Function):
    """``dilate(a)``: ``factor − 1`` zeros inserted between neighbours, per axis."""

    nargs = 2


class Sample(sp.Function):
    """``sample(a)``: every ``step``-th entry per axis."""

    nargs = 2


class Crop(sp.Function):
    """``crop(a)``: drop the first ``lo`` entries per axis (the padding) and keep the input's size."""

    nargs = 2


class Rot180(sp.Function):
    """``rot180(a)``: every axis flipped."""

    nargs = 1


class Total(sp.Function):
    """``Σ_{indices} a``: the sum of an array over the given index variables."""

    nargs = 2


class Between(sp.Function):
    """``lo ≤ e ≤ hi``: a range guard, printed as one chained inequality."""

    nargs = 3


def amounts(values: Sequence[int]) -> sp.Tuple:
    return sp.Tuple(*(sp.Integer(v) for v in values))


def pairs(values: Sequence[tuple[int, int]]) -> sp.Tuple:
    return sp.Tuple(*(sp.Tuple(sp.Integer(lo), sp.Integer(hi)) for lo, hi in values))


def amount_label(arg: sp.Tuple) -> str:
    """``1`` when every axis has the same amount, else ``(2,1)``; a ``(lo, hi)`` pair as ``lo:hi``."""

    def one(value: sp.Basic) -> str:
        if isinstance(value, sp.Tuple):
            lo, hi = (int(v) for v in value)
            return str(lo) if lo == hi else f"{lo}:{hi}"
        return str(int(value))

    labels = [one(v) for v in arg]
    if len(set(labels)) == 1:
        return labels[0]
    return "(" + ",".join(labels) + ")"
