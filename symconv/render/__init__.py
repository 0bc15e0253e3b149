"""Printing derivations: one page model (``model.build_page``), four printers over it.

>>> from symconv import ConvSpec, derive
>>> page = render(derive(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))))
>>> "O₁₁ = X₁₁F₁₁ + X₁₂F₁₂ + X₂₁F₂₁ + X₂₂F₂₂" in page
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .jsondoc import render_json
from .latex import document, render_latex
from .markdown import render_markdown
from .model import GRADIENTS, Page, build_page
from .text import render_text

if TYPE_CHECKING:
    from ..derive import Derivation

FORMATS: dict[str, Callable[[Page], str]] = {
    "text": render_text,
    "latex": render_latex,
    "markdown": render_markdown,
    "json": render_json,
}

WRT = tuple(GRADIENTS)


def render(
    derivation: "Derivation",
    format: str = "text",
    *,
    wrt: str = "all",
    index_base: int = 1,
    general_only: bool = False,
) -> str:
    """The derivation page of ``derivation`` as text, LaTeX (a fragment), Markdown or JSON.

    ``wrt`` ("input", "weight", "bias", "all") selects the gradients shown; ``index_base=1`` prints
    the lectures' 1-based subscripts (weight called F), ``index_base=0`` the arrays' full 0-based
    indices; ``general_only`` prints only the layer and the general index form. Layers too large
    for an element-wise page get the general form and a note saying why.
    """
    from ..derive import Derivation
    from ..layers.base import LayerDerivation

    if isinstance(derivation, LayerDerivation) and wrt == "all" and not general_only:
        from ..layers import render as render_layer  # the other layers have their own pages

        return render_layer(derivation, format, index_base=index_base)
    if not isinstance(derivation, Derivation):
        raise TypeError(
            "render expects a Derivation (symconv.derive(spec)) or, without wrt and general_only, "
            f"a layer derivation (symconv.layers.derive_layer(spec)), but got {type(derivation).__name__}"
        )
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}, but got {format!r}")
    page = build_page(derivation, wrt=wrt, index_base=index_base, general_only=general_only)
    return FORMATS[format](page)


__all__ = ["FORMATS", "WRT", "Page", "build_page", "document", "render"]
