"""The general index form: agrees with the element-wise derivation, and reads as the textbook does.

Two independent expansions of the general form are compared with the element-wise derivation:
``GeneralForm.to_arrays`` (the library's own expansion), and a plain loop in this file that
substitutes numbers into the *symbolic* form point by point with ``xreplace`` and evaluates the
guards as booleans. The structure tests rebuild the expected index expressions from the textbook
formulas (DESIGN.md) out of the form's own symbols, looked up by name.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings

from symconv import ConvSpec, derive
from symconv.general import GeneralForm, IndexForm, Quotient, symbolic_forms

from .strategies import small_specs

AXES = {1: ("w",), 2: ("h", "w"), 3: ("d", "h", "w")}
ELEMENTWISE = ("X", "W", "b", "G", "O", "dX", "dW", "db", "local", "_chain")


def symbol_arrays(d) -> dict[str, Any]:
    return {"X": d.X, "W": d.W, "b": d.b, "G": d.G}


def assert_same_entries(name: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, name
    for index in np.ndindex(*want.shape):
        difference = sp.expand(got[index] - want[index])
        assert difference == 0, f"{name}{list(index)}: {got[index]} != {want[index]}"


# -- agreement with the element-wise derivation -------------------------------------------------


def check_to_arrays(spec: ConvSpec) -> None:
    d = derive(spec)
    expanded = d.general().to_arrays(symbol_arrays(d))
    assert set(expanded) == ({"O", "dX", "dW", "db"} if spec.bias else {"O", "dX", "dW"})
    for name, array in expanded.items():
        assert_same_entries(name, array, getattr(d, name))


@settings(max_examples=40, deadline=None)
@given(spec=small_specs())
def test_general_form_agrees_with_elementwise_derivation(spec):
    check_to_arrays(spec)


# small_specs() keeps rank 3 to one group: cover grouped 3-d and a few named corners here
CORNERS = {
    "lecture": ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)),
    "3d grouped strided": ConvSpec(
        input=(1, 4, 3, 4, 3), weight=(2, 2, 2, 2, 1), stride=(2, 1, 2), padding=((0, 1), (1, 0), (0, 0)),
        dilation=(1, 2, 1), groups=2, bias=True,
    ),
    "1d depthwise": ConvSpec(input=(2, 3, 7), weight=(3, 1, 3), stride=3, padding=2, groups=3, bias=True),
    "padding wider than the kernel": ConvSpec(input=(1, 1, 2, 1), weight=(1, 1, 1, 1), padding=((2, 3), (1, 0))),
    "stride larger than the kernel": ConvSpec(input=(1, 2, 8), weight=(2, 2, 2), stride=3, dilation=2),
    "same, stride 2": ConvSpec(input=(1, 2, 6, 5), weight=(2, 1, 3, 2), stride=2, padding="same", groups=2),
}


@pytest.mark.parametrize("spec", CORNERS.values(), ids=CORNERS.keys())
def test_general_form_agrees_on_corner_cases(spec):
    check_to_arrays(spec)


# -- an independent expansion of the symbolic form --------------------------------------------


def parameter_table(form: IndexForm, spec: ConvSpec) -> dict[sp.Symbol, sp.Integer]:
    """Numbers for every size / hyper-parameter symbol of ``form``, matched by name."""
    names = {"N": spec.batch, "groups": spec.groups}
    grouped = spec.groups > 1
    names["C_g" if grouped else "C"] = spec.in_per_group
    names["K_g" if grouped else "K"] = spec.out_per_group
    per_axis = {
        "s": spec.stride, "d": spec.dilation, "p": spec.pad_lo, "q": spec.pad_hi,
        "in": spec.spatial, "k": spec.kernel, "out": spec.out_spatial,
    }
    for prefix, values in per_axis.items():
        for axis, value in zip(AXES[spec.rank], values):
            names[f"{prefix}_{axis}"] = value
    table = {}
    for symbol in all_symbols(form):
        if symbol.name in names:
            table[symbol] = sp.Integer(names[symbol.name])
    return table


def all_symbols(form: IndexForm) -> set[sp.Symbol]:
    found: set[sp.Symbol] = set()
    bases: set[str] = set()
    for expr in (form.target, form.term, form.plus, *form.guards):
        expr = sp.sympify(expr)
        found |= expr.free_symbols
        bases |= {e.base.name for e in expr.atoms(sp.Indexed)}
    for loop in form.free + form.sums:
        found |= {loop.var} | sp.sympify(loop.lo).free_symbols | sp.sympify(loop.hi).free_symbols
    # an Indexed entry also reports its array's label (X, W, ...) as a free symbol
    return {s for s in found if isinstance(s, sp.Symbol) and s.name not in bases}


def loop_range(loop, values) -> range:
    lo, hi = sp.sympify(loop.lo).xreplace(values), sp.sympify(loop.hi).xreplace(values)
    return range(int(lo), int(hi) + 1)


def to_symbol(entry: sp.Indexed, arrays: dict[str, np.ndarray]) -> sp.Expr:
    index = tuple(int(i) for i in entry.indices)
    assert all(i >= 0 for i in index), f"negative index read: {entry}"
    return arrays[entry.base.name][index]


def holds(guards, point) -> bool:
    """All guards true at ``point``.

    A range guard on an inexact quotient cannot be decided, but then the exact-division guard
    is false, and one false guard is enough (as with ``&&`` in C).
    """
    verdicts = [sp.sympify(guard.xreplace(point)) for guard in guards]
    if any(v is sp.false for v in verdicts):
        return False
    assert all(v is sp.true for v in verdicts), f"guards {guards} undecided at {point}: {verdicts}"
    return True


def expand_by_substitution(form: IndexForm, spec: ConvSpec, arrays, shape) -> np.ndarray:
    """Walk the free and summation loops, substitute numbers, keep terms whose guards hold."""
    table = parameter_table(form, spec)
    out = np.full(shape, None, dtype=object)
    for free in itertools.product(*(loop_range(loop, table) for loop in form.free)):
        at = {**table, **{loop.var: sp.Integer(v) for loop, v in zip(form.free, free)}}
        target = tuple(int(i) for i in form.target.xreplace(at).indices)
        assert out[target] is None, f"{form.name}{list(target)} is produced twice"
        terms = [to_symbol(e, arrays) for e in sp.Add.make_args(sp.sympify(form.plus).xreplace(at)) if e != 0]
        for summed in itertools.product(*(loop_range(loop, at) for loop in form.sums)):
            point = {**at, **{loop.var: sp.Integer(v) for loop, v in zip(form.sums, summed)}}
            if holds(form.guards, point):
                term = form.term.xreplace(point)
                term = term.replace(lambda e: isinstance(e, sp.Indexed), lambda e: to_symbol(e, arrays))
                terms.append(term)
        out[target] = sp.Add(*terms)
    assert not any(v is None for v in out.ravel()), f"{form.name}: some entries are never produced"
    return out


def check_by_substitution(spec: ConvSpec) -> None:
    d = derive(spec)
    arrays = symbol_arrays(d)
    shapes = {"O": spec.output, "dX": spec.input, "dW": spec.weight, "db": spec.bias_shape}
    for name, form in d.general(symbolic=True).forms.items():
        assert_same_entries(name, expand_by_substitution(form, spec, arrays, shapes[name]), getattr(d, name))


@settings(max_examples=25, deadline=None)
@given(spec=small_specs(max_terms=200))
def test_symbolic_form_specialised_by_substitution_equals_elementwise(spec):
    check_by_substitution(spec)


@pytest.mark.parametrize("spec", CORNERS.values(), ids=CORNERS.keys())
def test_symbolic_form_by_substitution_on_corner_cases(spec):
    check_by_substitution(spec)


@pytest.mark.parametrize("spec", CORNERS.values(), ids=CORNERS.keys())
def test_specialised_form_is_the_symbolic_form_with_the_layers_numbers(spec):
    d = derive(spec)
    symbolic, specialised = d.general(symbolic=True), d.general()
    assert symbolic.symbolic and not specialised.symbolic
    assert set(symbolic.forms) == set(specialised.forms)
    for name, form in symbolic.forms.items():
        table = parameter_table(form, spec)
        assert all(specialised.values[s] == v for s, v in table.items())
        by_hand = form.subs(table)
        want = specialised[name]
        assert by_hand.target == want.target
        assert by_hand.term == want.term
        assert sp.sympify(by_hand.plus) == sp.sympify(want.plus)
        assert set(by_hand.guards) == set(want.guards)
        assert [(l.var, l.lo, l.hi) for l in by_hand.sums] == [(l.var, l.lo, l.hi) for l in want.sums]
        assert [(l.var, l.lo, l.hi) for l in by_hand.free] == [(l.var, l.lo, l.hi) for l in want.free]
        # nothing symbolic is left but the indices
        leftover = {s.name for s in all_symbols(want)} - {l.var.name for l in want.free + want.sums}
        assert not leftover, leftover


@pytest.mark.parametrize("spec", CORNERS.values(), ids=CORNERS.keys())
def test_size_formula_gives_the_output_size(spec):
    form = derive(spec).general(symbolic=True)
    for equation, out in zip(form.sizes, spec.out_spatial):
        table = {s: sp.Integer(v) for s, v in parameter_table_for_sizes(equation, spec).items()}
        assert equation.rhs.xreplace(table) == out
        assert equation.lhs.name.startswith("out_")


def parameter_table_for_sizes(equation: sp.Eq, spec: ConvSpec) -> dict[sp.Symbol, int]:
    values = {
        "s": spec.stride, "d": spec.dilation, "p": spec.pad_lo, "q": spec.pad_hi,
        "in": spec.spatial, "k": spec.kernel,
    }
    table = {}
    for symbol in equation.rhs.free_symbols:
        prefix, axis = symbol.name.split("_")
        table[symbol] = values[prefix][AXES[spec.rank].index(axis)]
    return table


def test_to_arrays_needs_a_specialised_form():
    d = derive(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)))
    with pytest.raises(ValueError, match="specialised"):
        d.general(symbolic=True).to_arrays(symbol_arrays(d))


# -- structure: what a reader recognises ----------------------------------------------------------


def named(form: IndexForm) -> dict[str, sp.Symbol]:
    return {s.name: s for s in all_symbols(form)}


def canonical(guards) -> set:
    return {sp.sympify(g).canonical for g in guards}


def indexed(expr: sp.Expr, base: str) -> sp.Indexed:
    (found,) = [e for e in sp.Mul.make_args(expr) if isinstance(e, sp.Indexed) and e.base.name == base]
    return found


@pytest.fixture(scope="module")
def forms_2d() -> GeneralForm:
    return derive(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))).general(symbolic=True)


def test_dx_reads_upstream_gradient_at_exact_quotients(forms_2d):
    form = forms_2d["dX"]
    v = named(form)
    G, W = sp.IndexedBase("G"), sp.IndexedBase("W")
    assert form.target == sp.IndexedBase("dX")[v["n"], v["c"], v["y"], v["x"]]
    rows = v["y"] + v["p_h"] - v["d_h"] * v["r"]
    cols = v["x"] + v["p_w"] - v["d_w"] * v["t"]
    row_index, col_index = indexed(form.term, "G").indices[2:]
    for index, numerator, stride in ((row_index, rows, v["s_h"]), (col_index, cols, v["s_w"])):
        assert isinstance(index, Quotient)
        assert sp.expand(index.args[0] - numerator) == 0 and index.args[1] == stride
    assert "(-d_h*r + p_h + y)/s_h" in str(form.term)
    q_h, q_w = Quotient(rows, v["s_h"]), Quotient(cols, v["s_w"])
    assert form.term == G[v["n"], v["k"], q_h, q_w] * W[v["k"], v["c"], v["r"], v["t"]]
    expected_guards = [
        sp.Eq(sp.Mod(rows, v["s_h"]), 0), sp.Le(0, q_h), sp.Le(q_h, v["out_h"] - 1),
        sp.Eq(sp.Mod(cols, v["s_w"]), 0), sp.Le(0, q_w), sp.Le(q_w, v["out_w"] - 1),
    ]
    assert canonical(form.guards) == canonical(expected_guards)
    assert [(l.var.name, l.lo, l.hi) for l in form.sums] == [
        ("k", 0, v["K"] - 1), ("r", 0, v["k_h"] - 1), ("t", 0, v["k_w"] - 1)
    ]


def test_dw_sums_over_batch_and_output_positions(forms_2d):
    form = forms_2d["dW"]
    v = named(form)
    X, G = sp.IndexedBase("X"), sp.IndexedBase("G")
    assert form.target == sp.IndexedBase("dW")[v["k"], v["c"], v["r"], v["t"]]
    assert [(l.var.name, l.lo, l.hi) for l in form.sums] == [
        ("n", 0, v["N"] - 1), ("i", 0, v["out_h"] - 1), ("j", 0, v["out_w"] - 1)
    ]
    row = v["i"] * v["s_h"] + v["r"] * v["d_h"] - v["p_h"]
    col = v["j"] * v["s_w"] + v["t"] * v["d_w"] - v["p_w"]
    assert sp.expand(form.term - G[v["n"], v["k"], v["i"], v["j"]] * X[v["n"], v["c"], row, col]) == 0
    expected_guards = [sp.Le(0, row), sp.Le(row, v["in_h"] - 1), sp.Le(0, col), sp.Le(col, v["in_w"] - 1)]
    assert canonical(form.guards) == canonical(expected_guards)
    assert not form.term.atoms(Quotient) and not any(g.atoms(sp.Mod) for g in form.guards)


def test_forward_is_the_definition(forms_2d):
    form = forms_2d["O"]
    v = named(form)
    X, W = sp.IndexedBase("X"), sp.IndexedBase("W")
    row = v["i"] * v["s_h"] + v["r"] * v["d_h"] - v["p_h"]
    col = v["j"] * v["s_w"] + v["t"] * v["d_w"] - v["p_w"]
    assert form.target == sp.IndexedBase("O")[v["n"], v["k"], v["i"], v["j"]]
    assert sp.expand(form.term - X[v["n"], v["c"], row, col] * W[v["k"], v["c"], v["r"], v["t"]]) == 0
    assert [l.var.name for l in form.sums] == ["c", "r", "t"]
    assert sp.sympify(form.plus) == 0


def test_one_group_has_no_group_index(forms_2d):
    for form in forms_2d:
        names = {s.name for s in all_symbols(form)}
        assert not names & {"g", "groups", "C_g", "K_g"}, (form.name, names)


def test_bias_gradient_sums_the_upstream_gradient():
    forms = derive(ConvSpec(input=(2, 2, 4), weight=(3, 2, 2), bias=True)).general(symbolic=True)
    form = forms["db"]
    v = named(form)
    assert form.target == sp.IndexedBase("db")[v["k"]]
    assert form.term == sp.IndexedBase("G")[v["n"], v["k"], v["i"]]
    assert [(l.var.name, l.hi) for l in form.sums] == [("n", v["N"] - 1), ("i", v["out_w"] - 1)]
    assert form.guards == ()
    assert forms["O"].plus == sp.IndexedBase("b")[v["k"]]


def test_groups_appear_as_a_group_index():
    forms = derive(ConvSpec(input=(1, 4, 3, 3), weight=(6, 2, 2, 2), groups=2)).general(symbolic=True)
    form = forms["dX"]
    v = named(form)
    channel = v["C_g"] * v["g"] + v["c"]
    assert [l.var.name for l in form.free] == ["n", "g", "c", "y", "x"]
    assert form.target == sp.IndexedBase("dX")[v["n"], channel, v["y"], v["x"]]
    weight = indexed(form.term, "W")
    assert sp.expand(weight.indices[0] - (v["K_g"] * v["g"] + v["k"])) == 0
    assert weight.indices[1] == v["c"]
    assert [(l.var.name, l.hi) for l in form.sums][0] == ("k", v["K_g"] - 1)
    dw = forms["dW"]
    x_entry = indexed(dw.term, "X")
    assert sp.expand(x_entry.indices[1] - channel.xreplace({v["c"]: named(dw)["c"], v["g"]: named(dw)["g"]})) == 0


@pytest.mark.parametrize("rank", [1, 3])
def test_axis_names_per_rank(rank):
    spec = ConvSpec(input=(1, 1, *(3,) * rank), weight=(1, 1, *(2,) * rank))
    form = derive(spec).general(symbolic=True)["dX"]
    names = {s.name for s in all_symbols(form)}
    assert {f"s_{a}" for a in AXES[rank]} <= names
    assert {f"out_{a}" for a in AXES[rank]} <= names
    assert len(indexed(form.term, "G").indices) == rank + 2
    assert len(form.term.atoms(Quotient)) == rank


def test_stride_one_specialisation_has_no_division():
    form = derive(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))).general()["dX"]
    assert not form.term.atoms(Quotient)
    assert not any(g.atoms(sp.Mod) for g in form.guards)
    assert "/" not in str(form.equation())


def test_stride_two_specialisation_keeps_exact_division():
    form = derive(ConvSpec(input=(1, 1, 5, 5), weight=(1, 1, 3, 3), stride=2)).general()["dX"]
    quotients = form.term.atoms(Quotient)
    assert quotients and all(q.args[1] == 2 for q in quotients)
    assert sum(1 for g in form.guards if g.atoms(sp.Mod)) == 2


# -- the size-independent form of a real layer -------------------------------------------------


def test_general_of_a_real_layer_never_expands_elementwise():
    spec = ConvSpec(input=(8, 64, 56, 56), weight=(64, 64, 3, 3), padding=1)
    d = derive(spec)
    general = d.general()
    touched = [name for name in ELEMENTWISE if name in d.__dict__]
    assert touched == [], f"general() built element-wise arrays: {touched}"
    dx = general["dX"]
    assert [(l.var.name, l.lo, l.hi) for l in dx.free] == [("n", 0, 7), ("c", 0, 63), ("y", 0, 55), ("x", 0, 55)]
    assert [(l.var.name, l.lo, l.hi) for l in dx.sums] == [("k", 0, 63), ("r", 0, 2), ("t", 0, 2)]
    symbolic = d.general(symbolic=True)
    assert all(name not in d.__dict__ for name in ELEMENTWISE)
    # the symbolic form does not depend on the size at all
    small = derive(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))).general(symbolic=True)
    assert symbolic.forms == small.forms
    with pytest.raises(ValueError, match=r"layer too large .* use \.general\(\)"):
        d.X  # noqa: B018


def test_symbolic_forms_are_cached_per_rank_grouping_and_bias():
    assert symbolic_forms(2, False, False) is symbolic_forms(2, False, False)
    assert symbolic_forms(2, False, False) is not symbolic_forms(2, False, True)
