"""Tests for ``symconv.check``: learners' claims against independent oracles.

Which lecture lines are right is never written down here: an oracle evaluates every claimed line
at random integers and compares it with the numpy reference gradient (tests/reference.py), and
with PyTorch's autograd where it is installed. The checker must agree with the oracle line by
line, and its missing/extra terms must account for the whole difference.
"""

from __future__ import annotations

import ast
import itertools
import operator
import re

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from symconv import ConvSpec, derive
from symconv.check import CheckResult, Verdict, check_claims

from .lecture_claims import (
    LECTURE_000,
    LECTURE_000_DF,
    LECTURE_000_DX,
    LECTURE_000_SPEC,
    LECTURE_004_BLOCK_A,
    LECTURE_004_BLOCK_B,
    LECTURE_004_LATEX_LINE,
    LECTURE_004_SPEC,
)
from .reference import conv_grad_input, conv_grad_weight
from .strategies import small_specs

SEEDS = range(5)


# -- an independent oracle for the lecture lines ------------------------------------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _arithmetic(text: str) -> int:
    """Evaluate integers joined by + - * (and unary minus) without eval."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        raise AssertionError(f"unexpected syntax in {text!r}: {ast.dump(node)}")

    return walk(ast.parse(text.strip(), mode="eval"))


_LECTURE_NAME = re.compile(r"(dL/d)?([A-Za-z])_(\d+)")


def _entry(array: np.ndarray, digits: str, flat: bool) -> int:
    """Lecture subscripts: ``X_12`` is row 1, column 2 (1-based); flat ``a_13`` the 13th entry."""
    if flat:
        return int(array.flat[int(digits) - 1])
    return int(array[tuple(int(d) - 1 for d in digits)])


def _lecture_sides(claim: str, arrays: dict[str, np.ndarray], flat: bool) -> tuple[int, int]:
    """(reference value of the left-hand side, value of the right-hand side) of a lecture line.

    ``arrays`` maps "dL/dX"-style and plain letters to 2-D spatial arrays of integers.
    """
    lhs, rhs = claim.split("=")

    def value(m: re.Match) -> str:
        return f"({_entry(arrays[(m[1] or '') + m[2]], m[3], flat)})"

    return _arithmetic(_LECTURE_NAME.sub(value, lhs)), _arithmetic(_LECTURE_NAME.sub(value, rhs))


def _numpy_grads(spec: ConvSpec, x, w, g):
    args = (spec.stride, spec.padding, spec.dilation, spec.groups)
    return conv_grad_input(g, w, spec.input, *args), conv_grad_weight(x, g, spec.weight, *args)


def _torch_grads(spec: ConvSpec, x, w, g):
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, wt, stride=spec.stride)
    out.backward(torch.tensor(g, dtype=torch.float64))
    return xt.grad.numpy(), wt.grad.numpy()


def _random_layer(spec: ConvSpec, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.integers(-1000, 1001, size=spec.input)
    w = rng.integers(-1000, 1001, size=spec.weight)
    g = rng.integers(-1000, 1001, size=spec.output)
    return x, w, g


def _values(x, w, g) -> dict[sp.Symbol, int]:
    """Numbers for the derivation's symbols, named as DESIGN.md fixes them (``X[0,0,1,1]``)."""
    values = {}
    for name, array in (("X", x), ("W", w), ("G", g)):
        for index in np.ndindex(*array.shape):
            values[sp.Symbol(f"{name}[{','.join(map(str, index))}]")] = int(array[index])
    return values


