"""Lowering: the general index form of a layer → ``codegen.ir`` loop nests (plain data).

Each ``IndexForm`` ``target[free] = plus + Σ_{sums} term  (where guards)`` becomes one kernel:

    for free loops:  acc = plus;  for sum loops (skipping where a guard fails): acc += term;
                     target = acc

The stages, each a small function below:

1. ``nest_loops``        the free indices become the outer loops, the sums the inner ones
2. ``prune_guards``      drop the guards that the loop ranges already guarantee
3. ``choose_tile``       which innermost loop runs over independent, contiguous entries: the
                         output row (its entries accumulate in a local array, stored once) or
                         the row of a sum (one partial sum per lane, added up in a fixed order)
4. ``tile_nest``         move the tile's free loops inside the sums, so the innermost loop is the
                         tile's row; ``fold_sum`` then moves a short last sum (the kernel taps
                         along the row) inside that row, and ``interior`` finds where along the
                         row none of its guards can fail
5. ``place_guards``      each guard goes to the shallowest loop that binds all its indices
6. ``bound_loop``        a tile loop's guards become its range (start, stop, step) where they
                         can, so the innermost loop tests nothing per element
7. ``flatten_access``    ``A[i, j, ...]`` becomes ``a[flat offset]`` with constant strides
8. ``parallel_depth``    how many leading loops write disjoint outputs (the OpenMP loops), and
                         ``worth_threads``: whether the nest has work enough to wake threads for
9. ``CPrinter``          every index expression and guard is printed by SymPy's C99 printer

Everything is specialised to the layer's numbers (``derive(spec).general()``); the symbolic form
only supplies the names of the sizes (``OUT_H``...) and the formula printed above each function.

2-D layers with enough channels for the vector lanes also get register-tiled versions of their
passes (``symconv.lower_blocked``, in ``Module.blocked``), and layers with too few channels
row-vectorised ones (output columns in the lanes): their C functions run those, and the loop
nests lowered here stay in the file as the always-correct fallback.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import keyword
import re
from dataclasses import dataclass
from math import lcm, prod
from typing import Iterable, Mapping, Sequence

import numpy as np
import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE

from codegen import ir

from .derive import derive
from .general import INPUT_COORDS, OUTPUT_COORDS, TAP_COORDS, IndexForm, Loop, Quotient, parameter_values
from .spec import ConvSpec
from .target import DEFAULT, Target

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

#: The most entries a local accumulator tile may have: it lives on each thread's stack, and
#: should stay in the first-level cache (4096 floats are 16 KiB).
MAX_TILE = 4096
#: Below this many multiply-adds a kernel runs on the calling thread alone: starting a team of
#: OpenMP threads costs several microseconds, more than a small layer's whole arithmetic.
PARALLEL_MIN_WORK = 100_000

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


# -- stage 3: choose the tile ---------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """The loops whose iterations accumulate into a local array ``acc`` (outermost first).

    ``kind`` is "outputs" (trailing free loops: acc holds output entries), "lanes" (the last
    sum loop: acc holds partial sums, one per lane) or "" (no tile: one scalar accumulator).
    """

    kind: str
    loops: tuple[Loop, ...] = ()


def exact_division(expr: sp.Expr) -> sp.Expr:
    """``Quotient(a, b)`` → ``a/b``: equal wherever its divisibility guard holds."""
    return expr.replace(lambda e: isinstance(e, Quotient), lambda e: e.args[0] / e.args[1])


def _coefficients(expr: sp.Expr, var: sp.Symbol) -> sp.Expr | None:
    """The coefficient of ``var`` in an affine expression, or None if it is not affine in it."""
    expr = sp.expand(exact_division(sp.sympify(expr)))
    if not expr.is_polynomial(var) or sp.degree(expr, var) > 1:
        return None
    return expr.coeff(var)


def memory_step(var: sp.Symbol, term: sp.Expr, shapes: Mapping[str, tuple[int, ...]]) -> sp.Rational | None:
    """The smallest distance in memory, over the arrays ``term`` reads along ``var``, between
    the elements read by consecutive values of ``var`` (None if it reads nothing along it)."""
    steps = []
    for access in term.atoms(sp.Indexed):
        coefficient = flat_coefficient(access, var, shapes)
        if coefficient is not None and coefficient != 0:
            steps.append(abs(coefficient))
    return min(steps) if steps else None


def flat_coefficient(
    access: sp.Indexed, var: sp.Symbol, shapes: Mapping[str, tuple[int, ...]]
) -> sp.Rational | None:
    """How far the flat offset of ``access`` moves when ``var`` grows by one (None when that
    is not a constant): Σ over axes of the axis stride times the index's coefficient."""
    shape = shapes[access.base.name]
    total = sp.Integer(0)
    for axis, index in enumerate(access.indices):
        coefficient = _coefficients(index, var)
        if coefficient is None or not coefficient.is_number:
            return None
        total += int(np.prod(shape[axis + 1 :], dtype=np.int64)) * coefficient
    return sp.Rational(total)


