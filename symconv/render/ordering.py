"""The order in which a page lists terms and factors: the lectures' order, not SymPy's.

SymPy sorts ``W*X`` by symbol name and ``X[0,0,10,0]`` before ``X[0,0,2,0]`` (names compare
as strings). The lectures write ``X₁₁F₁₁`` and ``∂L/∂O₁₁·X₁₁`` and list terms in index order,
so the printers order element-wise terms and factors with the keys below instead.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from .naming import parse_entry

#: Factor order inside a product: ∂L/∂O first, then the input, then the weight, then the bias.
FACTOR_RANK = {"G": 0, "X": 1, "W": 2, "b": 3, "O": 4}


def entry_key(factor: sp.Basic) -> tuple[int, tuple[int, ...]] | None:
    """(rank, 0-based index) of an array-entry symbol, None for anything else.

    An ``Indexed`` entry of the general form (``X[n, c, y, x]``) gets its rank and no index, so
    ``∂L/∂O[…]·X[…]`` reads as in the element-wise sections.
    """
    if isinstance(factor, sp.Indexed):
        rank = FACTOR_RANK.get(factor.base.name)
        return None if rank is None else (rank, ())
    entry = parse_entry(factor) if isinstance(factor, sp.Symbol) else None
    if entry is None or entry[0] not in FACTOR_RANK or entry[1] is None:
        return None
    return FACTOR_RANK[entry[0]], entry[1]


def lecture_factors(expr: sp.Expr) -> tuple[sp.Expr, list[sp.Symbol]] | None:
    """``(numeric coefficient, array-entry factors in lecture order)`` of an element-wise product.

    None when ``expr`` is not a product of array entries (then SymPy's own order is kept).
    """
    coefficient, rest = expr.as_coeff_mul()
    keyed = [(entry_key(f), f) for f in rest]
    if not keyed or any(key is None for key, _ in keyed):
        return None
    return coefficient, [f for _, f in sorted(keyed, key=lambda kf: kf[0])]


def term_key(term: sp.Expr) -> tuple[Any, ...] | None:
    """Sort key of an element-wise term: fewer factors first (the bias), then by factor indices."""
    split = lecture_factors(term)
    if split is None:
        return None
    _, factors = split
    return len(factors), tuple(entry_key(f) for f in factors)


def lecture_terms(expr: sp.Expr) -> list[sp.Expr] | None:
    """The terms of an element-wise sum in lecture order; None if a term is not element-wise."""
    terms = sp.Add.make_args(expr)
    keys = [term_key(t) for t in terms]
    if any(key is None for key in keys):
        return None
    return [t for _, t in sorted(zip(keys, terms), key=lambda kt: kt[0])]


def line_terms(expr: sp.Expr) -> list[sp.Expr]:
    """Where a long element-wise sum may be broken across lines: its terms, when all are added
    (no minus signs to carry over); otherwise the expression whole."""
    terms = lecture_terms(expr) if expr.is_Add else None
    if terms is None or any(t.could_extract_minus_sign() for t in terms):
        return [expr]
    return terms


class LectureOrder:
    """Printer mixin: element-wise sums are listed in lecture order, anything else as SymPy does."""

    def _as_ordered_terms(self, expr: sp.Expr, order: str | None = None) -> list[sp.Expr]:
        terms = lecture_terms(expr)
        if terms is None:
            return super()._as_ordered_terms(expr, order=order)  # type: ignore[misc]
        return terms
