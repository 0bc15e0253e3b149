"""codegen: loop-nest IR → C source → compiled, cached kernels.

This package knows nothing about convolutions or SymPy: it takes the plain-data kernel
description of :mod:`codegen.ir` (built by ``symconv.lower``) and renders it to C
(:mod:`codegen.render`, Jinja2 templates in ``templates/``); building, caching and calling the
result live in :mod:`codegen.build`, :mod:`codegen.cache` and :mod:`codegen.kernel`.
"""

from .ir import Arg, Kernel, Loop, Macro, Module, Tensor
from .render import CSource, render_module

__all__ = ["Arg", "CSource", "Kernel", "Loop", "Macro", "Module", "Tensor", "render_module"]
