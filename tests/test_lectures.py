"""The worked examples of the lectures, reproduced, derived and proven.

Every expected expression is written here from the definitions (the slides have typos: a wrong
filter entry or input index here and there), using the derivation's own symbol arrays, and is
compared with what SymPy derived. The convolutions are spelled out by hand in this file,
independently of ``symconv.proof``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

from symconv import ConvSpec, derive

# -- helpers written from the definitions ---------------------------------------------------------


def same(a: sp.Expr, b: sp.Expr) -> bool:
    return sp.expand(a - b) == 0


def assert_all_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    for index in np.ndindex(*want.shape):
        assert same(got[index], want[index]), f"{list(index)}: {got[index]} != {want[index]}"


def valid_cross_correlation(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """out[u, v] = Σ_{p, q} image[u + p, v + q] · kernel[p, q] over the positions that fit."""
    rows, cols = image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1
    out = np.empty((rows, cols), dtype=object)
    for u, v in itertools.product(range(rows), range(cols)):
        out[u, v] = sum(
            (image[u + p, v + q] * kernel[p, q] for p, q in np.ndindex(*kernel.shape)), sp.Integer(0)
        )
    return out


def full_convolution(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a * b)[m, n] = Σ_{p, q} a[p, q] · b[m − p, n − q] wherever b's index is inside b."""
    shape = (a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1)
    out = np.empty(shape, dtype=object)
    for m, n in np.ndindex(*shape):
        terms = [
            a[p, q] * b[m - p, n - q]
            for p, q in np.ndindex(*a.shape)
            if 0 <= m - p < b.shape[0] and 0 <= n - q < b.shape[1]
        ]
        out[m, n] = sp.Add(*terms)
    return out


def pad_with_zeros(a: np.ndarray, width: tuple[int, int]) -> np.ndarray:
    """Surround ``a`` with ``width[0]`` rows and ``width[1]`` columns of zeros on each side."""
    rows, cols = a.shape
    out = np.full((rows + 2 * width[0], cols + 2 * width[1]), sp.Integer(0), dtype=object)
    for r, c in np.ndindex(rows, cols):
        out[r + width[0], c + width[1]] = a[r, c]
    return out


def slide_rotated_filter(upstream: np.ndarray, filt: np.ndarray) -> np.ndarray:
    """The lectures' "full convolution" of the rotated filter with the upstream gradient.

    Their "convolution" is the forward operation (a cross-correlation), so this slides rot180(F)
    over the upstream gradient zero-padded by (filter size − 1) on every side. In the textbook
    convention, where the flip is part of the definition, this is ``full_convolution(upstream, F)``.
    """
    rows, cols = filt.shape
    return valid_cross_correlation(pad_with_zeros(upstream, (rows - 1, cols - 1)), rotate_180(filt))


def rotate_180(a: np.ndarray) -> np.ndarray:
    rows, cols = a.shape
    out = np.empty_like(a)
    for r, c in np.ndindex(rows, cols):
        out[r, c] = a[rows - 1 - r, cols - 1 - c]
    return out


# -- lecture 000: 3×3 input, 2×2 filter ----------------------------------------------------------


@pytest.fixture(scope="module")
def lecture_000():
    return derive(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)))


def names_000(d):
    """The lecture's 1-based names: X(1, 1) is X₁₁, F(2, 1) is F₂₁, dO(1, 2) is ∂L/∂O₁₂."""
    return (
        lambda r, c: d.X[0, 0, r - 1, c - 1],
        lambda r, c: d.W[0, 0, r - 1, c - 1],
        lambda r, c: d.G[0, 0, r - 1, c - 1],
    )


