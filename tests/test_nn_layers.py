"""Pooling, activations, softmax and cross-entropy layers against PyTorch and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symconv import nn
from symconv.gradcheck import gradcheck

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = dict(rtol=1e-12, atol=1e-12)


def torch_grads(function, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's output of ``function`` and dL/dx for the upstream gradient ``g``."""
    tx = torch.tensor(x, requires_grad=True)
    out = function(tx)
    out.backward(torch.from_numpy(g))
    return out.detach().numpy(), tx.grad.numpy()


@st.composite
def pool_cases(draw, with_dilation: bool) -> dict:
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    reach = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    size = tuple(draw(st.integers(max(1, r - 2 * pp), r + 4)) for r, pp in zip(reach, p))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    return dict(kernel_size=k, stride=stride, padding=p, dilation=d, size=size,
                ceil_mode=draw(st.booleans()), batch=draw(st.integers(1, 2)), channels=draw(st.integers(1, 3)),
                seed=draw(st.integers(0, 999)))


@settings(max_examples=12, deadline=None)
@given(case=pool_cases(with_dilation=True))
def test_maxpool_matches_torch(case: dict) -> None:
    options = {k: case[k] for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")}
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["batch"], case["channels"], *case["size"]))
    layer = nn.MaxPool2d(**options, return_indices=True)
    expected, expected_indices = F.max_pool2d(torch.from_numpy(x), **options, return_indices=True)
    if torch.isinf(expected).any():
        # A window over padding only: PyTorch returns -inf and an index outside the plane; the
        # generated kernel refuses such a layer instead.
        with pytest.raises(ValueError, match="reads only padding"):
            layer(x)
        return
    out, indices = layer(x)
    np.testing.assert_array_equal(out, expected.numpy())
    np.testing.assert_array_equal(indices, expected_indices.numpy())
    g = rng.standard_normal(out.shape)
    _, dx = torch_grads(lambda t: F.max_pool2d(t, **options), x, g)
    np.testing.assert_allclose(layer.backward(g), dx, **TOL)


def test_maxpool_ties_and_overlapping_windows_like_torch() -> None:
    """Ties pick the index PyTorch picks, and overlapping windows add up in the backward."""
    x = np.random.default_rng(0).integers(0, 2, (2, 2, 6, 7)).astype(np.float64)
    layer = nn.MaxPool2d(3, stride=1, padding=1)
    g = np.random.default_rng(1).standard_normal(layer(x).shape)
    expected, dx = torch_grads(lambda t: F.max_pool2d(t, 3, 1, 1), x, g)
    np.testing.assert_array_equal(layer(x), expected)
    np.testing.assert_allclose(layer.backward(g), dx, **TOL)


@settings(max_examples=12, deadline=None)
@given(case=pool_cases(with_dilation=False), count_include_pad=st.booleans())
def test_avgpool_matches_torch(case: dict, count_include_pad: bool) -> None:
    options = {k: case[k] for k in ("kernel_size", "stride", "padding", "ceil_mode")}
    options["count_include_pad"] = count_include_pad
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["batch"], case["channels"], *case["size"]))
    layer = nn.AvgPool2d(**options)
    out = layer(x)
    g = rng.standard_normal(out.shape)
    expected, dx = torch_grads(lambda t: F.avg_pool2d(t, **options), x, g)
    np.testing.assert_allclose(out, expected, **TOL)
    np.testing.assert_allclose(layer.backward(g), dx, **TOL)


@pytest.mark.parametrize("layer", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2), nn.AvgPool2d(3, 2, 1, True, False)],
                         ids=repr)
