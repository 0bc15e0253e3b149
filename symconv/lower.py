"""Lowering: the general index form of a layer → ``codegen.ir`` loop nests (plain data).

Each ``IndexForm`` ``target[free] = plus + Σ_{sums} term  (where guards)`` becomes one kernel:

    for free loops:  acc = plus;  for sum loops (skipping where a guard fails): acc += term;
                     target = acc

The stages, each a small function below:

1. ``nest_loops``        the free indices become the outer loops, the sums the inner ones
2. ``prune_guards``      drop the guards that the loop ranges already guarantee
3. ``place_guards``      each guard goes to the shallowest loop that binds all its indices
4. ``flatten_access``    ``A[i, j, ...]`` becomes ``a[flat offset]`` with constant strides
5. ``parallel_depth``    how many leading loops write disjoint outputs (the OpenMP loops)
6. ``CPrinter``          every index expression and guard is printed by SymPy's C99 printer

Everything is specialised to the layer's numbers (``derive(spec).general()``); the symbolic form
only supplies the names of the sizes (``OUT_H``...) and the formula printed above each function.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE

from codegen import ir

from .derive import derive
from .general import INPUT_COORDS, OUTPUT_COORDS, TAP_COORDS, IndexForm, Loop, Quotient, parameter_values
from .spec import ConvSpec

#: numpy dtype name → C element type.
C_TYPES = {"float32": "float", "float64": "double"}
DTYPE_SUFFIX = {"float32": "f32", "float64": "f64"}

#: Which kernel each form becomes, and what it computes.
KERNELS = {
    "O": ("forward", "the layer's output, O = X ⋆ W (+ b), a cross-correlation"),
    "dX": ("grad_input", "dL/dX, the full convolution of the rotated filter with G = dL/dO"),
    "dW": ("grad_weight", "dL/dW, the valid cross-correlation of the input with G = dL/dO"),
    "db": ("grad_bias", "dL/db, G = dL/dO summed over the batch and all positions"),
}

#: Arguments of each kernel, in the contract's order: (C name, array in the forms).
SIGNATURES = {
    "forward": (("x", "X"), ("w", "W"), ("b", "b"), ("out", "O")),
    "grad_input": (("grad_out", "G"), ("w", "W"), ("grad_x", "dX")),
    "grad_weight": (("x", "X"), ("grad_out", "G"), ("grad_w", "dW")),
    "grad_bias": (("grad_out", "G"), ("grad_b", "db")),
}

#: Array of the forms → (C argument name, tensor role, written by the kernel).
ARRAYS = {
    "X": ("x", "input", False),
    "W": ("w", "weight", False),
    "b": ("b", "bias", False),
    "G": ("grad_out", "output", False),
    "O": ("out", "output", True),
    "dX": ("grad_x", "input", True),
    "dW": ("grad_w", "weight", True),
    "db": ("grad_b", "bias", True),
}

ARG_DOCS = {
    "x": "input X",
    "w": "weight W",
    "b": "bias b, or NULL for none",
    "out": "output O (overwritten)",
    "grad_out": "upstream gradient G = dL/dO",
    "grad_x": "dL/dX (overwritten)",
    "grad_w": "dL/dW (overwritten)",
    "grad_b": "dL/db (overwritten)",
}
NO_BIAS_DOC = "ignored: the layer has no bias (NULL is fine)"

#: Indices over batch and channels: iterations of these loops write disjoint outputs.
INDEPENDENT_INDICES = frozenset({"n", "g", "k", "c"})

#: What each size symbol of the general form means (its macro is the upper-cased name).
SIZE_DOCS = {
    "N": "batch size",
    "C": "input channels",
    "C_g": "input channels per group",
    "K": "output channels",
    "K_g": "output channels per group",
    "groups": "channel groups",
    "in": "input {axis}",
    "k": "kernel {axis}",
    "out": "output {axis}",
    "s": "stride along {axis}",
    "d": "dilation along {axis}",
    "p": "zero padding before, along {axis}",
    "q": "zero padding after, along {axis}",
}
AXIS_WORDS = {"d": "depth", "h": "height", "w": "width"}
SIZE_ORDER = ("N", "C", "C_g", "K", "K_g", "groups", "in", "k", "out", "s", "d", "p", "q")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_NAME = 64
FORMULA_WIDTH = 90


# -- printing --------------------------------------------------------------------------------


class CPrinter(C99CodePrinter):
    """SymPy's C99 printer, taught the integer operations of the index forms.

    ``Quotient(a, b)`` is an exact division (its guard checks ``a % b == 0``), so C's truncating
    ``(a)/b`` is right; it is parenthesised like a product so that ``7*((a)/2)`` never turns into
    ``(7*a)/2``. ``Mod`` only appears in divisibility guards, where C's ``%`` (which may be
    negative) still tests divisibility correctly. A flattened access ``a[offset]`` prints its
    offset term by term, in the order the axes were laid down.
    """

    def parenthesize(self, item, level, strict=False):
        if isinstance(item, Quotient):
            prec = PRECEDENCE["Mul"]
            if prec < level or (not strict and prec <= level):
                return f"({self._print(item)})"
            return self._print(item)
        return super().parenthesize(item, level, strict)

    def _print_Mod(self, expr) -> str:
        a, b = expr.args
        level = PRECEDENCE["Mul"]
        return f"{self.parenthesize(a, level)} % {self.parenthesize(b, level)}"

    def _print_Indexed(self, expr) -> str:
        if len(expr.indices) != 1:
            raise ValueError(f"only flattened (one-index) accesses can be printed as C, got {expr}")
        offset = expr.indices[0]
        terms = offset.args if isinstance(offset, sp.Add) else (offset,)
        text = self._print(terms[0])
        for term in terms[1:]:
            printed = self._print(term)
            text += f" - {printed[1:]}" if printed.startswith("-") else f" + {printed}"
        return f"{expr.base.name}[{text}]"

    def _print_BooleanFalse(self, expr) -> str:
        return "0"

    def _print_BooleanTrue(self, expr) -> str:
        return "1"


_C = CPrinter()


def c_code(expr: sp.Basic) -> str:
    """An index expression, access or guard as C text."""
    _check_divisibility(expr)
    return _C.doprint(expr)


def _check_divisibility(expr: sp.Basic) -> None:
    """``Mod`` prints as C's ``%``, which is only right in a test ``a % b == 0`` (or ``!=``)."""
    mods = expr.atoms(sp.Mod)
    if not mods:
        return
    if isinstance(expr, (sp.Eq, sp.Ne)) and (
        (expr.lhs in mods and expr.rhs == 0) or (expr.rhs in mods and expr.lhs == 0)
    ) and len(mods) == 1:
        return
    raise NotImplementedError(f"Mod is only supported in divisibility guards (a % b == 0), got {expr}")