def test_000_forward_equations(lecture_000):
    X, F, _ = names_000(lecture_000)
    expected = {
        (1, 1): X(1, 1) * F(1, 1) + X(1, 2) * F(1, 2) + X(2, 1) * F(2, 1) + X(2, 2) * F(2, 2),
        (1, 2): X(1, 2) * F(1, 1) + X(1, 3) * F(1, 2) + X(2, 2) * F(2, 1) + X(2, 3) * F(2, 2),
        (2, 1): X(2, 1) * F(1, 1) + X(2, 2) * F(1, 2) + X(3, 1) * F(2, 1) + X(3, 2) * F(2, 2),
        (2, 2): X(2, 2) * F(1, 1) + X(2, 3) * F(1, 2) + X(3, 2) * F(2, 1) + X(3, 3) * F(2, 2),
    }
    assert lecture_000.O.shape == (1, 1, 2, 2)
    for (r, c), want in expected.items():
        got = lecture_000.O[0, 0, r - 1, c - 1]
        assert got == want, f"O{r}{c}: {got} != {want}"  # exactly these four products, nothing else


def test_000_local_gradients(lecture_000):
    X, F, _ = names_000(lecture_000)
    local = lecture_000.local[(0, 0, 0, 0)]
    assert local == {
        X(1, 1): F(1, 1), X(1, 2): F(1, 2), X(2, 1): F(2, 1), X(2, 2): F(2, 2),
        F(1, 1): X(1, 1), F(1, 2): X(1, 2), F(2, 1): X(2, 1), F(2, 2): X(2, 2),
    }
    # O₂₂ does not depend on X₁₁ at all
    assert X(1, 1) not in lecture_000.local[(0, 0, 1, 1)]


def test_000_filter_gradient_is_valid_cross_correlation_of_input_with_upstream(lecture_000):
    d = lecture_000
    X, _, dO = names_000(d)
    written_out = {
        (1, 1): dO(1, 1) * X(1, 1) + dO(1, 2) * X(1, 2) + dO(2, 1) * X(2, 1) + dO(2, 2) * X(2, 2),
        (1, 2): dO(1, 1) * X(1, 2) + dO(1, 2) * X(1, 3) + dO(2, 1) * X(2, 2) + dO(2, 2) * X(2, 3),
        (2, 1): dO(1, 1) * X(2, 1) + dO(1, 2) * X(2, 2) + dO(2, 1) * X(3, 1) + dO(2, 2) * X(3, 2),
        (2, 2): dO(1, 1) * X(2, 2) + dO(1, 2) * X(2, 3) + dO(2, 1) * X(3, 2) + dO(2, 2) * X(3, 3),
    }
    for (r, c), want in written_out.items():
        assert same(d.dW[0, 0, r - 1, c - 1], want), (r, c)
    assert_all_same(d.dW[0, 0], valid_cross_correlation(d.X[0, 0], d.G[0, 0]))


def test_000_input_gradient_is_full_convolution_of_rotated_filter_with_upstream(lecture_000):
    d = lecture_000
    _, F, dO = names_000(d)
    # each ∂L/∂X_rc collects ∂L/∂O_ij · F_pq over the windows (i, j) where X_rc meets F_pq
    written_out = {
        (1, 1): dO(1, 1) * F(1, 1),
        (1, 2): dO(1, 1) * F(1, 2) + dO(1, 2) * F(1, 1),
        (1, 3): dO(1, 2) * F(1, 2),
        (2, 1): dO(1, 1) * F(2, 1) + dO(2, 1) * F(1, 1),
        (2, 2): dO(1, 1) * F(2, 2) + dO(1, 2) * F(2, 1) + dO(2, 1) * F(1, 2) + dO(2, 2) * F(1, 1),
        (2, 3): dO(1, 2) * F(2, 2) + dO(2, 2) * F(1, 2),
        (3, 1): dO(2, 1) * F(2, 1),
        (3, 2): dO(2, 1) * F(2, 2) + dO(2, 2) * F(2, 1),
        (3, 3): dO(2, 2) * F(2, 2),
    }
    for (r, c), want in written_out.items():
        assert same(d.dX[0, 0, r - 1, c - 1], want), (r, c)
    rotated = rotate_180(d.W[0, 0])
    assert rotated[0, 0] == F(2, 2) and rotated[1, 1] == F(1, 1)
    assert_all_same(d.dX[0, 0], slide_rotated_filter(d.G[0, 0], d.W[0, 0]))
    # in the textbook convention the flip lives inside the definition of convolution ...
    assert_all_same(d.dX[0, 0], full_convolution(d.G[0, 0], d.W[0, 0]))
    # ... so flipping the filter as well would rotate it twice
    assert not same(full_convolution(rotated, d.G[0, 0])[0, 0], d.dX[0, 0, 0, 0])


