"""The Unicode text page: ``O₁₁ = X₁₁F₁₁ + X₁₂F₁₂ + …``, for terminals and plain files."""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from .model import EquationSection, GeneralSection, Grid, Identity, Page
from .naming import Name
from .notation import amount_label
from .ordering import LectureOrder, lecture_factors, line_terms

SUBSCRIPT = str.maketrans("0123456789(),", "₀₁₂₃₄₅₆₇₈₉₍₎,")

RELATIONS = {"==": "=", "<=": "≤", ">=": "≥", "<": "<", ">": ">", "!=": "≠"}

#: Width at which rows of several short equations wrap.
WIDTH = 100

INDENT = "   "


def subscript(text: str) -> str:
    """``12`` -> ``₁₂``; characters without a subscript form (``:``) are kept."""
    return text.translate(SUBSCRIPT)


def name_text(name: Name) -> str:
    """``X₁₁``, ``X₁,₂,₁₀``, ``X[0,0,1,1]``, or with ``of_loss`` ``∂L/∂X₁₁``."""
    core = name.letter
    if name.index is not None:
        values = [str(i) for i in name.index]
        if name.bracket:
            core += "[" + ",".join(values) + "]"
        else:
            core += subscript(("," if name.comma else "").join(values))
    return f"∂L/∂{core}" if name.of_loss else core


def tight(name: Name | None) -> bool:
    """Whether the next factor is written right after this name (``X₁₁F₁₁``) rather than after a
    dot: only plain subscripts are; ``∂L/∂O₁₁``, ``X₁,₂,₃`` and ``X[0,0,1,1]`` would run together."""
    return name is not None and not (name.of_loss or name.comma or name.bracket)


class TextPrinter(LectureOrder, StrPrinter):
    """SymPy's string printer with the page's names, lecture order and mathematical symbols."""

    def __init__(self, names: Mapping[sp.Symbol, Name], letters: Mapping[str, tuple[str, bool]]) -> None:
        super().__init__()
        self.names = names
        self.letters = letters

    # -- names ---------------------------------------------------------------------------------
    def _print_Symbol(self, expr: sp.Symbol) -> str:
        name = self.names.get(expr)
        return expr.name if name is None else name_text(name)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        letter, of_loss = self.letters[expr.base.name]
        core = f"{letter}[{', '.join(self._print(i) for i in expr.indices)}]"
        return f"∂L/∂{core}" if of_loss else core

    # -- arithmetic ----------------------------------------------------------------------------
    def _print_Mul(self, expr: sp.Mul) -> str:
        split = lecture_factors(expr)
        if split is None:
            # Index arithmetic (d_h·r): SymPy's layout, with a centred dot for the product.
            return re.sub(r"(?<!\*)\*(?!\*)", "·", super()._print_Mul(expr))
        coefficient, factors = split
        text = "" if coefficient == 1 else self._print(coefficient)
        for i, factor in enumerate(factors):
            if text and not (i and tight(self.names.get(factors[i - 1]))):
                text += "·"
            text += self._print(factor)
        return text

    def _print_Derivative(self, expr: sp.Derivative) -> str:
        if len(expr.variable_count) != 1 or expr.variable_count[0][1] != 1:
            raise ValueError(f"only first derivatives print on a page, got {expr}")
        return f"∂{self._print(expr.expr)}/∂{self._print(expr.variables[0])}"

    def _print_Sum(self, expr: sp.Sum) -> str:
        body = self.parenthesize(expr.function, PRECEDENCE["Mul"], strict=True)
        return " ".join(self._sum_limit(*limit) for limit in expr.limits) + " " + body

    def _sum_limit(self, var: sp.Symbol, lo: sp.Expr, hi: sp.Expr) -> str:
        if lo == 0:
            return f"Σ_{{{self._print(var)}<{self._print(hi + 1)}}}"
        return f"Σ_{{{self._print(var)}={self._print(lo)}..{self._print(hi)}}}"

    def _print_floor(self, expr: sp.floor) -> str:
        return f"⌊{self._print(expr.args[0])}⌋"

    def _print_Mod(self, expr: sp.Mod) -> str:
        a, b = expr.args
        left = f"({self._print(a)})" if a.is_Add else self._print(a)
        return f"{left} mod {self._print(b)}"

    # -- relations -----------------------------------------------------------------------------
    def _print_Equality(self, expr: sp.Eq) -> str:
        return f"{self._print(expr.lhs)} = {self._print(expr.rhs)}"

    def _print_Relational(self, expr: sp.core.relational.Relational) -> str:
        return f"{self._print(expr.lhs)} {RELATIONS[expr.rel_op]} {self._print(expr.rhs)}"

    def _print_Between(self, expr: sp.Basic) -> str:
        lo, e, hi = (self._print(a) for a in expr.args)
        return f"{lo} ≤ {e} ≤ {hi}"

    # -- the lecture's array operations --------------------------------------------------------
    def _print_XCorr(self, expr: sp.Basic) -> str:
        return f"{self._print(expr.args[0])} ⋆ {self._print(expr.args[1])}"

    def _operation(self, name: str, expr: sp.Basic) -> str:
        return f"{name}{subscript(amount_label(expr.args[1]))}({self._print(expr.args[0])})"

    def _print_Pad(self, expr: sp.Basic) -> str:
        return self._operation("pad", expr)

    def _print_Dilate(self, expr: sp.Basic) -> str:
        return self._operation("dilate", expr)

    def _print_Sample(self, expr: sp.Basic) -> str:
        return self._operation("sample", expr)

    def _print_Crop(self, expr: sp.Basic) -> str:
        return self._operation("crop", expr)

    def _print_Rot180(self, expr: sp.Basic) -> str:
        return f"rot180({self._print(expr.args[0])})"

    def _print_Total(self, expr: sp.Basic) -> str:
        array, indices = expr.args
        return f"Σ_{{{','.join(self._print(i) for i in indices)}}} {self._print(array)}"

    def emptyPrinter(self, expr: object) -> str:
        raise TypeError(f"the text page cannot print {type(expr).__name__}: {expr!r}")


