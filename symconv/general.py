"""The general index form: the gradients of a convolution for any size, derived by SymPy.

The forward pass is written once with symbolic indices and sizes,

    O[n, g, k, i] = b[g, k] + Σ_c Σ_t X[n, g, c, i·s + t·d − p] · W[g, k, c, t]
                    (only where 0 ≤ i·s + t·d − p < in)

(one entry per spatial axis for ``i, t, s, d, p``), and the loss ``L = Σ G·O`` is differentiated
with respect to a symbolic entry ``X[n, g, c, y]`` (resp. ``W[g, k, c, t]``, ``b[g, k]``). SymPy's
derivative of one indexed entry with respect to another is a product of Kronecker deltas; each
delta is removed by solving its index equation for one summation index. Where the solution is a
fraction (``i = (y + p − t·d)/s``) an exact-division guard appears, and the summation range of the
eliminated index becomes a range guard: this is where the stride-dilated, zero-padded picture of
the lectures comes from.

Groups are handled by deriving on the grouped view (channel = g·C_g + c, out channel = g·K_g + k),
where every index equation is a plain equality, and flattening the channels at the end. With one
group, ``g`` is 0 and disappears.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Mapping

import numpy as np
import sympy as sp

from .spec import ConvSpec

Indexed = sp.Indexed

#: Axis suffixes, input coordinates, output coordinates and kernel taps, per spatial rank.
AXIS_NAMES = {1: ("w",), 2: ("h", "w"), 3: ("d", "h", "w")}
INPUT_COORDS = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}
OUTPUT_COORDS = {1: ("i",), 2: ("i", "j"), 3: ("i", "j", "l")}
TAP_COORDS = {1: ("t",), 2: ("r", "t"), 3: ("q", "r", "t")}


class Quotient(sp.Function):
    """``a / b`` for a ``b`` known to divide ``a`` (an exact-division guard always goes with it).

    Kept unevaluated so that it stays an integer expression: it prints as ``(a)/b`` in text and
    C, and as a fraction in LaTeX.
    """

    is_integer = True

    @classmethod
    def eval(cls, a, b):
        if b == 1:
            return a
        if a.is_Integer and b.is_Integer and a % b == 0:
            return sp.Integer(a // b)
        return None

    def _sympystr(self, printer) -> str:
        a, b = self.args
        return f"({printer._print(a)})/{printer._print(b)}"

    def _ccode(self, printer) -> str:
        a, b = self.args
        return f"({printer._print(a)})/{printer._print(b)}"

    def _pythoncode(self, printer) -> str:  # only evaluated where the division is exact
        a, b = self.args
        return f"(({printer._print(a)})//{printer._print(b)})"

    _lambdacode = _numpycode = _mpmathcode = _pythoncode

    def _latex(self, printer) -> str:
        a, b = self.args
        return rf"\frac{{{printer._print(a)}}}{{{printer._print(b)}}}"


def _index(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True, nonnegative=True)


def _size(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True, positive=True)


@dataclass(frozen=True)
class Loop:
    """An index and its inclusive range ``lo <= var <= hi``."""

    var: sp.Symbol
    lo: sp.Expr
    hi: sp.Expr

    def subs(self, mapping: Mapping) -> "Loop":
        return Loop(self.var, sp.sympify(self.lo).xreplace(mapping), sp.sympify(self.hi).xreplace(mapping))

    def values(self) -> range:
        return range(int(self.lo), int(self.hi) + 1)


@dataclass(frozen=True)
class IndexForm:
    """``target[free] = plus + Σ_{sums} term``, each term counted only where all ``guards`` hold."""

    name: str
    target: Indexed
    free: tuple[Loop, ...]
    sums: tuple[Loop, ...]
    term: sp.Expr
    guards: tuple[sp.Basic, ...] = ()
    plus: sp.Expr = sp.Integer(0)

    def rhs(self) -> sp.Expr:
        """The right-hand side as one SymPy expression (``Sum`` of a ``Piecewise``)."""
        body = self.term
        if self.guards:
            body = sp.Piecewise((self.term, sp.And(*self.guards)), (0, True))
        if self.sums:
            body = sp.Sum(body, *((loop.var, loop.lo, loop.hi) for loop in self.sums))
        return self.plus + body

    def equation(self) -> sp.Eq:
        return sp.Eq(self.target, self.rhs(), evaluate=False)

    def subs(self, mapping: Mapping) -> "IndexForm":
        """Substitute symbols (sizes, hyper-parameters, or an index) everywhere."""
        guards = []
        for guard in self.guards:
            guard = guard.xreplace(mapping)
            if guard is sp.true:
                continue
            guards.append(guard)
        return replace(
            self,
            target=self.target.xreplace(mapping),
            free=tuple(loop.subs(mapping) for loop in self.free if loop.var not in mapping),
            sums=tuple(loop.subs(mapping) for loop in self.sums),
            term=self.term.xreplace(mapping),
            guards=tuple(guards),
            plus=sp.sympify(self.plus).xreplace(mapping),
        )

    def expand(self, resolve: Callable[[str, tuple[int, ...]], sp.Expr]) -> dict[tuple[int, ...], sp.Expr]:
        """Every entry of a fully specialised form, as ``{target index: expression}``.

        ``resolve("X", (0, 1, 2, 0))`` gives whatever stands for that entry (e.g. the
        element-wise symbol).  Used to check the general form against the element-wise
        derivation, so it walks the loops plainly: index expressions and guards are compiled to
        Python once with ``lambdify`` and evaluated at every point.
        """
        free_vars = [loop.var for loop in self.free]
        sum_vars = [loop.var for loop in self.sums]
        factors = [f for f in sp.Mul.make_args(self.term) if isinstance(f, Indexed)]
        factor_names = [f.base.name for f in factors]
        coefficient = sp.Mul(*(f for f in sp.Mul.make_args(self.term) if not isinstance(f, Indexed)))
        plus = [f for f in sp.Add.make_args(self.plus) if isinstance(f, Indexed)]
        variables = free_vars + sum_vars
        where = sp.lambdify(variables, [[list(f.indices) for f in factors], sp.And(*self.guards)])
        outer = sp.lambdify(free_vars, [list(self.target.indices), [list(f.indices) for f in plus]])
        bounds = sp.lambdify(free_vars, [[loop.lo, loop.hi] for loop in self.sums])
        out = {}
        for free_values in itertools.product(*(loop.values() for loop in self.free)):
            target, plus_at = outer(*free_values)
            terms = [resolve(f.base.name, tuple(ix)) for f, ix in zip(plus, plus_at)]
            ranges = [range(int(lo), int(hi) + 1) for lo, hi in bounds(*free_values)]
            for sum_values in itertools.product(*ranges):
                indices, ok = where(*free_values, *sum_values)
                if ok:
                    values = (resolve(name, tuple(ix)) for name, ix in zip(factor_names, indices))
                    terms.append(coefficient * sp.Mul(*values))
            out[tuple(int(i) for i in target)] = sp.Add(*terms)
        return out


# -- the symbolic derivation ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Symbols:
    """Every symbol of the symbolic derivation for one spatial rank."""

    rank: int
    grouped: bool

    def axis(self, prefix: str) -> tuple[sp.Symbol, ...]:
        return tuple(_size(f"{prefix}_{a}") for a in AXIS_NAMES[self.rank])

    @property
    def stride(self):
        return self.axis("s")

    @property
    def dilation(self):
        return self.axis("d")

    @property
    def pad_lo(self):
        return tuple(sp.Symbol(f"p_{a}", integer=True, nonnegative=True) for a in AXIS_NAMES[self.rank])

    @property
    def pad_hi(self):
        return tuple(sp.Symbol(f"q_{a}", integer=True, nonnegative=True) for a in AXIS_NAMES[self.rank])

    @property
    def in_size(self):
        return self.axis("in")

    @property
    def kernel(self):
        return self.axis("k")

    @property
    def out_size(self):
        return self.axis("out")

    @property
    def batch(self):
        return _size("N")

    @property
    def groups(self):
        return _size("groups")

    @property
    def in_per_group(self):
        return _size("C_g" if self.grouped else "C")

    @property
    def out_per_group(self):
        return _size("K_g" if self.grouped else "K")

    def out_size_formula(self) -> tuple[sp.Eq, ...]:
        """``out_h = ⌊(in_h + p_h + q_h − d_h·(k_h − 1) − 1)/s_h⌋ + 1`` per axis."""
        return tuple(
            sp.Eq(o, sp.floor((i + p + q - d * (k - 1) - 1) / s) + 1, evaluate=False)
            for o, i, p, q, d, k, s in zip(
                self.out_size, self.in_size, self.pad_lo, self.pad_hi, self.dilation, self.kernel, self.stride
            )
        )


def _input_position(S: _Symbols, out: tuple, taps: tuple) -> tuple:
    """Where output ``out`` and kernel tap ``taps`` read the input: ``i·s + t·d − p``."""
    return tuple(o * s + t * d - p for o, t, s, d, p in zip(out, taps, S.stride, S.dilation, S.pad_lo))


def _inside_input(S: _Symbols, positions: tuple) -> tuple:
    """Guards for reading inside the input (outside it, the zero padding contributes nothing)."""
    return tuple(g for pos, size in zip(positions, S.in_size) for g in (sp.Le(0, pos), sp.Le(pos, size - 1)))


def _loops(variables, highs) -> tuple[Loop, ...]:
    return tuple(Loop(v, sp.Integer(0), hi - 1) for v, hi in zip(variables, highs))


def _forward(S: _Symbols, with_bias: bool):
    """The loss L = Σ G·O as a list of (expression, summation loops, guards), with primed indices.

    The indices are primed (``n'``, ``i'``...) so that they never clash with the indices of the
    entry being differentiated for.
    """
    X, W, b, G = (sp.IndexedBase(name) for name in ("Xg", "Wg", "bg", "Gg"))
    n, g, k, c = (_index(f"{v}'") for v in "ngkc")
    out = tuple(_index(f"{v}'") for v in OUTPUT_COORDS[S.rank])
    taps = tuple(_index(f"{v}'") for v in TAP_COORDS[S.rank])
    pos = _input_position(S, out, taps)
    outer = _loops((n, g, k), (S.batch, S.groups, S.out_per_group)) + _loops(out, S.out_size)
    inner = _loops((c,), (S.in_per_group,)) + _loops(taps, S.kernel)
    upstream = G[(n, g, k, *out)]
    parts = [(upstream * X[(n, g, c, *pos)] * W[(g, k, c, *taps)], outer + inner, _inside_input(S, pos))]
    if with_bias:
        parts.append((upstream * b[g, k], outer, ()))
    return parts


def _eliminate_delta(expr, loops, guards, delta):
    """Remove one Kronecker delta by solving its equation for a summation index."""
    equation = delta.args[0] - delta.args[1]
    by_name = {loop.var: loop for loop in loops}
    for var in [loop.var for loop in loops]:  # loops are in preference order
        if var not in equation.free_symbols or sp.degree(equation, var) != 1:
            continue
        (fraction,) = sp.solve(equation, var)
        numerator, denominator = sp.fraction(sp.together(fraction))
        solution = Quotient(sp.expand(numerator), denominator)
        loop = by_name[var]
        new_guards = []
        if denominator != 1:
            new_guards.append(sp.Eq(sp.Mod(solution.args[0], denominator), 0))
        new_guards += [sp.Le(loop.lo, solution), sp.Le(solution, loop.hi)]
        substitute = _substituter(var, fraction, solution)
        expr = expr.subs(delta, 1).replace(lambda e: isinstance(e, (Indexed, sp.KroneckerDelta)), substitute)
        loops = tuple(other.subs({var: solution}) for other in loops if other.var != var)
        guards = tuple(new_guards) + tuple(substitute(gd) for gd in guards)
        return expr, loops, guards
    raise ValueError(f"cannot eliminate {delta}: no summation index to solve for")


def _substituter(var, fraction, quotient):
    """Substitute ``var`` in index expressions, simplifying where the division cancels.

    ``i·s + t·d − p`` with ``i = (y + p − t·d)/s`` simplifies to ``y``; an index in which the
    division does not cancel keeps the exact ``Quotient``.
    """

    def index(expr):
        plain = sp.expand(expr.xreplace({var: fraction}))
        if sp.fraction(sp.together(plain))[1] == 1:
            return plain
        return expr.xreplace({var: quotient})

    def substitute(expr):
        if isinstance(expr, Indexed):
            return expr.base[tuple(index(i) for i in expr.indices)]
        return expr.func(*(index(a) for a in expr.args))

    return substitute


def _differentiate(parts, wrt: Indexed, free: tuple[Loop, ...]):
    """∂L/∂wrt: SymPy differentiates each part, then the deltas are eliminated."""
    results = []
    for expr, loops, guards in parts:
        derivative = sp.diff(expr, wrt)
        if derivative == 0:
            continue
        while deltas := sorted(derivative.atoms(sp.KroneckerDelta), key=sp.default_sort_key):
            derivative, loops, guards = _eliminate_delta(derivative, loops, guards, deltas[0])
        results.append((derivative, loops, _drop_implied(guards, free)))
    if len(results) != 1:
        raise AssertionError(f"expected one surviving part for ∂L/∂{wrt}, got {len(results)}")
    return results[0]


def _drop_implied(guards, free: tuple[Loop, ...]):
    """Drop guards that merely restate the range of a free index (e.g. ``0 <= y``)."""
    implied = {sp.Le(loop.lo, loop.var) for loop in free} | {sp.Le(loop.var, loop.hi) for loop in free}
    return tuple(g for g in guards if g is not sp.true and g not in implied)


def _unprime(loops, expr, guards):
    """Rename the surviving primed summation indices ``k'`` to ``k``."""
    at = {loop.var: _index(loop.var.name.rstrip("'")) for loop in loops}
    return (
        tuple(Loop(at[loop.var], loop.lo.xreplace(at), loop.hi.xreplace(at)) for loop in loops),
        expr.xreplace(at),
        tuple(g.xreplace(at) for g in guards),
    )