def _row_score(loop: Loop, term: sp.Expr, shapes: Mapping[str, tuple[int, ...]]) -> float:
    """How many elements a loop over ``loop`` reads per unit of memory it spans: its trip count,
    divided by its memory step when that is more than 1 (0 when it reads nothing along it)."""
    step = memory_step(loop.var, term, shapes)
    if step is None:
        return 0.0
    return (int(loop.hi) - int(loop.lo) + 1) / max(1.0, float(step))


def choose_tile(form: IndexForm, nest: Nest, shapes: Mapping[str, tuple[int, ...]]) -> Tile:
    """The innermost loop should run over independent entries, contiguous in memory, as many
    as possible: either the output row (the last free loop, when the target is contiguous along
    it) or the row of the last sum loop (partial sums, one per lane). The one reading more
    elements per unit of memory wins; an output tile then grows outwards over the next free
    loops (not the parallel ones) while it fits ``MAX_TILE`` entries.
    """
    free, sums = nest.loops[: nest.reduce_at], nest.loops[nest.reduce_at :]
    candidates = []
    if free and sums:
        last = free[-1]
        if flat_coefficient(form.target, last.var, shapes) == 1 and int(last.lo) == 0:
            candidates.append((_row_score(last, form.term, shapes), 1, "outputs"))
        if int(sums[-1].lo) == 0:
            candidates.append((_row_score(sums[-1], form.term, shapes), 0, "lanes"))
    candidates = [c for c in candidates if c[0] > 1]
    if not candidates:
        return Tile("")
    kind = max(candidates)[2]
    row = sums[-1:] if kind == "lanes" else free[-1:]
    if _entries(row) > MAX_TILE:
        return Tile("")
    # grow outwards over the free loops inside the parallel ones: with lanes, those outputs
    # then share every pass over the inputs (each reads the same rows, shifted)
    independent = parallel_depth(nest)
    outer = free[independent:] if kind == "lanes" else free[independent:-1]
    tile = tuple(row)
    for loop in reversed(outer):
        if int(loop.lo) != 0 or _entries((loop, *tile)) > MAX_TILE:
            break
        tile = (loop, *tile)
    return Tile(kind, tile)


def _entries(loops: Sequence[Loop]) -> int:
    return prod(int(loop.hi) - int(loop.lo) + 1 for loop in loops)


def tile_nest(nest: Nest, tile: Tile) -> Nest:
    """The free loops of a tile go innermost, after the sums (a lanes tile keeps its lane, the
    last sum loop, innermost of all)."""
    if not tile.kind:
        return nest
    free_part = tile.loops if tile.kind == "outputs" else tile.loops[:-1]
    m = len(free_part)
    free, sums = nest.loops[: nest.reduce_at], nest.loops[nest.reduce_at :]
    if free[len(free) - m :] != free_part:
        raise AssertionError("a tile's free loops must be the trailing free loops")
    if tile.kind == "outputs":
        loops = free[: len(free) - m] + sums + free_part
    else:
        loops = free[: len(free) - m] + sums[:-1] + free_part + sums[-1:]
    return Nest(loops=loops, reduce_at=len(free) - m)


#: Longest sum loop that may be folded into the row loop (it is unrolled there).
MAX_FOLD = 8


def fold_sum(form: IndexForm, nest: Nest, tile: Tile, guards: Sequence[sp.Basic]) -> Loop | None:
    """The last sum loop, if it can run inside the innermost output loop.

    ``for t: for j: acc[j] += term`` reads and writes the accumulator row once per ``t``;
    ``for j: a = acc[j]; for t: a += term; acc[j] = a`` once in all, and adds the terms of each
    output in the very same order. That needs a short constant ``t`` range (it is unrolled) and
    every guard on ``t`` to be a range guard on the row index ``j`` too: those give ``j`` an
    interior where every ``t`` is valid (no tests there) and a border where they are tested.
    """
    sums = nest.loops[nest.reduce_at :]
    if tile.kind != "outputs" or not sums or len(sums) < 2:
        return None
    folded, row = sums[-1], tile.loops[-1].var
    if int(folded.hi) - int(folded.lo) + 1 > MAX_FOLD:
        return None
    exact = frozenset(d for d in map(_divisibility, guards) if d is not None)
    for guard in guards:
        if folded.var not in guard.free_symbols and row not in guard.free_symbols:
            continue
        if _divisibility(guard) is not None:
            return None  # a residue class that moves with t: no plain interior
        bounds_row = row in guard.free_symbols and range_limit(guard, row, exact) is not None
        if folded.var in guard.free_symbols and not bounds_row:
            return None
    return folded


