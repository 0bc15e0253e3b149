r"""The LaTeX page: ``O_{11} = X_{11} F_{11} + \dots`` in ``align*``, matrices in ``bmatrix``.

``render_latex`` gives a fragment (needs ``amsmath`` and ``amssymb``) that can be ``\input`` or
dropped into a notebook export; ``document`` wraps it into a file that compiles on its own. The
math printer here is shared with the Markdown page.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import sympy as sp
from sympy.printing.latex import LatexPrinter

from .model import Equation, EquationSection, GeneralSection, Grid, Identity, Page
from .naming import Name
from .notation import amount_label
from .ordering import LectureOrder, lecture_factors, line_terms

#: Multi-letter parameter names printed upright (``\mathrm{in}_{h}``), not as a product of letters.
WORDS = {"in": r"\mathrm{in}", "out": r"\mathrm{out}", "groups": r"\mathrm{groups}"}

#: Characters of the page's prose and how they are written in LaTeX text mode.
PROSE = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "⋆": r"$\star$",
    "×": r"$\times$",
    "→": r"$\to$",
    "∂": r"$\partial$",
    "…": r"\ldots{}",
    "≤": r"$\leq$",
    "·": r"$\cdot$",
    "Σ": r"$\Sigma$",
    "⇒": r"$\Rightarrow$",
}

#: Short equations (local gradients) per line.
PER_LINE = 4

#: Terms per line of a long sum.
TERMS_PER_LINE = 4

#: Guards per line under a general form.
CONDITIONS_PER_LINE = 2


def prose(text: str) -> str:
    """Plain text for LaTeX text mode; raises on a character that has no LaTeX spelling here."""
    out = []
    for char in text:
        if char in PROSE:
            out.append(PROSE[char])
        elif char.isascii():
            out.append(char)
        else:
            raise ValueError(f"no LaTeX spelling for {char!r} in {text!r}")
    return "".join(out)


def name_latex(name: Name) -> str:
    r"""``X_{11}``, ``X_{1,2,10}``, ``X_{0,0,1,1}``, or with ``of_loss`` ``\frac{\partial L}{\partial X_{11}}``."""
    core = name.letter
    if name.index:
        joiner = "," if (name.comma or name.bracket) else ""
        core += "_{" + joiner.join(str(i) for i in name.index) + "}"
    return rf"\frac{{\partial L}}{{\partial {core}}}" if name.of_loss else core


class PageLatexPrinter(LectureOrder, LatexPrinter):
    """SymPy's LaTeX printer with the page's names (``symbol_names``) and lecture order."""

    def __init__(self, names: Mapping[sp.Symbol, Name], letters: Mapping[str, tuple[str, bool]]) -> None:
        super().__init__({"symbol_names": {s: name_latex(n) for s, n in names.items()}})
        self.names = names
        self.letters = letters

    # -- names ---------------------------------------------------------------------------------
    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        head, _, tail = expr.name.partition("_")
        if expr not in self.names and head in WORDS:
            return WORDS[head] + (f"_{{{tail}}}" if tail else "")
        return super()._print_Symbol(expr, style)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        letter, of_loss = self.letters[expr.base.name]
        head = rf"\frac{{\partial L}}{{\partial {letter}}}" if of_loss else letter
        return head + "[" + ", ".join(self._print(i) for i in expr.indices) + "]"

    # -- arithmetic ----------------------------------------------------------------------------
    def _print_Mul(self, expr: sp.Mul) -> str:
        split = lecture_factors(expr)
        if split is None:
            return super()._print_Mul(expr)
        coefficient, factors = split
        text = "" if coefficient == 1 else self._print(coefficient) + r" \cdot "
        for i, factor in enumerate(factors):
            if i:
                previous = self.names.get(factors[i - 1])
                text += r" \cdot " if previous is None or previous.of_loss else " "
            text += self._print(factor)
        return text

    def _print_Derivative(self, expr: sp.Derivative) -> str:
        if len(expr.variable_count) != 1 or expr.variable_count[0][1] != 1:
            raise ValueError(f"only first derivatives print on a page, got {expr}")
        return rf"\frac{{\partial {self._print(expr.expr)}}}{{\partial {self._print(expr.variables[0])}}}"

    def _print_Sum(self, expr: sp.Sum) -> str:
        sums = "".join(
            rf"\sum_{{{self._print(v)}={self._print(lo)}}}^{{{self._print(hi)}}} " for v, lo, hi in expr.limits
        )
        body = self._print(expr.function)
        return sums + (rf"\left({body}\right)" if expr.function.is_Add else body)

    # -- relations -----------------------------------------------------------------------------
    def _print_Between(self, expr: sp.Basic) -> str:
        lo, e, hi = (self._print(a) for a in expr.args)
        return rf"{lo} \leq {e} \leq {hi}"

    # -- the lecture's array operations --------------------------------------------------------
    def _print_XCorr(self, expr: sp.Basic) -> str:
        return rf"{self._print(expr.args[0])} \star {self._print(expr.args[1])}"

    def _operation(self, name: str, expr: sp.Basic) -> str:
        amount = amount_label(expr.args[1])
        return rf"\operatorname{{{name}}}_{{{amount}}}\left({self._print(expr.args[0])}\right)"

    def _print_Pad(self, expr: sp.Basic) -> str:
        return self._operation("pad", expr)

    def _print_Dilate(self, expr: sp.Basic) -> str:
        return self._operation("dilate", expr)

    def _print_Sample(self, expr: sp.Basic) -> str:
        return self._operation("sample", expr)

    def _print_Crop(self, expr: sp.Basic) -> str:
        return self._operation("crop", expr)

    def _print_Rot180(self, expr: sp.Basic) -> str:
        return rf"\operatorname{{rot180}}\left({self._print(expr.args[0])}\right)"

    def _print_Total(self, expr: sp.Basic) -> str:
        array, indices = expr.args
        return rf"\sum_{{{','.join(self._print(i) for i in indices)}}} {self._print(array)}"

    def emptyPrinter(self, expr: object) -> str:
        raise TypeError(f"the LaTeX page cannot print {type(expr).__name__}: {expr!r}")


def page_printer(page: Page) -> PageLatexPrinter:
    return PageLatexPrinter(page.names, page.naming.letters())


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MathPage:
    """The math of a page in LaTeX, shared by the LaTeX and the Markdown renderers."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.printer = page_printer(page)
        self.p = self.printer.doprint

    def aligned_lines(self, rows: Iterable[Sequence[Equation]]) -> list[str]:
        """``lhs &= rhs`` lines; several short equations share a line, separated by ``\\qquad``."""
        lines = []
        for row in rows:
            if len(row) == 1:
                lines += self.long_equation(row[0].equation)
                continue
            for part in chunks(row, PER_LINE):
                first, rest = part[0].equation, part[1:]
                line = f"{self.p(first.lhs)} &= {self.p(first.rhs)}"
                line += "".join(rf" \qquad {self.p(e.equation)}" for e in rest)
                lines.append(line)
        return lines

    def long_equation(self, equation: sp.Eq) -> list[str]:
        """``lhs &= a + b + …`` with at most ``TERMS_PER_LINE`` terms per line (the page has a width)."""
        parts = [sp.Add(*chunk, evaluate=False) for chunk in chunks(line_terms(equation.rhs), TERMS_PER_LINE)]
        lines = [f"{self.p(equation.lhs)} &= {self.p(parts[0])}"]
        return lines + [rf"&\quad + {self.p(part)}" for part in parts[1:]]

    def identity_math(self, identity: Identity) -> str:
        return self.p(identity.equation)

    def grids_math(self, identity: Identity) -> str:
        return r" \star ".join(self.grid(g) for g in identity.operands)

    def grid(self, grid: Grid) -> str:
        rows = [" & ".join(self.p(c) for c in row) for row in grid.cells]
        matrix = r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"
        return rf"\underbrace{{{matrix}}}_{{\text{{{prose(grid.label)}}}}}"

    def general_lines(self, section: GeneralSection) -> list[str]:
        lines = []
        for entry in section.entries:
            lines.append(f"{self.p(entry.display.lhs)} &= {self.p(entry.display.rhs)}")
            lines.append(r"&\qquad \text{for } " + r",\quad ".join(self.p(r) for r in entry.ranges))
            for i, part in enumerate(chunks(entry.conditions, CONDITIONS_PER_LINE)):
                lead = r"\text{where } " if i == 0 else r"\phantom{\text{where }} "
                lines.append(r"&\qquad " + lead + r",\quad ".join(self.p(c) for c in part))
        return lines

    def sizes_math(self, section: GeneralSection) -> str:
        return r",\qquad ".join(self.p(s) for s in section.sizes)

    def values_math(self, section: GeneralSection) -> str:
        return r",\ ".join(self.p(v) for v in section.values)