# -- stage 1: loops from the form ------------------------------------------------------------


@dataclass(frozen=True)
class Nest:
    """A form's loop nest while it is being lowered (still SymPy): ``loops[:reduce_at]`` free."""

    loops: tuple[Loop, ...]
    reduce_at: int


def nest_loops(form: IndexForm) -> Nest:
    """Free indices outside (one output entry each), summation indices inside.

    The forms list their indices outermost first, batch/channel before space, so the innermost
    free loop runs along the output's contiguous axis and the innermost sum loop along the
    contiguous axis of what is read (the kernel row for the forward and grad_input, the upstream
    gradient's row for grad_weight). Every loop range must be a number by now.
    """
    for loop in form.free + form.sums:
        if not (sp.sympify(loop.lo).is_Integer and sp.sympify(loop.hi).is_Integer):
            raise ValueError(f"loop {loop.var} of {form.name} has a non-numeric range {loop.lo}..{loop.hi}")
    return Nest(loops=form.free + form.sums, reduce_at=len(form.free))


def _ranges(loops: Iterable[Loop]) -> dict[sp.Symbol, tuple[int, int]]:
    return {loop.var: (int(loop.lo), int(loop.hi)) for loop in loops}


# -- stage 2: prune guards -------------------------------------------------------------------


def _box_minimum(expr: sp.Expr, ranges: Mapping[sp.Symbol, tuple[int, int]]) -> int | None:
    """The minimum of ``expr`` over the box of loop ranges, if ``expr`` is affine in them."""
    expr = sp.expand(expr)
    variables = sorted(expr.free_symbols, key=sp.default_sort_key)
    if any(v not in ranges for v in variables) or not expr.is_polynomial(*variables):
        return None
    poly = sp.Poly(expr, *variables) if variables else None
    if poly is not None and poly.total_degree() > 1:
        return None
    lowest = expr.subs({v: 0 for v in variables})
    for v in variables:
        coefficient = expr.coeff(v)
        lo, hi = ranges[v]
        lowest += coefficient * (lo if coefficient > 0 else hi)
    return int(lowest) if sp.sympify(lowest).is_Integer else None


