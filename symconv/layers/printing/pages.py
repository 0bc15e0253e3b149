"""Building a ``LayerPage`` from a layer derivation: what each layer shows, in which order.

Every page has the same four steps: the forward equations, the local derivatives (as SymPy
computes them), the chain rule ``∂L/∂x_i = Σ_j ∂L/∂y_j · ∂y_j/∂x_i`` with the local derivatives
put in, and the closed-form rules of the lecture, each with the mark of its ``verify()`` check.
Everything comes from the derivation's arrays; the rules are written with ``Indexed`` symbols so
they read as index formulas.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import sympy as sp

from ..activation import ActivationDerivation
from ..base import LayerDerivation, symbol_array
from ..batchnorm import BatchNorm2dDerivation
from ..linear import LinearDerivation
from ..pooling import AvgPool2dDerivation, MaxPool2dDerivation
from ..softmax import CrossEntropyDerivation, SoftmaxDerivation
from ..transpose import ConvTranspose2dDerivation
from .model import Grid, LayerPage, Line, Row, Rule, Section
from .naming import LayerNaming, collect_names, shapes_of

LOSS = sp.Symbol("L")

#: Most lines an element-wise section shows; the rest follow the same pattern.
LINE_LIMIT = 24

#: Local derivatives per line.
PER_LINE = 4

i, j, n, m = sp.symbols("i j n m", integer=True)
X, Y, G, W, b, T, P, XHAT, D = (sp.IndexedBase(name) for name in ("X", "Y", "G", "W", "b", "T", "P", "xhat", "D"))


# -- generic pieces ------------------------------------------------------------------------------


def outputs(d: LayerDerivation) -> np.ndarray:
    """The output entries as symbols (``Y[0,1]``), the left-hand sides of the forward equations."""
    return symbol_array("Y", d.Y.shape)


def limited(lines: list[Line], what: str) -> tuple[tuple[Line, ...], tuple[str, ...]]:
    if len(lines) <= LINE_LIMIT:
        return tuple(lines), ()
    return tuple(lines[:LINE_LIMIT]), (f"The first {LINE_LIMIT} of {len(lines)} {what} are shown; the others follow the same pattern.",)


def forward_section(d: LayerDerivation, title: str = "Forward") -> Section:
    Ys = outputs(d)
    lines = [(Row((Ys[o], d.Y[o])),) for o in np.ndindex(*d.Y.shape)]
    shown, notes = limited(lines, "equations")
    return Section("forward", title, shown, notes=notes)


def local_section(
    d: LayerDerivation,
    table: dict[tuple[int, ...], dict[sp.Symbol, sp.Expr]] | None = None,
    title: str = "Local derivatives (SymPy's diff)",
    key: str = "local",
    notes: tuple[str, ...] = (),
) -> Section:
    table = d.local if table is None else table
    Ys = outputs(d)
    lines: list[Line] = []
    for o, grads in table.items():
        rows = [Row((sp.Derivative(Ys[o], s, evaluate=False), value)) for s, value in grads.items()]
        lines += [tuple(rows[k : k + PER_LINE]) for k in range(0, len(rows), PER_LINE)]
    shown, more = limited(lines, "lines")
    return Section(key, title, shown, notes=notes + more)


def chain_rows(d: LayerDerivation, name: str, result: bool = True, only: Callable[[tuple], bool] | None = None) -> list[Line]:
    """``∂L/∂s = Σ_o ∂L/∂y_o·∂y_o/∂s [= the derived value]`` for every entry s of array ``name``."""
    Ys = outputs(d)
    users: dict[sp.Symbol, list[tuple[int, ...]]] = {}
    for o, grads in d.local.items():
        for s in grads:
            users.setdefault(s, []).append(o)
    symbols, values = d.inputs[name], d.gradients["d" + name]
    lines: list[Line] = []
    for index in np.ndindex(*symbols.shape):
        if only is not None and not only(index):
            continue
        s = symbols[index]
        terms = [d.G[o] * sp.Derivative(Ys[o], s, evaluate=False) for o in users.get(s, [])]
        parts: list[sp.Basic] = [sp.Derivative(LOSS, s, evaluate=False)]
        if terms:
            parts.append(sp.Add(*terms, evaluate=False) if len(terms) > 1 else terms[0])
        if result or not terms:
            parts.append(values[index])
        lines.append((Row(tuple(parts)),))
    return lines


def chain_section(d: LayerDerivation, result: bool = True, only: Callable[[tuple], bool] | None = None) -> Section:
    lines: list[Line] = []
    for name in d.wrt:
        lines += chain_rows(d, name, result, only if name == "X" else None)
    shown, notes = limited(lines, "gradients")
    title = "Chain rule: ∂L/∂s = Σ_j ∂L/∂y_j · ∂y_j/∂s, with L = Σ_j ∂L/∂y_j · y_j"
    return Section("chain", title, shown, notes=notes)


def rule(d: LayerDerivation, check: str, equation: sp.Basic | None, description: str | None = None) -> Rule:
    found = d.verify().check(check)
    return Rule(equation, description or found.statement, check, found.ok, found.detail)


def rules_section(rules: Sequence[Rule], grids: Sequence[Grid] = (), notes: tuple[str, ...] = ()) -> Section:
    return Section("rules", "Closed form (checked exactly against the SymPy derivatives)", (), tuple(rules), tuple(grids), notes)


def eq(lhs: sp.Basic, rhs: sp.Basic) -> sp.Eq:
    return sp.Eq(lhs, rhs, evaluate=False)


def dL(entry: sp.Basic) -> sp.Derivative:
    return sp.Derivative(LOSS, entry, evaluate=False)


def plane(a: np.ndarray) -> np.ndarray:
    """The first (n, c) plane of an NCHW array, for drawing."""
    return a[0, 0]


# -- the layers ------------------------------------------------------------------------------------


def activation_page(d: ActivationDerivation) -> list[Section]:
    local_notes: tuple[str, ...] = ()
    if d.kind == "relu":
        equation = eq(sp.Derivative(Y[i], X[i]), sp.Piecewise((1, X[i] > 0), (0, True)))
        local_notes = (
            "SymPy differentiates Max(x, 0) into Heaviside(x), which it takes as 1/2 at x = 0; the "
            "subgradient used is 0 there, as PyTorch's ([x > 0] below is Heaviside(x, 0)).",
        )
        dx = eq(dL(X[i]), sp.Piecewise((G[i], X[i] > 0), (0, True)))
    else:
        equation = eq(sp.Derivative(Y[i], X[i]), Y[i] * (1 - Y[i]))
        dx = eq(dL(X[i]), G[i] * Y[i] * (1 - Y[i]))
    rules = [rule(d, "rule", equation), rule(d, "dX", dx)]
    return [forward_section(d), local_section(d, notes=local_notes), chain_section(d), rules_section(rules)]


def maxpool_page(d: MaxPool2dDerivation) -> list[Section]:
    sympy_notes = (
        "SymPy's derivative of Max is Heaviside(x − max of the others), with Heaviside(0) = 1/2: "
        "at a tied maximum it would split the gradient, which no framework does.",
    )
    convention_notes = (
        "The subgradient used: the whole gradient goes to the first maximum in window scan order "
        "(rows, then columns), as PyTorch's CPU kernel. [a > b] and [a ≥ b] are Heaviside(a − b) "
        "with value 0 and 1 at a tie.",
    )
    sections = [
        forward_section(d),
        local_section(d, d.sympy_local, "Local derivatives (SymPy's diff of Max)", "sympy_local", sympy_notes),
        local_section(d, d.local, "Subgradient used (first maximum wins)", "local", convention_notes),
        chain_section(d),
    ]
    grids = [
        Grid("values of x", plane(d.values)),
        Grid("y at these values", plane(d.forward_values)),
        Grid("∂L/∂x at these values (unpooling)", plane(d.resolved)),
    ]
    tied = d.tied_windows()
    notes = () if not tied else (f"{len(tied)} window(s) hold a tied maximum at these values; the first one in scan order gets the gradient.",)
    if d.spec.input[:2] != (1, 1):
        notes += ("The matrices show the first batch item and channel.",)
    rules = [rule(d, "sympy", None), rule(d, "forward", None), rule(d, "dX", None)]
    sections.append(rules_section(rules, grids, notes))
    return sections


def avgpool_page(d: AvgPool2dDerivation) -> list[Section]:
    divisors = d.divisors
    note = (
        "count_include_pad=True: a window's divisor counts its padding (clipped to the padded input)."
        if d.spec.count_include_pad
        else "count_include_pad=False: a window's divisor counts only its real entries."
    )
    notes: tuple[str, ...] = (note,)
    if d.spec.ceil_mode:
        notes += ("ceil_mode: a last window may hang over the padded input; that part is never counted.",)
    if len(set(divisors.ravel().tolist())) > 1:
        notes += ("The divisors differ between windows (see the matrix).",)
    equation = eq(dL(X[i]), sp.Sum(G[j] / D[j], (j, 0, sp.Symbol("J") - 1)))
    rules = [rule(d, "dX", equation, "∂L/∂x_i = Σ over the windows j that contain x_i of ∂L/∂y_j / D_j (D_j the divisor of window j)")]
    grid = Grid("divisors D", object_array_2d(plane(divisors)))
    return [forward_section(d), local_section(d), chain_section(d), rules_section(rules, [grid], notes)]


def object_array_2d(values: np.ndarray) -> np.ndarray:
    out = np.empty(values.shape, dtype=object)
    for index in np.ndindex(*values.shape):
        out[index] = sp.Integer(int(values[index]))
    return out


def linear_page(d: LinearDerivation) -> list[Section]:
    N, K, I = (sp.Symbol(s, integer=True) for s in ("N", "out", "in"))
    rules = [
        rule(d, "dW", eq(dL(W[j, i]), sp.Sum(G[n, j] * X[n, i], (n, 0, N - 1))), "∂L/∂W = Gᵀ X"),
        rule(d, "dX", eq(dL(X[n, i]), sp.Sum(G[n, j] * W[j, i], (j, 0, K - 1))), "∂L/∂X = G W"),
    ]
    if d.spec.bias:
        rules.append(rule(d, "db", eq(dL(b[j]), sp.Sum(G[n, j], (n, 0, N - 1))), "∂L/∂b = Σ_n G[n,:]"))
    rules.append(rule(d, "conv", None, "Y is the rank-1 convolution with kernel size 1 (symconv.derive): the same equations"))
    note = ("A tensor input is first stretched out into a long vector (Flatten), as in the lecture.",)
    return [forward_section(d), local_section(d), chain_section(d), rules_section(rules, notes=note)]


def softmax_page(d: SoftmaxDerivation) -> list[Section]:
    Ysym = d.output_symbols
    classes = d.spec.shape[1]
    lines: list[Line] = []
    for a in range(classes):
        for c in range(classes):
            raw = sp.diff(d.Y[0, a], d.X[0, c])
            lines.append((Row((sp.Derivative(outputs(d)[0, a], d.X[0, c], evaluate=False), raw, d.jacobian_rule(0, a, c, Ysym))),))
    note = ("Shown for the first sample; each sample has its own Jacobian, and no sample depends on another.",)
    local = Section("local", "Local derivatives (SymPy's diff), and the same in terms of y", tuple(lines), notes=note)
    C = sp.Symbol("C", integer=True)
    rules = [
        rule(d, "jacobian", eq(sp.Derivative(Y[i], X[j]), Y[i] * (sp.KroneckerDelta(i, j) - Y[j]))),
        rule(d, "dX", eq(dL(X[j]), Y[j] * (G[j] - sp.Sum(G[i] * Y[i], (i, 0, C - 1))))),
    ]
    return [forward_section(d), local, chain_section(d, result=False), rules_section(rules)]


def cross_entropy_page(d: CrossEntropyDerivation) -> list[Section]:
    forward_lines = [
        (Row((sp.Symbol(f"ell[{k}]"), expr)),) for k, expr in enumerate(d.per_sample)
    ]
    # The total as the reduction of the per-sample losses; the derivation differentiates d.Y, the
    # same sum written out.
    total = sp.Add(*(sp.Symbol(f"ell[{k}]") for k in range(len(d.per_sample))))
    forward_lines.append((Row((sp.Symbol("Y"), sp.Mul(d.scale, total, evaluate=False) if d.scale != 1 else total)),))
    forward = Section("forward", "Forward (log of the softmax, from formulas.cross_entropy)", tuple(forward_lines))
    chain = chain_section(d, result=True, only=lambda index: index[0] == 0)
    chain = Section(
        chain.key,
        "Chain rule: SymPy differentiates the log of the quotient as it stands",
        chain.lines,
        notes=("Shown for the first sample.",),
    )
    C, N = sp.Symbol("C", integer=True), sp.Symbol("N", integer=True)
    scale = 1 / N if d.spec.reduction == "mean" else sp.Integer(1)
    g = sp.Symbol("G")
    rules = [
        rule(d, "unconstrained", eq(dL(X[n, j]), g * scale * (P[n, j] * sp.Sum(T[n, i], (i, 0, C - 1)) - T[n, j]))),
        rule(d, "dX", eq(dL(X[n, j]), g * scale * (P[n, j] - T[n, j]))),
    ]
    notes = ("y = softmax(x) per sample; with Σ_i t_i = 1 (a one-hot class or a probability vector) the "
             "first rule becomes the fused gradient y − t.",)
    if d.spec.target is not None:
        notes += (f"Targets: the one-hot rows of the classes {list(d.spec.target)} (1-based on the page: "
                  f"{[t + 1 for t in d.spec.target]}).",)
    return [forward, chain, rules_section(rules, notes=notes)]


def batchnorm_page(d: BatchNorm2dDerivation) -> list[Section]:
    m_value = d.spec.per_channel
    c = 0
    idx = d.channel(c)
    mu, sigma = sp.Symbol("mu[0]"), sp.Symbol("sigma[0]")
    xs = [d.X[k] for k in idx]
    lines: list[Line] = [
        (Row((mu, sp.Mul(sp.Rational(1, m_value), sp.Add(*xs), evaluate=False))),),
        (Row((sp.Symbol("var[0]"), sp.Mul(sp.Rational(1, m_value), sp.Add(*[(x - mu) ** 2 for x in xs]), evaluate=False))),),
        (Row((sigma, sp.sqrt(sp.Symbol("var[0]") + d.eps))),),
    ]
    Ys = outputs(d)
    for k in idx:
        xhat = sp.Symbol("xhat[" + ",".join(map(str, k)) + "]")
        lines.append((Row((xhat, (d.X[k] - mu) / sigma)), Row((Ys[k], d.gamma[c] * xhat + d.beta[c]))))
    notes = (
        "Channel 1 shown; every channel has its own μ, σ² (the biased batch variance) and γ, β.",
        "SymPy differentiates the fully written-out expressions (formulas.batch_norm), through μ and σ².",
    )
    forward = Section("forward", "Forward (training mode: batch statistics)", tuple(lines), notes=notes)
    first = idx[0]
    local = Section(
        "local",
        "Local derivatives (SymPy's diff; one written out)",
        ((Row((sp.Derivative(Ys[first], d.X[first], evaluate=False), d.local[first][d.X[first]])),),),
        notes=(f"Every y_i depends on every x_j of its channel: {m_value}×{m_value} such derivatives per channel.",),
    )
    chain = chain_section(d, result=False, only=lambda index: index[1] == 0)
    sig, gam, mm = sp.Symbol("sigma"), sp.Symbol("gamma"), sp.Symbol("m")
    rules = [
        rule(d, "jacobian", eq(sp.Derivative(Y[i], X[j]), gam / sig * (sp.KroneckerDelta(i, j) - 1 / mm - XHAT[i] * XHAT[j] / mm))),
        rule(d, "dX", eq(dL(X[j]), gam / (mm * sig) * (mm * G[j] - sp.Sum(G[i], (i, 0, mm - 1)) - XHAT[j] * sp.Sum(G[i] * XHAT[i], (i, 0, mm - 1))))),
    ]
    if d.spec.affine:
        rules.append(rule(d, "dgamma", eq(dL(gam), sp.Sum(G[i] * XHAT[i], (i, 0, mm - 1)))))
        rules.append(rule(d, "dbeta", eq(dL(sp.Symbol("beta")), sp.Sum(G[i], (i, 0, mm - 1)))))
    rule_notes = (f"m = {m_value} values per channel; sums run over the channel's values.",)
    return [forward, local, chain, rules_section(rules, notes=rule_notes)]


def transpose_page(d: ConvTranspose2dDerivation) -> list[Section]:
    conv = d.spec.as_conv()
    rules = [
        rule(d, "forward", None, "Y = ∂L/∂X of the convolution below, with its upstream gradient ∂L/∂O replaced by X"),
        rule(d, "dX", None, "∂L/∂X = the convolution's forward O, with its input replaced by G"),
        rule(d, "dW", None, "∂L/∂W = the convolution's ∂L/∂W, with its input G and its upstream gradient X"),
    ]
    if d.spec.bias:
        rules.append(rule(d, "db", None))
    notes = (
        f"The convolution: {conv.describe()} (symconv.derive).",
        "Deconvolution is convolution: the transposed convolution's forward is the convolution's "
        "backward-data, and its backward-data is the convolution's forward; no second implementation.",
    )
    return [forward_section(d, "Forward (each input entry scatters a scaled copy of the filter)"), local_section(d), chain_section(d), rules_section(rules, notes=notes)]


BUILDERS: dict[type, Callable[..., list[Section]]] = {
    ActivationDerivation: activation_page,
    MaxPool2dDerivation: maxpool_page,
    AvgPool2dDerivation: avgpool_page,
    LinearDerivation: linear_page,
    SoftmaxDerivation: softmax_page,
    CrossEntropyDerivation: cross_entropy_page,
    BatchNorm2dDerivation: batchnorm_page,
    ConvTranspose2dDerivation: transpose_page,
}

#: Letters that differ from the defaults, per layer.
LETTERS = {
    CrossEntropyDerivation: {"Y": "ell", "G": "ell", "P": "y"},
    SoftmaxDerivation: {"P": "y"},
}


def build_layer_page(d: LayerDerivation, index_base: int = 1) -> LayerPage:
    """The page of a layer derivation."""
    builder = BUILDERS.get(type(d))
    if builder is None:
        raise TypeError(f"no page for {type(d).__name__}")
    shapes = shapes_of({**d.inputs, "G": d.G, "Y": d.Y})
    if isinstance(d, CrossEntropyDerivation):
        shapes["P"] = d.spec.shape
        shapes["ell"] = (d.spec.shape[0],)
    if isinstance(d, BatchNorm2dDerivation):
        shapes.update(xhat=d.spec.input, mu=(d.spec.channels,), sigma=(d.spec.channels,), var=(d.spec.channels,))
    if isinstance(d, SoftmaxDerivation):
        shapes["P"] = d.spec.shape
    naming = LayerNaming(shapes, index_base, LETTERS.get(type(d)))
    sections = tuple(builder(d))
    expressions = [e for s in sections for e in s.expressions()]
    return LayerPage(
        kind=d.kind,
        layer=d.spec.describe(),
        legend=legend(naming),
        spec=d.spec.to_dict(),
        naming=naming,
        sections=sections,
        ok=d.verify().ok,
        names=collect_names(naming, expressions),
    )


def legend(naming: LayerNaming) -> str:
    text = "∂L/∂y is the upstream gradient G"
    if naming.textbook:
        return text + "; subscripts are 1-based, axes of size 1 are not written"
    return text + "; indices are 0-based and full, as in the arrays"