def _flatten(S: _Symbols, expr):
    """Grouped view → NCHW: channel g·C_g + c, out channel g·K_g + k."""
    X, W, b, G = (sp.IndexedBase(name) for name in ("X", "W", "b", "G"))
    Cg, Kg = S.in_per_group, S.out_per_group
    rules = {
        "Xg": lambda n, g, c, *p: X[(n, g * Cg + c, *p)],
        "Wg": lambda g, k, c, *t: W[(g * Kg + k, c, *t)],
        "bg": lambda g, k: b[g * Kg + k],
        "Gg": lambda n, g, k, *o: G[(n, g * Kg + k, *o)],
        "O": lambda n, g, k, *o: sp.IndexedBase("O")[(n, g * Kg + k, *o)],
        "dX": lambda n, g, c, *p: sp.IndexedBase("dX")[(n, g * Cg + c, *p)],
        "dW": lambda g, k, c, *t: sp.IndexedBase("dW")[(g * Kg + k, c, *t)],
        "db": lambda g, k: sp.IndexedBase("db")[g * Kg + k],
    }
    return expr.replace(
        lambda e: isinstance(e, Indexed) and e.base.name in rules,
        lambda e: rules[e.base.name](*e.indices),
    )


def _make_form(S: _Symbols, name, free, sums, term, guards, plus=sp.Integer(0)) -> IndexForm:
    target = sp.IndexedBase(name)[tuple(loop.var for loop in free)]
    form = IndexForm(
        name=name,
        target=_flatten(S, target),
        free=free,
        sums=sums,
        term=_flatten(S, term),
        guards=tuple(_flatten(S, g) for g in guards),
        plus=_flatten(S, plus),
    )
    if not S.grouped:  # one group: g = 0 disappears
        form = form.subs({_index("g"): sp.Integer(0), S.groups: sp.Integer(1)})
    return form