def _oracle_check(args: dict, claims: list[str], names: dict[str, str], flat: bool, grads, **kwargs) -> CheckResult:
    """Run the checker and compare every verdict with the oracle; returns the checker's result.

    ``names`` maps the lecture's letters to roles: "input", "weight", "output" (as in dL/dO).
    """
    spec = ConvSpec(**args)
    result = check_claims(spec, claims, **kwargs)
    assert len(result.verdicts) == len(claims)
    oracle_ok = [True] * len(claims)
    for seed in SEEDS:
        x, w, g = _random_layer(spec, seed)
        dx, dw = grads(spec, x, w, g)
        role_arrays = {"input": (x, dx), "weight": (w, dw), "output": (None, g)}
        arrays = {}
        for letter, role in names.items():
            plain, gradient = role_arrays[role]
            arrays["dL/d" + letter] = gradient[0, 0]
            if plain is not None:
                arrays[letter] = plain[0, 0]
        values = _values(x, w, g)
        for i, (claim, verdict) in enumerate(zip(claims, result.verdicts)):
            reference, claimed = _lecture_sides(claim, arrays, flat)
            oracle_ok[i] &= reference == claimed
            # the checker read the claim as written and looked up the right entry
            assert verdict.given.xreplace(values) == claimed, claim
            assert verdict.expected.xreplace(values) == reference, claim
            # ... and its explanation accounts for the whole numerical difference
            explained = sp.Add(*verdict.extra) - sp.Add(*verdict.missing)
            assert explained.xreplace(values) == claimed - reference, claim
    for claim, verdict, ok in zip(claims, result.verdicts, oracle_ok):
        assert verdict.ok == ok, f"checker says {verdict.ok}, oracle says {ok}: {claim}\n{verdict.message}"
        assert sp.expand(verdict.given - verdict.expected - sp.Add(*verdict.extra) + sp.Add(*verdict.missing)) == 0
        assert (verdict.message == "correct") == ok
    return result


LECTURE_000_NAMES = {"X": "input", "F": "weight", "O": "output"}
LECTURE_004_NAMES = {"a": "input", "w": "weight", "z": "output"}


# -- lecture 000 ----------------------------------------------------------------------------------


def test_lecture_000_transcription_is_complete():
    assert len(LECTURE_000_DF) == 4 and len(LECTURE_000_DX) == 7


@pytest.mark.parametrize("grads", [_numpy_grads, _torch_grads], ids=["numpy", "torch"])
def test_lecture_000_verdicts_agree_with_oracle(grads):
    result = _oracle_check(LECTURE_000_SPEC, LECTURE_000, LECTURE_000_NAMES, flat=False, grads=grads)
    assert not result.ok, "the lecture is known to contain mistakes; the checker found none"
    assert result.wrong


def test_lecture_000_report_has_one_line_per_claim():
    result = check_claims(ConvSpec(**LECTURE_000_SPEC), LECTURE_000)
    lines = result.report().splitlines()
    assert len(lines) == len(LECTURE_000)
    for line, verdict in zip(lines, result.verdicts):
        assert line.startswith("✓ " if verdict.ok else "✗ ")
        assert verdict.target in line
    good = len(LECTURE_000) - len(result.wrong)
    assert result.report(summary=True).splitlines()[-1] == f"{good} of {len(LECTURE_000)} claims correct"


def test_message_uses_the_learners_notation():
    # Worked by hand from O_ij = Σ X_(i+r)(j+t) F_rt: X_12 meets F_12 in O_11 and F_11 in O_12.
    spec = ConvSpec(**LECTURE_000_SPEC)
    verdict = check_claims(spec, "dL/dX_12 = dL/dO_11*F_12 + dL/dO_12*F_21").verdicts[0]
    assert verdict.target == "dX[0,0,0,1]"
    assert verdict.message == "missing: ∂L/∂O₁₂·F₁₁; extra: ∂L/∂O₁₂·F₂₁"
    bracket = check_claims(spec, "dX[0,0,0,1] = G[0,0,0,0]*W[0,0,0,1] + G[0,0,0,1]*W[0,0,1,0]").verdicts[0]
    assert bracket.message == "missing: G[0,0,0,1]·W[0,0,0,0]; extra: G[0,0,0,1]·W[0,0,1,0]"
    short = check_claims(spec, "dX[0,1] = G[0,0]*W[0,1] + G[0,1]*W[1,0]").verdicts[0]
    assert short.message == "missing: G[0,1]·W[0,0]; extra: G[0,1]·W[1,0]"


