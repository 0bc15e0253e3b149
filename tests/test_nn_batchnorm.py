"""BatchNorm2d against torch.nn.BatchNorm2d: training and evaluation, running statistics, options."""

from __future__ import annotations

import numpy as np
import pytest

from symconv import nn
from symconv.gradcheck import gradcheck

torch = pytest.importorskip("torch")

OPTIONS = {
    "default": dict(),
    "cumulative": dict(momentum=None),
    "no_affine": dict(affine=False, momentum=0.3),
    "untracked": dict(track_running_stats=False),
    "eps": dict(eps=1e-2),
}


def pair(options: dict, channels: int = 3):
    ours = nn.BatchNorm2d(channels, dtype="float64", **options)
    theirs = torch.nn.BatchNorm2d(channels, dtype=torch.float64, **options)
    if ours.affine:  # non-trivial γ, β
        rng = np.random.default_rng(9)
        ours.weight.data = rng.uniform(0.5, 1.5, channels)
        ours.bias.data = rng.standard_normal(channels)
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(ours.weight.data))
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    return ours, theirs


def step(ours, theirs, x: np.ndarray, g: np.ndarray) -> None:
    """One forward/backward in both, compared."""
    tx = torch.tensor(x, requires_grad=True)
    out, expected = ours(x), theirs(tx)
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    expected.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours.backward(g), tx.grad.numpy(), rtol=1e-9, atol=1e-10)
    if ours.affine:
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", OPTIONS)
def test_training_then_evaluation_match_torch(name: str) -> None:
    ours, theirs = pair(OPTIONS[name])
    rng = np.random.default_rng(0)
    for _ in range(3):  # three training batches move the running statistics
        x = 2.0 + 3.0 * rng.standard_normal((4, 3, 5, 2))
        step(ours, theirs, x, rng.standard_normal(x.shape))
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-12, atol=1e-14, err_msg=key)
    ours.eval(), theirs.eval()
    for p in ours.parameters():
        p.grad = None
    theirs.zero_grad()
    x = rng.standard_normal((2, 3, 4, 4))
    step(ours, theirs, x, rng.standard_normal(x.shape))
    if ours.track_running_stats:  # evaluation does not move them
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-12)
        assert ours.num_batches_tracked == 3


def test_state_layout_like_torch() -> None:
    for options in OPTIONS.values():
        ours, theirs = nn.BatchNorm2d(4, **options), torch.nn.BatchNorm2d(4, **options)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


@pytest.mark.parametrize("training", [True, False])
def test_finite_differences(training: bool) -> None:
    layer = nn.BatchNorm2d(2, dtype="float64")
    layer.weight.data = np.array([0.7, 1.3])
    layer.bias.data = np.array([0.1, -0.2])
    layer.running_mean, layer.running_var = np.array([0.3, -0.1]), np.array([1.5, 0.8])
    layer.train(training)
    x = np.random.default_rng(1).standard_normal((3, 2, 2, 3))
    before = layer.state_dict()
    result = gradcheck(layer, x)
    assert result.ok, result.report()
    for key, value in before.items():  # the check leaves the running statistics as they were
        np.testing.assert_array_equal(layer.state_dict()[key], value)


def test_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="num_features must be a positive int, but got 0"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="eps must be > 0.0, but got 0"):
        nn.BatchNorm2d(2, eps=0)
    with pytest.raises(TypeError, match="momentum must be a real number, but got '0.1'"):
        nn.BatchNorm2d(2, momentum="0.1")
    with pytest.raises(TypeError, match="affine must be True or False"):
        nn.BatchNorm2d(2, affine=None)
    layer = nn.BatchNorm2d(2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2, H, W\), but got \(1, 3, 2, 2\)"):
        layer(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(TypeError, match="x must be float32, but got float64"):
        layer(np.zeros((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="more than 1 value per channel when training"):
        layer(np.zeros((1, 2, 1, 1), np.float32))
    layer.eval()
    assert layer(np.zeros((1, 2, 1, 1), np.float32)).shape == (1, 2, 1, 1)  # fine in evaluation
