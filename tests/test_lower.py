"""Lowering passes, one by one, and the shape of the IR they produce.

The numbers the kernels compute are checked by compiling them (test_render_c, test_export);
here each pass is checked against a brute-force or independent computation.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen import ir
from symconv import ConvSpec
from symconv.general import Loop, Quotient
from symconv.lower import (
    MAX_TILE,
    Nest,
    always_holds,
    bound_loop,
    c_code,
    flat_offset,
    lower,
    module_name,
    nest_loops,
    place_guards,
    prune_guards,
)

LECTURE = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
GROUPED = ConvSpec(
    input=(2, 4, 7, 6), weight=(6, 2, 3, 2), stride=(2, 1), padding=((1, 0), (2, 1)),
    dilation=(1, 2), groups=2, bias=True,
)


def index(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True, nonnegative=True)


a, b, c, d = (index(v) for v in "abcd")


def loops(*ranges: tuple[sp.Symbol, int, int]) -> tuple[Loop, ...]:
    return tuple(Loop(v, sp.Integer(lo), sp.Integer(hi)) for v, lo, hi in ranges)


# -- the IR is plain data ----------------------------------------------------------------------


def plain_leaves(value, path="module"):
    """Yield (path, leaf) for every non-container value inside a dataclass tree."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from plain_leaves(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            yield from plain_leaves(item, f"{path}[{i}]")
    else:
        yield path, value


@pytest.mark.parametrize("spec", [LECTURE, GROUPED], ids=["lecture", "grouped"])
def test_ir_holds_only_str_and_int(spec: ConvSpec) -> None:
    module = lower(spec)
    for path, leaf in plain_leaves(module):
        assert type(leaf) in (str, int, bool), f"{path} is {type(leaf).__name__}: {leaf!r}"
    with pytest.raises(dataclasses.FrozenInstanceError):
        module.name = "other"  # type: ignore[misc]


def test_kernels_of_a_layer() -> None:
    assert [k.name for k in lower(LECTURE).kernels] == ["forward", "grad_input", "grad_weight"]
    module = lower(GROUPED, "float64")
    assert [k.name for k in module.kernels] == ["forward", "grad_input", "grad_weight", "grad_bias"]
    assert module.ctype == "double" and lower(LECTURE, np.float32).ctype == "float"
    assert module.layer == GROUPED.describe()
    assert [[a.name for a in k.args] for k in module.kernels] == [
        ["x", "w", "b", "out"],
        ["grad_out", "w", "grad_x"],
        ["x", "grad_out", "grad_w"],
        ["grad_out", "grad_b"],
    ]
    assert [[a.output for a in k.args] for k in module.kernels][0] == [False, False, False, True]


def test_loops_follow_the_general_form() -> None:
    """Free indices outside in the form's order (contiguous axis last), sums inside."""
    module = lower(GROUPED)
    expected = {
        "forward": (["n", "g", "k", "i", "j"], ["c", "r", "t"]),
        "grad_input": (["n", "g", "c", "y", "x"], ["k", "r", "t"]),
        "grad_weight": (["g", "k", "c", "r", "t"], ["n", "i", "j"]),
        "grad_bias": (["g", "k"], ["n", "i", "j"]),
    }
    for kernel in module.kernels:
        free, sums = expected[kernel.name]
        assert [l.var for l in kernel.free_loops] == free
        assert [l.var for l in kernel.sum_loops] == sums
    forward = module.kernel("forward")
    # out_h = (7 + 1 + 0 - 1*2 - 1)//2 + 1 = 3, out_w = (6 + 2 + 1 - 2*1 - 1)//1 + 1 = 7
    sizes = {"n": 2, "g": 2, "k": 3, "i": 3, "j": 7, "c": 2, "r": 3, "t": 2}
    assert {l.var: l.trips for l in forward.loops} == sizes


def test_loop_extents_name_macros_of_the_right_value() -> None:
    for spec in (LECTURE, GROUPED):
        module = lower(spec)
        values = {m.name: m.value for m in module.macros}
        for kernel in module.kernels:
            for loop in kernel.loops:
                assert loop.extent, f"{kernel.name}: loop {loop.var} has no size macro"
                assert values[loop.extent] == loop.trips
    module = lower(GROUPED)
    # the output tile (y, x) runs inside the sums, and the last sum (t) inside the row
    assert [l.extent for l in module.kernel("grad_input").loops] == [
        "N", "GROUPS", "C_G", "K_G", "K_H", "IN_H", "IN_W", "K_W",
    ]


