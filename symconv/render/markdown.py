"""The Markdown page: headings and prose, math in ``$…$`` / ``$$…$$`` (Jupyter, GitHub, MkDocs)."""

from __future__ import annotations

import re
from typing import Sequence

from .latex import MathPage
from .model import EquationSection, GeneralSection, Identity, Page

#: Characters with a meaning in Markdown prose.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|$])")


def prose(text: str) -> str:
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


class MarkdownPage(MathPage):
    """Renders a ``Page`` as Markdown, one method per node type."""

    def render(self) -> str:
        page = self.page
        out = [f"**Layer** {prose(page.layer)}", "", f"*({prose(page.legend)})*"]
        for note in page.notes:
            out += ["", f"> {prose(note)}"]
        for number, section in enumerate(page.sections, 1):
            out += ["", f"### {number}. {prose(section.title)}", ""]
            out += MARKDOWN_SECTIONS[type(section)](self, section)
        return "\n".join(out) + "\n"

    @staticmethod
    def block(lines: Sequence[str]) -> list[str]:
        if not lines:
            return []
        body = [line + r" \\" for line in lines[:-1]] + [lines[-1]]
        return ["$$", r"\begin{aligned}", *body, r"\end{aligned}", "$$"]

    @staticmethod
    def notes(notes: Sequence[str]) -> list[str]:
        return [line for note in notes for line in ("", prose(note))]

    def equation_section(self, section: EquationSection) -> list[str]:
        out = self.block(self.aligned_lines(section.rows)) + self.notes(section.notes)
        if section.identity is not None:
            out += [""] + self.identity(section.identity)
        return out

    def identity(self, identity: Identity) -> list[str]:
        mark = "✓ proven" if identity.proven else "✗ NOT proven"
        out = [f"⇒ ${self.identity_math(identity)}$ ({prose(identity.description)}) — **{mark}**"]
        if identity.operands:
            out += ["", "$$", self.grids_math(identity), "$$"]
        return out + self.notes(identity.notes)

    def general_section(self, section: GeneralSection) -> list[str]:
        out = self.block(self.general_lines(section))
        out += ["", f"Output size: ${self.sizes_math(section)}$"]
        if section.values:
            out += ["", f"This layer: ${self.values_math(section)}$"]
        return out + self.notes(section.notes)


MARKDOWN_SECTIONS = {EquationSection: MarkdownPage.equation_section, GeneralSection: MarkdownPage.general_section}


def render_markdown(page: Page) -> str:
    return MarkdownPage(page).render()
