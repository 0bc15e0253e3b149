"""How the derivation's symbols are named on a printed page.

The arrays are always 0-based and full-index (``X[0,0,1,1]``). A page prints them either

* the textbook way (``index_base=1``): 1-based subscripts, leading axes of size 1 dropped, the weight
  called F as in the lectures, so the lecture example reads ``X₁₁``, ``F₁₂``, ``∂L/∂O₂₁``; or
* the array way (``index_base=0``): the full 0-based index, exactly as the arrays are indexed.

A ``Name`` is format-free: it says which letter, which index values, and whether the symbol stands
for a derivative of the loss. Each printer turns it into text or LaTeX.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from ..spec import ConvSpec

#: ``X[0,1,2,3]`` -> base "X", index "0,1,2,3".
ENTRY = re.compile(r"^(?P<base>[A-Za-z]+)(?:\[(?P<index>\d+(?:,\d+)*)\])?$")

def parse_entry(symbol: sp.Symbol) -> tuple[str, tuple[int, ...] | None] | None:
    """``X[0,1,2,3]`` -> ("X", (0, 1, 2, 3)); ``G`` -> ("G", None); anything else -> None."""
    match = ENTRY.match(symbol.name)
    if match is None:
        return None
    index = None if match["index"] is None else tuple(int(i) for i in match["index"].split(","))
    return match["base"], index


#: Array name -> (the array its letter comes from, whether it is ∂L/∂ of that array).
#: "G" is the upstream gradient ∂L/∂O; "dX", "dW", "db" appear as targets in the general form.
ROLES: dict[str, tuple[str, bool]] = {
    "X": ("X", False),
    "W": ("W", False),
    "b": ("b", False),
    "O": ("O", False),
    "G": ("O", True),
    "dX": ("X", True),
    "dW": ("W", True),
    "db": ("b", True),
}

#: Leading (non-spatial) axes of each array: the ones that are dropped in textbook mode when of size 1.
LEADING_AXES = {"X": 2, "W": 2, "O": 2, "b": 1}

#: The weight's letter: the lectures call it F.
WEIGHT_LETTER = {1: "F", 0: "W"}


@dataclass(frozen=True)
class Name:
    """A printable name: ``letter`` with ``index`` (None for the whole array).

    ``of_loss`` means the name stands for ∂L/∂(letter index). ``bracket`` means the index is a
    0-based array index (``X[0,0,1,1]``); otherwise it is a subscript, ``comma``-separated or not.
    """

    letter: str
    index: tuple[int, ...] | None
    of_loss: bool = False
    bracket: bool = False
    comma: bool = False


@dataclass(frozen=True)
class Naming:
    """The naming policy of one page."""

    spec: ConvSpec
    index_base: int = 1

    def __post_init__(self) -> None:
        if self.index_base not in (0, 1):
            raise ValueError(f"index_base must be 0 or 1, but got {self.index_base!r}")

    @property
    def textbook(self) -> bool:
        return self.index_base == 1

    def letter(self, array: str) -> str:
        """The printed letter of an array ("W" prints as F in textbook mode)."""
        return WEIGHT_LETTER[self.index_base] if array == "W" else array

    def shape(self, array: str) -> tuple[int, ...]:
        shapes = {"X": self.spec.input, "W": self.spec.weight, "O": self.spec.output, "b": self.spec.bias_shape}
        return shapes[array]

    def kept_axes(self, array: str) -> tuple[int, ...]:
        """Axes that are printed: all of them, or in textbook mode all but leading size-1 axes."""
        shape = self.shape(array)
        if not self.textbook:
            return tuple(range(len(shape)))
        lead = LEADING_AXES[array]
        return tuple(a for a, size in enumerate(shape) if a >= lead or size > 1)

    @cached_property
    def comma(self) -> bool:
        """Comma-separated subscripts when a channel/batch axis is printed or an index needs 2 digits.

        Decided once for the whole page, so every symbol on it reads the same way.
        """
        arrays = ["X", "W", "O"] + (["b"] if self.spec.bias else [])
        for array in arrays:
            shape, lead = self.shape(array), LEADING_AXES[array]
            for axis in self.kept_axes(array):
                if axis < lead or shape[axis] - 1 + self.index_base > 9:
                    return True
        return False

    def dropped(self) -> tuple[str, ...]:
        """The leading axes not printed in textbook mode, e.g. ("N = 1", "C = 1", "K = 1")."""
        if not self.textbook:
            return ()
        labels = {("X", 0): "N", ("X", 1): "C", ("W", 0): "K"}
        return tuple(
            f"{label} = 1"
            for (array, axis), label in labels.items()
            if axis not in self.kept_axes(array)
        )

    def resolve(self, symbol: sp.Symbol) -> Name | None:
        """The ``Name`` of an array symbol (``X[0,0,1,1]``, or ``G`` for the whole array).

        Returns None for symbols that are not array entries (``s_h``, ``L``, index variables).
        Raises for an array entry whose index does not fit the layer: that is a bug, not a name.
        """
        entry = parse_entry(symbol)
        if entry is None or entry[0] not in ROLES:
            return None
        (array, of_loss), index = ROLES[entry[0]], entry[1]
        letter = self.letter(array)
        if index is None:
            return Name(letter, None, of_loss)
        shape = self.shape(array)
        if len(index) != len(shape) or any(not 0 <= i < n for i, n in zip(index, shape)):
            raise ValueError(f"symbol {symbol.name} does not index array {array} of shape {shape}")
        shown = tuple(index[a] + self.index_base for a in self.kept_axes(array))
        return Name(letter, shown, of_loss, bracket=not self.textbook, comma=self.comma)

    def array_letter(self, indexed_base: str) -> tuple[str, bool]:
        """(letter, of_loss) for the base of an ``Indexed`` in the general form ("dX" -> X, True)."""
        if indexed_base not in ROLES:
            raise KeyError(f"no printed name for array {indexed_base!r}")
        array, of_loss = ROLES[indexed_base]
        return self.letter(array), of_loss

    def letters(self) -> dict[str, tuple[str, bool]]:
        """(letter, of_loss) for every array name that appears as an ``Indexed`` base."""
        return {base: self.array_letter(base) for base in ROLES}