def test_pooling_finite_differences(layer) -> None:
    x = np.random.default_rng(3).standard_normal((2, 2, 5, 6))
    result = gradcheck(layer, x, check_input=True)
    assert result.ok, result.report()


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: nn.MaxPool2d(0), ValueError, "kernel_size must be >= 1"),
        (lambda: nn.MaxPool2d(2, padding=2), ValueError, "padding must be at most half of kernel_size"),
        (lambda: nn.MaxPool2d("2"), TypeError, "kernel_size must be an int or a pair of ints"),
        (lambda: nn.MaxPool2d(2, ceil_mode=1), TypeError, "ceil_mode must be True or False"),
        (lambda: nn.AvgPool2d(2, divisor_override=3), ValueError, "divisor_override is not supported"),
        (lambda: nn.AvgPool2d(2, stride=0), ValueError, "stride must be >= 1"),
        (lambda: nn.ReLU(inplace=True), ValueError, "inplace must be False"),
        (lambda: nn.Softmax(dim=0), ValueError, "dim must be 1"),
        (lambda: nn.CrossEntropyLoss(reduction="sum"), ValueError, "reduction must be 'mean'"),
    ],
)
def test_bad_arguments(make, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        make()


@pytest.mark.parametrize("layer", [nn.MaxPool2d(2), nn.AvgPool2d(2), nn.ReLU(), nn.Sigmoid(), nn.Softmax()], ids=repr)
def test_bad_inputs(layer) -> None:
    with pytest.raises(TypeError, match="x must be a numpy.ndarray, but got list"):
        layer([[1.0, 2.0]])
    with pytest.raises(TypeError, match="x must be float32 or float64, but got int64"):
        layer(np.zeros((1, 1, 4, 4), np.int64))
    with pytest.raises(RuntimeError, match="forward pass first"):
        layer.backward(np.zeros((1, 1, 2, 2)))
    x = np.zeros((1, 1, 4, 4)) if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)) else np.zeros((2, 3))
    out = layer(x)
    with pytest.raises(ValueError, match=r"grad_out must have shape"):
        layer.backward(np.zeros((*out.shape[:-1], out.shape[-1] + 1)))
    with pytest.raises(TypeError, match="grad_out must be float64, but got float32"):
        layer.backward(np.zeros(out.shape, np.float32))


@settings(max_examples=10, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 999),
       kind=st.sampled_from(["relu", "sigmoid"]), dtype=st.sampled_from(["float32", "float64"]))
def test_activations_match_torch(shape, seed, kind, dtype) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[:: 3] = 0.0  # exact zeros: ReLU's subgradient there is 0, as PyTorch's
    layer = nn.ReLU() if kind == "relu" else nn.Sigmoid()
    g = rng.standard_normal(shape).astype(dtype)
    expected, dx = torch_grads(torch.relu if kind == "relu" else torch.sigmoid, x, g)
    tol = TOL if dtype == "float64" else dict(rtol=1e-6, atol=1e-6)
    out = layer(x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, expected, **tol)
    np.testing.assert_allclose(layer.backward(g), dx, **tol)


def test_activation_keeps_its_own_copies() -> None:
    layer = nn.Sigmoid()
    x = np.linspace(-2, 2, 6).reshape(2, 3)
    y = layer(x)
    expected = y * (1 - y)
    y[...] = 0.5  # the caller reuses the output buffer
    x[...] = 9.0
    np.testing.assert_allclose(layer.backward(np.ones((2, 3))), expected, rtol=1e-12)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 6), seed=st.integers(0, 999), scale=st.sampled_from([1.0, 30.0]))
def test_softmax_and_cross_entropy_match_torch(n, c, seed, scale) -> None:
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((n, c))
    g = rng.standard_normal((n, c))
    layer = nn.Softmax(dim=1)
    expected, dx = torch_grads(lambda t: torch.softmax(t, dim=1), x, g)
    np.testing.assert_allclose(layer(x), expected, **TOL)
    np.testing.assert_allclose(layer.backward(g), dx, rtol=1e-10, atol=1e-12)

    target = rng.integers(0, c, n)
    loss = nn.CrossEntropyLoss()
    tx = torch.tensor(x, requires_grad=True)
    reference = F.cross_entropy(tx, torch.from_numpy(target))
    (2.5 * reference).backward()
    assert loss(x, target.astype(np.int32)) == pytest.approx(reference.item(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(loss.backward(2.5), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_softmax_and_cross_entropy_finite_differences() -> None:
    x = np.random.default_rng(5).standard_normal((3, 4))
    assert gradcheck(nn.Softmax(), x).ok
    model, target = nn.Linear(4, 5, dtype="float64", rng=0), np.array([0, 4, 2])
    from symconv.gradcheck import gradcheck_model

    result = gradcheck_model(model, nn.CrossEntropyLoss(), x, target)
    assert result.ok, result.report()


def test_cross_entropy_bad_targets() -> None:
    loss = nn.CrossEntropyLoss()
    logits = np.zeros((2, 3))
    with pytest.raises(TypeError, match="target must hold integer class indices, but got dtype float64"):
        loss(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        loss(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="target"):
        loss(logits, np.array([0, 3]))
    with pytest.raises(TypeError, match="target must be a numpy.ndarray"):
        loss(logits, [0, 1])
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\)"):
        loss(np.zeros(3), np.array([0]))
    with pytest.raises(RuntimeError, match="forward pass first"):
        nn.CrossEntropyLoss().backward()