# -- lecture 004 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [LECTURE_004_BLOCK_A, LECTURE_004_BLOCK_B], ids=["block_a", "block_b"])
@pytest.mark.parametrize("style", ["auto", "flat"])
def test_lecture_004_verdicts_agree_with_oracle(block, style):
    _oracle_check(LECTURE_004_SPEC, block, LECTURE_004_NAMES, flat=True, grads=_numpy_grads, index_style=style)


def test_lecture_004_torch_oracle_and_typos_found():
    results = [
        _oracle_check(LECTURE_004_SPEC, block, LECTURE_004_NAMES, flat=True, grads=_torch_grads)
        for block in (LECTURE_004_BLOCK_A, LECTURE_004_BLOCK_B)
    ]
    assert any(not r.ok for r in results), "the lecture's stride-2 slides are known to contain typos"


def test_lecture_004_latex_line_reads_like_its_transcription():
    spec = ConvSpec(**LECTURE_004_SPEC)
    from_latex = check_claims(spec, LECTURE_004_LATEX_LINE).verdicts
    plain = check_claims(spec, LECTURE_004_BLOCK_B[6]).verdicts[0]
    assert len(from_latex) == 1
    assert from_latex[0].target == plain.target == "dW[0,0,2,0]"
    assert sp.expand(from_latex[0].given - plain.given) == 0


def test_lecture_004_message_prints_flat_names():
    spec = ConvSpec(**LECTURE_004_SPEC)
    # the 5×5 input read row by row: a_13 is row 3, column 3 (0-based (2, 2)); a_3 is (0, 2)
    verdict = check_claims(spec, "dL/dw_7 = a_11*dL/dz_1 + a_3*dL/dz_2 + a_21*dL/dz_3 + a_23*dL/dz_4").verdicts[0]
    assert verdict.missing == [sp.Symbol("G[0,0,0,1]") * sp.Symbol("X[0,0,2,2]")]
    assert verdict.extra == [sp.Symbol("G[0,0,0,1]") * sp.Symbol("X[0,0,0,2]")]
    assert verdict.message == "missing: ∂L/∂z₂·a₁₃; extra: ∂L/∂z₂·a₃"


# -- property: the true expression is accepted, a dropped or added term is named -------------------


def _long(shape) -> list[int]:
    return [i for i, n in enumerate(shape) if n > 1]