def always_holds(guard: sp.Basic, ranges: Mapping[sp.Symbol, tuple[int, int]]) -> bool:
    """Whether an (affine) inequality holds at every point of the loop box."""
    if guard is sp.true:
        return True
    if not isinstance(guard, (sp.LessThan, sp.StrictLessThan, sp.GreaterThan, sp.StrictGreaterThan)):
        return False
    slack = _box_minimum(guard.gts - guard.lts, ranges)
    if slack is None:
        return False
    strict = isinstance(guard, (sp.StrictLessThan, sp.StrictGreaterThan))
    return slack > 0 if strict else slack >= 0


def prune_guards(guards: Sequence[sp.Basic], loops: Sequence[Loop]) -> tuple[sp.Basic, ...]:
    """Drop the guards the loop ranges already guarantee (e.g. no padding: ``i + r <= 2``).

    The specialised form keeps them because SymPy only knows the indices are nonnegative; with
    the ranges at hand they are decided exactly (affine expression, box of integer ranges).
    """
    ranges = _ranges(loops)
    return tuple(g for g in guards if not always_holds(g, ranges))


# -- stage 3: place guards -------------------------------------------------------------------


def place_guards(guards: Sequence[sp.Basic], nest: Nest) -> tuple[tuple[sp.Basic, ...], ...]:
    """For every loop, the guards tested as soon as that loop's index is bound.

    A guard goes to the shallowest loop binding all its indices, so a failing guard skips the
    whole subtree below it. It never goes above the first summation loop: a guard filters terms
    of the sum, and outside the sum it would skip the store too.
    """
    depth = {loop.var: position for position, loop in enumerate(nest.loops)}
    placed: list[list[sp.Basic]] = [[] for _ in nest.loops]
    for guard in guards:
        unbound = [s for s in guard.free_symbols if s not in depth]
        if unbound:
            raise ValueError(f"guard {guard} uses {unbound}, which no loop binds")
        level = max([depth[s] for s in guard.free_symbols] + [nest.reduce_at])
        if level >= len(nest.loops):
            raise ValueError(f"guard {guard} has no summation loop to filter")
        placed[level].append(guard)
    return tuple(tuple(level) for level in placed)


# -- stage 4: flatten accesses ---------------------------------------------------------------


def flat_offset(indices: Sequence[sp.Expr], shape: Sequence[int]) -> sp.Expr:
    """``Σ index_a · stride_a`` for a C-contiguous array, one term per axis, outermost first.

    Built unevaluated so that it prints as the layout reads (``9*n + 3*(i + r) + j + t``);
    ``sympify``-ing or substituting numbers into it evaluates it as usual.
    """
    if len(indices) != len(shape):
        raise ValueError(f"{len(indices)} indices for an array of shape {tuple(shape)}")
    strides = [int(np.prod(shape[a + 1 :], dtype=np.int64)) for a in range(len(shape))]
    terms = []
    for index, stride in zip(indices, strides):
        index = sp.sympify(index)
        if index == 0:
            continue
        terms.append(index if stride == 1 else sp.Mul(sp.Integer(stride), index, evaluate=False))
    if not terms:
        return sp.Integer(0)
    return terms[0] if len(terms) == 1 else sp.Add(*terms, evaluate=False)


