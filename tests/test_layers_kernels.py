"""The generated layer kernels (symconv.kernels) against plain numpy references written here from
the formulas, against PyTorch, and (float64) against central finite differences.

Each layer is compiled for a few fixed shapes only (compiling is the slow part); hypothesis
varies the shape among those, the dtype, the options and the data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symconv.kernels import activation, avgpool2d, batchnorm2d, cross_entropy, linear, maxpool2d, softmax

DTYPES = ("float32", "float64")
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}
FEW = settings(max_examples=12, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def data(seed: int, shape, dtype: str, special: str = "none", scale: float = 1.0) -> np.ndarray:
    """Random values; ``ties`` draws from a few integers, ``nan``/``inf`` plant some of those."""
    rng = np.random.default_rng(seed)
    if special == "ties":
        x = rng.integers(-2, 3, size=shape).astype(dtype)
    else:
        x = (rng.standard_normal(shape) * scale).astype(dtype)
    if special in ("nan", "inf") and x.size:
        planted = rng.random(shape) < 0.15
        x[planted] = np.nan if special == "nan" else -np.inf
    return x


def close(actual, expected, dtype: str) -> None:
    np.testing.assert_allclose(actual, expected, equal_nan=True, **TOL[dtype])


# -- numpy references, from the formulas ----------------------------------------------------------


def ref_out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's documented pooling output size (ceil_mode: the last window starts in the input
    or the left padding)."""
    eff = d * (k - 1) + 1
    if ceil_mode:
        out = -(-(size + 2 * p - eff) // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return out
    return (size + 2 * p - eff) // s + 1


def ref_maxpool(x, k, s, p, d, ceil_mode):
    n, c, h, w = x.shape
    oh, ow = (ref_out_size(v, k[a], s[a], p[a], d[a], ceil_mode) for a, v in enumerate((h, w)))
    y = np.empty((n, c, oh, ow), x.dtype)
    idx = np.empty((n, c, oh, ow), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    taps = [(i * s[0] - p[0] + r * d[0], j * s[1] - p[1] + t * d[1])
                            for r in range(k[0]) for t in range(k[1])]
                    taps = [(u, v) for u, v in taps if 0 <= u < h and 0 <= v < w]
                    best, at = -np.inf, taps[0][0] * w + taps[0][1]
                    for u, v in taps:  # row-major scan: strictly larger or NaN replaces
                        val = x[b, ch, u, v]
                        if val > best or np.isnan(val):
                            best, at = val, u * w + v
                    y[b, ch, i, j], idx[b, ch, i, j] = best, at
    return y, idx


def ref_maxpool_backward(g, idx, in_shape):
    dx = np.zeros(in_shape, g.dtype)
    flat = dx.reshape(in_shape[0], in_shape[1], -1)
    for b, ch, i, j in np.ndindex(*g.shape):
        flat[b, ch, idx[b, ch, i, j]] += g[b, ch, i, j]
    return dx


def ref_avg_windows(h, w, k, s, p, ceil_mode, include_pad):
    """(output index, rows, cols, divisor) of every window."""
    oh, ow = (ref_out_size(v, k[a], s[a], p[a], 1, ceil_mode) for a, v in enumerate((h, w)))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s[0] - p[0], j * s[1] - p[1]
            r1, c1 = min(r0 + k[0], h + p[0]), min(c0 + k[1], w + p[1])
            padded = (r1 - r0) * (c1 - c0)
            rows, cols = range(max(r0, 0), min(r1, h)), range(max(c0, 0), min(c1, w))
            yield (i, j), rows, cols, (padded if include_pad else len(rows) * len(cols)), (oh, ow)


def ref_avgpool(x, k, s, p, ceil_mode, include_pad):
    n, c, h, w = x.shape
    windows = list(ref_avg_windows(h, w, k, s, p, ceil_mode, include_pad))
    y = np.empty((n, c, *windows[0][4]), np.float64)
    for (i, j), rows, cols, div, _ in windows:
        y[:, :, i, j] = x[:, :, rows.start:rows.stop, cols.start:cols.stop].astype(np.float64).sum(axis=(2, 3)) / div
    return y


def ref_avgpool_backward(g, in_shape, k, s, p, ceil_mode, include_pad):
    dx = np.zeros(in_shape, np.float64)
    for (i, j), rows, cols, div, _ in ref_avg_windows(*in_shape[2:], k, s, p, ceil_mode, include_pad):
        dx[:, :, rows.start:rows.stop, cols.start:cols.stop] += g[:, :, i:i + 1, j:j + 1] / div
    return dx


def ref_softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ref_cross_entropy(z, t):
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    logsumexp = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(logsumexp - z[np.arange(len(t)), t]))


def ref_batchnorm(x, gamma, beta, eps, mean=None, var=None):
    x = x.astype(np.float64)
    if mean is None:
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    shape = (1, -1, 1, 1)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape) + beta.reshape(shape)
    return y, mean, var


