r"""The LaTeX page of a layer derivation: ``align*`` blocks, ``\checkmark`` next to each rule."""

from __future__ import annotations

from typing import Sequence

import sympy as sp

from ...render.latex import PageLatexPrinter, prose
from .model import Grid, LayerPage, Row, Rule, Section
from .naming import LATEX_LETTERS, spelled, spelled_letters
from .text import split_difference

#: Local derivatives per line in LaTeX.
PER_LINE = 3


class LayerLatexPrinter(PageLatexPrinter):
    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr not in self.names and expr.name in LATEX_LETTERS:
            return LATEX_LETTERS[expr.name]
        return super()._print_Symbol(expr, style)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        """``x_{i}``, ``W_{j,i}``, ``\\frac{\\partial L}{\\partial y_{j}}``: the rules' index notation."""
        letter, of_loss = self.letters[expr.base.name]
        core = f"{letter}_{{{','.join(self._print(k) for k in expr.indices)}}}"
        return rf"\frac{{\partial L}}{{\partial {core}}}" if of_loss else core

    def _print_Heaviside(self, expr: sp.Heaviside, exp: object = None) -> str:
        arg, at_zero = expr.args
        if at_zero not in (0, 1):
            return rf"H\left({self._print(arg)}\right)"
        a, b = split_difference(arg)
        relation = ">" if at_zero == 0 else r"\geq"
        return rf"\left[{self._print(a)} {relation} {self._print(b)}\right]"


def latex_printer(page: LayerPage) -> LayerLatexPrinter:
    names = spelled(page.names, LATEX_LETTERS)
    letters = spelled_letters(page.naming.indexed_letters(), LATEX_LETTERS)
    return LayerLatexPrinter(names, letters)


class LayerMath:
    """The math of a page in LaTeX, shared by the LaTeX and Markdown pages."""

    def __init__(self, page: LayerPage) -> None:
        self.page = page
        self.printer = latex_printer(page)
        self.p = self.printer.doprint

    def row(self, row: Row, align: bool) -> str:
        parts = [self.p(part) for part in row.parts]
        if not align or len(parts) == 1:
            return " = ".join(parts)
        return parts[0] + " &= " + " = ".join(parts[1:])

    def aligned_lines(self, section: Section) -> list[str]:
        lines = []
        for line in section.lines:
            for start in range(0, len(line), PER_LINE):
                chunk = line[start : start + PER_LINE]
                first = self.row(chunk[0], True)
                lines.append(first + "".join(r" \qquad " + self.row(r, False) for r in chunk[1:]))
        return lines

    def rule_math(self, rule: Rule) -> str | None:
        return None if rule.equation is None else self.p(rule.equation)

    def grid(self, grid: Grid) -> str:
        rows = [" & ".join(self.p(c) for c in row) for row in grid.cells]
        return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"


#: Characters of the layer pages' prose that the convolution page's table does not spell.
EXTRA_PROSE = {
    "≥": r"$\geq$", "≠": r"$\neq$", "δ": r"$\delta$", "γ": r"$\gamma$", "β": r"$\beta$",
    "σ": r"$\sigma$", "μ": r"$\mu$", "ε": r"$\varepsilon$", "ℓ": r"$\ell$", "ᵀ": r"$^{T}$",
    "²": r"$^{2}$", "−": "-", "✓": r"$\checkmark$", "\u0302": "",
}


def latex_prose(text: str) -> str:
    """Prose for LaTeX text mode (the convolution page's spelling, plus the layers' symbols)."""
    return "".join(EXTRA_PROSE[ch] if ch in EXTRA_PROSE else prose(ch) for ch in text)


class LayerLatexPage(LayerMath):
    def render(self) -> str:
        page = self.page
        out = [rf"\noindent\textbf{{Layer}}\quad {latex_prose(page.layer)}\\", rf"\emph{{({latex_prose(page.legend)})}}"]
        for number, section in enumerate(page.sections, 1):
            out += ["", rf"\subsection*{{{number}. {latex_prose(section.title)}}}", *self.section(section)]
        verdict = r"all closed forms hold $\checkmark$" if page.ok else r"some closed forms do NOT hold $\times$"
        return "\n".join(out + ["", rf"\par\noindent Verified: {verdict}"]) + "\n"

    @staticmethod
    def block(lines: Sequence[str]) -> list[str]:
        if not lines:
            return []
        return [r"\begin{align*}", *(line + r" \\" for line in lines[:-1]), lines[-1], r"\end{align*}"]

    def section(self, section: Section) -> list[str]:
        out = self.block(self.aligned_lines(section))
        for rule in section.rules:
            mark = r"$\checkmark$" if rule.ok else r"$\times$ FAILED"
            math = self.rule_math(rule)
            text = latex_prose(rule.description)
            body = rf"$\Rightarrow\ {math}$ \quad ({text})" if math else rf"$\Rightarrow$ {text}"
            out.append(rf"\par\noindent {body} \quad {mark}")
        if section.grids:
            out += [r"\[", r" \qquad ".join(rf"\underbrace{{{self.grid(g)}}}_{{\text{{{latex_prose(g.label)}}}}}" for g in section.grids), r"\]"]
        out += [rf"\par\noindent {latex_prose(note)}" for note in section.notes]
        return out


def render_latex(page: LayerPage) -> str:
    return LayerLatexPage(page).render()