def flatten_access(expr: sp.Expr, shapes: Mapping[str, tuple[int, ...]]) -> sp.Expr:
    """Replace every ``A[i, j, ...]`` by ``a[offset]``: the C argument and the flat offset."""
    mapping = {}
    for access in expr.atoms(sp.Indexed):
        array = access.base.name
        if array not in ARRAYS:
            raise ValueError(f"unknown array {array} in {expr}")
        c_name = ARRAYS[array][0]
        mapping[access] = sp.IndexedBase(c_name)[flat_offset(access.indices, shapes[array])]
    return expr.xreplace(mapping)


# -- stage 5: parallel loops -----------------------------------------------------------------


def parallel_depth(nest: Nest) -> int:
    """How many leading free loops run over batch/channel indices.

    Each of their iterations writes a disjoint slab of the output (its own batch item and
    channel) and reads only inputs, so they can be shared among threads without a race.
    """
    depth = 0
    for loop in nest.loops[: nest.reduce_at]:
        if loop.var.name not in INDEPENDENT_INDICES:
            break
        depth += 1
    return depth


# -- the layer: names, sizes, tensors --------------------------------------------------------


def c_type(dtype: object) -> str:
    """``"float32"``/``"float64"`` (or the numpy dtype) → ``"float"``/``"double"``."""
    try:
        name = np.dtype(dtype).name  # type: ignore[call-overload]
    except TypeError:
        name = None
    if name not in C_TYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', but got {dtype!r}")
    return C_TYPES[name]


def _dtype_name(dtype: object) -> str:
    return {v: k for k, v in C_TYPES.items()}[c_type(dtype)]


def check_name(name: object) -> str:
    """A module name must be a C identifier (it prefixes every function and macro)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or keyword.iskeyword(name):
        raise ValueError(f"name must be a C identifier (letters, digits, _), but got {name!r}")
    if len(name) > _MAX_NAME:
        raise ValueError(f"name must be at most {_MAX_NAME} characters, but got {len(name)}: {name!r}")
    return name


def module_name(spec: ConvSpec, dtype: object = "float32") -> str:
    """``conv2d_1x1x3x3_1x1x2x2_s1_p0_d1_g1_f32`` (``_b`` with bias), or a hashed name.

    Layers with asymmetric padding, or whose readable name would be too long, get
    ``conv2d_<10 hex digits>_f32`` from a hash of the spec.
    """
    suffix = DTYPE_SUFFIX[_dtype_name(dtype)]

    def axes(values: Sequence[int]) -> str:
        return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))

    parts = [
        f"conv{spec.rank}d",
        "x".join(map(str, spec.input)),
        "x".join(map(str, spec.weight)),
        f"s{axes(spec.stride)}",
        f"p{axes(spec.pad_lo)}",
        f"d{axes(spec.dilation)}",
        f"g{spec.groups}",
        *(["b"] if spec.bias else []),
        suffix,
    ]
    name = "_".join(parts)
    if spec.pad_lo != spec.pad_hi or len(name) > _MAX_NAME:
        digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
        name = f"conv{spec.rank}d_{digest}_{suffix}"
    return name


def _size_doc(symbol: sp.Symbol) -> str:
    if symbol.name in SIZE_DOCS:
        return SIZE_DOCS[symbol.name]
    prefix, axis = symbol.name.rsplit("_", 1)
    return SIZE_DOCS[prefix].format(axis=AXIS_WORDS[axis])


def _size_key(symbol: sp.Symbol) -> tuple[int, str]:
    prefix = symbol.name if symbol.name in SIZE_DOCS else symbol.name.rsplit("_", 1)[0]
    return SIZE_ORDER.index(prefix), symbol.name


def macro_name(symbol: sp.Symbol) -> str:
    """The C macro of a size symbol: its name upper-cased (``out_h`` → ``OUT_H``)."""
    return symbol.name.upper()


def size_macros(spec: ConvSpec) -> tuple[ir.Macro, ...]:
    """One macro per size symbol of the general form, with this layer's number."""
    values = parameter_values(spec)
    return tuple(
        ir.Macro(macro_name(symbol), int(values[symbol]), _size_doc(symbol))
        for symbol in sorted(values, key=_size_key)
    )


