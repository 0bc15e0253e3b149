"""The element-wise derivation, evaluated at random numbers, matches the numpy oracle."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from symconv import ConvSpec, derive

from .reference import conv_forward, conv_grad_bias, conv_grad_input, conv_grad_weight
from .strategies import small_specs


def evaluate(d, rng):
    """Random values for every symbol, and the derived arrays evaluated at them."""
    values = {}
    numbers = {}
    for name in ("X", "W", "b", "G"):
        symbols = getattr(d, name)
        if symbols is None:
            numbers[name] = None
            continue
        numbers[name] = rng.integers(-5, 6, size=symbols.shape).astype(np.float64)
        values.update(zip(symbols.ravel(), numbers[name].ravel()))
    evaluated = {}
    for name in ("O", "dX", "dW", "db"):
        exprs = getattr(d, name)
        if exprs is None:
            evaluated[name] = None
            continue
        flat = [float(sp.sympify(e).xreplace(values)) for e in exprs.ravel()]
        evaluated[name] = np.array(flat, dtype=np.float64).reshape(exprs.shape)
    return numbers, evaluated


def check_against_reference(spec, seed=0):
    d = derive(spec)
    numbers, got = evaluate(d, np.random.default_rng(seed))
    args = (spec.stride, spec.padding, spec.dilation, spec.groups)
    x, w, b, g = numbers["X"], numbers["W"], numbers["b"], numbers["G"]
    np.testing.assert_array_equal(got["O"], conv_forward(x, w, b, *args))
    np.testing.assert_array_equal(got["dX"], conv_grad_input(g, w, spec.input, *args))
    np.testing.assert_array_equal(got["dW"], conv_grad_weight(x, g, spec.weight, *args))
    if spec.bias:
        np.testing.assert_array_equal(got["db"], conv_grad_bias(g))
    else:
        assert got["db"] is None


def test_lecture_example_matches_reference():
    check_against_reference(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)))


def test_busy_example_matches_reference():
    spec = ConvSpec(input=(2, 4, 9, 9), weight=(6, 2, 3, 3), stride=2, padding=1, dilation=2, groups=2, bias=True)
    check_against_reference(spec)


@settings(max_examples=40, deadline=None)
@given(spec=small_specs(), seed=st.integers(0, 2**32 - 1))
def test_random_specs_match_reference(spec, seed):
    check_against_reference(spec, seed)


def test_max_terms_accepts_numpy_integers_and_enforces_them():
    spec = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))  # 16 multiply-adds per pass
    assert derive(spec, max_terms=np.int64(16)).O.shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="max_terms is 15"):
        derive(spec, max_terms=np.int32(15)).O  # noqa: B018