def test_size_macros() -> None:
    values = {m.name: m.value for m in lower(GROUPED).macros}
    assert values["OUT_H"] == GROUPED.out_spatial[0] and values["OUT_W"] == GROUPED.out_spatial[1]
    assert (values["P_H"], values["Q_H"], values["P_W"], values["Q_W"]) == (1, 0, 2, 1)
    assert values["INPUT_SIZE"] == int(np.prod(GROUPED.input))
    assert values["BIAS_SIZE"] == 6 and "BIAS_SIZE" not in {m.name for m in lower(LECTURE).macros}
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in values)


def test_parallel_loops_are_the_batch_and_channel_loops() -> None:
    """Each parallel iteration must own a disjoint set of outputs: the target's offset must
    depend on every parallel index (else two iterations would write the same entry)."""
    module = lower(GROUPED)
    depth = {kernel.name: kernel.parallel for kernel in module.kernels}
    assert depth == {"forward": 3, "grad_input": 3, "grad_weight": 3, "grad_bias": 2}
    assert lower(LECTURE).kernel("forward").parallel == 2
    for kernel in module.kernels:
        used = set(re.findall(r"\b[a-z]\b", kernel.target))
        assert {l.var for l in kernel.loops[: kernel.parallel]} <= used
        assert kernel.parallel <= kernel.reduce_at


def test_accumulator_start() -> None:
    assert lower(GROUPED).kernel("forward").init == "b != NULL ? b[k + 3*g] : 0"
    assert lower(LECTURE).kernel("forward").init == "0"
    assert lower(LECTURE).kernel("forward").unused == ("b",)
    assert all(k.init == "0" for k in lower(GROUPED).kernels if k.name != "forward")


# -- pass: prune guards --------------------------------------------------------------------------


affine = st.builds(
    lambda ca, cb, k, op: op(ca * a + cb * b + k, 0),
    st.integers(-3, 3), st.integers(-3, 3), st.integers(-8, 8),
    st.sampled_from([sp.Ge, sp.Gt, sp.Le, sp.Lt]),
)


@settings(max_examples=200, deadline=None)
@given(guard=affine, hi_a=st.integers(0, 4), lo_b=st.integers(0, 2), span_b=st.integers(0, 3))
def test_prune_keeps_exactly_the_guards_that_can_fail(guard, hi_a: int, lo_b: int, span_b: int) -> None:
    box = loops((a, 0, hi_a), (b, lo_b, lo_b + span_b))
    if guard in (sp.true, sp.false):
        return
    points = itertools.product(range(0, hi_a + 1), range(lo_b, lo_b + span_b + 1))
    holds_everywhere = all(bool(guard.subs({a: pa, b: pb})) for pa, pb in points)
    assert always_holds(guard, {l.var: (int(l.lo), int(l.hi)) for l in box}) == holds_everywhere
    assert prune_guards([guard], box) == (() if holds_everywhere else (guard,))


def test_prune_keeps_what_it_cannot_decide() -> None:
    box = loops((a, 0, 3), (b, 0, 3))
    undecidable = [sp.Eq(sp.Mod(a + b, 2), 0), sp.Le(0, Quotient(a - b, 2)), sp.Le(a * b, 20)]
    assert prune_guards(undecidable, box) == tuple(undecidable)


def test_no_guards_survive_without_padding_in_the_forward() -> None:
    assert all(not l.guards and not l.bounded for l in lower(LECTURE).kernel("forward").loops)
    # the full convolution: its guards survive, as loop bounds of the tile
    assert any(l.guards or l.bounded for l in lower(LECTURE).kernel("grad_input").loops)


# -- pass: choose the tile ------------------------------------------------------------------------


def test_the_innermost_loop_runs_over_contiguous_independent_entries() -> None:
    """Forward and grad_input accumulate an output tile (the whole plane when it fits), the
    weight and bias gradients one partial sum per lane of the upstream gradient's row."""
    module = lower(ConvSpec(input=(4, 6, 14, 14), weight=(16, 6, 5, 5), bias=True))
    kinds = {k.name: (k.tile_kind, [l.var for l in k.tile_loops]) for k in module.kernels}
    assert kinds == {
        "forward": ("outputs", ["i", "j"]),
        "grad_input": ("outputs", ["y", "x"]),
        "grad_weight": ("lanes", ["r", "t", "j"]),
        "grad_bias": ("lanes", ["j"]),
    }
    forward = module.kernel("forward")
    assert forward.inner == 1 and [l.var for l in forward.inner_loops] == ["t"]
    for kernel in module.kernels:
        assert kernel.loops[len(kernel.loops) - kernel.inner - 1] == kernel.tile_loops[-1]
        free, sums = {l.var for l in kernel.free_loops}, {l.var for l in kernel.sum_loops}
        assert not free & sums and free | sums == {l.var for l in kernel.loops}
        if kernel.tile_kind == "outputs":  # the tile picks the output entry
            used = set(re.findall(r"\b[a-z]\b", kernel.target))
            assert {l.var for l in kernel.tile_loops} <= used