def tensors(spec: ConvSpec) -> tuple[ir.Tensor, ...]:
    """The layer's array layouts (bias only with a bias)."""
    rank = spec.rank

    def index(name: str, axes: Sequence[str]) -> str:
        return name + "".join(f"[{a}]" for a in axes)

    found = [
        ir.Tensor("input", index("X", ("n", "c", *INPUT_COORDS[rank])), spec.input, "INPUT_SIZE"),
        ir.Tensor("weight", index("W", ("k", "c", *TAP_COORDS[rank])), spec.weight, "WEIGHT_SIZE"),
    ]
    if spec.bias:
        found.append(ir.Tensor("bias", "b[k]", spec.bias_shape, "BIAS_SIZE"))
    output = index("O", ("n", "k", *OUTPUT_COORDS[rank]))
    found.append(ir.Tensor("output", output, spec.output, "OUTPUT_SIZE"))
    return tuple(found)


def tensor_macros(found: Sequence[ir.Tensor]) -> tuple[ir.Macro, ...]:
    return tuple(
        ir.Macro(t.size_macro, t.size, f"elements of the {t.role} {t.index.split('[')[0]}") for t in found
    )


# -- the formula comment ---------------------------------------------------------------------


def formula_lines(symbolic: IndexForm, sizes: Iterable[sp.Symbol]) -> tuple[str, ...]:
    """The general index form, with sizes spelled as the C macros (``OUT_H``, ``S_H``...)."""
    form = symbolic.subs({s: sp.Symbol(macro_name(s), **s.assumptions0) for s in sizes})
    sums = ", ".join(f"{loop.var}<{sp.sstr(loop.hi + 1)}" for loop in form.sums)
    plus = "" if form.plus == 0 else f"{sp.sstr(form.plus)} + "
    head = [f"{sp.sstr(form.target)} = {plus}Σ_{{{sums}}} {sp.sstr(form.term)}"]
    if len(head[0]) > FORMULA_WIDTH:
        head = [f"{sp.sstr(form.target)} = {plus}Σ_{{{sums}}}", f"    {sp.sstr(form.term)}"]
    guards = [c_code(g) for g in form.guards]
    tail = [("where " if i == 0 else "  and ") + g for i, g in enumerate(guards)]
    return (*head, *tail)


# -- one form → one kernel -------------------------------------------------------------------


def _extents(nest: Nest, symbolic: IndexForm, macros: Mapping[str, int]) -> tuple[str, ...]:
    """For each loop, the macro equal to its trip count (from the symbolic form), or ""."""
    names = []
    for loop, general in zip(nest.loops, symbolic.free + symbolic.sums):
        if loop.var != general.var:
            raise AssertionError(f"specialised and symbolic loops differ: {loop.var} vs {general.var}")
        count = sp.sympify(general.hi - general.lo + 1)
        name = macro_name(count) if isinstance(count, sp.Symbol) else ""
        trips = int(loop.hi) - int(loop.lo) + 1
        names.append(name if name in macros and macros[name] == trips else "")
    return tuple(names)


