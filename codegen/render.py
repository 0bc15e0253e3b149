"""IR → C: one translation unit, its standalone header, and the declarations cffi needs.

The templates (``templates/module.c.j2``, ``templates/header.h.j2``) hold the layout of the
files; this module only prepares the data they loop over: aligned macro lines, parameter lists,
and the loop nest as indented lines (its depth varies with the layer's rank, which a template
cannot express without logic of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from .ir import Kernel, Macro, Module

TEMPLATES = Path(__file__).parent / "templates"
INDENT = "    "
MAX_LINE = 100

#: The functions every module has besides its kernels: (suffix, C declaration after the name).
HELPERS = (("set_num_threads", "void {name}(int n)"), ("has_openmp", "int {name}(void)"))


@dataclass(frozen=True)
class CSource:
    """The rendered C of one module.

    ``source`` is a complete translation unit, ``header`` the matching standalone header,
    ``cdef`` the declarations for ``cffi.FFI.cdef`` (no macros, no ``restrict``), and
    ``functions`` maps each kernel name ("forward", ...) to its C function name.
    """

    name: str
    source: str
    header: str
    cdef: str
    functions: dict[str, str]


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


# -- pieces ----------------------------------------------------------------------------------


def function_name(module: Module, kernel: Kernel) -> str:
    return f"{module.name}_{kernel.name}"


def parameters(module: Module, kernel: Kernel, restrict: bool) -> list[str]:
    """``const float *restrict x`` for every argument (inputs are const)."""
    qualifier = "*restrict " if restrict else "*"
    return [
        f"{'' if arg.output else 'const '}{module.ctype} {qualifier}{arg.name}" for arg in kernel.args
    ]


def declaration(head: str, params: list[str]) -> str:
    """``head(a, b, c)``, wrapped under the opening parenthesis when it gets long."""
    one_line = f"{head}({', '.join(params)})"
    if len(one_line) <= MAX_LINE:
        return one_line
    return f"{head}(" + (",\n" + " " * (len(head) + 1)).join(params) + ")"


def loop_header(kernel: Kernel, position: int) -> str:
    loop = kernel.loops[position]
    bound = f"< {loop.extent}" if loop.extent and loop.lo == 0 else f"<= {loop.hi}"
    return f"for (ptrdiff_t {loop.var} = {loop.lo}; {loop.var} {bound}; ++{loop.var}) {{"


def parallel_pragma(kernel: Kernel) -> list[str]:
    """The OpenMP pragma for the leading independent loops, hidden from non-OpenMP builds
    (where ``-Wall`` would warn about an unknown pragma)."""
    if kernel.parallel == 0:
        return []
    collapse = f" collapse({kernel.parallel})" if kernel.parallel > 1 else ""
    return ["#ifdef _OPENMP", f"#pragma omp parallel for{collapse}", "#endif"]


def body(module: Module, kernel: Kernel) -> list[str]:
    """The function body: loops, guards as ``continue``, accumulate, store."""
    docs = {arg.name: arg.doc for arg in kernel.args}
    lines = [f"{INDENT}(void){name}; /* {docs[name]} */" for name in kernel.unused]
    accumulator = f"{module.ctype} acc = {kernel.init};"
    for position, loop in enumerate(kernel.loops):
        pad = INDENT * (position + 1)
        if position == kernel.reduce_at:
            lines.append(pad + accumulator)
        if position == 0:
            lines += parallel_pragma(kernel)
        lines.append(pad + loop_header(kernel, position))
        if loop.guards:
            lines.append(f"{pad}{INDENT}if (!({' && '.join(loop.guards)})) continue;")
    inner = INDENT * (len(kernel.loops) + 1)
    if kernel.reduce_at == len(kernel.loops):
        lines.append(inner + accumulator)
    lines.append(f"{inner}acc += {kernel.term};")
    if kernel.reduce_at == len(kernel.loops):
        lines.append(f"{inner}{kernel.target} = acc;")
    for position in reversed(range(len(kernel.loops))):
        pad = INDENT * (position + 1)
        lines.append(pad + "}")
        if position == kernel.reduce_at:
            lines.append(f"{pad}{kernel.target} = acc;")
    return lines


def macro_lines(macros: tuple[Macro, ...], prefix: str = "") -> list[str]:
    """``#define NAME value  /* doc */`` lines with aligned columns."""
    names = [prefix + m.name for m in macros]
    width = max((len(n) for n in names), default=0)
    values = [str(m.value) for m in macros]
    value_width = max((len(v) for v in values), default=0)
    return [
        f"#define {n.ljust(width)} {v.ljust(value_width)}  /* {m.doc} */"
        for n, v, m in zip(names, values, macros)
    ]


def tensor_lines(module: Module) -> list[str]:
    """One line per array: layout, shape and element count."""
    rows = [(t.index, " x ".join(map(str, t.shape)), f"= {t.size} elements", t.role) for t in module.tensors]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        f"{index.ljust(widths[0])}  {shape.ljust(widths[1])}  {count.ljust(widths[2])}  ({role})"
        for index, shape, count, role in rows
    ]


def argument_lines(kernel: Kernel) -> list[str]:
    width = max(len(arg.name) for arg in kernel.args)
    return [f"{arg.name.ljust(width)}  {'out' if arg.output else 'in '}  {arg.doc}" for arg in kernel.args]


def helper_declarations(module: Module) -> dict[str, str]:
    return {suffix: decl.format(name=f"{module.name}_{suffix}") for suffix, decl in HELPERS}


# -- the files -------------------------------------------------------------------------------


def _context(module: Module) -> dict[str, Any]:
    kernels = []
    for kernel in module.kernels:
        head = f"void {function_name(module, kernel)}"
        kernels.append(
            {
                "name": kernel.name,
                "function": function_name(module, kernel),
                "title": kernel.title,
                "formula": kernel.formula,
                "arguments": argument_lines(kernel),
                "definition": declaration(head, parameters(module, kernel, restrict=True)),
                "prototype": declaration(head, parameters(module, kernel, restrict=False)) + ";",
                "body": body(module, kernel),
            }
        )
    return {
        "name": module.name,
        "guard": module.name.upper() + "_H",
        "ctype": module.ctype,
        "layer": module.layer,
        "tensors": tensor_lines(module),
        "macros": macro_lines(module.macros),
        "macro_names": [m.name for m in module.macros],
        "header_macros": macro_lines(module.macros, prefix=module.name.upper() + "_"),
        "kernels": kernels,
        "helpers": helper_declarations(module),
    }


def render_source(module: Module) -> str:
    return environment().get_template("module.c.j2").render(_context(module))


def render_header(module: Module) -> str:
    return environment().get_template("header.h.j2").render(_context(module))


def render_cdef(module: Module) -> str:
    """Plain declarations, one per line: what ``cffi.FFI.cdef`` accepts."""
    lines = [
        f"void {function_name(module, k)}({', '.join(parameters(module, k, restrict=False))});"
        for k in module.kernels
    ]
    lines += [decl + ";" for decl in helper_declarations(module).values()]
    return "\n".join(lines) + "\n"


def render_module(module: Module) -> CSource:
    """Render one module: C source, header, cffi declarations and the function names."""
    if not isinstance(module, Module):
        raise TypeError(f"render_module expects a codegen.ir.Module, but got {type(module).__name__}")
    return CSource(
        name=module.name,
        source=render_source(module),
        header=render_header(module),
        cdef=render_cdef(module),
        functions={k.name: function_name(module, k) for k in module.kernels},
    )
