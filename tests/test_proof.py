"""The proof: verify() holds on random layers, fails loudly on a tampered derivation, and its
lecture-style building blocks compute what numpy computes."""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from numpy.lib.stride_tricks import sliding_window_view

from symconv import ConvSpec, Derivation, derive
from symconv.proof import dilate, full_conv, reference_gradients, rot180, valid_xcorr, verify, zero_pad

from .reference import conv_grad_bias, conv_grad_input, conv_grad_weight
from .strategies import small_specs

LECTURE = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
BUSY = ConvSpec(input=(1, 2, 5, 4), weight=(4, 1, 3, 2), stride=(2, 1), padding=((1, 0), (0, 1)), groups=2, bias=True)

# -- verify() holds ------------------------------------------------------------------------------


def expected_check_names(spec: ConvSpec) -> list[str]:
    return ["dW", "dX"] + (["db"] if spec.bias else []) + ["general"]


@settings(max_examples=20, deadline=None)
@given(spec=small_specs(max_terms=200))
def test_verify_holds_on_random_layers(spec):
    result = derive(spec).verify()
    assert result.ok and bool(result), result.report()
    assert [c.name for c in result.checks] == expected_check_names(spec)
    entries = {c.name: c.entries for c in result.checks}
    assert entries["dW"] == math.prod(spec.weight) and entries["dX"] == math.prod(spec.input)
    expanded = math.prod(spec.output) + math.prod(spec.input) + math.prod(spec.weight)
    assert entries["general"] == expanded + (spec.out_channels if spec.bias else 0)
    report = result.report()
    assert report.splitlines()[0] == f"Layer   {spec.describe()}"
    assert report.count("✓ proven") == len(result.checks) and "✗" not in report
    assert report.endswith("All identities hold.")


def test_verify_without_the_general_form():
    result = verify(derive(BUSY), include_general=False)
    assert result.ok and [c.name for c in result.checks] == ["dW", "dX", "db"]


def test_verify_holds_on_an_empty_batch():
    d = derive(ConvSpec(input=(0, 2, 4, 4), weight=(2, 2, 3, 3), bias=True))
    result = d.verify()
    assert result.ok, result.report()
    # no upstream gradient at all: the weight and bias gradients are exactly zero
    assert all(e == 0 for e in d.dW.ravel()) and all(e == 0 for e in d.db.ravel())


def test_verify_refuses_a_layer_too_large_to_expand():
    d = derive(ConvSpec(input=(1, 16, 32, 32), weight=(16, 16, 3, 3)), max_terms=1000)
    pattern = r"layer too large for an element-wise derivation: \d+ multiply terms, max_terms is 1000"
    with pytest.raises(ValueError, match=pattern):
        d.verify()


# -- verify() can fail ---------------------------------------------------------------------------


def drop_first_term(expr: sp.Expr) -> sp.Expr:
    terms = sp.Add.make_args(expr)
    assert len(terms) >= 2, f"need an entry with two terms to tamper, got {expr}"
    return sp.Add(*terms[1:])


def tampered(array: np.ndarray, index: tuple[int, ...], change=drop_first_term) -> np.ndarray:
    copy = array.copy()
    copy[index] = change(copy[index])
    return copy


def failing_check(result, name: str):
    (check,) = [c for c in result.checks if c.name == name]
    assert not check.ok
    return check


@pytest.mark.parametrize(
    ("name", "index"),
    [("dX", (0, 0, 1, 1)), ("dX", (0, 0, 2, 1)), ("dW", (0, 0, 1, 0)), ("dW", (0, 0, 1, 1))],
)
def test_verify_names_the_first_tampered_entry(name, index):
    d = derive(LECTURE)
    original = getattr(d, name)[index]
    d.__dict__[name] = tampered(getattr(d, name), index)  # replaces the cached array
    changed = getattr(d, name)[index]
    result = d.verify()
    assert not result.ok and not bool(result)
    mismatch = failing_check(result, name).mismatch
    assert (mismatch.array, mismatch.index) == (name, index)
    assert mismatch.derived == changed
    assert sp.expand(mismatch.expected - original) == 0
    # the general form disagrees with the tampered entry too
    general = failing_check(result, "general").mismatch
    assert (general.array, general.index) == (f"general {name}", index)
    # every other identity still holds
    other = {"dX": "dW", "dW": "dX"}[name]
    assert [c for c in result.checks if c.name == other][0].ok
    report = result.report()
    label = f"{name}[{', '.join(map(str, index))}] differs"
    assert label in report and f"general {label}" in report
    assert f"derived:  {changed}" in report and f"expected: {mismatch.expected}" in report
    assert f"✗ FAILED  {name}:" in report and "✓ proven" in report
    assert report.endswith("Some identities do NOT hold.")


