"""Printing layer derivations: one page model (``pages.build_layer_page``), four printers.

``render`` also accepts the convolution's ``Derivation`` and hands it to ``symconv.render``, so
one call prints any layer.
"""

from __future__ import annotations

from typing import Any, Callable

from ..base import LayerDerivation
from .jsondoc import render_json
from .latex import render_latex
from .markdown import render_markdown
from .model import LayerPage
from .pages import build_layer_page
from .text import render_text

FORMATS: dict[str, Callable[[LayerPage], str]] = {
    "text": render_text,
    "latex": render_latex,
    "markdown": render_markdown,
    "json": render_json,
}


def render(derivation: Any, format: str = "text", *, index_base: int = 1) -> str:
    """The derivation page of a layer as text, LaTeX (a fragment), Markdown or JSON.

    ``index_base=1`` prints 1-based textbook subscripts (axes of size 1 dropped), ``0`` the arrays'
    full 0-based indices. A convolution ``Derivation`` is printed by ``symconv.render.render``.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}, but got {format!r}")
    from ...derive import Derivation

    if isinstance(derivation, Derivation):
        from ...render import render as render_conv

        return render_conv(derivation, format, index_base=index_base)
    if not isinstance(derivation, LayerDerivation):
        raise TypeError(
            f"derivation must be a layer derivation (symconv.layers.derive_layer(spec)) or a "
            f"convolution Derivation, but got {type(derivation).__name__}"
        )
    return FORMATS[format](build_layer_page(derivation, index_base=index_base))


__all__ = ["FORMATS", "LayerPage", "build_layer_page", "render"]