def central_difference(f, x, weights, h=1e-6):
    """d/dx of sum(weights * f(x)), one entry at a time."""
    grad = np.empty_like(x)
    for i in np.ndindex(*x.shape):
        keep = x[i]
        x[i] = keep + h
        up = np.sum(weights * f(x))
        x[i] = keep - h
        down = np.sum(weights * f(x))
        x[i] = keep
        grad[i] = (up - down) / (2 * h)
    return grad


def torch_or_skip():
    return pytest.importorskip("torch")


# -- activations ---------------------------------------------------------------------------------

ACT_SHAPES = [(7,), (2, 3, 5)]


def ref_activation(kind, x):
    x64 = x.astype(np.float64)
    if kind == "relu":
        return np.where(x64 < 0, 0.0, x64), np.where(x64 > 0, 1.0, 0.0)
    with np.errstate(over="ignore"):
        y = 1 / (1 + np.exp(-x64))
    return y, y * (1 - y)


@FEW
@given(kind=st.sampled_from(["relu", "sigmoid"]), shape=st.sampled_from(ACT_SHAPES),
       dtype=st.sampled_from(DTYPES), seed=seeds, special=st.sampled_from(["none", "ties", "nan", "inf"]))
def test_activation_matches_reference_and_torch(kind, shape, dtype, seed, special):
    torch = torch_or_skip()
    k = activation(kind, shape, dtype)
    x = data(seed, shape, dtype, special, scale=5)
    g = data(seed + 1, shape, dtype)
    y = k.forward(x)
    dx = k.backward(x, y, g)
    assert y.dtype == dx.dtype == np.dtype(dtype) and y.shape == shape
    ref_y, ref_d = ref_activation(kind, x)
    finite = np.isfinite(x)
    close(y, ref_y, dtype)
    close(dx[finite], (g * ref_d)[finite], dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.relu(tx) if kind == "relu" else torch.sigmoid(tx)
    ty.backward(torch.tensor(g))
    close(y, ty.detach().numpy(), dtype)
    close(dx, tx.grad.numpy(), dtype)


def test_relu_subgradient_is_zero_at_zero_and_nan_passes_like_torch():
    k = activation("relu", (4,), "float64")
    x = np.array([0.0, -0.0, np.nan, 2.0])
    y = k.forward(x)
    assert np.isnan(y[2]) and y[3] == 2 and y[0] == 0
    dx = k.backward(x, y, np.full(4, 3.0))
    np.testing.assert_array_equal(dx, [0.0, 0.0, 3.0, 3.0])  # torch: grad where not x <= 0


@pytest.mark.parametrize("kind", ["relu", "sigmoid"])
def test_activation_backward_matches_finite_differences(kind):
    shape = ACT_SHAPES[1]
    k = activation(kind, shape, "float64")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    x[np.abs(x) < 1e-3] = 0.5  # away from ReLU's kink
    w = rng.standard_normal(shape)
    numeric = central_difference(k.forward, x.copy(), w)
    np.testing.assert_allclose(k.backward(x, k.forward(x), w), numeric, rtol=1e-6, atol=1e-8)


# -- max-pooling ---------------------------------------------------------------------------------

# (input shape, kernel, stride, padding, dilation, ceil_mode)
MAXPOOL = [
    ((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 2, 7, 5), (3, 2), (2, 1), (1, 1), (1, 1), True),
    ((2, 1, 8, 7), (3, 3), (2, 3), (1, 0), (2, 1), True),
    ((1, 2, 5, 6), (2, 3), (3, 2), (1, 1), (1, 2), False),
    ((1, 1, 4, 4), (4, 4), (1, 1), (0, 0), (1, 1), False),
]


@FEW
@given(cfg=st.sampled_from(MAXPOOL), dtype=st.sampled_from(DTYPES), seed=seeds,
       special=st.sampled_from(["none", "ties", "nan", "inf"]))
def test_maxpool_matches_reference_and_torch(cfg, dtype, seed, special):
    torch = torch_or_skip()
    import torch.nn.functional as F

    shape, kk, s, p, d, ceil_mode = cfg
    k = maxpool2d(shape, kk, s, p, d, ceil_mode, dtype)
    x = data(seed, shape, dtype, special)
    y, idx = k.forward(x)
    ref_y, ref_idx = ref_maxpool(x, kk, s, p, d, ceil_mode)
    assert k.output_shape == ref_y.shape == y.shape and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(idx, ref_idx)
    ty, tidx = F.max_pool2d(torch.tensor(x), kk, s, p, d, ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = data(seed + 1, y.shape, dtype)
    dx = k.backward(g, idx)
    close(dx, ref_maxpool_backward(g, idx, shape), dtype)
    tx = torch.tensor(x, requires_grad=True)
    F.max_pool2d(tx, kk, s, p, d, ceil_mode).backward(torch.tensor(g))
    close(dx, tx.grad.numpy(), dtype)


def test_maxpool_backward_matches_finite_differences():
    shape, kk, s, p, d, ceil_mode = MAXPOOL[2]
    k = maxpool2d(shape, kk, s, p, d, ceil_mode, "float64")
    rng = np.random.default_rng(5)
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01  # distinct values: no ties
    w = rng.standard_normal(k.output_shape)
    numeric = central_difference(lambda v: k.forward(v)[0], x.copy(), w)
    np.testing.assert_allclose(k.backward(w, k.forward(x)[1]), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("size,kernel,stride,pad,dil,ceil_mode", [
    (5, 2, 2, 0, 1, True), (6, 3, 2, 1, 1, True), (7, 3, 3, 1, 2, True), (4, 2, 3, 1, 1, False),
    (10, 3, 4, 1, 1, True), (9, 2, 2, 1, 1, True),
])
def test_output_size_agrees_with_torch(size, kernel, stride, pad, dil, ceil_mode):
    torch = torch_or_skip()
    import torch.nn.functional as F

    k = maxpool2d((1, 1, size, size), kernel, stride, pad, dil, ceil_mode, "float32")
    t = F.max_pool2d(torch.zeros(1, 1, size, size), kernel, stride, pad, dil, ceil_mode)
    assert k.output_shape == tuple(t.shape)
    assert k.output_shape[2] == ref_out_size(size, kernel, stride, pad, dil, ceil_mode)


# -- average pooling -----------------------------------------------------------------------------

# (input shape, kernel, stride, padding, ceil_mode, count_include_pad)
AVGPOOL = [
    ((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), False, True),
    ((1, 2, 7, 5), (3, 2), (2, 1), (1, 1), True, True),
    ((1, 2, 7, 5), (3, 2), (2, 1), (1, 1), True, False),
    ((2, 1, 6, 8), (3, 3), (2, 3), (1, 0), True, False),
    ((1, 1, 5, 5), (2, 2), (3, 3), (1, 1), True, True),
]


@FEW
@given(cfg=st.sampled_from(AVGPOOL), dtype=st.sampled_from(DTYPES), seed=seeds)
def test_avgpool_matches_reference_and_torch(cfg, dtype, seed):
    torch = torch_or_skip()
    import torch.nn.functional as F

    shape, kk, s, p, ceil_mode, incl = cfg
    k = avgpool2d(shape, kk, s, p, ceil_mode, incl, dtype)
    x = data(seed, shape, dtype)
    y = k.forward(x)
    close(y, ref_avgpool(x, kk, s, p, ceil_mode, incl), dtype)
    ty = F.avg_pool2d(torch.tensor(x), kk, s, p, ceil_mode, incl)
    assert k.output_shape == tuple(ty.shape)
    close(y, ty.numpy(), dtype)
    g = data(seed + 1, y.shape, dtype)
    dx = k.backward(g)
    close(dx, ref_avgpool_backward(g.astype(np.float64), shape, kk, s, p, ceil_mode, incl), dtype)
    tx = torch.tensor(x, requires_grad=True)
    F.avg_pool2d(tx, kk, s, p, ceil_mode, incl).backward(torch.tensor(g))
    close(dx, tx.grad.numpy(), dtype)


def test_avgpool_backward_matches_finite_differences():
    shape, kk, s, p, ceil_mode, incl = AVGPOOL[3]
    k = avgpool2d(shape, kk, s, p, ceil_mode, incl, "float64")
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(shape), rng.standard_normal(k.output_shape)
    numeric = central_difference(k.forward, x.copy(), w)
    np.testing.assert_allclose(k.backward(w), numeric, rtol=1e-6, atol=1e-8)


# -- softmax and cross-entropy -------------------------------------------------------------------

ROWS = [(3, 5), (1, 1), (4, 10)]


@FEW
@given(shape=st.sampled_from(ROWS), dtype=st.sampled_from(DTYPES), seed=seeds,
       scale=st.sampled_from([1.0, 30.0, 1e4]))
def test_softmax_matches_reference_and_torch(shape, dtype, seed, scale):
    torch = torch_or_skip()
    k = softmax(shape, dtype)
    x = data(seed, shape, dtype, scale=scale)
    g = data(seed + 1, shape, dtype)
    y = k.forward(x)
    dx = k.backward(y, g)
    ref = ref_softmax(x)
    close(y, ref, dtype)
    close(dx, ref * (g - (g * ref).sum(axis=1, keepdims=True)), dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.softmax(tx, dim=1)
    ty.backward(torch.tensor(g))
    close(y, ty.detach().numpy(), dtype)
    close(dx, tx.grad.numpy(), dtype)


@FEW
@given(shape=st.sampled_from(ROWS), dtype=st.sampled_from(DTYPES), seed=seeds,
       scale=st.sampled_from([1.0, 30.0, 1e4]), grad=st.sampled_from([1.0, 0.5, -3.0]))
def test_cross_entropy_matches_reference_and_torch(shape, dtype, seed, scale, grad):
    torch = torch_or_skip()
    import torch.nn.functional as F

    k = cross_entropy(shape, dtype)
    z = data(seed, shape, dtype, scale=scale)
    t = np.random.default_rng(seed).integers(0, shape[1], size=shape[0])
    loss, probs = k.forward(z, t)
    assert isinstance(loss, float) and math.isfinite(loss)
    tol = TOL[dtype]
    assert loss == pytest.approx(ref_cross_entropy(z, t), rel=tol["rtol"] * 10, abs=tol["atol"] * 10)
    close(probs, ref_softmax(z), dtype)
    dz = k.backward(probs, t, grad)
    onehot = np.eye(shape[1])[t]
    close(dz, (ref_softmax(z) - onehot) * grad / shape[0], dtype)
    tz = torch.tensor(z, requires_grad=True)
    tl = F.cross_entropy(tz, torch.tensor(t))
    (tl * grad).backward()
    assert loss == pytest.approx(tl.item(), rel=tol["rtol"] * 10, abs=tol["atol"] * 10)
    close(dz, tz.grad.numpy(), dtype)


def test_cross_entropy_extreme_logits_stay_finite():
    k = cross_entropy((2, 3), "float32")
    z = np.array([[1e30, -1e30, 0.0], [-88.0, 88.0, 1e4]], np.float32)
    loss, probs = k.forward(z, np.array([1, 0]))
    assert math.isfinite(loss)
    assert loss == pytest.approx(ref_cross_entropy(z, np.array([1, 0])), rel=1e-6)
    assert np.all(np.isfinite(probs))


def test_softmax_and_cross_entropy_backward_match_finite_differences():
    rng = np.random.default_rng(11)
    shape = ROWS[2]
    z, w = rng.standard_normal(shape), rng.standard_normal(shape)
    s = softmax(shape, "float64")
    np.testing.assert_allclose(s.backward(s.forward(z), w), central_difference(s.forward, z.copy(), w),
                               rtol=1e-6, atol=1e-9)
    ce = cross_entropy(shape, "float64")
    t = rng.integers(0, shape[1], size=shape[0])
    numeric = central_difference(lambda v: ce.forward(v, t)[0], z.copy(), 1.0)
    np.testing.assert_allclose(ce.backward(ce.forward(z, t)[1], t), numeric, rtol=1e-6, atol=1e-9)


# -- batch normalisation -------------------------------------------------------------------------

BN_SHAPES = [(2, 3, 4, 4), (1, 2, 3, 1), (5, 1, 2, 2)]


@FEW
@given(shape=st.sampled_from(BN_SHAPES), dtype=st.sampled_from(DTYPES), seed=seeds,
       offset=st.sampled_from([0.0, 1e3]), eps=st.sampled_from([1e-5, 0.1]))
def test_batchnorm_matches_reference_and_torch(shape, dtype, seed, offset, eps):
    torch = torch_or_skip()
    import torch.nn.functional as F

    k = batchnorm2d(shape, dtype)
    rng = np.random.default_rng(seed)
    x = (data(seed, shape, dtype) * 2 + offset).astype(dtype)
    gamma = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    beta = rng.standard_normal(shape[1]).astype(dtype)
    g = data(seed + 1, shape, dtype)
    y, mean, var = k.forward_train(x, gamma, beta, eps)
    ref_y, ref_mean, ref_var = ref_batchnorm(x, gamma, beta, eps)
    # Rounding errors of a mean and a variance scale with the size of the values: x itself is
    # rounded at the offset's magnitude (float64: 1.1e-13 at 1e3), so absolute tolerances grow with it.
    rel = (1 + offset) * (1 if dtype == "float64" else 10)
    np.testing.assert_allclose(mean, ref_mean, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * rel)
    np.testing.assert_allclose(var, ref_var, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * rel)
    np.testing.assert_allclose(y, ref_y, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * rel)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    ty = F.batch_norm(tx, None, None, tg, tb, training=True, eps=eps)
    ty.backward(torch.tensor(g))
    tol = dict(rtol=TOL[dtype]["rtol"] * 50, atol=TOL[dtype]["atol"] * 50 * rel)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    dx, dgamma, dbeta = k.backward(g, x, gamma, mean, var, eps)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(dgamma, tg.grad.numpy(), **tol)
    np.testing.assert_allclose(dbeta, tb.grad.numpy(), **tol)
    running_mean = rng.standard_normal(shape[1]).astype(dtype)
    running_var = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    ye = k.forward_eval(x, gamma, beta, running_mean, running_var, eps)
    ref_eval = ref_batchnorm(x, gamma, beta, eps, running_mean.astype(np.float64), running_var.astype(np.float64))[0]
    np.testing.assert_allclose(ye, ref_eval, **tol)
    te = F.batch_norm(torch.tensor(x), torch.tensor(running_mean), torch.tensor(running_var),
                      torch.tensor(gamma), torch.tensor(beta), training=False, eps=eps)
    np.testing.assert_allclose(ye, te.numpy(), **tol)


def test_batchnorm_backward_matches_finite_differences():
    shape = BN_SHAPES[0]
    k = batchnorm2d(shape, "float64")
    rng = np.random.default_rng(13)
    x, w = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma, beta, eps = rng.uniform(0.5, 2, shape[1]), rng.standard_normal(shape[1]), 1e-3
    y, mean, var = k.forward_train(x, gamma, beta, eps)
    dx, dgamma, dbeta = k.backward(w, x, gamma, mean, var, eps)
    numeric = central_difference(lambda v: k.forward_train(v, gamma, beta, eps)[0], x.copy(), w)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dgamma, central_difference(lambda v: k.forward_train(x, v, beta, eps)[0], gamma.copy(), w),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dbeta, central_difference(lambda v: k.forward_train(x, gamma, v, eps)[0], beta.copy(), w),
                               rtol=1e-6, atol=1e-8)


def test_batchnorm_variance_is_two_pass_accurate_for_float32():
    """A large mean and a small spread: E[x²] - E[x]² would lose every digit in float32."""
    shape = BN_SHAPES[0]
    k = batchnorm2d(shape, "float32")
    x = (np.float32(1e4) + np.random.default_rng(17).standard_normal(shape).astype(np.float32) * 1e-2).astype(np.float32)
    _, mean, var = k.forward_train(x, np.ones(3, np.float32), np.zeros(3, np.float32), 1e-5)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0, 2, 3)), rtol=1e-4)