def fold_nest(nest: Nest, folded: Loop | None) -> Nest:
    """The folded sum loop goes innermost, inside the tile."""
    if folded is None:
        return nest
    loops = tuple(loop for loop in nest.loops if loop.var != folded.var) + (folded,)
    return Nest(loops=loops, reduce_at=nest.reduce_at)


def interior(
    row: Loop, folded: Loop, guards: Sequence[sp.Basic], all_guards: Sequence[sp.Basic]
) -> tuple[str, str]:
    """The row indices where every value of the folded loop passes ``guards``: (start, stop).

    Each guard bounds the row index by ``ceil(e/d)`` or ``floor(e/d)`` with ``e`` affine in the
    folded index, so the tightest bound over its range is at one end of it.
    """
    exact = frozenset(d for d in map(_divisibility, all_guards) if d is not None)
    lower: list[str | int] = []
    upper: list[str | int] = []
    for guard in guards:
        found = range_limit(guard, row.var, exact)
        if found is None:
            raise AssertionError(f"guard {guard} of a folded loop gives no bound on {row.var}")
        kind, numerator, divisor = found
        slope = sp.expand(numerator).coeff(folded.var)
        # lower bounds: the largest (numerator largest); upper bounds: the smallest
        largest = (slope > 0) == (kind == "lower")
        end = int(folded.hi) if largest else int(folded.lo)
        bound = limit_text(kind, sp.expand(numerator.subs(folded.var, end)), divisor)
        (lower if kind == "lower" else upper).append(bound)
    start = _combine("ix_max", int(row.lo), lower) or str(row.lo)
    return start, _combine("ix_min", int(row.hi), upper) or str(row.hi)


# -- stage 5: place guards -------------------------------------------------------------------


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