def test_tiles_fit_the_limit() -> None:
    big_plane = lower(ConvSpec(input=(1, 1, 90, 90), weight=(2, 1, 3, 3))).kernel("forward")
    assert 88 * 88 > MAX_TILE >= 88
    assert [l.var for l in big_plane.tile_loops] == ["j"]  # the plane is too big: one row
    long_row = lower(ConvSpec(input=(1, 1, MAX_TILE + 10), weight=(1, 1, 2))).kernel("forward")
    assert long_row.tile_kind == "" and long_row.tile == 0  # even a row is too big: scalar
    assert "acc[" not in long_row.term


def test_padding_guards_become_bounds_of_the_innermost_loop() -> None:
    """With stride 1, every guard on a tile index turns into its range: the innermost loop
    tests nothing per element."""
    module = lower(ConvSpec(input=(1, 2, 6, 6), weight=(2, 2, 3, 3), padding=1, bias=True))
    for kernel in module.kernels:
        row = kernel.tile_loops[-1]
        assert not row.guards, kernel.name
        # folded sums keep their guards for the border; each of them bounds the row's interior
        assert all(row.var in re.findall(r"\b[a-z]\b", g) for l in kernel.inner_loops for g in l.guards)
        assert bool(row.interior_start) == any(l.guards for l in kernel.inner_loops)
    forward = module.kernel("forward")
    assert forward.inner == 1 and forward.tile_loops[-1].interior_start == "1"  # j >= 1 - t for t = 0
    assert forward.tile_loops[-1].interior_stop == "4"  # j + t - 1 <= 5 for t = 2


def test_small_layers_run_on_one_thread() -> None:
    small = lower(LECTURE)
    assert all(not k.threaded for k in small.kernels)
    assert lower(LECTURE).kernel("forward").work == 1 * 1 * 2 * 2 * 1 * 2 * 2
    big = lower(ConvSpec(input=(16, 6, 14, 14), weight=(16, 6, 5, 5))).kernel("forward")
    assert big.threaded and big.work == 16 * 16 * 10 * 10 * 6 * 5 * 5


# -- pass: loop bounds from guards -----------------------------------------------------------------