# -- linear ----------------------------------------------------------------------------------------

# (batch, in_features, out_features, bias): the two fully connected layers of LeNet, an empty batch,
# single features, and sums longer than one packed panel (256 rows) along each summed axis.
LINEAR = [(32, 128, 120, True), (32, 120, 84, False), (0, 5, 3, True), (5, 1, 300, False), (7, 300, 1, True),
          (3, 300, 19, True), (2, 7, 290, True), (260, 3, 5, False)]


def ref_linear(x, w, b, g):
    """y = x Wᵀ + b, dL/dx = G W, dL/dW = Gᵀ x, dL/db = Σ_n G (float64), and for each entry of
    each the sum of the absolute values of its terms (the scale of its rounding error)."""
    x, w, g = (a.astype(np.float64) for a in (x, w, g))
    b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    values = {"y": x @ w.T + b, "dx": g @ w, "dw": g.T @ x, "db": g.sum(axis=0)}
    scales = {"y": np.abs(x) @ np.abs(w).T + np.abs(b), "dx": np.abs(g) @ np.abs(w), "dw": np.abs(g).T @ np.abs(x),
              "db": np.abs(g).sum(axis=0)}
    return values, scales


def within_sum_error(actual, expected, scale, terms: int, dtype: str) -> None:
    """|actual - expected| within the error bound of a sum of ``terms`` rounded products
    (``(terms + 1) u Σ|term|``, u the unit roundoff), plus float64's own rounding of ``expected``."""
    u = np.finfo(dtype).eps / 2
    bound = (terms + 1) * u * scale + 4 * np.finfo(np.float64).eps * np.abs(expected)
    assert actual.shape == expected.shape
    assert np.all(np.abs(actual - expected) <= bound), np.max(np.abs(actual - expected) - bound)