# -- stage 6: bounds from guards ------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """A loop's range as the guards allow it: ``for (v = start; v <= stop; v += step)``, and
    the guards that could not be turned into it (tested per iteration)."""

    start: str
    stop: str
    step: int
    rest: tuple[sp.Basic, ...]


def _divisibility(guard: sp.Basic) -> tuple[sp.Expr, int] | None:
    """``Eq(Mod(a, s), 0)`` → ``(a, s)``."""
    if isinstance(guard, sp.Eq):
        for mod, zero in ((guard.lhs, guard.rhs), (guard.rhs, guard.lhs)):
            if isinstance(mod, sp.Mod) and zero == 0 and mod.args[1].is_Integer and mod.args[1] > 0:
                return mod.args[0], int(mod.args[1])
    return None


def _integer_affine(expr: sp.Expr, var: sp.Symbol) -> tuple[int, sp.Expr] | None:
    """``expr = alpha*var + beta`` with integer ``alpha`` and integer coefficients in ``beta``."""
    coefficient = _coefficients(expr, var)
    if coefficient is None or not coefficient.is_Integer:
        return None
    rest = sp.expand(exact_division(sp.sympify(expr)) - coefficient * var)
    variables = sorted(rest.free_symbols, key=sp.default_sort_key)
    if not variables:
        return (int(coefficient), rest) if rest.is_Integer else None
    if not rest.is_polynomial(*variables):
        return None
    poly = sp.Poly(rest, *variables)
    if poly.total_degree() > 1 or not all(c.is_Integer for c in poly.coeffs()):
        return None
    return int(coefficient), rest


def range_limit(guard: sp.Basic, var: sp.Symbol, exact: frozenset) -> tuple[str, sp.Expr, int] | None:
    """An inequality affine in ``var`` → ``("lower", e, d)`` for ``var >= ceil(e/d)`` or
    ``("upper", e, d)`` for ``var <= floor(e/d)`` (``d > 0``); None if it is not of that kind."""
    if not isinstance(guard, (sp.LessThan, sp.StrictLessThan, sp.GreaterThan, sp.StrictGreaterThan)):
        return None
    quotients = {(q.args[0], q.args[1]) for q in guard.atoms(Quotient)}
    if not quotients <= exact:  # a quotient is only a division where its guard holds
        return None
    slack = exact_division(guard.gts - guard.lts)  # the guard says slack >= 0 (or > 0)
    denominators = [sp.fraction(sp.together(term))[1] for term in sp.Add.make_args(sp.expand(slack))]
    if not all(d.is_Integer for d in denominators):
        return None
    scaled = sp.expand(slack * lcm(*(int(d) for d in denominators)))
    if isinstance(guard, (sp.StrictLessThan, sp.StrictGreaterThan)):
        scaled -= 1  # integers: e > 0 is e - 1 >= 0
    affine = _integer_affine(scaled, var)
    if affine is None or affine[0] == 0:
        return None
    alpha, beta = affine  # alpha*var + beta >= 0
    return ("lower", -beta, alpha) if alpha > 0 else ("upper", beta, -alpha)


def limit_text(kind: str, numerator: sp.Expr, divisor: int) -> str | int:
    """C text of ``ceil(e/d)`` (lower) or ``floor(e/d)`` (upper), or its value if it is a number."""
    if sp.sympify(numerator).is_Integer:
        value = int(numerator)
        return -((-value) // divisor) if kind == "lower" else value // divisor
    if divisor == 1:
        return c_code(numerator)
    return f"ix_{'ceil' if kind == 'lower' else 'floor'}_div({c_code(numerator)}, {divisor})"


def _range_bound(guard: sp.Basic, var: sp.Symbol, exact: frozenset) -> tuple[str, str | int] | None:
    """An inequality affine in ``var`` → ("lower" or "upper", C text of the bound)."""
    found = range_limit(guard, var, exact)
    return None if found is None else (found[0], limit_text(*found))


def _combine(function: str, constant: int, bounds: Sequence[str | int]) -> str:
    """``ix_max(ix_max(constant, a), b)``..., with numbers folded into the constant; "" when
    only the loop's own limit remains."""
    pick = max if function == "ix_max" else min
    folded = pick([constant, *(b for b in bounds if isinstance(b, int))])
    texts = [b for b in bounds if not isinstance(b, int)]
    if not texts and folded == constant:
        return ""
    text = str(folded)
    for bound in texts:
        text = f"{function}({text}, {bound})"
    return text


def bound_loop(loop: Loop, guards: Sequence[sp.Basic], all_guards: Sequence[sp.Basic]) -> Bounds:
    """Turn the guards of a tile loop into its range where they are affine in its index.

    ``c <= e`` style guards become ``start``/``stop`` (``ix_ceil_div``/``ix_floor_div`` when
    the index has a coefficient other than ±1); one divisibility guard ``(±v + b) % s == 0``
    becomes a step ``s`` from the first index of the right residue (``ix_first``). Quotients
    in inequalities are exact where their divisibility guard holds, so they are divided out.
    Anything else stays a per-iteration test (``rest``).
    """
    var = loop.var
    exact = frozenset(d for d in map(_divisibility, all_guards) if d is not None)
    lower: list[str | int] = []
    upper: list[str | int] = []
    residue: tuple[str, int] | None = None
    rest: list[sp.Basic] = []
    for guard in guards:
        if var not in guard.free_symbols:
            rest.append(guard)
            continue
        divisible = _divisibility(guard)
        if divisible is not None and residue is None:
            affine = _integer_affine(divisible[0], var)
            if affine is not None and abs(affine[0]) == 1:  # ±var + beta ≡ 0  →  var ≡ ∓beta
                alpha, beta = affine
                residue = (c_code(sp.expand(-alpha * beta)), divisible[1])
                continue
        found = None if divisible is not None else _range_bound(guard, var, exact)
        if found is None:
            rest.append(guard)
        else:
            (lower if found[0] == "lower" else upper).append(found[1])
    start = _combine("ix_max", int(loop.lo), lower)
    stop = _combine("ix_min", int(loop.hi), upper)
    step = 1
    if residue is not None:
        step = residue[1]
        start = f"ix_first({start or int(loop.lo)}, {residue[0]}, {step})"
    return Bounds(start, stop, step, tuple(rest))


# -- stage 7: flatten accesses ---------------------------------------------------------------


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


# -- stage 8: parallel loops -----------------------------------------------------------------


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