@lru_cache(maxsize=None)
def symbolic_forms(rank: int, grouped: bool, bias: bool) -> dict[str, IndexForm]:
    """Derive O, dX, dW (and db) for any size: the work is independent of the layer's size."""
    S = _Symbols(rank, grouped)
    parts = _forward(S, bias)
    n, g, k, c = (_index(v) for v in "ngkc")
    out = tuple(_index(v) for v in OUTPUT_COORDS[rank])
    taps = tuple(_index(v) for v in TAP_COORDS[rank])
    coords = tuple(_index(v) for v in INPUT_COORDS[rank])
    Xg, Wg, bg = (sp.IndexedBase(name) for name in ("Xg", "Wg", "bg"))
    forms = {}

    # Forward: the definition itself (the only formula written by hand).
    pos = _input_position(S, out, taps)
    free = _loops((n, g, k), (S.batch, S.groups, S.out_per_group)) + _loops(out, S.out_size)
    sums = _loops((c,), (S.in_per_group,)) + _loops(taps, S.kernel)
    forms["O"] = _make_form(
        S, "O", free, sums, Xg[(n, g, c, *pos)] * Wg[(g, k, c, *taps)], _inside_input(S, pos),
        plus=bg[g, k] if bias else sp.Integer(0),
    )

    targets = {
        "dX": (Xg[(n, g, c, *coords)], _loops((n, g, c), (S.batch, S.groups, S.in_per_group)) + _loops(coords, S.in_size)),
        "dW": (Wg[(g, k, c, *taps)], _loops((g, k, c), (S.groups, S.out_per_group, S.in_per_group)) + _loops(taps, S.kernel)),
    }
    if bias:
        targets["db"] = (bg[g, k], _loops((g, k), (S.groups, S.out_per_group)))
    for name, (wrt, free) in targets.items():
        term, loops, guards = _differentiate(parts, wrt, free)
        loops, term, guards = _unprime(loops, term, guards)
        forms[name] = _make_form(S, name, free, loops, term, guards)
    return forms


