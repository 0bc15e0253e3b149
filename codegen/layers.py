"""C modules of the layers other than the convolution (pooling, activations, softmax, batch norm).

Each layer has its own template in ``templates/layers/`` that writes the loops; this module only
turns plain data into what those templates print: function signatures (with ``restrict``) and the
matching cffi declarations (without), aligned ``#define`` lines, and comment blocks. The element-wise
C expressions arrive as finished text (printed by SymPy in ``symconv.kernels``); nothing here knows
about SymPy or about the layers' mathematics.

It also checks ``int64`` index arguments (class targets, max-pool argmax positions) the way
:func:`codegen.kernel.pointer_checker` checks floating-point ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .ir import Macro
from .render import HELPERS, declaration, environment, macro_lines

#: The element type of index arrays, numpy and C.
INDEX_DTYPE = np.dtype(np.int64)
INDEX_CTYPE = "int64_t"


@dataclass(frozen=True)
class Param:
    """One argument of a C function: a pointer to an array (``const`` unless ``output``), or a
    ``scalar`` passed by value."""

    name: str
    ctype: str
    doc: str
    output: bool = False
    scalar: bool = False

    def c(self, restrict: bool) -> str:
        if self.scalar:
            return f"{self.ctype} {self.name}"
        star = "*restrict " if restrict else "*"
        return f"{'' if self.output else 'const '}{self.ctype} {star}{self.name}"


@dataclass(frozen=True)
class Function:
    """One C function of a module: ``<module>_<name>``; ``formula`` lines go in its comment."""

    name: str
    title: str
    params: tuple[Param, ...]
    returns: str = "void"
    formula: tuple[str, ...] = ()
    returns_doc: str = ""


@dataclass(frozen=True)
class LayerSource:
    """A rendered module: the C translation unit, the cffi declarations and function names."""

    name: str
    source: str
    cdef: str
    functions: dict[str, str] = field(default_factory=dict)


def _comment(module: str, fn: Function) -> str:
    width = max(len(p.name) for p in fn.params)
    lines = [f"{module}_{fn.name}: {fn.title}", ""]
    if fn.formula:
        lines += [f"  {line}" for line in fn.formula] + [""]
    for p in fn.params:
        kind = "value" if p.scalar else ("out" if p.output else "in")
        lines.append(f"  {p.name.ljust(width)}  {kind.ljust(5)}  {p.doc}")
    if fn.returns_doc:
        lines += ["", f"  returns {fn.returns_doc}"]
    body = "\n".join(f" * {line}".rstrip() for line in lines)
    return f"/*\n{body}\n */"


def _signature(module: str, fn: Function, restrict: bool) -> str:
    return declaration(f"{fn.returns} {module}_{fn.name}", [p.c(restrict) for p in fn.params])


def render_layer(
    template: str,
    *,
    name: str,
    ctype: str,
    layer: str,
    arrays: Sequence[str],
    formula: Sequence[str],
    macros: Sequence[Macro],
    functions: Sequence[Function],
    **context: Any,
) -> LayerSource:
    """Render ``templates/layers/<template>.c.j2`` for one layer instance.

    ``name`` prefixes every C function and must be a C identifier; ``layer`` is a one-line
    description, ``arrays`` one line per array (layout and shape), ``formula`` the lines of
    mathematics the file implements; ``context`` carries the template's own data (C expressions
    as text, whether to use threads, ...).
    """
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"name must be a C identifier, but got {name!r}")
    fns = {
        fn.name: {"comment": _comment(name, fn), "definition": _signature(name, fn, restrict=True)}
        for fn in functions
    }
    values = dict(
        name=name,
        ctype=ctype,
        layer=layer,
        arrays=list(arrays),
        formula=list(formula),
        macros=macro_lines(tuple(macros)),
        macro_names=[m.name for m in macros],
        fn=fns,
        helpers=helper_declarations_for(name),
        **context,
    )
    source = environment().get_template(f"layers/{template}.c.j2").render(values)
    cdef = "".join(f"{_signature(name, fn, restrict=False)};\n" for fn in functions)
    cdef += "".join(f"{decl};\n" for decl in helper_declarations_for(name).values())
    return LayerSource(name, source, cdef, {fn.name: f"{name}_{fn.name}" for fn in functions})


def helper_declarations_for(name: str) -> dict[str, str]:
    """``set_num_threads`` and ``has_openmp`` of module ``name``, as every generated module has them."""
    return {suffix: decl.format(name=f"{name}_{suffix}") for suffix, decl in HELPERS}


def index_checker(name: str, shape: tuple[int, ...], ffi: Any) -> Callable[[Any], Any]:
    """Like :func:`codegen.kernel.pointer_checker`, for an ``int64`` array of exactly ``shape``.

    Any other integer type is refused rather than cast (an int32 array of class labels is a
    bug worth hearing about, and a silent cast would hide where it came from); non-contiguous
    arrays are copied. Range checks belong to the caller, which knows the valid values.
    """
    ndarray, from_buffer, ctype = np.ndarray, ffi.from_buffer, INDEX_CTYPE + "[]"
    size = 1
    for extent in shape:
        size *= extent

    def pointer(array: Any) -> Any:
        if not isinstance(array, ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, but got {type(array).__name__}")
        if type(array) is not ndarray:
            # A subclass can override shape, dtype, flags and even __class__ in Python: its
            # base-class view describes the real buffer (as pointer_checker does).
            array = np.asarray(array)
        if array.dtype != INDEX_DTYPE:
            raise TypeError(f"{name} must be int64, but got {array.dtype}")
        if array.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, but got {array.shape}")
        if not (array.flags.c_contiguous and array.flags.aligned):
            array = np.array(array, order="C", copy=True)
        buffer = from_buffer(ctype, array)
        if len(buffer) != size:  # the last word: exactly the elements C will touch
            raise ValueError(f"{name} must hold {size} elements of int64, but its buffer holds {len(buffer)}")
        return buffer

    return pointer


def macros(entries: Mapping[str, tuple[int, str]]) -> tuple[Macro, ...]:
    """``{"N": (64, "batch size"), ...}`` as macros, in the order given."""
    return tuple(Macro(name, int(value), doc) for name, (value, doc) in entries.items())