@FEW
@given(cfg=st.sampled_from(LINEAR), dtype=st.sampled_from(DTYPES), seed=seeds, scale=st.sampled_from([1.0, 1e-3, 1e4]))
def test_linear_matches_reference_and_torch(cfg, dtype, seed, scale):
    torch = torch_or_skip()
    import torch.nn.functional as F

    n, i, o, bias = cfg
    k = linear(n, i, o, bias, dtype)
    x, w, g = data(seed, (n, i), dtype, scale=scale), data(seed + 1, (o, i), dtype), data(seed + 2, (n, o), dtype)
    b = data(seed + 3, (o,), dtype) if bias else None
    y = k.forward(x, w, b)
    dx, dw, db = k.backward(x, w, g)
    assert y.dtype == dx.dtype == dw.dtype == np.dtype(dtype)
    assert (db is None) == (not bias) and (db is None or db.dtype == np.dtype(dtype))
    values, scales = ref_linear(x, w, b, g)
    within_sum_error(y, values["y"], scales["y"], i + 1, dtype)
    within_sum_error(dx, values["dx"], scales["dx"], o, dtype)
    within_sum_error(dw, values["dw"], scales["dw"], n, dtype)
    np.testing.assert_array_equal(k.grad_input(g, w), dx)
    np.testing.assert_array_equal(k.grad_weight(x, g), dw)
    if bias:
        within_sum_error(db, values["db"], scales["db"], n, dtype)
        np.testing.assert_array_equal(k.grad_bias(g), db)
    # PyTorch: F.linear and its autograd (its own order of summation, so within twice the bound)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if bias else None
    ty = F.linear(tx, tw, tb)
    ty.backward(torch.tensor(g))
    within_sum_error(y, ty.detach().numpy().astype(np.float64), 2 * scales["y"], i + 1, dtype)
    within_sum_error(dx, tx.grad.numpy().astype(np.float64), 2 * scales["dx"], o, dtype)
    within_sum_error(dw, tw.grad.numpy().astype(np.float64), 2 * scales["dw"], n, dtype)
    if bias:
        within_sum_error(db, tb.grad.numpy().astype(np.float64), 2 * scales["db"], n, dtype)