@dataclass(frozen=True)
class Layer:
    """What every form of one layer is lowered against: array shapes, size macros, bias."""

    shapes: Mapping[str, tuple[int, ...]]
    macros: Mapping[str, int]
    sizes: tuple[sp.Symbol, ...]
    has_bias: bool

    @classmethod
    def of(cls, spec: ConvSpec, macros: Sequence[ir.Macro]) -> "Layer":
        by_role = {"input": spec.input, "weight": spec.weight, "bias": spec.bias_shape, "output": spec.output}
        shapes = {array: by_role[role] for array, (_, role, _) in ARRAYS.items()}
        return cls(shapes, {m.name: m.value for m in macros}, tuple(parameter_values(spec)), spec.bias)


def initial_value(form: IndexForm, layer: Layer) -> str:
    """The accumulator's start: 0, or the bias term when its pointer is not NULL."""
    if form.plus == 0:
        return "0"
    pointers = sorted({ARRAYS[a.base.name][0] for a in sp.sympify(form.plus).atoms(sp.Indexed)})
    present = " && ".join(f"{p} != NULL" for p in pointers)
    return f"{present} ? {c_code(flatten_access(form.plus, layer.shapes))} : 0"


def arguments(kernel: str, form: IndexForm, layer: Layer) -> tuple[tuple[ir.Arg, ...], tuple[str, ...]]:
    """The kernel's arguments in the contract's order, and those its body never reads."""
    used = {ARRAYS[a.base.name][0] for a in (form.term + form.plus + form.target).atoms(sp.Indexed)}
    args = tuple(
        ir.Arg(c_name, ARRAYS[array][1], ARRAYS[array][2],
               ARG_DOCS[c_name] if array != "b" or layer.has_bias else NO_BIAS_DOC)
        for c_name, array in SIGNATURES[kernel]
    )
    return args, tuple(arg.name for arg in args if arg.name not in used)


def lower_form(form: IndexForm, symbolic: IndexForm, layer: Layer) -> ir.Kernel:
    """One specialised form → one kernel (the stages, in order)."""
    kernel_name, title = KERNELS[form.name]
    nest = nest_loops(form)
    guards = prune_guards(form.guards, nest.loops)
    placed = place_guards(guards, nest)
    extents = _extents(nest, symbolic, layer.macros)
    loops = tuple(
        ir.Loop(loop.var.name, int(loop.lo), int(loop.hi), extent, tuple(c_code(g) for g in at))
        for loop, extent, at in zip(nest.loops, extents, placed)
    )
    args, unused = arguments(kernel_name, form, layer)
    clash = {loop.var for loop in loops} & {arg.name for arg in args}
    if clash:
        raise AssertionError(f"loop indices {sorted(clash)} clash with argument names of {kernel_name}")
    return ir.Kernel(
        name=kernel_name,
        title=title,
        formula=formula_lines(symbolic, layer.sizes),
        args=args,
        loops=loops,
        reduce_at=nest.reduce_at,
        parallel=parallel_depth(nest),
        init=initial_value(form, layer),
        term=c_code(flatten_access(form.term, layer.shapes)),
        target=c_code(flatten_access(form.target, layer.shapes)),
        unused=unused,
    )


def lower(spec: ConvSpec, dtype: object = "float32", name: str | None = None) -> ir.Module:
    """The C kernels of ``spec`` as a ``codegen.ir.Module`` (forward, grad_input, grad_weight,
    and grad_bias with a bias), element type ``dtype`` ("float32" or "float64").

    ``name`` (a C identifier) prefixes every function; by default it comes from the layer.
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, but got {type(spec).__name__}")
    ctype = c_type(dtype)
    name = module_name(spec, dtype) if name is None else check_name(name)
    derivation = derive(spec)
    specialised, symbolic = derivation.general(), derivation.general(symbolic=True)
    layouts = tensors(spec)
    macros = size_macros(spec) + tensor_macros(layouts)
    layer = Layer.of(spec, macros)
    kernels = tuple(
        lower_form(specialised[key], symbolic[key], layer) for key in KERNELS if key in specialised.forms
    )
    return ir.Module(
        name=name, ctype=ctype, layer=spec.describe(), macros=macros, tensors=layouts, kernels=kernels
    )
