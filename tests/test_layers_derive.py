"""The layer derivations (symconv.layers): specs, SymPy gradients against independent references.

References: central finite differences of the lambdified forward equations, PyTorch autograd on
concrete numbers, and SymPy expressions written here from the lectures' definitions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

from symconv.layers import (
    ActivationSpec,
    AvgPool2dSpec,
    BatchNorm2dSpec,
    ConvTranspose2dSpec,
    CrossEntropySpec,
    LinearSpec,
    MaxPool2dSpec,
    SoftmaxSpec,
    derive_layer,
    render,
)
from symconv.layers.pool_spec import output_size

RNG = np.random.default_rng(7)

DEFAULT_SPECS = [
    ActivationSpec("relu", (1, 3)),
    ActivationSpec("sigmoid", (2, 2)),
    MaxPool2dSpec((1, 1, 4, 4), 2),
    MaxPool2dSpec((1, 1, 5, 5), 3, 2, 1, ceil_mode=True),
    AvgPool2dSpec((1, 1, 3, 3), 2, 1, 1, count_include_pad=False),
    AvgPool2dSpec((1, 1, 5, 5), 3, 2, 1, ceil_mode=True),
    LinearSpec(3, 2, batch=2),
    LinearSpec(2, 2, bias=False),
    SoftmaxSpec((2, 3)),
    CrossEntropySpec((2, 3)),
    CrossEntropySpec((2, 3), (0, 2), "sum"),
    BatchNorm2dSpec((1, 1, 1, 3)),
    BatchNorm2dSpec((2, 2, 1, 2), affine=False),
    ConvTranspose2dSpec((1, 1, 2, 2), (1, 1, 2, 2)),
    ConvTranspose2dSpec((1, 2, 2, 2), (2, 1, 3, 3), stride=2, padding=1, output_padding=1, groups=2, bias=True),
]


def ids(spec: object) -> str:
    return spec.describe()


# -- numeric helpers -------------------------------------------------------------------------------


def lambdified(d, expressions: np.ndarray, extra: dict | None = None):
    """A function of the flat vector of d's differentiated symbols (others fixed by ``extra``)."""
    symbols = [s for name in d.wrt for s in d.inputs[name].ravel()]
    fixed = dict(extra or {})
    exprs = [sp.sympify(e).xreplace(fixed) for e in expressions.ravel()]
    f = sp.lambdify([symbols], exprs, "numpy")
    return lambda v: np.array(f(v), dtype=float).reshape(expressions.shape), symbols


def finite_difference_check(d, point: np.ndarray, extra: dict | None = None, h: float = 1e-6) -> None:
    """∂L/∂s from SymPy (lambdified) against central differences of Σ G·Y (G random)."""
    g = RNG.normal(size=d.Y.shape)
    fixed = dict(extra or {})
    fixed.update(zip(d.G.ravel(), map(sp.Float, g.ravel())))
    forward, symbols = lambdified(d, d.Y, extra)
    grads = np.concatenate([d.gradients["d" + name].ravel() for name in d.wrt])
    gradient, _ = lambdified(d, grads, fixed)
    analytic = gradient(point)
    for k in range(len(symbols)):
        up, down = point.copy(), point.copy()
        up[k] += h
        down[k] -= h
        numeric = (np.sum(g * forward(up)) - np.sum(g * forward(down))) / (2 * h)
        assert analytic[k] == pytest.approx(numeric, rel=1e-5, abs=1e-6), symbols[k]


