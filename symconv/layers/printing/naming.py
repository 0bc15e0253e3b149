"""How a layer derivation's symbols are named on a page.

The arrays' symbols are ``X[0,0,1,1]`` (0-based, full index). A page prints them the textbook way
(``index_base=1``: 1-based subscripts, axes of size 1 dropped, lower-case x and y as in the
lectures' layer slides) or the array way (``index_base=0``: the full 0-based index in brackets).
A ``Name`` (from ``symconv.render.naming``) carries a letter *key*; each printer spells the key
with its own table (``γ`` in text, ``\\gamma`` in LaTeX).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np
import sympy as sp

from ...render.naming import Name, parse_entry

#: Array -> (letter key, stands for ∂L/∂ of it).  G is the upstream gradient ∂L/∂y.
ROLES: dict[str, tuple[str, bool]] = {
    "X": ("x", False),
    "Y": ("y", False),
    "G": ("y", True),
    "W": ("W", False),
    "b": ("b", False),
    "T": ("t", False),
    "P": ("y", False),
    "gamma": ("gamma", False),
    "beta": ("beta", False),
    "mu": ("mu", False),
    "sigma": ("sigmahat", False),
    "xhat": ("xhat", False),
    "var": ("var", False),
    "ell": ("ell", False),
    "epsilon": ("epsilon", False),
    "D": ("D", False),
}

#: Letter keys spelled in text and in LaTeX.
TEXT_LETTERS = {"gamma": "γ", "beta": "β", "mu": "μ", "sigmahat": "σ̂", "xhat": "x̂", "ell": "ℓ", "epsilon": "ε", "var": "σ²"}
LATEX_LETTERS = {
    "gamma": r"\gamma",
    "beta": r"\beta",
    "mu": r"\mu",
    "sigmahat": r"\hat{\sigma}",
    "xhat": r"\hat{x}",
    "ell": r"\ell",
    "epsilon": r"\varepsilon",
    "var": r"\sigma^{2}",
}


@dataclass(frozen=True)
class LayerNaming:
    """The naming policy of one page: array shapes, index base and per-layer letter changes."""

    shapes: Mapping[str, tuple[int, ...]]
    index_base: int = 1
    letters: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.index_base not in (0, 1):
            raise ValueError(f"index_base must be 0 or 1, but got {self.index_base!r}")

    @property
    def textbook(self) -> bool:
        return self.index_base == 1

    def kept_axes(self, array: str) -> tuple[int, ...]:
        shape = self.shapes[array]
        if not self.textbook:
            return tuple(range(len(shape)))
        kept = tuple(a for a, size in enumerate(shape) if size > 1)
        return kept or ((len(shape) - 1,) if shape else ())

    @property
    def comma(self) -> bool:
        """Comma-separated subscripts when some array keeps 3+ axes or an index needs 2 digits."""
        for array, shape in self.shapes.items():
            kept = self.kept_axes(array)
            if len(kept) > 2 or any(shape[a] - 1 + self.index_base > 9 for a in kept):
                return True
        return False

    def role(self, array: str) -> tuple[str, bool]:
        letter, of_loss = ROLES[array]
        overrides = self.letters or {}
        return overrides.get(array, letter), of_loss

    def resolve(self, symbol: sp.Symbol) -> Name | None:
        entry = parse_entry(symbol)
        if entry is None or entry[0] not in ROLES:
            return None
        array, index = entry
        letter, of_loss = self.role(array)
        if index is None or array not in self.shapes:
            return Name(letter, None, of_loss)
        shown = tuple(index[a] + self.index_base for a in self.kept_axes(array))
        return Name(letter, shown or None, of_loss, bracket=not self.textbook, comma=self.comma)

    def indexed_letters(self) -> dict[str, tuple[str, bool]]:
        """(letter key, of_loss) for every array name used as an ``IndexedBase`` in a rule."""
        return {array: self.role(array) for array in ROLES}


def spelled(names: Mapping[sp.Symbol, Name], table: Mapping[str, str]) -> dict[sp.Symbol, Name]:
    """The names with their letter keys spelled by ``table``."""
    return {s: replace(n, letter=table.get(n.letter, n.letter)) for s, n in names.items()}


def spelled_letters(letters: Mapping[str, tuple[str, bool]], table: Mapping[str, str]) -> dict[str, tuple[str, bool]]:
    return {base: (table.get(letter, letter), of_loss) for base, (letter, of_loss) in letters.items()}


def collect_names(naming: LayerNaming, expressions: list[sp.Basic]) -> dict[sp.Symbol, Name]:
    names: dict[sp.Symbol, Name] = {}
    for expr in expressions:
        for symbol in sp.sympify(expr).atoms(sp.Symbol):
            if symbol not in names:
                name = naming.resolve(symbol)
                if name is not None:
                    names[symbol] = name
    return names


def shapes_of(arrays: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(a.shape) for name, a in arrays.items()}
