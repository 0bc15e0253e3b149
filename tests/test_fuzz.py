"""Fuzzing every compiled kernel against the numpy reference, with hostile values in the arrays.

Every example draws a layer (or takes one of a few fixed ones) and arrays whose contents mix
ordinary values with NaN, ±Inf, ±0, huge values (whose products overflow), tiny ones and
subnormals; then forward, grad_input, grad_weight and grad_bias (both dtypes) are checked entry by
entry against an oracle built on ``tests/reference.py``:

* an entry with a NaN term (NaN·w, 0·±Inf) or with both a +Inf and a -Inf term must be NaN, one
  with only +Inf (-Inf) non-finite terms must be +Inf (-Inf);
* an entry of finite terms must be finite and within the rigorous rounding bound
  ``2·γ(n)·Σ|terms| + 2·n·η`` of the exact sum (γ(n) = n·u / (1 − n·u), u the unit roundoff, η
  the smallest subnormal), computed in a wider type (float64 for float32 kernels, long double
  for float64 ones);
* where Σ|terms| could overflow the kernel's type, the order of summation decides whether an
  Inf (or an Inf − Inf = NaN) appears, so only what holds in every order is required (a NaN term
  still forces NaN; a finite result is still within the bound);
* the NaN/±Inf pattern is also compared with the plain reference's own output, wherever that
  reference sums the same terms (see "padding" below).

Which terms an entry has is counted with the reference itself, applied to 0/1 indicator arrays
(``count(P, Q)`` = number of products u·v with u in P and v in Q), so the oracle shares no code
with the generator.

Padding (symconv's documented semantics). A padded position is not a variable of the layer: the
derivation, and so every kernel, sums over in-range input positions only, and the padding
contributes no term at all. The plain reference (and PyTorch) multiply an explicit zero padding,
so a ±Inf weight (or upstream gradient, in grad_weight) next to the border gives them
0·Inf = NaN where symconv gives ±Inf or a finite number; with finite data the two agree exactly.
The oracle here follows the derivation (indicator arrays pad with 0, i.e. "no term"), and
``tests/test_hostile_kernel.py`` checks the border cases against references written from the
in-range formula.

How long. The default hypothesis profile ("ci", tests/conftest.py) runs a few dozen examples.
The long run, to leave going for a while::

    SYMCONV_FUZZ=1 python -m pytest tests/test_fuzz.py --hypothesis-show-statistics
    # or: python -m pytest tests/test_fuzz.py --hypothesis-profile=fuzz --hypothesis-show-statistics

(random layers compile one kernel each, cached on disk; the fixed layers are cheap, so most of a
long run's examples are value fuzzing.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen.kernel import ConvKernel
from symconv import ConvSpec
from symconv.api import build
from tests.reference import conv_forward, conv_grad_bias, conv_grad_input, conv_grad_weight
from tests.strategies import small_specs

DTYPES = ("float32", "float64")
#: The type the exact sums are computed in, per kernel dtype.
WIDER = {"float32": np.float64, "float64": np.longdouble}

Bilinear = Callable[[np.ndarray, np.ndarray], np.ndarray]

# -- the oracle ---------------------------------------------------------------------------------


def bilinear_maps(spec: ConvSpec) -> dict[str, Bilinear]:
    """Each kernel as the reference's bilinear map of its two inputs (grad_bias: ``Σ u · v[0]``)."""
    hyper = (spec.stride, spec.padding, spec.dilation, spec.groups)
    return {
        "forward": lambda u, v: conv_forward(u, v, None, *hyper),
        "grad_input": lambda u, v: conv_grad_input(u, v, spec.input, *hyper),
        "grad_weight": lambda u, v: conv_grad_weight(u, v, spec.weight, *hyper),
        "grad_bias": lambda u, v: conv_grad_bias(u) * v[0],
    }


def unit_roundoff(dtype: object) -> float:
    return float(np.finfo(dtype).eps) / 2


def gamma(n: np.ndarray, u: float) -> np.ndarray:
    """Higham's γ(n) = n·u / (1 − n·u): the relative error bound of an n-term dot product."""
    return n * u / (1 - n * u)


@dataclass
class Terms:
    """What the terms of every output entry are, from indicator arrays (padding is no term)."""

    nan: np.ndarray  # NaN terms (NaN·v, 0·±Inf)
    pos: np.ndarray  # +Inf terms
    neg: np.ndarray  # -Inf terms
    count: np.ndarray  # all terms
    exact: np.ndarray  # Σ of the finite terms, in the wider type
    bound: np.ndarray  # Σ |finite terms|, in the wider type


