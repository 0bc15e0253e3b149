"""ConvTranspose2d (the convolution's grad_input kernel) against torch.nn.ConvTranspose2d."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symconv import nn
from symconv.gradcheck import gradcheck

torch = pytest.importorskip("torch")


@st.composite
def configs(draw) -> dict:
    groups = draw(st.integers(1, 2))
    config = dict(
        in_channels=groups * draw(st.integers(1, 2)),
        out_channels=groups * draw(st.integers(1, 2)),
        kernel_size=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 2))),
        padding=(draw(st.integers(0, 2)), draw(st.integers(0, 1))),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        groups=groups,
        bias=draw(st.booleans()),
    )
    limits = [max(s, d) - 1 for s, d in zip(config["stride"], config["dilation"])]
    config["output_padding"] = tuple(draw(st.integers(0, limit)) for limit in limits)
    return config


def torch_twin(layer: nn.ConvTranspose2d, config: dict):
    twin = torch.nn.ConvTranspose2d(**config, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.data))
        if layer.bias is not None:
            twin.bias.copy_(torch.from_numpy(layer.bias.data))
    return twin


def output_size(size, k, s, p, d, op) -> int:
    return (size - 1) * s - 2 * p + d * (k - 1) + op + 1


@settings(max_examples=12, deadline=None)
@given(config=configs(), batch=st.integers(1, 2), h=st.integers(1, 4), w=st.integers(1, 4), seed=st.integers(0, 999))
def test_matches_torch(config: dict, batch: int, h: int, w: int, seed: int) -> None:
    sizes = [output_size(n, *args) for n, *args in zip(
        (h, w), config["kernel_size"], config["stride"], config["padding"], config["dilation"], config["output_padding"]
    )]
    layer = nn.ConvTranspose2d(**config, dtype="float64", rng=seed)
    x = np.random.default_rng(seed).standard_normal((batch, config["in_channels"], h, w))
    if min(sizes) < 1:
        with pytest.raises(ValueError, match="non-positive output size"):
            layer(x)
        return
    twin = torch_twin(layer, config)
    tx = torch.tensor(x, requires_grad=True)
    out, out_t = layer(x), twin(tx)
    assert out.shape == tuple(out_t.shape)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(seed + 1).standard_normal(out.shape)
    dx = layer.backward(g)
    out_t.backward(torch.from_numpy(g))
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, twin.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    if layer.bias is not None:
        np.testing.assert_allclose(layer.bias.grad, twin.bias.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_finite_differences_with_output_padding_beyond_padding() -> None:
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=(0, 1), output_padding=1, dtype="float64", rng=0)
    x = np.random.default_rng(1).standard_normal((2, 2, 3, 2))
    assert layer(x).shape == (2, 3, 8, 4)  # (3-1)·2 - 0 + 2 + 1 + 1, (2-1)·2 - 2 + 2 + 1 + 1
    result = gradcheck(layer, x)
    assert result.ok, result.report()


def test_weight_layout_and_initialisation_like_torch() -> None:
    config = dict(in_channels=6, out_channels=40, kernel_size=3, groups=2)
    layer, twin = nn.ConvTranspose2d(**config, rng=0), torch.nn.ConvTranspose2d(**config)
    assert layer.weight.shape == tuple(twin.weight.shape) == (6, 20, 3, 3)
    assert layer.bias.shape == tuple(twin.bias.shape)
    bound = 1 / np.sqrt(20 * 9)  # fan_in from the weight's second axis, as PyTorch computes it
    assert twin.weight.detach().abs().max().item() <= bound
    assert 0.98 * bound < np.abs(layer.weight.data).max() <= bound


@pytest.mark.parametrize(
    "change, error, words",
    [
        (dict(output_padding=1), ValueError, "output_padding must be smaller than stride or dilation"),
        (dict(stride=2, output_padding=2), ValueError, "output_padding must be smaller than stride or dilation"),
        (dict(in_channels=3, groups=2), ValueError, "groups must divide in_channels, but got 2 and 3"),
        (dict(out_channels=3, groups=2), ValueError, "groups must divide out_channels, but got 2 and 3"),
        (dict(kernel_size=0), ValueError, "kernel_size must be >= 1"),
        (dict(padding=-1), ValueError, "padding must be >= 0"),
        (dict(padding="same"), TypeError, "padding must be an int or a pair of ints"),
        (dict(rng=-2), ValueError, "rng must be a non-negative int seed"),
        (dict(bias="no"), TypeError, "bias must be True or False"),
    ],
)
def test_bad_arguments(change: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        nn.ConvTranspose2d(**{**dict(in_channels=2, out_channels=2, kernel_size=3), **change})


def test_bad_inputs() -> None:
    layer = nn.ConvTranspose2d(2, 3, 2, stride=2, rng=0)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2, H, W\), but got \(1, 3, 2, 2\)"):
        layer(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(TypeError, match="x must be float32, but got float64"):
        layer(np.zeros((1, 2, 2, 2)))
    with pytest.raises(RuntimeError, match="forward pass first"):
        layer.backward(np.zeros((1, 3, 4, 4), np.float32))
    out = layer(np.zeros((1, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 3, 4, 4\), but got \(1, 3, 3, 3\)"):
        layer.backward(np.zeros((1, 3, 3, 3), np.float32))
    with pytest.raises(TypeError, match="grad_out must be float32, but got float64"):
        layer.backward(np.zeros(out.shape))