# -- specs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: ActivationSpec("tanh"), ValueError, ["kind", "'relu'", "'tanh'"]),
        (lambda: ActivationSpec("relu", (1, 0)), ValueError, ["shape", ">= 1", "(1, 0)"]),
        (lambda: ActivationSpec("relu", "1x3"), TypeError, ["shape", "tuple of ints", "'1x3'"]),
        (lambda: ActivationSpec("relu", (10, 10)), ValueError, ["number of entries", "64", "100"]),
        (lambda: MaxPool2dSpec((1, 1, 4), 2), ValueError, ["input", "4 dimensions", "(1, 1, 4)"]),
        (lambda: MaxPool2dSpec((1, 1, 4, 4), 0), ValueError, ["kernel_size", ">= 1", "0"]),
        (lambda: MaxPool2dSpec((1, 1, 4, 4), 2, padding=2), ValueError, ["padding", "half the kernel", "2"]),
        (lambda: MaxPool2dSpec((1, 1, 2, 2), 3, padding=1, dilation=2), ValueError, ["input", "output 0"]),
        (lambda: MaxPool2dSpec((1, 1, 4, 4), 2, ceil_mode=1), TypeError, ["ceil_mode", "bool", "1"]),
        (lambda: AvgPool2dSpec((1, 1, 4, 4), (2, 2, 2)), ValueError, ["kernel_size", "per spatial axis", "(2, 2, 2)"]),
        (lambda: AvgPool2dSpec((1, 1, 4, 4), 2, count_include_pad="no"), TypeError, ["count_include_pad", "bool"]),
        (lambda: LinearSpec(0, 2), ValueError, ["in_features", ">= 1", "0"]),
        (lambda: LinearSpec(2.5, 2), TypeError, ["in_features", "int", "2.5"]),
        (lambda: LinearSpec(20, 20), ValueError, ["in_features × out_features", "64", "400"]),
        (lambda: SoftmaxSpec((3,)), ValueError, ["shape", "2 dimensions", "(3,)"]),
        (lambda: CrossEntropySpec((2, 3), (0, 3)), ValueError, ["target", "below C = 3", "(0, 3)"]),
        (lambda: CrossEntropySpec((2, 3), (0,)), ValueError, ["target", "one class index per sample (2)"]),
        (lambda: CrossEntropySpec((2, 3), reduction="none"), ValueError, ["reduction", "'mean'", "'none'"]),
        (lambda: BatchNorm2dSpec((3, 1, 3, 3)), ValueError, ["m = N·H·W", "at most 6", "27"]),
        (lambda: BatchNorm2dSpec((1, 1, 1, 1)), ValueError, ["at least 2 values per channel"]),
        (lambda: ConvTranspose2dSpec((1, 2, 2, 2), (1, 1, 2, 2)), ValueError, ["weight", "C_in = 2", "(1, 1, 2, 2)"]),
        (lambda: ConvTranspose2dSpec((1, 1, 2, 2), (1, 1, 2, 2), stride=2, output_padding=2), ValueError, ["output_padding", "stride", "2"]),
        (lambda: ConvTranspose2dSpec((1, 3, 2, 2), (3, 1, 2, 2), groups=2), ValueError, ["groups", "divide", "2 and 3"]),
    ],
)
def test_bad_specs_name_the_argument(make, error, words) -> None:
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_derive_layer_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="spec must be one of"):
        derive_layer((1, 3))
    with pytest.raises(TypeError, match="takes no options"):
        derive_layer(SoftmaxSpec(), values=[1, 2, 3])
    with pytest.raises(ValueError, match="values must have the input's shape"):
        derive_layer(MaxPool2dSpec((1, 1, 2, 2)), values=[1, 2, 3])


@pytest.mark.parametrize("size, k, s, p, d, ceil", [(5, 2, 2, 0, 1, True), (5, 3, 2, 1, 1, True), (7, 3, 3, 1, 2, True), (4, 2, 2, 1, 1, False), (6, 3, 2, 1, 1, True)])
def test_pool_output_size_matches_torch(size, k, s, p, d, ceil) -> None:
    torch = pytest.importorskip("torch")
    x = torch.zeros(1, 1, size, size)
    expected = torch.nn.functional.max_pool2d(x, k, s, p, d, ceil_mode=ceil).shape[-1]
    assert output_size(size, k, s, p, d, ceil) == expected


# -- verify ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", DEFAULT_SPECS, ids=ids)
def test_verify_holds(spec) -> None:
    result = derive_layer(spec).verify()
    assert result.ok, result.report()
    assert "All checks hold." in result.report()


def test_verify_fails_on_a_wrong_closed_form(monkeypatch) -> None:
    """The comparison can fail: a sigmoid rule of s(1 + s) is caught."""
    from symconv.layers.activation import ActivationDerivation

    def wrong(self):
        return {"dX": np.array([[g * y * (1 + y) for g, y in zip(self.G[0], self.Y[0])]], dtype=object)}

    monkeypatch.setattr(ActivationDerivation, "closed_form", wrong)
    result = derive_layer(ActivationSpec("sigmoid", (1, 2))).verify()
    assert not result.ok and "✗ FAILED" in result.report()