def worth_threads(nest: Nest) -> bool:
    """Whether the nest does enough multiply-adds (``PARALLEL_MIN_WORK``) to wake threads for:
    small layers stay small, and a call costs no more than the arithmetic."""
    return _entries(nest.loops) >= PARALLEL_MIN_WORK


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
    extent_of = dict(zip((loop.var for loop in nest.loops), _extents(nest, symbolic, layer.macros)))
    guards = prune_guards(form.guards, nest.loops)
    tile = choose_tile(form, nest, layer.shapes)
    folded = fold_sum(form, nest, tile, guards)
    tiled = fold_nest(tile_nest(nest, tile), folded)
    placed = place_guards(guards, tiled)
    tile_vars = {loop.var for loop in tile.loops}
    loops = []
    for loop, at in zip(tiled.loops, placed):
        bounds = bound_loop(loop, at, guards) if loop.var in tile_vars else Bounds("", "", 1, at)
        loops.append(
            ir.Loop(loop.var.name, int(loop.lo), int(loop.hi), extent_of[loop.var],
                    tuple(c_code(g) for g in bounds.rest), bounds.start, bounds.stop, bounds.step)
        )
    if folded is not None and placed[-1]:  # the row loop gets an interior without tests
        start, stop = interior(tiled.loops[-2], folded, placed[-1], guards)
        loops[-2] = dataclasses.replace(loops[-2], interior_start=start, interior_stop=stop)
    args, unused = arguments(kernel_name, form, layer)
    clash = {loop.var for loop in loops} & ({arg.name for arg in args} | {"acc", "total"})
    if clash:
        raise AssertionError(f"loop indices {sorted(clash)} clash with names used in {kernel_name}")
    return ir.Kernel(
        name=kernel_name,
        title=title,
        formula=formula_lines(symbolic, layer.sizes),
        args=args,
        loops=tuple(loops),
        reduce_at=tiled.reduce_at,
        parallel=parallel_depth(tiled),
        init=initial_value(form, layer),
        term=c_code(flatten_access(form.term, layer.shapes)),
        target=c_code(flatten_access(form.target, layer.shapes)),
        unused=unused,
        tile=len(tile.loops),
        tile_kind=tile.kind,
        inner=0 if folded is None else 1,
        work=_entries(nest.loops),
        threaded=worth_threads(nest),
    )


def lower(
    spec: ConvSpec,
    dtype: object = "float32",
    name: str | None = None,
    tiled: bool = True,
    target: Target = DEFAULT,
) -> ir.Module:
    """The C kernels of ``spec`` as a ``codegen.ir.Module`` (forward, grad_input, grad_weight,
    and grad_bias with a bias), element type ``dtype`` ("float32" or "float64").

    ``name`` (a C identifier) prefixes every function; by default it comes from the layer.
    With ``tiled`` the passes that suit it also get a register-tiled version
    (``symconv.lower_blocked``), which their C function then runs, its tiles sized for
    ``target`` (``symconv.target``: the vector width and registers of the CPU it will run on).
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
    blocked: tuple[ir.Plan, ...] = ()
    if tiled and spec.rank == 2:
        from . import lower_blocked as fast  # the fast paths build on this module
        from .lower_batch import plan_batch
        from .lower_pointwise import plan_pointwise

        shapes = layer.shapes
        forward, grad_input = specialised["O"], specialised["dX"]
        plans = [
            plan_pointwise(forward, shapes, ctype, target) or fast.plan(forward, shapes, ctype, spec.bias, target),
            # few input channels: batch items in the lanes if the batch fills them (before channel
            # lanes that would be a quarter empty: see symconv.lower_batch), else channels there
            plan_pointwise(grad_input, shapes, ctype, target)
            or plan_batch(grad_input, shapes, ctype, target)
            or fast.plan(grad_input, shapes, ctype, spec.bias, target),
        ]
        if plans[0] is None:  # too few output channels for the lanes: put output columns there
            plans[0] = fast.plan_rows(forward, shapes, ctype, target)
        if plans[1] is None:  # too few input channels and batch items: sum output channels in them
            plans[1] = fast.plan_reduce(grad_input, shapes, ctype, target)
        if plans[1] is None:  # or put columns of the input gradient there
            plans[1] = fast.plan_rows(grad_input, shapes, ctype, target)
        plans.append(fast.plan_weight(specialised["dW"], shapes, ctype, target))
        if plans[2] is None:  # too few output channels for the lanes: put output columns there
            plans[2] = fast.plan_rows_weight(specialised["dW"], shapes, ctype, target)
        blocked = tuple(p for p in plans if p is not None)
    return ir.Module(
        name=name, ctype=ctype, layer=spec.describe(), macros=macros, tensors=layouts, kernels=kernels,
        blocked=blocked,
    )