# -- the page ------------------------------------------------------------------------------------


def grid_lines(printer: TextPrinter, grid: Grid) -> list[str]:
    """A matrix as bracketed rows, columns aligned."""
    cells = [[printer.doprint(c) for c in row] for row in grid.cells]
    widths = [max(len(row[j]) for row in cells) for j in range(len(cells[0]))]
    return ["[" + "  ".join(c.center(w) for c, w in zip(row, widths)) + "]" for row in cells]


def side_by_side(blocks: Sequence[list[str]], operator: str) -> list[str]:
    """Blocks of lines next to each other, ``operator`` on the middle line between them."""
    height = max(len(b) for b in blocks)
    middle = (height - 1) // 2
    padded = [b + [""] * (height - len(b)) for b in blocks]
    widths = [max(len(line) for line in b) for b in blocks]
    gap = " " * (len(operator) + 4)
    lines = []
    for r in range(height):
        sep = f"  {operator}  " if r == middle else gap
        lines.append(sep.join(b[r].ljust(w) for b, w in zip(padded, widths)).rstrip())
    return lines


def wrap_row(parts: Sequence[str], indent: str, separator: str = "   ") -> list[str]:
    """Items on as few lines as fit in ``WIDTH``, joined by ``separator`` (its trailing spaces
    dropped where a line breaks)."""
    lines, line = [], ""
    for part in parts:
        candidate = part if not line else line + separator + part
        if line and len(indent) + len(candidate) > WIDTH:
            lines.append(indent + line + separator.rstrip())
            candidate = part
        line = candidate
    return lines + [indent + line]


class TextPage:
    """Renders a ``Page`` as Unicode text, one method per node type."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.printer = TextPrinter(page.names, page.naming.letters())

    def render(self) -> str:
        page = self.page
        lines = [f"Layer   {page.layer}", f"        ({page.legend})"]
        lines += [f"        {note}" for note in page.notes]
        for number, section in enumerate(page.sections, 1):
            lines.append("")
            lines += SECTION_RENDERERS[type(section)](self, number, section)
        return "\n".join(lines) + "\n"

    def equation_section(self, number: int, section: EquationSection) -> list[str]:
        lines = [f"{number}. {section.title}"]
        for row in section.rows:
            if len(row) == 1:
                lines += self.equation_lines(row[0].equation)
            else:
                lines += wrap_row([self.printer.doprint(e.equation) for e in row], INDENT)
        lines += [INDENT + note for note in section.notes]
        if section.identity is not None:
            lines += self.identity(section.identity)
        return lines

    def equation_lines(self, equation: sp.Eq) -> list[str]:
        """``lhs = a + b + …``, a long sum continued on lines that start with ``+`` under the ``=``."""
        p = self.printer.doprint
        head = f"{p(equation.lhs)} = "
        pad = " " * (len(head) - 2)
        terms = [p(t) for t in line_terms(equation.rhs)]
        lines, line = [], head + terms[0]
        for term in terms[1:]:
            if len(INDENT) + len(line) + 3 + len(term) > WIDTH:
                lines.append(INDENT + line)
                line = f"{pad}+ {term}"
            else:
                line += f" + {term}"
        return lines + [INDENT + line]

    def identity(self, identity: Identity) -> list[str]:
        mark = "✓ proven" if identity.proven else "✗ NOT proven"
        lines = [f"{INDENT}⇒ {self.printer.doprint(identity.equation)}   ({identity.description})   {mark}"]
        if identity.operands:
            labels = "  ⋆  ".join(grid.label for grid in identity.operands)
            lines.append(f"{INDENT}  {labels}:")
            blocks = [grid_lines(self.printer, grid) for grid in identity.operands]
            lines += [INDENT + "  " + line for line in side_by_side(blocks, "⋆")]
        lines += [INDENT + "  " + note for note in identity.notes]
        return lines

    def general_section(self, number: int, section: GeneralSection) -> list[str]:
        p = self.printer.doprint
        lines = [f"{number}. {section.title}"]
        for entry in section.entries:
            lines.append(INDENT + p(entry.display))
            lines += self.listing("for ", entry.ranges, INDENT * 2)
            lines += self.listing("where ", entry.conditions, INDENT * 2)
        lines += self.listing("Output size: ", section.sizes, INDENT, ";   ")
        lines += self.listing("This layer: ", section.values, INDENT)
        lines += [INDENT + note for note in section.notes]
        return lines

    def listing(self, label: str, items: Sequence[sp.Basic], indent: str, separator: str = ", ") -> list[str]:
        """``label a, b, c`` wrapped to the page width (nothing for no items)."""
        if not items:
            return []
        texts = [self.printer.doprint(item) for item in items]
        return wrap_row([label + texts[0], *texts[1:]], indent, separator)


SECTION_RENDERERS = {EquationSection: TextPage.equation_section, GeneralSection: TextPage.general_section}


def render_text(page: Page) -> str:
    return TextPage(page).render()