# -- finite differences ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [s for s in DEFAULT_SPECS if not isinstance(s, MaxPool2dSpec) and not isinstance(s, CrossEntropySpec)],
    ids=ids,
)
def test_gradients_match_finite_differences(spec) -> None:
    d = derive_layer(spec)
    extra = {d.eps: sp.Float(1e-3)} if isinstance(spec, BatchNorm2dSpec) else {}
    size = sum(d.inputs[name].size for name in d.wrt)
    point = RNG.normal(size=size)
    if isinstance(spec, ActivationSpec) and spec.kind == "relu":
        point = np.where(np.abs(point) < 0.1, 0.5, point)  # away from the kink
    finite_difference_check(d, point, extra)


def test_cross_entropy_matches_finite_differences() -> None:
    d = derive_layer(CrossEntropySpec((2, 3)))
    targets = RNG.dirichlet(np.ones(3), size=2)  # soft targets summing to 1
    extra = {t: sp.Float(v) for t, v in zip(d.T.ravel(), targets.ravel())}
    finite_difference_check(d, RNG.normal(size=6), extra)


# -- PyTorch ---------------------------------------------------------------------------------------


def numeric(d, arrays: dict[str, np.ndarray], g: np.ndarray, extra: dict | None = None) -> dict[str, np.ndarray]:
    """Every gradient array of d at concrete inputs and upstream gradient g, as floats."""
    subs = dict(extra or {})
    for name, values in arrays.items():
        subs.update(zip(d.inputs[name].ravel(), map(sp.nsimplify, values.ravel())))
    subs.update(zip(d.G.ravel(), map(sp.nsimplify, np.atleast_1d(g).ravel())))
    out = {}
    for key, array in d.gradients.items():
        out[key] = np.array([float(sp.sympify(e).xreplace(subs)) for e in array.ravel()]).reshape(array.shape)
    return out


def test_relu_against_torch_including_zero() -> None:
    torch = pytest.importorskip("torch")
    x = np.array([[-1.5, 0.0, 2.0, 0.0]])
    g = np.array([[1.0, 2.0, 3.0, 4.0]])
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).backward(torch.tensor(g))
    got = numeric(derive_layer(ActivationSpec("relu", (1, 4))), {"X": x}, g)["dX"]
    np.testing.assert_array_equal(got, xt.grad.numpy())  # ReLU'(0) = 0


