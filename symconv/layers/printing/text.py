"""The Unicode text page of a layer derivation (``y₁ = 1/(1 + e^(−x₁))``, ``[x₁ > 0]``, ``✓``)."""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from ...render.text import INDENT, WIDTH, TextPrinter, wrap_row
from .model import Grid, LayerPage, Row, Rule, Section
from .naming import TEXT_LETTERS, spelled, spelled_letters


def split_difference(arg: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """``a − b`` -> (a, b): the positive and the negated negative terms of a sum."""
    terms = sp.Add.make_args(arg)
    plus = [t for t in terms if not t.could_extract_minus_sign()]
    minus = [-t for t in terms if t.could_extract_minus_sign()]
    return sp.Add(*plus), sp.Add(*minus)


class LayerTextPrinter(TextPrinter):
    """The convolution page's text printer, plus the functions the other layers use."""

    # Indexed prints itself (``_sympystr``) unless the printer looks elsewhere; the rules'
    # index notation needs this printer's ``_print_Indexed``.
    printmethod = "_symconv_layer_text"

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr not in self.names and expr.name in TEXT_LETTERS:
            return TEXT_LETTERS[expr.name]
        return super()._print_Symbol(expr)

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        arg, at_zero = expr.args
        if at_zero not in (0, 1):
            return f"H({self._print(arg)})"
        a, b = split_difference(arg)
        return f"[{self._print(a)} {'>' if at_zero == 0 else '≥'} {self._print(b)}]"

    def _print_Max(self, expr: sp.Max) -> str:
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        return "δ_" + "".join(self._print(a) for a in expr.args)

    def _print_exp(self, expr: sp.Expr) -> str:
        return f"e^({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        cases = []
        for value, condition in expr.args:
            when = "otherwise" if condition == sp.true else f"if {self._print(condition)}"
            cases.append(f"{self._print(value)} {when}")
        return "{" + "; ".join(cases) + "}"

    def _print_Mul(self, expr: sp.Mul) -> str:
        # The convolution's printer writes a coefficient -1 as "-1·"; here a plain minus sign.
        if expr.could_extract_minus_sign() and expr.as_coeff_Mul()[0] == -1:
            return "-" + self.parenthesize(-expr, PRECEDENCE["Mul"], strict=True)
        return super()._print_Mul(expr)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        return super()._print_Pow(expr, rational).replace("**", "^")

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        """``x_i``, ``W_{j,i}``, ``∂L/∂y_j``: the rules' index notation."""
        letter, of_loss = self.letters[expr.base.name]
        indices = [self._print(k) for k in expr.indices]
        core = letter + ("_" + indices[0] if len(indices) == 1 else "_{" + ",".join(indices) + "}")
        return f"∂L/∂{core}" if of_loss else core

    def _print_IndexedBase(self, expr: sp.IndexedBase) -> str:
        return self._print(expr.label)


def printer_for(page: LayerPage) -> LayerTextPrinter:
    names = spelled(page.names, TEXT_LETTERS)
    letters = spelled_letters(page.naming.indexed_letters(), TEXT_LETTERS)
    return LayerTextPrinter(names, letters)


def grid_lines(p: LayerTextPrinter, grid: Grid) -> list[str]:
    cells = [[p.doprint(c) for c in row] for row in grid.cells]
    widths = [max(len(row[k]) for row in cells) for k in range(len(cells[0]))]
    return ["[" + "  ".join(c.center(w) for c, w in zip(row, widths)) + "]" for row in cells]


class LayerTextPage:
    def __init__(self, page: LayerPage) -> None:
        self.page = page
        self.p = printer_for(page)

    def render(self) -> str:
        page = self.page
        lines = [f"Layer   {page.layer}", f"        ({page.legend})"]
        lines += [f"        {note}" for note in page.notes]
        for number, section in enumerate(page.sections, 1):
            lines += ["", *self.section(number, section)]
        verdict = "all closed forms hold ✓" if page.ok else "some closed forms do NOT hold ✗"
        return "\n".join(lines + ["", f"Verified: {verdict}"]) + "\n"

    def row(self, row: Row) -> str:
        return " = ".join(self.p.doprint(part) for part in row.parts)

    def section(self, number: int, section: Section) -> list[str]:
        lines = [f"{number}. {section.title}"]
        for line in section.lines:
            texts = [self.row(r) for r in line]
            lines += wrap_row(texts, INDENT) if len(texts) > 1 else [INDENT + texts[0]]
        for rule in section.rules:
            lines += self.rule(rule)
        for grid in section.grids:
            lines.append(f"{INDENT}{grid.label}:")
            lines += [INDENT + "  " + line for line in grid_lines(self.p, grid)]
        lines += [INDENT + note for note in section.notes]
        return lines

    def rule(self, rule: Rule) -> list[str]:
        mark = "✓" if rule.ok else "✗ FAILED"
        head = f"{INDENT}⇒ "
        if rule.equation is not None:
            head += f"{self.p.doprint(rule.equation)}   ({rule.description})"
        else:
            head += rule.description
        lines = [f"{head}   {mark}"]
        if rule.detail:
            lines += [INDENT * 2 + line for line in rule.detail.splitlines()]
        return lines


def render_text(page: LayerPage) -> str:
    return LayerTextPage(page).render()


__all__ = ["WIDTH", "render_text"]
