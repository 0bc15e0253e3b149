"""The page model of a layer derivation: sections of SymPy equations, ready for any printer.

A ``Row`` is a chain ``a = b = c`` (a forward equation, a local derivative, a chain-rule step
followed by its result); several short rows may share a ``Line``. A ``Rule`` is a closed form with
the check mark of the ``verify()`` check behind it. ``Grid`` is a 2-D matrix of numbers or
expressions (max pooling's values and "unpooled" gradient). Printers decide only how it looks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import sympy as sp

from ...render.naming import Name
from .naming import LayerNaming


@dataclass(frozen=True)
class Row:
    """``parts[0] = parts[1] = …``."""

    parts: tuple[sp.Basic, ...]


#: Rows printed on one line (short equations side by side).
Line = tuple[Row, ...]


@dataclass(frozen=True)
class Rule:
    """A closed-form rule; ``ok`` is the result of the ``check`` it names in ``verify()``."""

    equation: sp.Basic | None
    description: str
    check: str
    ok: bool
    detail: str | None = None


@dataclass(frozen=True)
class Grid:
    label: str
    cells: np.ndarray  # 2-D object array of SymPy expressions


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    lines: tuple[Line, ...] = ()
    rules: tuple[Rule, ...] = ()
    grids: tuple[Grid, ...] = ()
    notes: tuple[str, ...] = ()

    def expressions(self) -> Iterator[sp.Basic]:
        for line in self.lines:
            for row in line:
                yield from row.parts
        for rule in self.rules:
            if rule.equation is not None:
                yield rule.equation
        for grid in self.grids:
            yield from grid.cells.ravel()


@dataclass(frozen=True)
class LayerPage:
    kind: str
    layer: str
    legend: str
    spec: dict[str, Any]
    naming: LayerNaming
    sections: tuple[Section, ...]
    ok: bool
    names: dict[sp.Symbol, Name] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def expressions(self) -> Iterator[sp.Basic]:
        for section in self.sections:
            yield from section.expressions()