def test_sigmoid_softmax_linear_against_torch() -> None:
    torch = pytest.importorskip("torch")
    x = np.round(RNG.normal(size=(2, 3)), 3)
    g = np.round(RNG.normal(size=(2, 3)), 3)
    for kind, fn in (("sigmoid", torch.sigmoid), ("softmax", lambda t: torch.softmax(t, dim=1))):
        xt = torch.tensor(x, requires_grad=True)
        fn(xt).backward(torch.tensor(g))
        spec = ActivationSpec("sigmoid", (2, 3)) if kind == "sigmoid" else SoftmaxSpec((2, 3))
        got = numeric(derive_layer(spec), {"X": x}, g)["dX"]
        np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-10, atol=1e-12)

    w, b = np.round(RNG.normal(size=(2, 3)), 3), np.round(RNG.normal(size=2), 3)
    gy = np.round(RNG.normal(size=(2, 2)), 3)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    torch.nn.functional.linear(xt, wt, bt).backward(torch.tensor(gy))
    got = numeric(derive_layer(LinearSpec(3, 2, batch=2)), {"X": x, "W": w, "b": b}, gy)
    for key, t in (("dX", xt), ("dW", wt), ("db", bt)):
        np.testing.assert_allclose(got[key], t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_against_torch(reduction) -> None:
    torch = pytest.importorskip("torch")
    x = np.round(RNG.normal(size=(3, 4)), 3)
    target = (2, 0, 3)
    xt = torch.tensor(x, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(xt, torch.tensor(target), reduction=reduction)
    loss.backward(torch.tensor(1.5, dtype=torch.float64))
    d = derive_layer(CrossEntropySpec((3, 4), target, reduction))
    got = numeric(d, {"X": x}, np.array(1.5))["dX"]
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    value = float(d.Y[()].xreplace({s: sp.nsimplify(v) for s, v in zip(d.X.ravel(), x.ravel())}))
    assert value == pytest.approx(loss.item(), rel=1e-12)


def test_cross_entropy_gradient_is_derived_not_assumed(monkeypatch) -> None:
    """dX is SymPy's derivative of the log of the softmax quotient, written independently here;
    it is not the closed form y − t as an expression, and a different loss would fail verify()."""
    d = derive_layer(CrossEntropySpec((1, 3)))
    z, t = list(d.X[0]), list(d.T[0])
    total = sum(sp.exp(v) for v in z)
    loss = -sum(ti * sp.log(sp.exp(zi) / total) for ti, zi in zip(t, z))
    for j in range(3):
        raw = sp.diff(loss, z[j])
        assert d.dX[0, j] == d.G[()] * raw  # the unsimplified SymPy derivative, mean over N = 1
        assert d.dX[0, j].has(sp.exp) and d.dX[0, j] != d.closed_form()["dX"][0, j]
    assert d.verify().ok

    import symconv.layers.formulas as formulas

    original = formulas.cross_entropy
    monkeypatch.setattr(formulas, "cross_entropy", lambda zs, ts: 2 * original(zs, ts))
    assert not derive_layer(CrossEntropySpec((1, 3))).verify().ok


def test_maxpool_against_torch_with_ties() -> None:
    torch = pytest.importorskip("torch")
    spec = MaxPool2dSpec((2, 1, 5, 5), 3, 2, 1, ceil_mode=True)
    values = RNG.integers(0, 3, size=spec.input)  # many ties
    d = derive_layer(spec, values=values)
    assert d.verify().ok and d.tied_windows()
    g = np.round(RNG.normal(size=spec.output), 3)
    xt = torch.tensor(values.astype(float), requires_grad=True)
    y = torch.nn.functional.max_pool2d(xt, 3, 2, 1, ceil_mode=True)
    y.backward(torch.tensor(g))
    subs = dict(zip(d.G.ravel(), map(sp.nsimplify, g.ravel())))
    got = np.array([float(e.xreplace(subs)) for e in d.resolved.ravel()]).reshape(spec.input)
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(np.array(d.forward_values, dtype=float), y.detach().numpy())


def test_maxpool_lecture_unpooling_example() -> None:
    """The lecture's 4×4 activations, pooled 2×2: gradients land on the arg max positions."""
    torch = pytest.importorskip("torch")
    x = np.array([[0.1, 0.5, 1.2, -0.7], [0.8, -0.2, -0.5, 0.3], [0.4, 0.9, -0.1, -0.2], [-0.6, 0.1, 0.5, 0.3]])
    d = derive_layer(MaxPool2dSpec((1, 1, 4, 4), 2), values=x.reshape(1, 1, 4, 4))
    _, indices = torch.nn.functional.max_pool2d(torch.tensor(x)[None, None], 2, return_indices=True)
    for o, flat in zip(np.ndindex(1, 1, 2, 2), indices.numpy().ravel()):
        assert d.resolved[0, 0, flat // 4, flat % 4] == d.G[o]


def test_maxpool_sympy_derivative_is_half_at_a_tie() -> None:
    d = derive_layer(MaxPool2dSpec((1, 1, 2, 2), 2), values=[[[[1, 1], [0, 0]]]])
    first, second = d.X[0, 0, 0, 0], d.X[0, 0, 0, 1]
    sympy_value = d.sympy_local[(0, 0, 0, 0)][first].xreplace(dict(zip(d.X.ravel(), d.values.ravel())))
    assert sympy_value == sp.Rational(1, 2)
    assert d.resolved[0, 0, 0, 0] == d.G[0, 0, 0, 0] and d.resolved[0, 0, 0, 1] == 0
    assert d.local[(0, 0, 0, 0)][second] != d.local[(0, 0, 0, 0)][first]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2, stride=1, padding=1, ceil_mode=False, count_include_pad=True),
        dict(kernel_size=2, stride=1, padding=1, ceil_mode=False, count_include_pad=False),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
        dict(kernel_size=3, stride=2, padding=0, ceil_mode=True, count_include_pad=False),
    ],
)
def test_avgpool_against_torch(kwargs) -> None:
    torch = pytest.importorskip("torch")
    spec = AvgPool2dSpec((1, 1, 4, 4), **kwargs)
    d = derive_layer(spec)
    x = np.round(RNG.normal(size=spec.input), 3)
    g = np.round(RNG.normal(size=spec.output), 3)
    xt = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.avg_pool2d(xt, **kwargs)
    assert tuple(y.shape) == spec.output
    y.backward(torch.tensor(g))
    np.testing.assert_allclose(numeric(d, {"X": x}, g)["dX"], xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_batchnorm_against_torch() -> None:
    torch = pytest.importorskip("torch")
    spec = BatchNorm2dSpec((2, 2, 1, 2))
    d = derive_layer(spec)
    x, gamma, beta = RNG.normal(size=spec.input), RNG.normal(size=2), RNG.normal(size=2)
    x, gamma, beta = (np.round(a, 3) for a in (x, gamma, beta))
    g = np.round(RNG.normal(size=spec.input), 3)
    eps = 1e-5
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=eps).backward(torch.tensor(g))
    got = numeric(d, {"X": x, "gamma": gamma, "beta": beta}, g, {d.eps: sp.Rational(1, 100000)})
    for key, t in (("dX", xt), ("dgamma", gt), ("dbeta", bt)):
        np.testing.assert_allclose(got[key], t.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_conv_transpose_against_torch() -> None:
    torch = pytest.importorskip("torch")
    spec = ConvTranspose2dSpec((1, 2, 2, 3), (2, 1, 3, 2), stride=(2, 1), padding=1, output_padding=(1, 0), groups=2, bias=True)
    d = derive_layer(spec)
    x, w, b = (np.round(RNG.normal(size=s), 3) for s in (spec.input, spec.weight, (spec.out_channels,)))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride=(2, 1), padding=1, output_padding=(1, 0), groups=2)
    assert tuple(y.shape) == spec.output
    g = np.round(RNG.normal(size=spec.output), 3)
    y.backward(torch.tensor(g))
    got = numeric(d, {"X": x, "W": w, "b": b}, g)
    for key, t in (("dX", xt), ("dW", wt), ("db", bt)):
        np.testing.assert_allclose(got[key], t.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert d.verify().check("forward").ok


# -- rules checked with SymPy written here ----------------------------------------------------------


def test_sigmoid_local_derivative_is_s_times_one_minus_s() -> None:
    d = derive_layer(ActivationSpec("sigmoid", (1, 1)))
    x = d.X[0, 0]
    s = 1 / (1 + sp.exp(-x))
    assert sp.simplify(d.local[(0, 0)][x] - s * (1 - s)) == 0


def test_softmax_jacobian_entries() -> None:
    d = derive_layer(SoftmaxSpec((1, 3)))
    e = [sp.exp(v) for v in d.X[0]]
    y = [v / sum(e) for v in e]
    for i in range(3):
        for j in range(3):
            derived = sp.diff(d.Y[0, i], d.X[0, j])
            assert sp.simplify(derived - y[i] * (int(i == j) - y[j])) == 0


def test_batchnorm_gamma_beta_gradients_by_hand() -> None:
    d = derive_layer(BatchNorm2dSpec((1, 1, 1, 2)))
    x1, x2 = d.X[0, 0, 0]
    # m = 2: x̂ = ±(x1 − x2)/2 / sqrt((x1 − x2)²/4 + ε)
    root = sp.sqrt((x1 - x2) ** 2 / 4 + d.eps)
    xhat = [(x1 - x2) / 2 / root, (x2 - x1) / 2 / root]
    g = d.G[0, 0, 0]
    assert sp.simplify(d.dgamma[0] - (g[0] * xhat[0] + g[1] * xhat[1])) == 0
    assert d.dbeta[0] == g[0] + g[1]


# -- printing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", DEFAULT_SPECS[::2], ids=ids)
def test_pages_in_every_format(spec) -> None:
    d = derive_layer(spec)
    text = render(d, "text")
    assert text.startswith("Layer   " + spec.describe())
    assert "Chain rule" in text and "✓" in text and "✗" not in text
    assert "Verified: all closed forms hold ✓" in text
    latex = render(d, "latex")
    assert r"\begin{align*}" in latex and r"\checkmark" in latex
    assert latex.count(r"\begin{align*}") == latex.count(r"\end{align*}")
    markdown = render(d, "markdown")
    assert markdown.count("$$") % 2 == 0 and "### 1. Forward" in markdown
    data = json.loads(render(d, "json"))
    assert data["format"] == "symconv.layer-derivation" and data["ok"] is True
    assert [s["key"] for s in data["sections"]][-1] == "rules"
    assert all(rule["ok"] for s in data["sections"] for rule in s["rules"])


def test_sigmoid_text_page() -> None:
    text = render(derive_layer(ActivationSpec("sigmoid", (1, 2))))
    assert "y₁ = 1/(1 + e^(-x₁))" in text
    assert "∂L/∂x₁ = ∂L/∂y₁·∂y₁/∂x₁ = ∂L/∂y₁·e^(-x₁)/(1 + e^(-x₁))^2" in text
    assert "s(1 − s)" in text


def test_relu_page_states_the_convention() -> None:
    text = render(derive_layer(ActivationSpec("relu", (1, 2))))
    assert "∂y₁/∂x₁ = [x₁ > 0]" in text and "1/2 at x = 0" in text


def test_index_base_zero_and_bad_format() -> None:
    d = derive_layer(LinearSpec(2, 1))
    assert "x[0,0]" in render(d, index_base=0)
    with pytest.raises(ValueError, match="format must be one of"):
        render(d, "html")
    with pytest.raises(TypeError, match="layer derivation"):
        render(object())


def test_render_accepts_the_convolution() -> None:
    from symconv import ConvSpec, derive

    text = render(derive(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))))
    assert "O₁₁ = X₁₁F₁₁ + X₁₂F₁₂ + X₂₁F₂₁ + X₂₂F₂₂" in text