def _true_terms(spec: ConvSpec, array: str, index: tuple[int, ...]) -> list[tuple[tuple[str, tuple], ...]]:
    """The gradient entry built from the definition in DESIGN.md, as factor tuples."""
    kg, cg = spec.out_channels // spec.groups, spec.in_channels // spec.groups
    geometry = list(zip(spec.stride, spec.dilation, spec.pad_lo))
    terms = []
    if array == "dX":
        n, c, *pos = index
        group = c // cg
        for k in range(group * kg, (group + 1) * kg):
            for taps in itertools.product(*(range(kk) for kk in spec.kernel)):
                nums = [p + lo - t * d for p, t, (s, d, lo) in zip(pos, taps, geometry)]
                if all(v % s == 0 and 0 <= v // s < o for v, (s, _, _), o in zip(nums, geometry, spec.out_spatial)):
                    q = tuple(v // s for v, (s, _, _) in zip(nums, geometry))
                    terms.append((("G", (n, k, *q)), ("W", (k, c - group * cg, *taps))))
    elif array == "dW":
        k, c, *taps = index
        group = k // kg
        for n in range(spec.batch):
            for out in itertools.product(*(range(o) for o in spec.out_spatial)):
                pos = [o * s + t * d - lo for o, t, (s, d, lo) in zip(out, taps, geometry)]
                if all(0 <= p < size for p, size in zip(pos, spec.spatial)):
                    terms.append((("G", (n, k, *out)), ("X", (n, group * cg + c, *pos))))
    else:
        (k,) = index
        for n in range(spec.batch):
            for out in itertools.product(*(range(o) for o in spec.out_spatial)):
                terms.append((("G", (n, k, *out)),))
    return terms


def _sym(factors) -> sp.Expr:
    return sp.Mul(*(sp.Symbol(f"{name}[{','.join(map(str, idx))}]") for name, idx in factors))


_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_NOTATIONS = ("bracket-full", "bracket-long", "subscript", "unicode", "flat")
_HEADS = {
    "bracket-full": {"X": "X", "W": "W", "G": "G", "b": "b", "dX": "dX", "dW": "dW", "db": "db"},
    "bracket-long": {"X": "x", "W": "F", "G": "dL/dO", "b": "b", "dX": "dL/dx", "dW": "dL/dF", "db": "dL/db"},
    "subscript": {"X": "X", "W": "F", "G": "dL/dO", "b": "b", "dX": "dL/dX", "dW": "dL/dF", "db": "dL/db"},
    "unicode": {"X": "X", "W": "F", "G": "∂L/∂O", "b": "b", "dX": "∂L/∂X", "dW": "∂L/∂F", "db": "∂L/∂b"},
    "flat": {"X": "a", "W": "w", "G": "dL/dz", "b": "b", "dX": "dL/da", "dW": "dL/dw", "db": "dL/db"},
}


def _write(notation: str, name: str, index: tuple[int, ...], shape: tuple[int, ...]) -> str:
    """One array entry written the way a learner would, independently of the checker."""
    head = _HEADS[notation][name]
    long = _long(shape)
    if notation == "bracket-full":
        return f"{head}[{','.join(map(str, index))}]"
    if not long:
        return head
    if notation == "bracket-long":
        return f"{head}[{','.join(str(index[a]) for a in long)}]"
    if notation == "subscript":
        return f"{head}_{{{','.join(str(index[a] + 1) for a in long)}}}"
    if notation == "unicode":
        return head + "".join(str(index[a] + 1) for a in long).translate(_SUBSCRIPTS)
    flat = int(np.ravel_multi_index([index[a] for a in long], [shape[a] for a in long]))
    return f"{head}_{flat + 1}"


def _write_term(notation: str, factors, shapes, joiner: str) -> str:
    return joiner.join(_write(notation, name, idx, shapes[name]) for name, idx in factors)


@st.composite
def _claim_cases(draw):
    spec = draw(small_specs(max_terms=300))
    arrays = ["dX", "dW"] + (["db"] * spec.bias)
    array = draw(st.sampled_from(arrays))
    shape = {"dX": spec.input, "dW": spec.weight, "db": spec.bias_shape}[array]
    index = tuple(draw(st.integers(0, n - 1)) for n in shape)
    notation = draw(st.sampled_from(_NOTATIONS))
    joiner = draw(st.sampled_from(["*", "·", " * ", " "]))
    other = {"dX": "W", "dW": "X", "db": None}[array]
    shapes = {"X": spec.input, "W": spec.weight, "G": spec.output, "b": spec.bias_shape}
    spurious = [("G", tuple(draw(st.integers(0, n - 1)) for n in spec.output))]
    if other:
        spurious.append((other, tuple(draw(st.integers(0, n - 1)) for n in shapes[other])))
    seed = draw(st.integers(0, 2**16))
    return spec, array, index, notation, joiner, tuple(spurious), shapes, seed


@settings(max_examples=60, deadline=None)
@given(case=_claim_cases())
def test_true_claim_accepted_and_changes_named(case):
    spec, array, index, notation, joiner, spurious, shapes, seed = case
    terms = _true_terms(spec, array, index)
    lhs = _write(notation, array, index, {"dX": spec.input, "dW": spec.weight, "db": spec.bias_shape}[array])
    kwargs = {"index_style": "flat"} if notation == "flat" else {}
    deriv = derive(spec)

    def claim(factor_lists) -> str:
        rhs = " + ".join(_write_term(notation, f, shapes, joiner) for f in factor_lists) or "0"
        return f"{lhs} = {rhs}"

    true = check_claims(deriv, claim(terms), **kwargs).verdicts[0]
    assert true.ok, f"{claim(terms)}\n{true.message}"
    assert true.missing == [] and true.extra == [] and true.message == "correct"
    assert sp.expand(true.expected - sp.Add(*map(_sym, terms))) == 0
    assert true.target == f"{array}[{','.join(map(str, index))}]"

    if terms:
        dropped = terms[seed % len(terms)]
        short = check_claims(deriv, claim([t for t in terms if t != dropped]), **kwargs).verdicts[0]
        assert not short.ok
        assert short.missing == [_sym(dropped)] and short.extra == []

    added = check_claims(deriv, claim(terms + [spurious]), **kwargs).verdicts[0]
    assert not added.ok
    assert added.extra == [_sym(spurious)] and added.missing == []


# -- notation accepted ------------------------------------------------------------------------------

SPEC_000 = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))