def test_verify_reports_the_first_of_several_tampered_entries():
    d = derive(LECTURE)
    dx = tampered(tampered(d.dX, (0, 0, 2, 2), lambda e: e + 1), (0, 0, 1, 0))
    d.__dict__["dX"] = dx
    mismatch = failing_check(d.verify(), "dX").mismatch
    assert mismatch.index == (0, 0, 1, 0)  # C order: row 1 comes before row 2


def test_verify_catches_a_swapped_weight():
    """Same number of terms, one wrong filter entry: the kind of typo the lectures have."""
    d = derive(LECTURE)
    w = d.W[0, 0]
    swap = {w[0, 1]: w[1, 0], w[1, 0]: w[0, 1]}
    index = (0, 0, 1, 1)  # ∂L/∂X₂₂ uses all four filter entries
    d.__dict__["dX"] = tampered(d.dX, index, lambda e: e.xreplace(swap))
    mismatch = failing_check(d.verify(), "dX").mismatch
    assert mismatch.index == index
    assert len(sp.Add.make_args(mismatch.derived)) == len(sp.Add.make_args(mismatch.expected)) == 4


class BiasOffByOne(Derivation):
    """A derivation whose bias gradient forgets the last upstream entry."""

    @cached_property
    def db(self):
        right = Derivation.db.func(self)
        return tampered(right, (1,), lambda e: e - self.G[-1, 1].ravel()[-1])


def test_verify_catches_a_wrong_bias_gradient_in_a_subclass():
    d = BiasOffByOne(BUSY)
    result = d.verify()
    mismatch = failing_check(result, "db").mismatch
    assert (mismatch.array, mismatch.index) == ("db", (1,))
    assert failing_check(result, "general").mismatch.array == "general db"
    assert all(c.ok for c in result.checks if c.name in ("dW", "dX"))


def drop_a_product(expr: sp.Expr) -> sp.Expr:
    """Drop the first X·W product (keep the bias)."""
    terms = list(sp.Add.make_args(expr))
    products = [t for t in terms if isinstance(t, sp.Mul)]
    terms.remove(products[0])
    return sp.Add(*terms)


def test_a_wrong_forward_equation_makes_wrong_gradients_and_verify_sees_it():
    d = derive(BUSY)
    index = (0, 3, 1, 1)
    d.__dict__["O"] = tampered(d.O, index, drop_a_product)  # before any gradient is derived
    result = d.verify()
    general = failing_check(result, "general").mismatch
    assert (general.array, general.index) == ("general O", index)
    failing_check(result, "dX")
    failing_check(result, "dW")


def test_a_forward_equation_out_of_step_with_its_gradients_is_caught_by_the_general_form():
    d = derive(BUSY)
    d.dX, d.dW, d.db  # noqa: B018 - derive the gradients from the right equations first
    index = (0, 3, 1, 1)
    d.__dict__["O"] = tampered(d.O, index, drop_a_product)
    general = failing_check(d.verify(), "general").mismatch
    assert (general.array, general.index) == ("general O", index)
    # the lecture identities are about the gradients only, and those are right
    assert verify(d, include_general=False).ok


# -- the reference gradients, evaluated numerically, match the numpy oracle -----------------------


@settings(max_examples=15, deadline=None)
@given(spec=small_specs(max_terms=200), seed=st.integers(0, 2**32 - 1))
def test_reference_gradients_match_the_numpy_oracle(spec, seed):
    d = derive(spec)
    rng = np.random.default_rng(seed)
    values, numbers = {}, {}
    for name in ("X", "W", "G"):
        numbers[name] = rng.integers(-4, 5, size=getattr(d, name).shape)
        values.update(zip(getattr(d, name).ravel(), (sp.Integer(int(v)) for v in numbers[name].ravel())))
    reference = reference_gradients(d)

    def evaluate(array):
        return np.array([int(sp.sympify(e).xreplace(values)) for e in array.ravel()]).reshape(array.shape)

    args = (spec.stride, spec.padding, spec.dilation, spec.groups)
    x, w, g = numbers["X"], numbers["W"], numbers["G"]
    np.testing.assert_array_equal(evaluate(reference["dW"]), conv_grad_weight(x, g, spec.weight, *args))
    np.testing.assert_array_equal(evaluate(reference["dX"]), conv_grad_input(g, w, spec.input, *args))
    if spec.bias:
        np.testing.assert_array_equal(evaluate(reference["db"]), conv_grad_bias(g))
    else:
        assert "db" not in reference


# -- the building blocks, on numbers ------------------------------------------------------------


def as_objects(a: np.ndarray) -> np.ndarray:
    """The same numbers as SymPy Integers in an object array (what the proof works on)."""
    out = np.empty(a.shape, dtype=object)
    for index in np.ndindex(*a.shape):
        out[index] = sp.Integer(int(a[index]))
    return out