def count_terms(R: Bilinear, u: np.ndarray, v: np.ndarray, wider: type) -> Terms:
    """Classify the products u_i·v_j of every entry of ``R(u, v)``."""

    def count(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return R(p.astype(np.float64), q.astype(np.float64))

    ones_u, ones_v = np.ones(u.shape), np.ones(v.shape)
    fin_u = np.isfinite(u)
    with np.errstate(invalid="ignore"):
        u_pos, u_neg = fin_u & (u > 0), fin_u & (u < 0)
        nan = (count(np.isnan(u), ones_v) + count(ones_u, np.isnan(v))
               + count(u == 0, np.isinf(v)) + count(np.isinf(u), v == 0))
        pos = (count(u == np.inf, v > 0) + count(u == -np.inf, v < 0)
               + count(u_pos, v == np.inf) + count(u_neg, v == -np.inf))
        neg = (count(u == np.inf, v < 0) + count(u == -np.inf, v > 0)
               + count(u_pos, v == -np.inf) + count(u_neg, v == np.inf))
    uf = np.where(fin_u, u, 0).astype(wider)
    vf = np.where(np.isfinite(v), v, 0).astype(wider)
    return Terms(nan, pos, neg, count(ones_u, ones_v), R(uf, vf), R(np.abs(uf), np.abs(vf)))


def add_bias(terms: Terms, b: np.ndarray, rank: int, wider: type) -> Terms:
    """The forward's bias is one more term of every entry of its output channel."""
    shape = (1, b.size) + (1,) * rank
    col = b.reshape(shape)
    finite = np.where(np.isfinite(col), col, 0).astype(wider)
    return Terms(
        terms.nan + np.isnan(col), terms.pos + (col == np.inf), terms.neg + (col == -np.inf),
        terms.count + 1, terms.exact + finite, terms.bound + np.abs(finite),
    )


def first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def check_entries(got: np.ndarray, terms: Terms, dtype: str, what: str) -> None:
    """The IEEE rules of the module docstring, entry by entry."""
    wider = WIDER[dtype]
    n = np.maximum(terms.count, 1)
    rel = 2 * gamma(n, unit_roundoff(dtype)) + gamma(n, unit_roundoff(wider))
    tol = rel * terms.bound + 2 * n * float(np.finfo(dtype).smallest_subnormal)
    safe = terms.bound * (1 + gamma(n, unit_roundoff(dtype))) < float(np.finfo(dtype).max)
    must_nan = (terms.nan > 0) | ((terms.pos > 0) & (terms.neg > 0))
    pos_only = ~must_nan & (terms.pos > 0)
    neg_only = ~must_nan & (terms.neg > 0)
    finite_only = ~must_nan & ~pos_only & ~neg_only
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.isfinite(got) & (np.abs(got.astype(wider) - terms.exact) <= tol)
    rules = [
        ("must be NaN (a NaN term, or +Inf and -Inf terms)", must_nan, np.isnan(got)),
        ("must be +Inf (only +Inf non-finite terms)", pos_only & safe, np.isposinf(got)),
        ("must be -Inf (only -Inf non-finite terms)", neg_only & safe, np.isneginf(got)),
        ("must be +Inf or NaN (+Inf terms; the finite ones may overflow)", pos_only & ~safe,
         np.isposinf(got) | np.isnan(got)),
        ("must be -Inf or NaN (-Inf terms; the finite ones may overflow)", neg_only & ~safe,
         np.isneginf(got) | np.isnan(got)),
        ("must be finite and within the rounding bound of the exact sum", finite_only & safe, close),
        ("must be non-finite (overflow) or within the rounding bound", finite_only & ~safe,
         close | ~np.isfinite(got)),
    ]
    for rule, where, ok in rules:
        bad = where & ~ok
        if bad.any():
            i = first_bad(bad)
            raise AssertionError(
                f"{what}{list(i)} = {got[i]!r} {rule}: exact {terms.exact[i]!r}, tolerance {tol[i]!r}, "
                f"terms {int(terms.count[i])} (NaN {int(terms.nan[i])}, +Inf {int(terms.pos[i])}, "
                f"-Inf {int(terms.neg[i])}), Σ|terms| {terms.bound[i]!r}; {int(bad.sum())} entries break it"
            )


def check_pattern_against_reference(got: np.ndarray, raw: np.ndarray, safe: np.ndarray, what: str) -> None:
    """NaN, +Inf and -Inf exactly where the plain reference has them (where no overflow is possible)."""
    for name, test in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        differ = safe & (test(got) != test(raw))
        if differ.any():
            i = first_bad(differ)
            raise AssertionError(f"{what}{list(i)} = {got[i]!r} but the numpy reference has {raw[i]!r} ({name})")


def reference_sums_same_terms(spec: ConvSpec, kernel: str) -> bool:
    """Whether the plain reference multiplies only the derivation's terms (no padding zeros)."""
    padded = any(lo or hi for lo, hi in spec.padding)
    return kernel in ("grad_input", "grad_bias") or not padded


def check_kernel(name: str, got: np.ndarray, spec: ConvSpec, dtype: str, u, v, b=None) -> None:
    """One kernel's output against the oracle (and the plain reference's NaN/Inf pattern)."""
    R = bilinear_maps(spec)[name]
    wider = WIDER[dtype]
    terms = count_terms(R, u, v, wider)
    if b is not None:
        terms = add_bias(terms, b, spec.rank, wider)
    assert got.dtype == np.dtype(dtype) and got.shape == terms.exact.shape, (name, got.dtype, got.shape)
    check_entries(got, terms, dtype, name)
    if reference_sums_same_terms(spec, name):
        with np.errstate(all="ignore"):
            raw = R(u.astype(wider), v.astype(wider))
            if b is not None:
                raw = raw + b.astype(wider).reshape((1, b.size) + (1,) * spec.rank)
        n = np.maximum(terms.count, 1)
        safe = terms.bound * (1 + gamma(n, unit_roundoff(dtype))) < float(np.finfo(dtype).max)
        check_pattern_against_reference(got, raw, safe, name)


def check_all_kernels(kernel: ConvKernel, spec: ConvSpec, dtype: str, x, w, b, g) -> None:
    """forward (with and without the bias), grad_input, grad_weight, grad_bias and backward."""
    with np.errstate(all="ignore"):
        check_kernel("forward", kernel.forward(x, w, b), spec, dtype, x, w, b)
        if b is not None:
            check_kernel("forward", kernel.forward(x, w), spec, dtype, x, w)
        dx, dw, db = kernel.backward(x, w, g)
        check_kernel("grad_input", kernel.grad_input(g, w), spec, dtype, g, w)
        check_kernel("grad_weight", kernel.grad_weight(x, g), spec, dtype, x, g)
        # backward runs the same C functions: bitwise the same answers
        np.testing.assert_array_equal(dx, kernel.grad_input(g, w))
        np.testing.assert_array_equal(dw, kernel.grad_weight(x, g))
        if spec.bias:
            check_kernel("grad_bias", kernel.grad_bias(g), spec, dtype, g, np.ones(1))
            np.testing.assert_array_equal(db, kernel.grad_bias(g))
        else:
            assert db is None


# -- the values -----------------------------------------------------------------------------------


def special_values(dtype: str) -> list[float]:
    """Values where arithmetic goes wrong: signed zeros, NaN, ±Inf, extremes, subnormals."""
    f = np.finfo(dtype)
    return [
        0.0, -0.0, np.nan, np.inf, -np.inf, float(f.max), -float(f.max), float(f.tiny), -float(f.tiny),
        float(f.smallest_subnormal), -float(f.smallest_subnormal), 1.0, -1.0,
    ]


#: Magnitudes of the ordinary values: 1 first (what hypothesis shrinks to), then tiny values whose
#: products are subnormal, subnormal values, large ones near and past the overflow of a product.
SCALES = {
    "float32": (1.0, 1e-3, 1e3, 1e-20, 1e-40, 1e15, 1e19, 1e25),
    "float64": (1.0, 1e-3, 1e3, 1e-160, 1e-310, 1e150, 1e154, 1e160),
}


@st.composite
def values(draw, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Scaled normal values with a few special values written over them."""
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from(SCALES[dtype]))
    with np.errstate(under="ignore", over="ignore"):
        array = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    if array.size:
        specials = special_values(dtype)
        for _ in range(draw(st.integers(0, min(array.size, 4)))):
            array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from(specials))
    return array


def draw_arrays(data: st.DataObject, spec: ConvSpec, dtype: str):
    x = data.draw(values(spec.input, dtype), label="x")
    w = data.draw(values(spec.weight, dtype), label="w")
    b = data.draw(values(spec.bias_shape, dtype), label="b") if spec.bias else None
    g = data.draw(values(spec.output, dtype), label="grad_out")
    return x, w, b, g


# -- the tests ------------------------------------------------------------------------------------

#: A few layers that together cover padding, stride, dilation, groups, bias and every rank.
FIXED = {
    "2d_pad_stride_dilation_bias": ConvSpec(
        input=(2, 3, 7, 6), weight=(4, 3, 3, 2), stride=(2, 1), padding=((1, 0), (2, 1)),
        dilation=(1, 2), bias=True,
    ),
    "1d_groups_stride3": ConvSpec(input=(2, 6, 11), weight=(4, 3, 3), stride=3, padding=((2, 1),), groups=2),
    "2d_depthwise_bias": ConvSpec(input=(2, 4, 6, 5), weight=(4, 1, 3, 3), padding=1, groups=4, bias=True),
    "2d_no_padding_dropped_rows": ConvSpec(input=(1, 2, 8, 8), weight=(3, 2, 3, 3), stride=3, bias=True),
    "3d": ConvSpec(input=(1, 2, 4, 5, 3), weight=(2, 2, 2, 3, 2), stride=(1, 2, 1), padding=1, bias=True),
    # 16 output channels: the register-tile kernels (channels in the vector lanes)
    "2d_16_channels": ConvSpec(input=(2, 3, 9, 8), weight=(16, 3, 3, 3), padding=1, bias=True),
    "2d_16_channels_groups_stride_dilation": ConvSpec(
        input=(2, 4, 9, 8), weight=(16, 2, 3, 2), stride=(2, 1), dilation=(1, 2), padding=((1, 0), (2, 1)),
        groups=2, bias=True,
    ),
}


def _examples(share: float) -> int:
    """A share of the active profile's ``max_examples`` (at least 5)."""
    return max(5, int(settings.default.max_examples * share))


@settings(max_examples=_examples(0.5))
@given(spec=small_specs(), dtype=st.sampled_from(DTYPES), data=st.data())
def test_random_layers_and_values(spec: ConvSpec, dtype: str, data: st.DataObject) -> None:
    """Random layers (one compile each) with hostile values."""
    check_all_kernels(build(spec, dtype), spec, dtype, *draw_arrays(data, spec, dtype))


@settings(max_examples=_examples(1.5))
@given(name=st.sampled_from(sorted(FIXED)), dtype=st.sampled_from(DTYPES), data=st.data())
def test_fixed_layers_and_values(name: str, dtype: str, data: st.DataObject) -> None:
    """Hostile values on a few compiled-once layers: most of a long run's examples land here."""
    spec = FIXED[name]
    check_all_kernels(build(spec, dtype), spec, dtype, *draw_arrays(data, spec, dtype))


# -- the oracle can fail ----------------------------------------------------------------------------


def test_oracle_rejects_wrong_answers() -> None:
    """Each rule catches what it is for: a lost NaN, a wrong Inf, one missing term, overflow."""
    spec = FIXED["2d_no_padding_dropped_rows"]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(spec.input), rng.standard_normal(spec.weight)
    right = conv_forward(x, w, None, spec.stride, spec.padding, spec.dilation, spec.groups)
    check_kernel("forward", right, spec, "float64", x, w)  # the true answer passes

    def rejected(got: np.ndarray, xx=x, ww=w, match: str = "") -> None:
        try:
            check_kernel("forward", got, spec, "float64", xx, ww)
        except AssertionError as exc:
            assert match in str(exc), str(exc)
        else:
            raise AssertionError("a wrong answer passed the oracle")

    x_nan = x.copy()
    x_nan[0, 0, 0, 0] = np.nan
    with np.errstate(invalid="ignore"):
        rejected(right, xx=x_nan, match="must be NaN")  # the NaN was dropped
    missing_term = right.copy()
    missing_term[0, 1, 1, 1] -= x[0, 1, 3, 3] * w[1, 1, 0, 0]
    rejected(missing_term, match="within the rounding bound")
    w_inf = w.copy()
    w_inf[0, 0, 0, 0] = np.inf
    with np.errstate(invalid="ignore"):
        wrong_inf = conv_forward(x, w_inf, None, spec.stride, spec.padding, spec.dilation, spec.groups)
        assert np.isinf(wrong_inf[0, 0, 0, 0])
        wrong_inf[0, 0, 0, 0] *= -1  # the Inf of the other sign
        rejected(wrong_inf, ww=w_inf, match="Inf")
    big = np.full(spec.input, 1e200)
    overflowing = np.full(right.shape, 1.0)  # finite, but the true sum is ~1e200 · Σw: far off
    rejected(overflowing, xx=big, match="rounding bound")