@pytest.mark.parametrize(
    "lhs, target",
    [
        ("dL/dX_12", "dX[0,0,0,1]"),
        ("dL/dX_{12}", "dX[0,0,0,1]"),
        ("dL/dX_{1,2}", "dX[0,0,0,1]"),
        ("dL/dX_1,2", "dX[0,0,0,1]"),
        ("∂L/∂X₁₂", "dX[0,0,0,1]"),
        ("dX[0,0,0,1]", "dX[0,0,0,1]"),
        ("dX[0,1]", "dX[0,0,0,1]"),
        ("dL/dX[0, 1]", "dX[0,0,0,1]"),
        ("dL/dx_12", "dX[0,0,0,1]"),
        ("dL/dA_12", "dX[0,0,0,1]"),
        ("dL/da_2", "dX[0,0,0,1]"),
        ("dL/dX[1]", "dX[0,0,0,1]"),
        ("\\frac{\\partial L}{\\partial X_{12}}", "dX[0,0,0,1]"),
        ("dL/dF_{12}", "dW[0,0,0,1]"),
        ("dL/dW[0,1]", "dW[0,0,0,1]"),
        ("dL/df_21", "dW[0,0,1,0]"),
        ("dL/dw_3", "dW[0,0,1,0]"),
        ("dW[0,0,1,1]", "dW[0,0,1,1]"),
    ],
)
def test_left_hand_sides(lhs, target):
    assert check_claims(SPEC_000, f"{lhs} = 0").verdicts[0].target == target


def test_bias_names_and_single_entry_arrays():
    spec = ConvSpec(input=(1, 1, 2, 2), weight=(2, 1, 2, 2), bias=True)  # O is 1×1 per channel
    for lhs in ("dL/db_1", "dL/db[0]", "db[0]", "dL/db_{1}"):
        assert check_claims(spec, f"{lhs} = 0").verdicts[0].target == "db[0]"
    verdict = check_claims(spec, "dL/db_2 = dL/dO_2").verdicts[0]  # K is the only long axis of G
    assert verdict.ok and verdict.target == "db[1]"
    single = ConvSpec(input=(1, 1, 2, 2), weight=(1, 1, 2, 2), bias=True)
    assert check_claims(single, "dL/db = dL/dO").ok
    assert check_claims(single, "dL/dF_11 = dL/dO*X_11").ok


@pytest.mark.parametrize(
    "rhs",
    [
        "dL/dO_11*F_12 + dL/dO_12*F_11",
        "dL/dO_11·F_12 + dL/dO_12·F_11",
        "dL/dO_11 F_12 + dL/dO_12 F_11",
        "dL/dO_11F_12+dL/dO_12F_11",
        "F_12*dL/dO_11 + F_11*dL/dO_12",
        "∂L/∂O₁₁·F₁₂ + ∂L/∂O₁₂·F₁₁",
        "G[0,0,0,0]*W[0,0,0,1] + G[0,0,0,1]*W[0,0,0,0]",
        "G_11 F_12 + g_12 f_11",
        "dO[0,0]*F_12 + dO[0,1]*F_11",
        "dO_11/dX_12*dL/dO_11 + dO_12/dX_12*dL/dO_12",
        "∂O₁₁/∂X₁₂ ∂L/∂O₁₁ + ∂O₁₂/∂X₁₂ ∂L/∂O₁₂",
        "(dL/dO_11 - 0)*F_12 + 2*dL/dO_12*F_11 - dL/dO_12*F_11",
        "\\frac{\\partial L}{\\partial O_{11}} \\cdot F_{12} + \\frac{\\partial L}{\\partial O_{12}} \\cdot F_{11}",
    ],
)
def test_right_hand_side_spellings(rhs):
    # X_12 sits under F_12 in window O_11 and under F_11 in window O_12 (worked by hand).
    verdict = check_claims(SPEC_000, f"dL/dX_12 = {rhs}").verdicts[0]
    assert verdict.ok, verdict.message


