"""symconv.nn.Conv2d against torch.nn.Conv2d with the same weights: forward, backward, init,
gradient accumulation, and the arguments it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from symconv.nn import Conv2d, Parameter

torch = pytest.importorskip("torch")

CONFIGS = {
    "lenet_c1": dict(in_channels=1, out_channels=6, kernel_size=5),
    "strided_padded": dict(in_channels=3, out_channels=4, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2)),
    "dilated_grouped_nobias": dict(in_channels=4, out_channels=6, kernel_size=3, dilation=2, groups=2, bias=False),
    "depthwise_same": dict(in_channels=3, out_channels=3, kernel_size=3, padding="same", groups=3),
}


def torch_twin(layer: Conv2d, config: dict, dtype: str):
    twin = torch.nn.Conv2d(**config, dtype=getattr(torch, dtype))
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.data))
        if layer.bias is not None:
            twin.bias.copy_(torch.from_numpy(layer.bias.data))
    return twin


@pytest.mark.parametrize(
    "name, dtype", [*((name, "float32") for name in CONFIGS), ("dilated_grouped_nobias", "float64")]
)
def test_matches_torch_forward_and_backward(name: str, dtype: str) -> None:
    config = CONFIGS[name]
    layer = Conv2d(**config, dtype=dtype, rng=7)
    twin = torch_twin(layer, config, dtype)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, config["in_channels"], 9, 8)).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-11, atol=1e-11)

    out = layer(x)
    tx = torch.tensor(x, requires_grad=True)
    out_t = twin(tx)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **tol)

    g = rng.standard_normal(out.shape).astype(dtype)
    dx = layer.backward(g)
    out_t.backward(torch.from_numpy(g))
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.weight.grad, twin.weight.grad.numpy(), **tol)
    if layer.bias is not None:
        np.testing.assert_allclose(layer.bias.grad, twin.bias.grad.numpy(), **tol)
    assert dx.dtype == layer.weight.grad.dtype == np.dtype(dtype)


def test_shapes_and_initialisation_like_torch() -> None:
    config = dict(in_channels=32, out_channels=16, kernel_size=3, groups=2)
    layer = Conv2d(**config, rng=0)
    twin = torch.nn.Conv2d(**config)
    assert layer.weight.shape == tuple(twin.weight.shape) == (16, 16, 3, 3)
    assert layer.bias.shape == tuple(twin.bias.shape) == (16,)
    assert layer.weight.data.dtype == np.float32
    # Same distribution: U(-bound, bound); with thousands of draws both reach nearly the bound.
    torch_bound = twin.weight.detach().abs().max().item()
    ours = np.abs(layer.weight.data).max()
    assert ours == pytest.approx(torch_bound, rel=0.02)
    assert abs(layer.weight.data.mean()) < 0.05 * ours
    assert np.abs(layer.bias.data).max() <= ours * (1 + 1e-6)
    # seeded: reproducible, and different seeds differ
    np.testing.assert_array_equal(Conv2d(**config, rng=0).weight.data, layer.weight.data)
    assert not np.array_equal(Conv2d(**config, rng=1).weight.data, layer.weight.data)
    gen = np.random.default_rng(0)
    np.testing.assert_array_equal(Conv2d(**config, rng=gen).weight.data, layer.weight.data)


def test_parameters_grads_and_repr() -> None:
    layer = Conv2d(2, 3, 3, padding=1)
    assert layer.parameters() == [layer.weight, layer.bias]
    assert all(isinstance(p, Parameter) and p.grad is None for p in layer.parameters())
    assert Conv2d(2, 3, 3, bias=False).parameters()[0].shape == (3, 2, 3, 3)
    assert len(Conv2d(2, 3, 3, bias=False).parameters()) == 1
    x = np.ones((1, 2, 4, 4), np.float32)
    layer.backward(np.ones_like(layer(x)))
    assert layer.weight.grad.shape == (3, 2, 3, 3) and layer.bias.grad.shape == (3,)
    np.testing.assert_allclose(layer.bias.grad, 16.0)  # Σ over 4×4 positions of ones
    first = layer.weight.grad.copy()
    layer.backward(np.ones_like(layer(x)))  # accumulates, as PyTorch does
    np.testing.assert_allclose(layer.bias.grad, 32.0)
    np.testing.assert_allclose(layer.weight.grad, 2 * first, rtol=1e-6)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None
    assert repr(layer) == "Conv2d(2, 3, kernel_size=(3, 3), padding=(1, 1))"


def test_kernels_are_built_once_per_input_shape() -> None:
    layer = Conv2d(1, 2, 3, rng=0)
    layer(np.zeros((1, 1, 5, 5), np.float32))
    first = layer.kernel((1, 1, 5, 5))
    layer(np.ones((1, 1, 5, 5), np.float32))
    assert layer.kernel((1, 1, 5, 5)) is first
    out = layer(np.zeros((3, 1, 6, 7), np.float32))
    assert out.shape == (3, 2, 4, 5)
    assert set(layer._kernels) == {(1, 1, 5, 5), (3, 1, 6, 7)}
    # backward uses the input of the last forward (and its shape's kernel)
    assert layer.backward(np.zeros_like(out)).shape == (3, 1, 6, 7)


def test_bad_input_and_arguments() -> None:
    layer = Conv2d(3, 2, 3)
    with pytest.raises(RuntimeError, match="backward needs a forward pass first"):
        layer.backward(np.zeros((1, 2, 1, 1), np.float32))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray, but got list"):
        layer([[1.0]])
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3, H, W\), but got \(1, 2, 5, 5\)"):
        layer(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(TypeError, match="x must be float32, but got float64"):
        layer(np.zeros((1, 3, 5, 5)))
    out = layer(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 3, 3\), but got \(1, 2, 2, 2\)"):
        layer.backward(np.zeros((1, 2, 2, 2), np.float32))
    assert out.shape == (1, 2, 3, 3)
    with pytest.raises(ValueError, match="groups must divide in_channels, but got 2 and 3"):
        Conv2d(3, 2, 3, groups=2)
    with pytest.raises(ValueError, match="in_channels must be a positive int, but got 0"):
        Conv2d(0, 2, 3)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        Conv2d(1, 1, 3, dtype="float16")
    with pytest.raises(TypeError, match=r"kernel_size must be an int or a pair of ints, but got \(3, 'a'\)"):
        Conv2d(1, 1, (3, "a"))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        Conv2d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match="kernel does not fit"):
        Conv2d(1, 1, 3)(np.zeros((1, 1, 2, 2), np.float32))


def test_gradients_accumulate_like_torch() -> None:
    config = CONFIGS["strided_padded"]
    layer = Conv2d(**config, dtype="float64", rng=3)
    twin = torch_twin(layer, config, "float64")
    rng = np.random.default_rng(4)
    for _ in range(3):  # three backward passes without zero_grad, different inputs
        x = rng.standard_normal((2, 3, 6, 5))
        out = layer(x)
        g = rng.standard_normal(out.shape)
        layer.backward(g)
        twin(torch.from_numpy(x)).backward(torch.from_numpy(g))
    np.testing.assert_allclose(layer.weight.grad, twin.weight.grad.numpy(), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(layer.bias.grad, twin.bias.grad.numpy(), rtol=1e-11, atol=1e-11)


def test_input_changed_after_forward_does_not_change_the_gradients() -> None:
    """forward keeps a private copy of x: the caller may reuse its buffer before backward."""
    layer = Conv2d(2, 3, 3, dtype="float64", rng=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 5))
    reference = Conv2d(2, 3, 3, dtype="float64", rng=0)
    g = rng.standard_normal((1, 3, 3, 3))
    reference(x.copy())
    reference.backward(g)
    layer(x)
    x[...] = 1e6  # the caller overwrites its buffer
    layer.backward(g)
    np.testing.assert_array_equal(layer.weight.grad, reference.weight.grad)


@pytest.mark.parametrize(
    "rng, error",
    [(-1, ValueError), ("seed", TypeError), (1.5, TypeError), (True, TypeError), (np.random.RandomState(0), TypeError)],
    ids=["negative", "string", "float", "bool", "legacy_random_state"],
)
def test_bad_rng_is_named(rng, error) -> None:
    with pytest.raises(error, match="^rng must be"):
        Conv2d(1, 1, 3, rng=rng)


@pytest.mark.parametrize(
    "change, error, words",
    [
        (dict(kernel_size=0), ValueError, r"kernel_size must be >= 1 on both axes, but got 0"),
        (dict(kernel_size=(3, 0)), ValueError, r"kernel_size must be >= 1 on both axes, but got \(3, 0\)"),
        (dict(kernel_size="3"), TypeError, "kernel_size must be an int or a pair of ints, but got '3'"),
        (dict(in_channels="3"), TypeError, "in_channels must be a positive int, but got '3'"),
        (dict(groups="1"), TypeError, "groups must be a positive int, but got '1'"),
        (dict(stride="2"), TypeError, "stride must be an int or a pair of ints, but got '2'"),
        (dict(bias=1), TypeError, "bias must be True or False, but got 1"),
    ],
)
def test_bad_arguments_name_the_argument(change: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        Conv2d(**{**dict(in_channels=1, out_channels=1, kernel_size=3), **change})
