"""Linear (the rank-1 convolution) and Flatten against PyTorch, and by finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symconv import nn
from symconv.gradcheck import gradcheck

torch = pytest.importorskip("torch")


@settings(max_examples=10, deadline=None)
@given(
    in_features=st.integers(1, 9),
    out_features=st.integers(1, 7),
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_matches_torch(in_features, out_features, lead, bias, seed) -> None:
    layer = nn.Linear(in_features, out_features, bias=bias, dtype="float64", rng=seed)
    twin = torch.nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.data))
        if bias:
            twin.bias.copy_(torch.from_numpy(layer.bias.data))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, in_features))
    tx = torch.tensor(x, requires_grad=True)
    out, out_t = layer(x), twin(tx)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    dx = layer.backward(g)
    out_t.backward(torch.from_numpy(g))
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, twin.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, twin.bias.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_linear_against_numpy_and_finite_differences() -> None:
    layer = nn.Linear(5, 3, dtype="float64", rng=0)
    x = np.random.default_rng(1).standard_normal((4, 5))
    np.testing.assert_allclose(layer(x), x @ layer.weight.data.T + layer.bias.data, rtol=1e-13)
    result = gradcheck(layer, x)
    assert result.ok, result.report()


def test_linear_initialisation_like_torch() -> None:
    layer, twin = nn.Linear(400, 30, rng=0), torch.nn.Linear(400, 30)
    assert layer.weight.shape == tuple(twin.weight.shape) and layer.bias.shape == tuple(twin.bias.shape)
    bound = 1 / np.sqrt(400)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.99 * bound
    assert twin.weight.detach().abs().max().item() <= bound
    assert np.abs(layer.bias.data).max() <= bound
    assert layer.weight.data.dtype == np.float32


def test_linear_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="in_features must be a positive int, but got 0"):
        nn.Linear(0, 2)
    with pytest.raises(TypeError, match="out_features must be a positive int, but got '2'"):
        nn.Linear(2, "2")
    with pytest.raises(TypeError, match="rng must be"):
        nn.Linear(2, 2, rng="x")
    layer = nn.Linear(3, 2, rng=0)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 3\), but got \(2, 4\)"):
        layer(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="x must be float32, but got float64"):
        layer(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="forward pass first"):
        layer.backward(np.zeros((2, 2), np.float32))
    layer(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 2\), but got \(2, 3\)"):
        layer.backward(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("start, end", [(1, -1), (0, -1), (1, 2), (2, 3), (-2, -1), (0, 0)])
def test_flatten_matches_torch(start: int, end: int) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    layer = nn.Flatten(start, end)
    out = layer(x)
    assert out.shape == tuple(torch.nn.Flatten(start, end)(torch.from_numpy(x)).shape)
    np.testing.assert_array_equal(out, torch.nn.Flatten(start, end)(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(layer.backward(out * 2), x * 2)


def test_flatten_bad_arguments() -> None:
    with pytest.raises(TypeError, match="start_dim must be an int"):
        nn.Flatten("1")
    with pytest.raises(ValueError, match="start_dim=3 and end_dim=1 must name axes"):
        nn.Flatten(3, 1)(np.zeros((1, 2, 3, 4)))
    layer = nn.Flatten()
    layer(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"grad_out must have as many entries as x of shape \(2, 3, 4\)"):
        layer.backward(np.zeros((2, 5)))


@settings(max_examples=12, deadline=None)
@given(
    batch=st.integers(0, 40),
    in_features=st.integers(1, 300),
    out_features=st.integers(1, 300),
    bias=st.booleans(),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**16),
)
def test_linear_matches_torch_on_drawn_shapes(batch, in_features, out_features, bias, dtype, seed) -> None:
    """Any shape (each compiles its own kernels): output and gradients as torch's F.linear and autograd,
    within the rounding error of a sum of that many products."""
    import torch.nn.functional as F

    layer = nn.Linear(in_features, out_features, bias=bias, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, in_features)).astype(dtype)
    g = rng.standard_normal((batch, out_features)).astype(dtype)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(layer.weight.data, requires_grad=True)
    tb = torch.tensor(layer.bias.data, requires_grad=True) if bias else None
    out_t = F.linear(tx, tw, tb)
    out_t.backward(torch.from_numpy(g))
    out = layer(x)
    dx = layer.backward(g)
    u = np.finfo(dtype).eps
    w, b = layer.weight.data.astype(np.float64), np.abs(layer.bias.data) if bias else 0
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    # two sums (ours and torch's) of k terms each differ by at most 2 (k + 1) u Σ|term|
    checks = [(out, out_t, (in_features + 2) * (np.abs(x64) @ np.abs(w).T + b)),
              (dx, tx.grad, (out_features + 1) * (np.abs(g64) @ np.abs(w))),
              (layer.weight.grad, tw.grad, (batch + 1) * (np.abs(g64).T @ np.abs(x64)))]
    if bias:
        checks.append((layer.bias.grad, tb.grad, (batch + 1) * np.abs(g64).sum(axis=0)))
    for ours, theirs, scale in checks:
        assert ours.dtype == np.dtype(dtype) and ours.shape == tuple(theirs.shape)
        assert np.all(np.abs(ours - theirs.detach().numpy().astype(np.float64)) <= u * scale)


def test_linear_gradients_of_an_empty_batch_are_zero() -> None:
    layer = nn.Linear(4, 3, dtype="float64", rng=0)
    y = layer(np.zeros((0, 4)))
    assert y.shape == (0, 3)
    assert layer.backward(np.zeros((0, 3))).shape == (0, 4)
    for grad in (layer.weight.grad, layer.bias.grad):
        assert (grad == 0).all() and not np.signbit(grad).any()


def test_linear_runs_on_its_own_kernels() -> None:
    from symconv.kernels import LinearKernel

    layer = nn.Linear(5, 3, rng=0)
    layer(np.zeros((2, 4, 5), np.float32))
    kernel = layer.kernel(8)
    assert isinstance(kernel, LinearKernel) and kernel.input_shape == (8, 5) and kernel.bias