def test_index_base_and_style_overrides():
    assert check_claims(SPEC_000, "dL/dX_01 = 0", index_base=0).verdicts[0].target == "dX[0,0,0,1]"
    assert check_claims(SPEC_000, "dL/dX[1,2] = 0", index_base=1).verdicts[0].target == "dX[0,0,0,1]"
    assert check_claims(SPEC_000, "dL/dX_2 = 0", index_style="flat").verdicts[0].target == "dX[0,0,0,1]"
    assert check_claims(SPEC_000, "dL/dX_12 = 0", index_style="multi").verdicts[0].target == "dX[0,0,0,1]"
    five = ConvSpec(input=(1, 1, 5, 5), weight=(1, 1, 3, 3), stride=2)
    # alone, a_13 is ambiguous: auto reads it per digit (row 1, column 3), "flat" as entry 13
    assert check_claims(five, "dL/da_13 = 0").verdicts[0].target == "dX[0,0,0,2]"
    assert check_claims(five, "dL/da_13 = 0", index_style="flat").verdicts[0].target == "dX[0,0,2,2]"
    # one flat-only name (w_9) makes the whole claim flat
    assert check_claims(five, "dL/da_13 = w_9*dL/dz_1").verdicts[0].target == "dX[0,0,2,2]"


def test_several_batch_and_channel_axes():
    spec = ConvSpec(input=(2, 3, 3, 3), weight=(2, 3, 2, 2))
    # X[n=1, c=2, 0, 1] is read by both output channels, at taps (0,0) and (0,1) (worked by hand)
    claim = (
        "dL/dX_{2,3,1,2} = dL/dO_{2,1,1,1}*F_{1,3,1,2} + dL/dO_{2,2,1,1}*F_{2,3,1,2}"
        " + dL/dO_{2,1,1,2}*F_{1,3,1,1} + dL/dO_{2,2,1,2}*F_{2,3,1,1}"
    )
    verdict = check_claims(spec, claim).verdicts[0]
    assert verdict.target == "dX[1,2,0,1]"
    assert verdict.ok, verdict.message
    assert check_claims(spec, "dL/dX_2312 = 0").verdicts[0].target == "dX[1,2,0,1]"


def test_inputs_mapping_derivation_and_multiline_string():
    deriv = derive(SPEC_000)
    mapping = check_claims(deriv, {"dL/dX_11": "dL/dO_11*F_11", "dL/dX_33": "dL/dO_22*F_22"})
    assert mapping.ok and [v.target for v in mapping.verdicts] == ["dX[0,0,0,0]", "dX[0,0,2,2]"]
    text = "# lecture lines\ndL/dX_11 = dL/dO_11*F_11\n\n  dL/dX_33 = dL/dO_22*F_21\n"
    result = check_claims(SPEC_000, text)
    assert [v.ok for v in result.verdicts] == [True, False]
    assert isinstance(result.verdicts[1], Verdict) and str(result) == result.report()


def test_wrong_coefficients_are_explained():
    verdict = check_claims(SPEC_000, "dL/dX_11 = 3*dL/dO_11*F_11").verdicts[0]
    term = sp.Symbol("G[0,0,0,0]") * sp.Symbol("W[0,0,0,0]")
    assert verdict.extra == [2 * term] and verdict.missing == []
    assert verdict.wrong == [(term, 3, 1)]
    assert "wrong coefficient: 3·∂L/∂O₁₁·F₁₁ (should be ∂L/∂O₁₁·F₁₁)" in verdict.message
    negative = check_claims(SPEC_000, "dL/dX_11 = -dL/dO_11*F_11").verdicts[0]
    assert negative.missing == [2 * term] and negative.extra == []


