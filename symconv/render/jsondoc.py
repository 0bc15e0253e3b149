"""The JSON page: the same sections as data, every equation as SymPy string, LaTeX and text.

``sympy`` strings use the arrays' own names (``X[0,0,1,1]``, 0-based, full index); ``latex`` and
``text`` use the page's naming. Indices in ``index`` fields are always 0-based and full.
"""

from __future__ import annotations

import json
from typing import Any

import sympy as sp

from .latex import page_printer
from .model import Equation, EquationSection, GeneralEntry, GeneralSection, Grid, Identity, Page
from .text import TextPrinter

FORMAT = "symconv.derivation"
VERSION = 1


class JsonPage:
    """Turns a ``Page`` into plain data, one method per node type."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.latex = page_printer(page)
        self.text = TextPrinter(page.names, page.naming.letters())

    def strings(self, expr: sp.Basic) -> dict[str, str]:
        return {"sympy": sp.sstr(expr), "latex": self.latex.doprint(expr), "text": self.text.doprint(expr)}

    def data(self) -> dict[str, Any]:
        page = self.page
        return {
            "format": FORMAT,
            "version": VERSION,
            "spec": page.spec.to_dict(),
            "layer": page.layer,
            "legend": page.legend,
            "wrt": page.wrt,
            "index_base": page.naming.index_base,
            "elementwise": page.elementwise,
            "notes": list(page.notes),
            "sections": [JSON_SECTIONS[type(s)](self, s) for s in page.sections],
        }

    def equation_section(self, section: EquationSection) -> dict[str, Any]:
        entries = [self.equation(e, row) for row, equations in enumerate(section.rows) for e in equations]
        return {
            "key": section.key,
            "title": section.title,
            "entries": entries,
            "identity": None if section.identity is None else self.identity(section.identity),
            "notes": list(section.notes),
        }

    def equation(self, equation: Equation, row: int) -> dict[str, Any]:
        out: dict[str, Any] = {"index": list(equation.index), "row": row, **self.strings(equation.equation)}
        if equation.wrt is not None:
            array, index = equation.wrt
            out["wrt"] = {"array": array, "index": list(index)}
        return out

    def identity(self, identity: Identity) -> dict[str, Any]:
        return {
            **self.strings(identity.equation),
            "description": identity.description,
            "proven": identity.proven,
            "matrices": [self.grid(g) for g in identity.operands],
            "notes": list(identity.notes),
        }

    def grid(self, grid: Grid) -> dict[str, Any]:
        cells = [[self.strings(c) for c in row] for row in grid.cells]
        return {
            "label": grid.label,
            **{key: [[cell[key] for cell in row] for row in cells] for key in ("sympy", "latex", "text")},
        }

    def general_section(self, section: GeneralSection) -> dict[str, Any]:
        return {
            "key": section.key,
            "title": section.title,
            "entries": [self.general_entry(e) for e in section.entries],
            "sizes": [self.strings(s) for s in section.sizes],
            "values": {sp.sstr(v.lhs): int(v.rhs) for v in section.values},
            "notes": list(section.notes),
        }

    def general_entry(self, entry: GeneralEntry) -> dict[str, Any]:
        display = self.strings(entry.display)
        return {
            "name": entry.name,
            "sympy": sp.sstr(entry.equation),
            "latex": display["latex"],
            "text": display["text"],
            "ranges": [self.strings(r) for r in entry.ranges],
            "conditions": [self.strings(c) for c in entry.conditions],
        }


JSON_SECTIONS = {EquationSection: JsonPage.equation_section, GeneralSection: JsonPage.general_section}


def render_json(page: Page) -> str:
    return json.dumps(JsonPage(page).data(), ensure_ascii=False, indent=1)
