"""The finite-difference checker: it passes correct gradients, catches wrong ones, and reports."""

from __future__ import annotations

import numpy as np
import pytest

from symconv import nn
from symconv.gradcheck import gradcheck, gradcheck_model
from symconv.nn import Module, Parameter


class Cube(Module):
    """y = w·x³ with a correct backward, or a subtly wrong one (factor 2 instead of 3)."""

    def __init__(self, factor: float = 3.0) -> None:
        super().__init__()
        self.w = Parameter(np.array([0.7, -1.2]))
        self.factor = factor

    def forward(self, x):
        self._x = x.copy()
        return self.w.data * x**3

    def backward(self, g):
        self.w.accumulate((g * self._x**3).reshape(-1, 2).sum(axis=0))
        return g * self.w.data * self.factor * self._x**2


def test_correct_gradients_pass() -> None:
    result = gradcheck(Cube(), np.random.default_rng(0).standard_normal((3, 2)))
    assert result.ok and result.max_abs_error < 1e-7
    assert [t.name for t in result.tensors] == ["input", "w"]
    assert result.tensors[0].checked == 6 and result.tensors[1].checked == 2


def test_wrong_gradients_fail_with_a_readable_report() -> None:
    result = gradcheck(Cube(factor=2.0), np.random.default_rng(0).standard_normal((3, 2)))
    assert not result.ok
    assert result.tensors[0].failures == 6 and result.tensors[1].failures == 0
    report = result.report()
    assert "FAILED: 6 entries outside the tolerance" in report and "6 FAILED" in report
    assert report.splitlines()[2].split()[0] == "input" and str(result) == report
    assert result.max_rel_error == pytest.approx(1 / 3, rel=1e-4)  # |2 - 3| / 3


def test_a_whole_model_with_a_loss() -> None:
    rng = np.random.default_rng(1)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, dtype="float64", rng=rng), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8, 3, dtype="float64", rng=rng),
    )
    x, target = rng.standard_normal((2, 1, 4, 4)), np.array([2, 0])
    result = gradcheck_model(model, nn.CrossEntropyLoss(), x, target)
    assert result.ok, result.report()
    assert [t.name for t in result.tensors] == ["input", "0.weight", "0.bias", "4.weight", "4.bias"]


def test_sampling_and_restoring() -> None:
    layer = nn.Linear(30, 20, dtype="float64", rng=0)
    layer.weight.grad = np.full((20, 30), 5.0)
    weights = layer.weight.data.copy()
    result = gradcheck(layer, np.ones((2, 30)), max_entries=7, seed=3)
    assert result.ok and [t.checked for t in result.tensors] == [7, 7, 7]
    assert [t.total for t in result.tensors] == [60, 600, 20]
    np.testing.assert_array_equal(layer.weight.data, weights)  # parameters and grads as before
    np.testing.assert_array_equal(layer.weight.grad, 5.0)


def test_explicit_grad_out_and_bad_arguments() -> None:
    layer = nn.Linear(2, 2, dtype="float64", rng=0)
    x = np.ones((1, 2))
    assert gradcheck(layer, x, grad_out=np.array([[1.0, -1.0]])).ok
    with pytest.raises(ValueError, match=r"grad_out must be a float64 array of the output's shape \(1, 2\)"):
        gradcheck(layer, x, grad_out=np.ones((2, 2)))
    with pytest.raises(TypeError, match="x must be float64 for a finite-difference check, but got float32"):
        gradcheck(layer, x.astype(np.float32))
    with pytest.raises(TypeError, match="parameter weight must be float64"):
        gradcheck(nn.Linear(2, 2, rng=0), x)
    with pytest.raises(TypeError, match="module must be a symconv.nn.Module, but got function"):
        gradcheck(lambda v: v, x)
    with pytest.raises(ValueError, match="eps must be > 0.0"):
        gradcheck(layer, x, eps=0.0)