# -- the command-line hook --------------------------------------------------------------------------


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    import argparse

    from symconv.layers.cli import add_layer_command

    parser = argparse.ArgumentParser(prog="symconv")
    sub = parser.add_subparsers(dest="command", required=True)
    add_layer_command(sub)
    args = parser.parse_args(argv)
    code = args.handler(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_prints_and_verifies(capsys) -> None:
    code, out, _ = run_cli(["layer", "sigmoid", "--shape", "1,3"], capsys)
    assert code == 0 and "y₃ = 1/(1 + e^(-x₃))" in out
    code, out, _ = run_cli(["layer", "maxpool", "--input", "1,1,4,4", "--kernel", "2", "--verify"], capsys)
    assert code == 0 and "All checks hold." in out
    code, out, _ = run_cli(["layer", "linear", "--in-features", "2", "--out-features", "1", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["kind"] == "linear"
    code, out, _ = run_cli(["layer", "batchnorm", "--format", "latex"], capsys)
    assert code == 0 and out.startswith(r"\documentclass") and out.rstrip().endswith(r"\end{document}")
    values = ",".join(["1", "2", "2", "0"])
    code, out, _ = run_cli(["layer", "maxpool", "--input", "1,1,2,2", "--values", values], capsys)
    assert code == 0 and "1 window(s) hold a tied maximum" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["layer", "maxpool", "--input", "1,1,4"], ["input", "4 dimensions"]),
        (["layer", "maxpool"], ["maxpool needs --input"]),
        (["layer", "linear", "--in-features", "2"], ["needs --out-features"]),
        (["layer", "softmax", "--shape", "a,b"], ["--shape", "'a,b'"]),
        (["layer", "relu", "--values", "1,2"], ["--values is for maxpool"]),
        (["layer", "maxpool", "--input", "1,1,2,2", "--values", "1,2"], ["one number per input entry (4)"]),
        (["layer", "batchnorm", "--input", "3,1,3,3"], ["at most 6"]),
    ],
)
def test_cli_bad_arguments(argv, words, capsys) -> None:
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == "" and err.startswith("symconv: error: ")
    for word in words:
        assert word in err