# -- the public object ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneralForm:
    """The general index form of one layer: ``forms`` maps "O", "dX", "dW" (and "db") to
    ``IndexForm``; ``values`` holds the numbers substituted (empty when symbolic)."""

    spec: ConvSpec
    forms: dict[str, IndexForm]
    symbolic: bool
    sizes: tuple[sp.Eq, ...]
    values: dict[sp.Symbol, int]

    def __getitem__(self, name: str) -> IndexForm:
        return self.forms[name]

    def __iter__(self):
        return iter(self.forms.values())

    def to_arrays(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Expand every form into element-wise arrays of ``arrays``' symbols (small layers only)."""
        if self.symbolic:
            raise ValueError("to_arrays needs a specialised form: use general(symbolic=False)")

        def resolve(name: str, index: tuple[int, ...]) -> sp.Expr:
            return arrays[name][index]

        shapes = {"O": self.spec.output, "dX": self.spec.input, "dW": self.spec.weight, "db": self.spec.bias_shape}
        result = {}
        for name, form in self.forms.items():
            array = np.full(shapes[name], sp.Integer(0), dtype=object)
            for index, expr in form.expand(resolve).items():
                array[index] = expr
            result[name] = array
        return result


def parameter_values(spec: ConvSpec) -> dict[sp.Symbol, int]:
    """The symbol → number table that specialises the symbolic forms to ``spec``."""
    S = _Symbols(spec.rank, spec.groups > 1)
    values: dict[sp.Symbol, int] = {
        S.batch: spec.batch,
        S.in_per_group: spec.in_per_group,
        S.out_per_group: spec.out_per_group,
        S.groups: spec.groups,
    }
    for symbols, numbers in (
        (S.stride, spec.stride),
        (S.dilation, spec.dilation),
        (S.pad_lo, spec.pad_lo),
        (S.pad_hi, spec.pad_hi),
        (S.in_size, spec.spatial),
        (S.kernel, spec.kernel),
        (S.out_size, spec.out_spatial),
    ):
        values.update(zip(symbols, numbers))
    return values


def general_form(spec: ConvSpec, symbolic: bool = False) -> GeneralForm:
    """The general index form of ``spec``'s gradients (symbolic, or with the layer's numbers)."""
    S = _Symbols(spec.rank, spec.groups > 1)
    forms = symbolic_forms(spec.rank, spec.groups > 1, spec.bias)
    values = parameter_values(spec)
    if not symbolic:
        mapping = {symbol: sp.Integer(v) for symbol, v in values.items()}
        forms = {name: form.subs(mapping) for name, form in forms.items()}
    return GeneralForm(spec, forms, symbolic, S.out_size_formula(), {} if symbolic else values)
