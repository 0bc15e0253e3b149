"""The Markdown page of a layer derivation: headings and prose, math in ``$…$`` / ``$$…$$``."""

from __future__ import annotations

from ...render.markdown import prose
from .latex import LayerMath
from .model import LayerPage, Section


class LayerMarkdownPage(LayerMath):
    def render(self) -> str:
        page = self.page
        out = [f"**Layer** {prose(page.layer)}", "", f"*({prose(page.legend)})*"]
        for number, section in enumerate(page.sections, 1):
            out += ["", f"### {number}. {prose(section.title)}", "", *self.section(section)]
        verdict = "all closed forms hold ✓" if page.ok else "some closed forms do **NOT** hold ✗"
        return "\n".join(out + ["", f"**Verified:** {verdict}"]) + "\n"

    def section(self, section: Section) -> list[str]:
        out: list[str] = []
        lines = self.aligned_lines(section)
        if lines:
            body = [line + r" \\" for line in lines[:-1]] + [lines[-1]]
            out += ["$$", r"\begin{aligned}", *body, r"\end{aligned}", "$$"]
        for rule in section.rules:
            mark = "✓" if rule.ok else "✗ **FAILED**"
            math = self.rule_math(rule)
            text = f"⇒ ${math}$ ({prose(rule.description)})" if math else f"⇒ {prose(rule.description)}"
            out += ["", f"{text} — {mark}"]
        if section.grids:
            grids = r" \qquad ".join(rf"\underbrace{{{self.grid(g)}}}_{{\text{{{g.label}}}}}" for g in section.grids)
            out += ["", "$$", grids, "$$"]
        out += [line for note in section.notes for line in ("", prose(note))]
        return out


def render_markdown(page: LayerPage) -> str:
    return LayerMarkdownPage(page).render()