def test_000_input_gradient_is_padded_upstream_cross_correlated_with_rotated_filter(lecture_000):
    """The slide's picture: dL/dO surrounded by one ring of zeros, then slide rot180(F) over it."""
    d = lecture_000
    _, _, dO = names_000(d)
    zero = sp.Integer(0)
    padded = np.array(
        [
            [zero, zero, zero, zero],
            [zero, dO(1, 1), dO(1, 2), zero],
            [zero, dO(2, 1), dO(2, 2), zero],
            [zero, zero, zero, zero],
        ],
        dtype=object,
    )
    assert_all_same(d.dX[0, 0], valid_cross_correlation(padded, rotate_180(d.W[0, 0])))


def test_000_is_proven(lecture_000):
    result = lecture_000.verify()
    assert result.ok, result.report()


# -- lecture 004: 5×5 input, 3×3 filter, stride 2 --------------------------------------------------


@pytest.fixture(scope="module")
def lecture_004():
    return derive(ConvSpec(input=(1, 1, 5, 5), weight=(1, 1, 3, 3), stride=2))


def flat_names(d):
    """The lecture's flat names: a_1..a_25, w_1..w_9 and z_1..z_4 row by row (1-based)."""
    a = {m + 1: d.X[0, 0].ravel()[m] for m in range(d.X[0, 0].size)}
    w = {m + 1: d.W[0, 0].ravel()[m] for m in range(9)}
    dz = {m + 1: d.G[0, 0].ravel()[m] for m in range(4)}
    return a, w, dz


def test_004_forward_windows_start_at_twice_the_output_index(lecture_004):
    d = lecture_004
    assert d.O.shape == (1, 1, 2, 2)
    for i, j in np.ndindex(2, 2):
        want = sum(d.X[0, 0, 2 * i + r, 2 * j + t] * d.W[0, 0, r, t] for r, t in np.ndindex(3, 3))
        assert d.O[0, 0, i, j] == want
    # z₁ = w₁a₁ + w₂a₂ + w₃a₃ + w₄a₆ + … + w₉a₁₃, z₄ = w₁a₁₃ + … + w₉a₂₅
    a, w, _ = flat_names(d)
    assert same(d.O[0, 0, 0, 0], sum(w[3 * r + t + 1] * a[5 * r + t + 1] for r, t in np.ndindex(3, 3)))
    assert same(d.O[0, 0, 1, 1], sum(w[3 * r + t + 1] * a[5 * r + t + 13] for r, t in np.ndindex(3, 3)))


def test_004_filter_gradient_sums(lecture_004):
    d = lecture_004
    for r, t in np.ndindex(3, 3):
        # w[r, t] meets a[2i + r, 2j + t] in the window of output (i, j)
        want = sum(d.G[0, 0, i, j] * d.X[0, 0, 2 * i + r, 2 * j + t] for i, j in np.ndindex(2, 2))
        got = d.dW[0, 0, r, t]
        assert same(got, want), (r, t)
        assert len(sp.Add.make_args(got)) == 4