class LatexPage(MathPage):
    """Renders a ``Page`` as a LaTeX fragment, one method per node type."""

    def render(self) -> str:
        page = self.page
        out = [
            rf"\noindent\textbf{{Layer}}\quad {prose(page.layer)}\\",
            rf"\emph{{({prose(page.legend)})}}",
        ]
        out += [rf"\par\noindent {prose(note)}" for note in page.notes]
        for number, section in enumerate(page.sections, 1):
            out.append("")
            out.append(rf"\subsection*{{{number}. {prose(section.title)}}}")
            out += LATEX_SECTIONS[type(section)](self, section)
        return "\n".join(out) + "\n"

    @staticmethod
    def block(lines: Sequence[str]) -> list[str]:
        if not lines:
            return []
        return [r"\begin{align*}", *(line + r" \\" for line in lines[:-1]), lines[-1], r"\end{align*}"]

    def equation_section(self, section: EquationSection) -> list[str]:
        out = self.block(self.aligned_lines(section.rows))
        out += [rf"\par\noindent {prose(note)}" for note in section.notes]
        if section.identity is not None:
            out += self.identity(section.identity)
        return out

    def identity(self, identity: Identity) -> list[str]:
        mark = r"$\checkmark$ proven" if identity.proven else r"$\times$ NOT proven"
        out = [
            rf"\par\noindent$\Rightarrow\ {self.identity_math(identity)}$ "
            rf"\quad ({prose(identity.description)}) \quad {mark}"
        ]
        if identity.operands:
            out += [r"\[", self.grids_math(identity), r"\]"]
        out += [rf"\par\noindent {prose(note)}" for note in identity.notes]
        return out

    def general_section(self, section: GeneralSection) -> list[str]:
        out = self.block(self.general_lines(section))
        out.append(rf"\par\noindent Output size: ${self.sizes_math(section)}$")
        if section.values:
            out.append(rf"\par\noindent This layer: ${self.values_math(section)}$")
        out += [rf"\par\noindent {prose(note)}" for note in section.notes]
        return out


LATEX_SECTIONS = {EquationSection: LatexPage.equation_section, GeneralSection: LatexPage.general_section}

PREAMBLE = r"""\documentclass{article}
\usepackage{amsmath,amssymb}
\usepackage[margin=2cm]{geometry}
\allowdisplaybreaks
\begin{document}
"""


def render_latex(page: Page) -> str:
    return LatexPage(page).render()


def document(fragment: str) -> str:
    """A LaTeX fragment from ``render_latex`` as a file that compiles on its own."""
    return PREAMBLE + fragment + "\\end{document}\n"
