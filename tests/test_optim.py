"""symconv.optim.SGD against torch.optim.SGD, option by option, step by step."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from symconv.nn import Parameter
from symconv.optim import SGD

torch = pytest.importorskip("torch")

OPTIONS = [
    dict(momentum=m, dampening=d, weight_decay=wd, nesterov=n)
    for m, d, wd, n in itertools.product((0.0, 0.9), (0.0, 0.3), (0.0, 0.01), (False, True))
    if not (n and (m == 0 or d != 0))  # the combinations PyTorch accepts
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_torch_sgd(options: dict, dtype: str) -> None:
    rng = np.random.default_rng(0)
    shapes = [(3, 2), (4,), (2, 1, 2, 2)]
    ours = [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    sgd = SGD(ours, lr=0.1, **options)
    reference = torch.optim.SGD(theirs, lr=0.1, **options)
    for step in range(6):
        sgd.zero_grad()
        reference.zero_grad()
        for index, (p, t) in enumerate(zip(ours, theirs)):
            if step == 2 and index == 1:
                continue  # no gradient this step: both skip it (and keep its momentum buffer)
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad = g
            t.grad = torch.from_numpy(g.copy())
        sgd.step()
        reference.step()
        tol = 1e-14 if dtype == "float64" else 1e-6
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=tol, atol=tol)
            assert p.data.dtype == np.dtype(dtype)


def test_first_momentum_step_is_the_plain_gradient() -> None:
    """PyTorch starts the buffer at the gradient (no dampening on the first step)."""
    p = Parameter(np.array([1.0]))
    sgd = SGD([p], lr=0.5, momentum=0.9, dampening=0.5)
    p.grad = np.array([2.0])
    sgd.step()
    assert p.data[0] == 1.0 - 0.5 * 2.0
    p.grad = np.array([2.0])
    sgd.step()
    assert p.data[0] == pytest.approx(0.0 - 0.5 * (0.9 * 2.0 + 0.5 * 2.0))


def test_zero_grad_and_skipped_parameters() -> None:
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    sgd = SGD([a, b], lr=1.0)
    a.grad = np.ones(2)
    sgd.step()
    np.testing.assert_array_equal(a.data, [0.0, 0.0])
    np.testing.assert_array_equal(b.data, [1.0, 1.0])  # no grad: untouched
    sgd.zero_grad()
    assert a.grad is None and b.grad is None


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(lr=-0.1), ValueError, "lr must be >= 0.0, but got -0.1"),
        (dict(lr="0.1"), TypeError, "lr must be a real number, but got '0.1'"),
        (dict(lr=float("nan")), ValueError, "lr must be finite"),
        (dict(lr=0.1, momentum=-1), ValueError, "momentum must be >= 0.0"),
        (dict(lr=0.1, weight_decay=-1e-3), ValueError, "weight_decay must be >= 0.0"),
        (dict(lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum > 0 and dampening = 0"),
        (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "nesterov=True needs"),
        (dict(lr=0.1, nesterov=1), TypeError, "nesterov must be True or False"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        SGD([Parameter(np.zeros(1))], **kwargs)


def test_bad_params() -> None:
    p = Parameter(np.zeros(1))
    with pytest.raises(TypeError, match="params must be an iterable of Parameters, but got Parameter"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\] must be a Parameter, but got ndarray"):
        SGD([p, np.zeros(1)], lr=0.1)
    with pytest.raises(ValueError, match="params must contain at least one Parameter"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="the same Parameter twice"):
        SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="lr"):
        SGD([p])  # lr is required, as in PyTorch