def test_linear_empty_batch_gives_exact_zero_gradients():
    k = linear(0, 5, 3, True, "float64")
    x, g, w = np.zeros((0, 5)), np.zeros((0, 3)), np.ones((3, 5))
    assert k.forward(x, w, np.ones(3)).shape == (0, 3)
    dx, dw, db = k.backward(x, w, g)
    assert dx.shape == (0, 5) and dw.shape == (3, 5) and db.shape == (3,)
    for grad in (dw, db):
        assert (grad == 0).all() and not np.signbit(grad).any()


@pytest.mark.parametrize("cfg", [LINEAR[4], LINEAR[3], (4, 3, 5, True)], ids=str)
def test_linear_backward_matches_finite_differences(cfg):
    n, i, o, bias = cfg
    k = linear(n, i, o, bias, "float64")
    rng = np.random.default_rng(19)
    x, w, g = rng.standard_normal((n, i)), rng.standard_normal((o, i)), rng.standard_normal((n, o))
    b = rng.standard_normal(o) if bias else None
    dx, dw, db = k.backward(x, w, g)
    np.testing.assert_allclose(dx, central_difference(lambda v: k.forward(v, w, b), x.copy(), g), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dw, central_difference(lambda v: k.forward(x, v, b), w.copy(), g), rtol=1e-6, atol=1e-8)
    if bias:
        numeric = central_difference(lambda v: k.forward(x, w, v), b.copy(), g)
        np.testing.assert_allclose(db, numeric, rtol=1e-6, atol=1e-8)


def test_linear_entries_do_not_depend_on_their_place_in_the_tiles():
    """Each entry is one sum in a fixed order: a row alone gives bitwise the entries it gets
    among 31 others, and so does a weight row alone (the tiles cut rows and columns differently)."""
    n, i, o = LINEAR[0][:3]
    rng = np.random.default_rng(29)
    x, w, b, g = (rng.standard_normal(s).astype(np.float32) for s in ((n, i), (o, i), (o,), (n, o)))
    full = linear(n, i, o, True, "float32")
    one_row, one_out = linear(1, i, o, True, "float32"), linear(n, i, 1, True, "float32")
    y, (dx, dw, db) = full.forward(x, w, b), full.backward(x, w, g)
    for r in (0, 5, 31):
        np.testing.assert_array_equal(one_row.forward(x[r:r + 1], w, b), y[r:r + 1])
    for j in (0, 17, 119):
        np.testing.assert_array_equal(one_out.forward(x, w[j:j + 1], b[j:j + 1]), y[:, j:j + 1])
        _, dw_j, db_j = one_out.backward(x, w[j:j + 1], g[:, j:j + 1])
        np.testing.assert_array_equal(dw_j, dw[j:j + 1])
        np.testing.assert_array_equal(db_j, db[j:j + 1])