#: The index helpers of the C template, written again from their definitions (floor and ceiling
#: division, first index of a residue class), in Python's exact integer arithmetic.
HELPERS = {
    "ix_max": max,
    "ix_min": min,
    "ix_floor_div": lambda a, b: a // b,
    "ix_ceil_div": lambda a, b: -((-a) // b),
    "ix_first": lambda start, r, b: next(v for v in range(start, start + b) if (v - r) % b == 0),
}
u, v = index("u"), index("v")

inequalities = st.builds(
    lambda cv, cu, k, op: op(cv * v + cu * u + k, 0),
    st.integers(-3, 3), st.integers(-2, 2), st.integers(-6, 6),
    st.sampled_from([sp.Ge, sp.Gt, sp.Le, sp.Lt]),
)


@st.composite
def strided(draw) -> list[sp.Basic]:
    """A divisibility guard and inequalities on its exact quotient, as a strided form has them."""
    e = draw(st.sampled_from([1, -1])) * v + draw(st.integers(-2, 2)) * u + draw(st.integers(-3, 3))
    s = draw(st.integers(2, 3))
    guards = [sp.Eq(sp.Mod(e, s), 0)]
    if draw(st.booleans()):
        guards.append(sp.Le(0, Quotient(e, s)))
    if draw(st.booleans()):
        guards.append(sp.Le(Quotient(e, s), draw(st.integers(0, 3))))
    return guards


def _holds(guards, point) -> bool:
    """In order, stopping at the first failure: a quotient is only looked at where it is exact."""
    for guard in guards:
        value = guard.subs(point)
        if value not in (sp.true, sp.false):
            value = value.doit()
        if not bool(value):
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(plain=st.lists(inequalities, max_size=3), stride=st.one_of(st.just([]), strided()),
       hi_v=st.integers(0, 7), hi_u=st.integers(0, 3))
def test_bounds_visit_exactly_the_indices_where_the_guards_hold(plain, stride, hi_v: int, hi_u: int) -> None:
    guards = [g for g in stride + plain if g not in (sp.true, sp.false)]
    if sp.false in plain:
        return
    loop = Loop(v, sp.Integer(0), sp.Integer(hi_v))
    bounds = bound_loop(loop, guards, guards)
    for pu in range(hi_u + 1):
        start = eval(bounds.start or "0", {**HELPERS, "u": pu})
        stop = eval(bounds.stop or str(hi_v), {**HELPERS, "u": pu})
        visited = [pv for pv in range(start, stop + 1, bounds.step) if _holds(bounds.rest, {u: pu, v: pv})]
        expected = [pv for pv in range(hi_v + 1) if _holds(guards, {u: pu, v: pv})]
        assert visited == expected, (guards, bounds)


def test_bounds_read_like_the_guards() -> None:
    loop = Loop(v, sp.Integer(0), sp.Integer(9))
    bounds = bound_loop(loop, [sp.Le(0, 2 * v + u - 1), sp.Le(v + u, 12)], [])
    assert (bounds.start, bounds.stop, bounds.step, bounds.rest) == (
        "ix_max(0, ix_ceil_div(1 - u, 2))", "ix_min(9, 12 - u)", 1, ())
    strided_guards = [sp.Eq(sp.Mod(v - u + 1, 2), 0), sp.Le(0, Quotient(v - u + 1, 2))]
    bounds = bound_loop(loop, strided_guards, strided_guards)
    assert (bounds.start, bounds.step) == ("ix_first(ix_max(0, u - 1), u - 1, 2)", 2)
    untouched = sp.Le(v * u, 3)  # not affine: stays a test
    assert bound_loop(loop, [untouched], [untouched]).rest == (untouched,)


# -- pass: place guards --------------------------------------------------------------------------


def test_place_guards_at_the_shallowest_binding_loop() -> None:
    nest = Nest(loops((a, 0, 3), (b, 0, 3), (c, 0, 3), (d, 0, 3)), reduce_at=1)
    only_c = sp.Le(c, 2)
    b_and_d = sp.Le(b + d, 4)
    only_free = sp.Le(a, 2)  # must still filter terms, not stores: goes to the first sum loop
    constant = sp.false
    placed = place_guards([only_c, b_and_d, only_free, constant], nest)
    assert placed == ((), (only_free, constant), (only_c,), (b_and_d,))


def test_place_guards_rejects_unbound_symbols() -> None:
    nest = Nest(loops((a, 0, 3), (b, 0, 3)), reduce_at=1)
    with pytest.raises(ValueError, match="no loop binds"):
        place_guards([sp.Le(a + c, 2)], nest)
    with pytest.raises(ValueError, match="no summation loop"):
        place_guards([sp.Le(a, 2)], Nest(loops((a, 0, 3)), reduce_at=1))


def test_lowered_guards_only_use_bound_indices() -> None:
    """In the C of every kernel, a guard mentions only indices of its loop and outer loops, and
    at least one index bound exactly at its loop (else it belonged further out)."""
    for kernel in lower(GROUPED).kernels:
        bound: set[str] = set()
        for position, loop in enumerate(kernel.loops):
            bound.add(loop.var)
            for guard in loop.guards:
                names = set(re.findall(r"\b[a-z]\b", guard))
                assert names <= bound, f"{kernel.name}: {guard} at loop {loop.var}"
                assert loop.var in names or position == kernel.reduce_at, f"{guard} placed too deep"


def test_nest_loops_refuses_symbolic_ranges() -> None:
    from symconv import derive

    form = derive(LECTURE).general(symbolic=True)["O"]
    with pytest.raises(ValueError, match="non-numeric range"):
        nest_loops(form)


# -- pass: flatten accesses ----------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(data=st.data(), shape=st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_flat_offset_is_numpys_row_major_index(data, shape: list[int]) -> None:
    point = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
    symbols = [index(f"v{i}") for i in range(len(shape))]
    offset = flat_offset(symbols, shape)
    value = sp.sympify(offset).subs(dict(zip(symbols, point)))
    assert int(value) == int(np.ravel_multi_index(point, shape))


def test_flat_offset_reads_like_the_layout() -> None:
    i, r, j, t, n = (index(v) for v in "irjtn")
    access = sp.IndexedBase("x")[flat_offset((n, 0, i + r, j + t), (1, 1, 3, 3))]
    assert c_code(access) == "x[9*n + 3*(i + r) + j + t]"
    with pytest.raises(ValueError, match="2 indices for an array of shape"):
        flat_offset((i, j), (2, 2, 2))


# -- printing --------------------------------------------------------------------------------------


def test_quotient_and_mod_print_as_c_integer_operations() -> None:
    r, y = index("r"), index("y")
    q = Quotient(y - r + 1, 2)
    assert c_code(sp.Eq(sp.Mod(y - r + 1, 2), 0)) == "(-r + y + 1) % 2 == 0"
    assert c_code(7 * q + 3) == "7*((-r + y + 1)/2) + 3"  # never (7*(...))/2
    assert c_code(-q) == "-((-r + y + 1)/2)"
    assert c_code(sp.Le(0, q)) == "0 <= (-r + y + 1)/2"


def test_mod_outside_a_divisibility_test_is_refused() -> None:
    with pytest.raises(NotImplementedError, match="divisibility"):
        c_code(sp.Le(sp.Mod(a, 3), 1))


def test_quotient_in_an_index_keeps_its_division_exact() -> None:
    """With an exact division, printing must not change the value: evaluate the C text with
    C semantics (truncating division) at every point where the guard holds."""
    y, r = index("y"), index("r")
    expr = 7 * Quotient(y - 2 * r + 1, 3) + y
    text = c_code(expr)
    for vy, vr in itertools.product(range(9), range(3)):
        if (vy - 2 * vr + 1) % 3:
            continue
        python = text.replace("y", str(vy)).replace("r", str(vr))
        python = re.sub(r"\(([^()]*)\)/3", lambda m: f"int(({m.group(1)})/3)", python)
        assert eval(python) == 7 * ((vy - 2 * vr + 1) // 3) + vy


# -- names, errors, printing the IR ----------------------------------------------------------------


def test_module_names() -> None:
    assert module_name(LECTURE) == "conv2d_1x1x3x3_1x1x2x2_s1_p0_d1_g1_f32"
    assert module_name(LECTURE, "float64").endswith("_f64")
    assert module_name(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2), bias=True)).endswith("_b_f32")
    hashed = module_name(GROUPED)  # asymmetric padding: hashed
    assert re.fullmatch(r"conv2d_[0-9a-f]{10}_f32", hashed)
    other = ConvSpec(input=(2, 4, 7, 6), weight=(6, 2, 3, 2), stride=(2, 1), padding=((1, 0), (2, 1)),
                     dilation=(1, 2), groups=2, bias=False)
    assert module_name(other) != hashed
    assert lower(LECTURE, name="lecture").name == "lecture"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"dtype": "int32"}, ValueError, "dtype must be 'float32' or 'float64', but got 'int32'"),
        ({"dtype": "half"}, ValueError, "dtype must be"),
        ({"name": "my-layer"}, ValueError, "name must be a C identifier"),
        ({"name": "for"}, ValueError, "name must be a C identifier"),
        ({"name": "x" * 65}, ValueError, "at most 64 characters"),
    ],
)
def test_bad_arguments(kwargs, error, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        lower(LECTURE, **kwargs)


def test_bad_spec() -> None:
    with pytest.raises(TypeError, match="spec must be a ConvSpec, but got dict"):
        lower({"input": (1, 1, 3, 3)})  # type: ignore[arg-type]


def test_pretty_shows_the_loop_nest() -> None:
    text = str(lower(GROUPED).kernel("grad_input"))
    lines = text.splitlines()
    assert lines[0].startswith("kernel grad_input(grad_out, w, grad_x)")
    assert lines[1].strip() == "for n in 0..1"  # too little work for threads
    assert any(line.strip().startswith("for y in ix_first(") and line.endswith("step 2") for line in lines)
    assert any(line.strip().startswith("simd for x in ") for line in lines)
    assert lines[-1].strip().startswith("grad_x[") and lines[-1].endswith("= acc[y][x] for every y, x")
    # nesting: every loop line is indented one step deeper than the previous one
    loop_lines = [line for line in lines if line.strip().startswith(("for ", "parallel for ", "simd for "))]
    indents = [len(line) - len(line.lstrip()) for line in loop_lines]
    assert indents == sorted(indents) and len(set(indents)) == len(indents)
    assert "module" in str(lower(LECTURE)).splitlines()[0]


def test_formula_comment_names_the_macros() -> None:
    forward = lower(GROUPED).kernel("forward")
    assert forward.formula[0].startswith("O[n, K_G*g + k, i, j] = b[K_G*g + k] + Σ_{c<C_G, r<K_H, t<K_W}")
    grad_input = lower(GROUPED).kernel("grad_input")
    assert "where (-D_H*r + P_H + y) % S_H == 0" in grad_input.formula