def as_ints(a: np.ndarray) -> np.ndarray:
    return np.array([int(v) for v in a.ravel()], dtype=np.int64).reshape(a.shape)


def small_int_arrays(min_dims: int = 1, max_dims: int = 3, max_side: int = 4):
    return hnp.arrays(
        np.int64, hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side),
        elements=st.integers(-9, 9),
    )


def test_dilate_inserts_zeros_between_entries():
    got = dilate(as_objects(np.array([1, 2, 3])), (3,))
    np.testing.assert_array_equal(as_ints(got), [1, 0, 0, 2, 0, 0, 3])


@settings(max_examples=60, deadline=None)
@given(a=small_int_arrays(), data=st.data())
def test_dilate_matches_a_kronecker_product(a, data):
    factors = tuple(data.draw(st.integers(1, 3)) for _ in a.shape)
    unit = np.zeros(factors, dtype=np.int64)
    unit[(0,) * a.ndim] = 1
    # kron spreads every entry over a factor-sized block; the trailing zeros are not "between"
    spread = np.kron(a, unit)[tuple(slice(0, (n - 1) * f + 1) for n, f in zip(a.shape, factors))]
    np.testing.assert_array_equal(as_ints(dilate(as_objects(a), factors)), spread)


@settings(max_examples=40, deadline=None)
@given(a=small_int_arrays())
def test_rot180_flips_every_axis(a):
    np.testing.assert_array_equal(as_ints(rot180(as_objects(a))), np.flip(a))
    if a.ndim == 2:
        np.testing.assert_array_equal(as_ints(rot180(as_objects(a))), np.rot90(a, 2))


@settings(max_examples=40, deadline=None)
@given(a=small_int_arrays(), data=st.data())
def test_zero_pad_matches_numpy(a, data):
    pads = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in a.shape]
    got = zero_pad(as_objects(a), pads)
    np.testing.assert_array_equal(as_ints(got), np.pad(a, pads))
    assert all(isinstance(v, sp.Integer) for v in got.ravel())


@settings(max_examples=60, deadline=None)
@given(a=small_int_arrays(1, 1, 7), v=small_int_arrays(1, 1, 7))
def test_valid_xcorr_1d_matches_np_correlate(a, v):
    if len(v) > len(a):
        a, v = v, a
    np.testing.assert_array_equal(as_ints(valid_xcorr(as_objects(a), as_objects(v))), np.correlate(a, v, "valid"))


@settings(max_examples=60, deadline=None)
@given(a=small_int_arrays(1, 1, 7), v=small_int_arrays(1, 1, 7))
def test_full_conv_1d_matches_np_convolve(a, v):
    np.testing.assert_array_equal(as_ints(full_conv(as_objects(a), as_objects(v))), np.convolve(a, v, "full"))


@settings(max_examples=60, deadline=None)
@given(image=small_int_arrays(2, 3, 5), data=st.data())
def test_valid_xcorr_matches_sliding_windows(image, data):
    kernel_shape = tuple(data.draw(st.integers(1, n)) for n in image.shape)
    kernel = data.draw(hnp.arrays(np.int64, kernel_shape, elements=st.integers(-9, 9)))
    windows = sliding_window_view(image, kernel_shape)  # windows[u][v] = image[u + v]
    axes = tuple(range(image.ndim, 2 * image.ndim))
    want = (windows * kernel).sum(axis=axes)
    np.testing.assert_array_equal(as_ints(valid_xcorr(as_objects(image), as_objects(kernel))), want)


@settings(max_examples=60, deadline=None)
@given(image=small_int_arrays(2, 3, 4), data=st.data())
def test_full_conv_matches_scatter_definition(image, data):
    kernel_shape = tuple(data.draw(st.integers(1, 3)) for _ in image.shape)
    kernel = data.draw(hnp.arrays(np.int64, kernel_shape, elements=st.integers(-9, 9)))
    # full convolution: every image entry drops a scaled copy of the kernel at its own position
    want = np.zeros(tuple(i + k - 1 for i, k in zip(image.shape, kernel.shape)), dtype=np.int64)
    for index in np.ndindex(*image.shape):
        want[tuple(slice(i, i + k) for i, k in zip(index, kernel.shape))] += image[index] * kernel
    np.testing.assert_array_equal(as_ints(full_conv(as_objects(image), as_objects(kernel))), want)


def test_full_conv_on_symbols_matches_np_convolve():
    a = np.array(sp.symbols("a0:4"), dtype=object)
    f = np.array(sp.symbols("f0:3"), dtype=object)
    want = np.convolve(a, f)
    got = full_conv(a, f)
    assert got.shape == want.shape
    assert all(sp.expand(x - y) == 0 for x, y in zip(got, want))
