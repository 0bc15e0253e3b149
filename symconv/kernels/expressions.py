"""The element-wise C expressions of the layer kernels, found by SymPy and printed by its C99 printer.

Everything printed here starts from :mod:`symconv.layers.formulas` (the defining formulas) and
SymPy's derivatives of them; nothing is retyped. Where a derivative reads better in terms of the
layer's output (the sigmoid's ``y(1 - y)``, softmax's ``y_i (g_i - Σ g_j y_j)``, cross-entropy's
``p - t``), SymPy substitutes the output for the input and simplifies, and the result is checked
(free of the input, and equal to the plain derivative); if SymPy cannot do it, building the
kernel fails with a RuntimeError rather than printing something unchecked.

The C text comes from :class:`LayerPrinter`, SymPy's C99 printer (through ``symconv.lower``'s
subclass) with the element type set: for ``float`` kernels the type alias ``real -> float32``
makes it print ``expf``/``logf`` and ``1.0F`` literals, so no float expression is silently
computed in double.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import sympy as sp
from sympy.codegen.ast import float32, float64, real

from ..layers import formulas
from ..lower import CPrinter

#: Element type of the printed C, by dtype name.
_REAL_TYPES = {"float32": float32, "float64": float64}

#: How many values the small concrete examples (softmax rows, batches) have: enough that no
#: term is special (every index has neighbours on both sides), small enough for SymPy to be quick.
_EXAMPLE_SIZE = 3


class LayerPrinter(CPrinter):
    """SymPy's C99 printer, with the two constructs the layer formulas need printed inline.

    ``Pow(a, -1/2)`` prints as ``1.0/sqrt(a)``. ``Max(v, c)`` prints as ``((v < c) ? c : v)``, not ``fmax``: a NaN fails the comparison and
    passes through, as it does in PyTorch's ReLU (``fmax`` would turn NaN into 0), and ``-0.0``
    stays ``-0.0`` as there. ``Piecewise`` prints as one nested ``?:`` expression on one line.
    """

    def _print_Max(self, expr) -> str:
        args = list(expr.args)
        constants = [a for a in args if a.is_number]
        if len(args) != 2 or len(constants) != 1:
            raise NotImplementedError(f"only Max(value, constant) can be printed for a layer, got {expr}")
        (bound,) = constants
        value = args[0] if args[1] is bound else args[1]
        v, c = self._print(value), self._print(bound)
        return f"(({v} < {c}) ? {c} : {v})"

    def _print_Pow(self, expr) -> str:
        if expr.exp == sp.Rational(-1, 2):  # 1/sqrt(a), not pow(a, -1.0/2.0)
            return f"{self._print(sp.Float(1))}/{self._print(sp.sqrt(expr.base))}"
        return super()._print_Pow(expr)

    def _print_Piecewise(self, expr) -> str:
        if expr.args[-1].cond != sp.true:
            raise NotImplementedError(f"a Piecewise needs a default (True) branch to be printed, got {expr}")
        text = self._print(expr.args[-1].expr)
        for piece in reversed(expr.args[:-1]):
            text = f"(({self._print(piece.cond)}) ? {self._print(piece.expr)} : {text})"
        return text


@lru_cache(maxsize=None)
def printer(dtype: str) -> LayerPrinter:
    """The printer for one element type (``float32`` prints ``expf``, ``logf``, ``1.0F``)."""
    return LayerPrinter(settings={"type_aliases": {real: _REAL_TYPES[dtype]}})


def c_code(expr: sp.Expr, dtype: str, names: Mapping[sp.Symbol, str] | None = None) -> str:
    """``expr`` as C for element type ``dtype``, with symbols renamed to the C variables in ``names``."""
    if names:
        expr = expr.xreplace({s: sp.Symbol(n, real=True) for s, n in names.items()})
    return printer(dtype).doprint(expr)


def _require(condition: bool, what: str) -> None:
    """Fail loudly when SymPy did not reach the form a kernel is printed from."""
    if not condition:
        raise RuntimeError(f"SymPy could not derive {what}; refusing to print an unchecked kernel")


def _is_zero(expr: sp.Expr) -> bool:
    return sp.simplify(expr) == 0


# -- activations -------------------------------------------------------------------------------

#: The input, output and upstream gradient of an element-wise layer.
X, Y, G = formulas.x, sp.Symbol("y", real=True), sp.Symbol("g", real=True)


@dataclass(frozen=True)
class Activation:
    """``y = forward(x)`` and ``dx = backward`` (in ``x`` or ``y``, and ``g = dL/dy``)."""

    kind: str
    forward: sp.Expr
    backward: sp.Expr
    uses: str  # "x" or "y": which of the forward's values the backward reads


def _heaviside_as_piecewise(expr: sp.Expr) -> sp.Expr:
    """SymPy's ``Heaviside(a)`` with the value at 0 the layers use (PyTorch's ReLU subgradient)."""
    at_zero = formulas.HEAVISIDE_AT_ZERO
    return expr.replace(
        sp.Heaviside, lambda a, *_: sp.Piecewise((0, a < 0), (at_zero, sp.Eq(a, 0)), (1, True))
    )


def _in_terms_of_output(forward: sp.Expr, derivative: sp.Expr) -> sp.Expr | None:
    """``derivative`` as a function of ``y = forward(x)`` alone, or None if SymPy finds no such form.

    SymPy inverts ``y = forward(x)``, substitutes and simplifies; the result is accepted only if it
    is free of ``x`` and, with ``forward(x)`` put back for ``y``, equal to the derivative.
    """
    if derivative.has(sp.Piecewise, sp.Heaviside, sp.Max, sp.Min):
        return None  # a subgradient: it depends on where x is, not only on y
    try:
        inverses = sp.solve(sp.Eq(Y, forward), X)
    except NotImplementedError:
        return None
    if len(inverses) != 1:
        return None
    candidate = sp.factor(sp.simplify(derivative.subs(X, inverses[0])))
    if candidate.has(X) or not _is_zero(candidate.subs(Y, forward) - derivative):
        return None
    return candidate


@lru_cache(maxsize=None)
def activation(kind: str) -> Activation:
    """Forward and backward of ``formulas.ACTIVATIONS[kind]`` (``relu``, ``sigmoid``)."""
    if kind not in formulas.ACTIVATIONS:
        raise ValueError(f"kind must be one of {sorted(formulas.ACTIVATIONS)}, but got {kind!r}")
    forward = formulas.ACTIVATIONS[kind]
    derivative = _heaviside_as_piecewise(sp.diff(forward, X))
    in_y = _in_terms_of_output(forward, derivative)
    if in_y is not None:
        return Activation(kind, forward, G * in_y, "y")
    backward = sp.piecewise_fold(G * derivative).simplify()
    _require(not backward.has(sp.Heaviside, sp.Derivative), f"a printable derivative of {kind}")
    return Activation(kind, forward, backward, "x")


# -- softmax and cross-entropy -----------------------------------------------------------------

#: The shifted logit ``d = z - max(z)``, a row's sum ``s = Σ exp(d)``, and the row's
#: ``dot = Σ_j g_j y_j``, as the C names them.
D, S, DOT = sp.Symbol("d", real=True), sp.Symbol("s", positive=True), sp.Symbol("dot", real=True)
#: The probability of one class, its target weight (1 for the target class, else 0) and the
#: factor ``grad_loss / N`` of the mean reduction.
P, T, SCALE = sp.Symbol("p", real=True), sp.Symbol("t", real=True), sp.Symbol("scale", real=True)


@dataclass(frozen=True)
class SoftmaxForms:
    """The per-element pieces of the softmax and cross-entropy kernels.

    ``numerator``: ``exp(d)``, the term of a row's sum, from ``y_i = exp(z_i) / Σ exp(z_j)``
    (SymPy checks that the softmax does not change when the row's maximum is subtracted, which
    is what makes ``d <= 0`` safe from overflow);
    ``softmax_backward``: ``y_i (g_i - dot)``, the vector-Jacobian product of the softmax;
    ``loss``: the row's loss in terms of ``s`` and ``d`` of the target class;
    ``loss_backward``: ``dL/dz_i`` in terms of ``p = softmax(z)_i`` and ``t``, times ``scale``.
    """

    numerator: sp.Expr
    softmax_backward: sp.Expr
    loss: sp.Expr
    loss_backward: sp.Expr


def _row(name: str) -> list[sp.Symbol]:
    return [sp.Symbol(f"{name}{i}", real=True) for i in range(_EXAMPLE_SIZE)]


def _positive_row(name: str) -> list[sp.Symbol]:
    return [sp.Symbol(f"{name}{i}", positive=True) for i in range(_EXAMPLE_SIZE)]


def _as_output(expr: sp.Expr, z: list[sp.Symbol], y: list[sp.Symbol]) -> sp.Expr:
    """``expr`` written with the softmax outputs ``y`` instead of the logits ``z``.

    Softmax is unchanged by a shift of ``z``, so the logits may be taken as ``z_k = log y_k``
    (the shift that makes ``Σ exp(z_k) = 1``); the constraint ``Σ y_k = 1`` is then used
    by writing the last output as one minus the others.
    """
    logits = expr.subs({zk: sp.log(yk) for zk, yk in zip(z, y)})
    return sp.simplify(logits.subs(y[-1], 1 - sp.Add(*y[:-1])))


def _softmax_numerator(z: list[sp.Symbol]) -> sp.Expr:
    m = sp.Symbol("m", real=True)
    y = formulas.softmax(z)
    shifted = formulas.softmax([v - m for v in z])
    _require(all(_is_zero(a - b) for a, b in zip(shifted, y)), "that softmax is unchanged by a shift")
    numerator, denominator = sp.fraction(sp.together(y[0]))
    _require(numerator == sp.exp(z[0]), "the softmax numerator exp(z_i)")
    _require(_is_zero(denominator - sp.Add(*[numerator.subs(z[0], v) for v in z])),
             "the softmax denominator as the sum of the numerators")
    return numerator.subs(z[0], D)


def _softmax_backward(z: list[sp.Symbol]) -> sp.Expr:
    """``Σ_i g_i ∂y_i/∂z_0`` in terms of ``y``, with ``Σ_j g_j y_j`` named ``dot``."""
    y, g = _positive_row("y"), _row("g")
    vjp = sp.Add(*[gi * sp.diff(out, z[0]) for gi, out in zip(g, formulas.softmax(z))])
    solved = sp.solve(sp.Eq(DOT, sp.Add(*[gj * yj for gj, yj in zip(g, y)])), g[-1])
    _require(len(solved) == 1, "Σ g_j y_j solved for one g")
    in_y = vjp.subs({zk: sp.log(yk) for zk, yk in zip(z, y)}).subs(g[-1], solved[0])
    form = sp.factor(_as_output(in_y, z, y))
    _require(form.free_symbols <= {y[0], g[0], DOT}, "the softmax backward in terms of y_i, g_i and dot")
    return form.xreplace({y[0]: Y, g[0]: G})


def _loss(z: list[sp.Symbol]) -> sp.Expr:
    """``-log softmax(z)_t`` of a row, as ``log(s) - d_t`` (SymPy expands the log of the quotient)."""
    m = sp.Symbol("m", real=True)
    onehot = [1] + [0] * (len(z) - 1)  # the target is class 0 of the example
    loss = formulas.cross_entropy(z, onehot)
    shifted = formulas.cross_entropy([v - m for v in z], onehot)
    _require(_is_zero(shifted - loss), "that cross-entropy is unchanged by a shift")
    d = _row("d")
    expanded = sp.expand_log(formulas.cross_entropy(d, onehot), force=True)
    form = expanded.subs(sp.Add(*[sp.exp(v) for v in d]), S).subs(d[0], D)
    _require(form.free_symbols <= {S, D}, "the cross-entropy of a row in terms of s and d")
    return form


def _loss_backward(z: list[sp.Symbol]) -> sp.Expr:
    """``∂L/∂z_0`` for soft targets summing to one, in terms of ``p = softmax(z)_0`` and ``t_0``."""
    y, t = _positive_row("y"), _row("t")
    gradient = _as_output(sp.diff(formulas.cross_entropy(z, t), z[0]), z, y)
    on_simplex = sp.simplify(gradient.subs(t[-1], 1 - sp.Add(*t[:-1])))
    _require(on_simplex.free_symbols <= {y[0], t[0]}, "the fused softmax + cross-entropy gradient p - t")
    return SCALE * on_simplex.xreplace({y[0]: P, t[0]: T})


@lru_cache(maxsize=1)
def softmax_forms() -> SoftmaxForms:
    """Derive the softmax and cross-entropy pieces once per process."""
    z = _row("z")
    return SoftmaxForms(_softmax_numerator(z), _softmax_backward(z), _loss(z), _loss_backward(z))


# -- batch normalisation -----------------------------------------------------------------------

MEAN, VAR = sp.Symbol("mean", real=True), sp.Symbol("var", positive=True)
GAMMA, BETA = sp.Symbol("gamma", real=True), sp.Symbol("beta", real=True)
EPS, INVSTD = sp.Symbol("eps", positive=True), sp.Symbol("invstd", positive=True)
SUM_G, SUM_GXM = sp.Symbol("sum_g", real=True), sp.Symbol("sum_gxm", real=True)
#: The number of values per channel (N·H·W), named like the C macro.
COUNT = sp.Symbol("COUNT", positive=True, integer=True)


@dataclass(frozen=True)
class BatchNormForms:
    """Per-element pieces of batch normalisation, with the channel's statistics as symbols.

    ``invstd``: ``1/sqrt(var + eps)``; ``output``: ``y`` from ``x``, ``mean``, ``invstd``,
    ``gamma``, ``beta``; ``grad_input``: ``dx`` from ``g``, ``x``, the statistics and the
    channel sums ``sum_g = Σ g`` and ``sum_gxm = Σ g (x - mean)`` over its ``COUNT`` values;
    ``grad_gamma``, ``grad_beta``: the parameter gradients from the same sums.
    """

    invstd: sp.Expr
    output: sp.Expr
    grad_input: sp.Expr
    grad_gamma: sp.Expr
    grad_beta: sp.Expr


def _element_batch_norm() -> sp.Expr:
    """``formulas.batch_norm`` as a function of one value ``x`` and the batch statistics.

    The batch ``x, 2·mean - x, mean + u, mean - u`` has mean ``mean`` whatever ``u``; choosing
    ``u² = 2·var - (x - mean)²`` gives it the biased variance ``var``. SymPy simplifies the first
    output of that batch; the result must no longer mention ``u``.
    """
    u = sp.Symbol("u", positive=True)
    batch = [X, 2 * MEAN - X, MEAN + u, MEAN - u]
    first = formulas.batch_norm(batch, GAMMA, BETA, EPS)[0]
    element = sp.simplify(first.subs(u, sp.sqrt(2 * VAR - (X - MEAN) ** 2)))
    _require(element.free_symbols <= {X, MEAN, VAR, GAMMA, BETA, EPS},
             "batch normalisation of one value in terms of the batch mean and variance")
    return element


def _per_value(derivative: sp.Expr) -> sp.Expr:
    """``derivative / (x - mean)``, required free of ``x``: the factor a channel sum multiplies."""
    factor = sp.simplify(derivative / (X - MEAN))
    _require(not factor.has(X), f"{derivative} as (x - mean) times a channel constant")
    return factor


def _check_against_full_derivative(grad_input: sp.Expr) -> None:
    """The chain-rule form must equal SymPy's derivative of ``formulas.batch_norm`` itself
    (a batch of three values with fixed rational entries: exact arithmetic, no tolerance)."""
    values = [sp.Rational(3, 2), sp.Rational(-1, 3), sp.Rational(5, 7)]
    grads = [sp.Rational(2, 5), sp.Rational(-7, 4), sp.Rational(1, 3)]
    gamma, beta, eps = sp.Rational(5, 4), sp.Rational(1, 9), sp.Rational(1, 100)
    xs = _row("v")
    outputs = formulas.batch_norm(xs, gamma, beta, eps)
    loss = sp.Add(*[g * y for g, y in zip(grads, outputs)])
    point = dict(zip(xs, values))
    full = sp.diff(loss, xs[0]).subs(point)
    mean = sp.Add(*values) / len(values)
    var = sp.Add(*[(v - mean) ** 2 for v in values]) / len(values)
    claimed = grad_input.subs({
        G: grads[0], X: values[0], MEAN: mean, INVSTD: 1 / sp.sqrt(var + eps), GAMMA: gamma,
        SUM_G: sp.Add(*grads), SUM_GXM: sp.Add(*[g * (v - mean) for g, v in zip(grads, values)]),
        COUNT: len(values),
    })
    _require(_is_zero(full - claimed), "a batch-norm input gradient equal to the derivative of formulas.batch_norm")


@lru_cache(maxsize=1)
def batch_norm_forms() -> BatchNormForms:
    """Batch normalisation's forward and backward, by the chain rule through mean and variance.

    With ``y(x; mean, var)`` from :func:`_element_batch_norm`, SymPy gives ``∂y/∂x``,
    ``∂y/∂mean`` (the same for every value) and ``∂y/∂var`` (``(x - mean)`` times a channel
    constant). The statistics' own derivatives are ``∂mean/∂x_j = 1/COUNT`` and
    ``∂var/∂x_j = 2 (x_j - mean)/COUNT`` (the second because the deviations sum to zero), so

        dx_j = g_j ∂y/∂x + (1/COUNT) Σ_i g_i ∂y/∂mean + (2 (x_j - mean)/COUNT) Σ_i g_i ∂y/∂var

    and the two sums become ``sum_g`` and ``sum_gxm``. The result is checked exactly against the
    derivative of ``formulas.batch_norm`` for a concrete batch. ``sqrt(var + eps)`` is then
    written ``1/invstd``.
    """
    element = _element_batch_norm()
    d_mean = sp.diff(element, MEAN)
    _require(not d_mean.has(X), "∂y/∂mean independent of x")
    d_var = _per_value(sp.diff(element, VAR))
    grad_input = (G * sp.diff(element, X) + d_mean * SUM_G / COUNT
                  + 2 * (X - MEAN) / COUNT * d_var * SUM_GXM)
    invstd = 1 / sp.sqrt(VAR + EPS)
    with_invstd = {VAR: 1 / INVSTD**2 - EPS}
    grad_input = sp.simplify(grad_input.subs(with_invstd))
    _check_against_full_derivative(grad_input)
    grad_gamma = sp.simplify(_per_value(sp.diff(element, GAMMA)).subs(with_invstd) * SUM_GXM)
    d_beta = sp.diff(element, BETA)
    _require(not d_beta.has(X), "∂y/∂beta independent of x")
    output = sp.simplify(element.subs(with_invstd))
    _require(output.free_symbols <= {X, MEAN, INVSTD, GAMMA, BETA}, "the normalised output in terms of invstd")
    return BatchNormForms(invstd, output, grad_input, grad_gamma, d_beta * SUM_G)