def test_004_filter_gradient_in_flat_names(lecture_004):
    """dL/dw_m = a_{p} dL/dz_1 + a_{p+2} dL/dz_2 + a_{p+10} dL/dz_3 + a_{p+12} dL/dz_4, p = 5r + t + 1."""
    a, w, dz = flat_names(lecture_004)
    firsts = {1: 1, 2: 2, 3: 3, 4: 6, 5: 7, 6: 8, 7: 11, 8: 12, 9: 13}
    for m, p in firsts.items():
        r, t = divmod(m - 1, 3)
        want = a[p] * dz[1] + a[p + 2] * dz[2] + a[p + 10] * dz[3] + a[p + 12] * dz[4]
        assert same(lecture_004.dW[0, 0, r, t], want), f"dL/dw_{m}"
    # the two slide typos: w₁ does not use a₁ twice, w₇ uses a₁₃ and not a₃
    assert not same(lecture_004.dW[0, 0, 0, 0], a[1] * dz[1] + a[3] * dz[2] + a[1] * dz[3] + a[13] * dz[4])
    assert not same(lecture_004.dW[0, 0, 2, 0], a[11] * dz[1] + a[3] * dz[2] + a[21] * dz[3] + a[23] * dz[4])


def scatter_input_gradient(d, stride: int) -> np.ndarray:
    """∂L/∂X[y, x] = Σ over windows (i, j) and taps (r, t) with y = s·i + r, x = s·j + t."""
    rows, cols = d.X.shape[2:]
    out = np.full((rows, cols), sp.Integer(0), dtype=object)
    for (i, j), (r, t) in itertools.product(np.ndindex(*d.G.shape[2:]), np.ndindex(*d.W.shape[2:])):
        out[stride * i + r, stride * j + t] += d.G[0, 0, i, j] * d.W[0, 0, r, t]
    return out


def stride_dilated(g: np.ndarray, stride: int) -> np.ndarray:
    """Zeros inserted between the entries of the upstream gradient."""
    rows, cols = g.shape
    out = np.full(((rows - 1) * stride + 1, (cols - 1) * stride + 1), sp.Integer(0), dtype=object)
    for i, j in np.ndindex(rows, cols):
        out[stride * i, stride * j] = g[i, j]
    return out


def test_004_input_gradient_touches_every_input(lecture_004):
    d = lecture_004
    assert_all_same(d.dX[0, 0], scatter_input_gradient(d, 2))
    assert all(entry != 0 for entry in d.dX[0, 0].ravel())
    # the centre a₁₃ is in all four windows
    assert len(sp.Add.make_args(d.dX[0, 0, 2, 2])) == 4
    # and the lecture identity: rot180(W) slid over the stride-dilated, zero-padded dL/dz
    upsampled = stride_dilated(d.G[0, 0], 2)
    assert upsampled.shape == (3, 3)
    assert_all_same(d.dX[0, 0], slide_rotated_filter(upsampled, d.W[0, 0]))
    assert_all_same(d.dX[0, 0], full_convolution(upsampled, d.W[0, 0]))


def test_004_is_proven(lecture_004):
    result = lecture_004.verify()
    assert result.ok, result.report()


def test_six_by_six_stride_two_leaves_last_row_and_column_untouched():
    d = derive(ConvSpec(input=(1, 1, 6, 6), weight=(1, 1, 3, 3), stride=2))
    assert d.O.shape == (1, 1, 2, 2)  # windows start at rows 0 and 2 and end at row 4
    dx = d.dX[0, 0]
    for y, x in np.ndindex(6, 6):
        if y == 5 or x == 5:
            assert dx[y, x] == 0 and dx[y, x] is sp.S.Zero, (y, x)
        else:
            assert dx[y, x] != 0, (y, x)
    assert_all_same(dx, scatter_input_gradient(d, 2))
    # the full convolution covers the first 5 × 5; the rest is zero
    full = slide_rotated_filter(stride_dilated(d.G[0, 0], 2), d.W[0, 0])
    assert full.shape == (5, 5)
    assert_all_same(dx[:5, :5], full)
    # the weight gradient only ever reads rows and columns 0..4
    last = set(d.X[0, 0, 5, :]) | set(d.X[0, 0, :, 5])
    assert not any(last & d.dW[0, 0, r, t].free_symbols for r, t in np.ndindex(3, 3))
    assert d.verify().ok
