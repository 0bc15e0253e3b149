"""The JSON page of a layer derivation: the same sections as data, each expression as SymPy
string (0-based array names), LaTeX and text (the page's naming)."""

from __future__ import annotations

import json
from typing import Any

import sympy as sp

from .latex import latex_printer
from .model import Grid, LayerPage, Row, Rule, Section
from .text import printer_for

FORMAT = "symconv.layer-derivation"
VERSION = 1


class LayerJsonPage:
    def __init__(self, page: LayerPage) -> None:
        self.page = page
        self.latex = latex_printer(page)
        self.text = printer_for(page)

    def strings(self, expr: sp.Basic) -> dict[str, str]:
        return {"sympy": sp.sstr(expr), "latex": self.latex.doprint(expr), "text": self.text.doprint(expr)}

    def data(self) -> dict[str, Any]:
        page = self.page
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": page.kind,
            "spec": page.spec,
            "layer": page.layer,
            "legend": page.legend,
            "index_base": page.naming.index_base,
            "ok": page.ok,
            "sections": [self.section(s) for s in page.sections],
        }

    def row(self, row: Row) -> list[dict[str, str]]:
        return [self.strings(part) for part in row.parts]

    def section(self, section: Section) -> dict[str, Any]:
        return {
            "key": section.key,
            "title": section.title,
            "lines": [[self.row(r) for r in line] for line in section.lines],
            "rules": [self.rule(r) for r in section.rules],
            "grids": [self.grid(g) for g in section.grids],
            "notes": list(section.notes),
        }

    def rule(self, rule: Rule) -> dict[str, Any]:
        equation = None if rule.equation is None else self.strings(rule.equation)
        return {"equation": equation, "description": rule.description, "check": rule.check, "ok": rule.ok, "detail": rule.detail}

    def grid(self, grid: Grid) -> dict[str, Any]:
        cells = [[self.strings(c) for c in row] for row in grid.cells]
        return {"label": grid.label, **{k: [[c[k] for c in row] for row in cells] for k in ("sympy", "latex", "text")}}


def render_json(page: LayerPage) -> str:
    return json.dumps(LayerJsonPage(page).data(), ensure_ascii=False, indent=1)