def test_zero_gradient_entry():
    # stride 2 over a 4-wide input with a 1-wide kernel: column 4 is never read
    spec = ConvSpec(input=(1, 1, 1, 4), weight=(1, 1, 1, 1), stride=2)
    assert check_claims(spec, "dL/dX_4 = 0").ok
    assert check_claims(spec, "dL/dX_3 = dL/dO_2*F_1").ok
    assert not check_claims(spec, "dL/dX_4 = dL/dO_2*F_1").ok


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claim, fragment",
    [
        ("dL/dX_44 = 0", "X_44 is outside the 3×3 input"),
        ("dL/dX_12 = dL/dO_13*F_11", "dL/dO_13 is outside the 2×2 output"),
        ("dL/dX_12 = dL/dO_11*F_31", "F_31 is outside the 2×2 filter"),
        ("dL/dX[0,3] = 0", "dL/dX[0,3] is outside the 3×3 input"),
        ("dL/dX[0,0,0] = 0", "has 3 index entries"),
        ("dL/dX_123 = 0", "outside the 3×3 input"),
        ("dL/dX_12 = Q_11", "unknown name 'Q'"),
        ("dL/dX_12 = sin(X_11)", "unknown name 'sin'"),
        ("dL/dX_12 = dL/dO_11 *+* F_12", "is not a valid expression"),
        ("dL/dX_12 = (dL/dO_11*F_12", "is not a valid expression"),
        ("dL/dX_12 = dL/dO_11 @ F_12", "unexpected '@"),
        ("dL/dX_12 = __import__('os')", "unexpected"),
        ("dL/dX_12", "one equation"),
        ("dL/dX_12 = X_11 = 0", "one equation"),
        ("dL/dX_12 =", "right-hand side is empty"),
        ("X_12 = F_11", "left-hand side must name one gradient entry"),
        ("dL/dO_11 = X_11", "upstream gradient"),
        ("dL/dX_12 = O_11*F_12", "layer's output"),
        ("dL/dX_12 = dL/dF_11", "only appear on the left-hand side"),
        ("dL/dX_12 = dL/dG_11*F_12", "already is the upstream gradient"),
        ("dL/dX_12 = X*F_12", "X needs an index"),
        ("dL/dX_12 = dL/dO_11 x F_12", "x needs an index"),
        ("dL/dX[0,a] = 0", "non-negative integers"),
        ("dL/dX_{1;2} = 0", "subscript must be digits"),
        ("dL/db_1 = 0", "no bias"),
        ("dL/dX_12 = 1/0", "divides by zero"),
        ("dL/dX_12 = (dL/dO_11 + F_12)^1000", "exponents"),
    ],
)
def test_bad_claims_raise_value_error_naming_claim_and_problem(claim, fragment):
    with pytest.raises(ValueError) as info:
        check_claims(SPEC_000, claim)
    message = str(info.value)
    assert fragment in message
    assert repr(claim) in message


def test_bad_arguments():
    with pytest.raises(ValueError, match="index_style must be one of"):
        check_claims(SPEC_000, "dL/dX_11 = 0", index_style="rows")
    with pytest.raises(ValueError, match="index_base must be 0, 1 or None"):
        check_claims(SPEC_000, "dL/dX_11 = 0", index_base=2)
    with pytest.raises(ValueError, match="at least one"):
        check_claims(SPEC_000, "\n  \n")
    with pytest.raises(TypeError, match="ConvSpec or a Derivation"):
        check_claims("3x3", "dL/dX_11 = 0")
    with pytest.raises(TypeError, match="claims must be"):
        check_claims(SPEC_000, [1, 2])
    with pytest.raises(ValueError, match="has 1 index entries"):
        # read per digit, w_3 names one axis of a filter with two long axes
        check_claims(SPEC_000, "dL/dw_3 = 0", index_style="multi")


@pytest.mark.parametrize("rhs", ["3**9**9", "2**9**9", "3^9^9", "dL/dO_11*F_11**9**2"])
def test_a_tower_of_powers_is_refused_quickly(rhs):
    spec = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
    with pytest.raises(ValueError, match="exponents must be whole numbers"):
        check_claims(spec, f"dL/dX_11 = {rhs}")
