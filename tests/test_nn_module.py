"""Module bookkeeping: registration order, state_dict names (PyTorch's), load/save, modes, grads."""

from __future__ import annotations

import os

import numpy as np
import pytest

from symconv import nn
from symconv.nn import Module, Parameter

torch = pytest.importorskip("torch")


def small_model(seed: int = 0, dtype: str = "float32") -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, dtype=dtype, rng=rng),
        nn.BatchNorm2d(4, dtype=dtype),
        nn.ReLU(),
        nn.Sequential(nn.ConvTranspose2d(4, 2, 2, stride=2, dtype=dtype, rng=rng), nn.Flatten()),
        nn.Linear(2 * 10 * 10, 3, dtype=dtype, rng=rng),
    )


def torch_small_model() -> "torch.nn.Sequential":
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 2, 2, stride=2), torch.nn.Flatten()),
        torch.nn.Linear(2 * 10 * 10, 3),
    )


def test_state_dict_keys_shapes_and_dtypes_are_torch_s() -> None:
    ours, theirs = small_model().state_dict(), torch_small_model().state_dict()
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert ours[key].shape == tuple(value.shape), key
        assert ours[key].dtype == value.numpy().dtype, key


def test_named_parameters_follow_registration_order() -> None:
    model = small_model()
    names = [name for name, _ in model.named_parameters()]
    assert names == [name for name, _ in torch_small_model().named_parameters()]
    assert model.parameters() == [p for _, p in model.named_parameters()]
    assert [name for name, _ in model.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]


def test_loads_a_torch_state_dict_converted_to_numpy() -> None:
    twin = torch_small_model().eval()
    with torch.no_grad():  # make the running statistics non-trivial
        twin[1].running_mean.uniform_(-1, 1)
        twin[1].running_var.uniform_(0.5, 2)
        twin[1].num_batches_tracked += 7
    model = small_model(seed=5)
    model.load_state_dict({key: value.numpy() for key, value in twin.state_dict().items()})
    for key, value in twin.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value.numpy())
    assert model[1].num_batches_tracked == 7


def test_state_dict_is_a_copy() -> None:
    model = small_model()
    state = model.state_dict()
    state["0.weight"][...] = 42.0
    assert not np.any(model[0].weight.data == 42.0)


def test_save_and_load_round_trip(tmp_path) -> None:
    model, other = small_model(seed=1), small_model(seed=2)
    model[1].running_mean = np.arange(4, dtype=np.float32)
    path = model.save(tmp_path / "weights.npz")
    assert path == tmp_path / "weights.npz" and path.exists()
    assert os.listdir(tmp_path) == ["weights.npz"]  # no temporary file left behind
    other.load(path)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[key], value)
    assert other.state_dict()["1.num_batches_tracked"].dtype == np.int64
    with np.load(path) as archive:  # a plain .npz with PyTorch's names
        assert list(archive.files) == list(model.state_dict())


def test_load_state_dict_refuses_mismatches_before_changing_anything() -> None:
    model = small_model()
    before = model.state_dict()
    state = model.state_dict()
    bad_shape = {**state, "0.weight": np.zeros((4, 1, 2, 2), np.float32)}
    with pytest.raises(ValueError, match=r"state\['0.weight'\] must have shape \(4, 1, 3, 3\), but got \(4, 1, 2, 2\)"):
        model.load_state_dict(bad_shape)
    bad_dtype = {**state, "4.bias": state["4.bias"].astype(np.float64), "0.bias": state["0.bias"] + 1}
    with pytest.raises(TypeError, match=r"state\['4.bias'\] must be float32, but got float64"):
        model.load_state_dict(bad_dtype)
    np.testing.assert_array_equal(model.state_dict()["0.bias"], before["0.bias"])  # untouched
    missing = {k: v for k, v in state.items() if k != "1.running_var"}
    with pytest.raises(KeyError, match=r"missing keys \['1.running_var'\], unexpected keys \[\]"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['9.weight'\]"):
        model.load_state_dict({**state, "9.weight": np.zeros(1)})
    result = model.load_state_dict({**missing, "9.weight": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["1.running_var"] and result.unexpected_keys == ["9.weight"]
    with pytest.raises(TypeError, match="state must be a mapping"):
        model.load_state_dict([("0.weight", state["0.weight"])])


def test_train_eval_and_zero_grad_reach_every_module() -> None:
    model = small_model()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(TypeError, match="mode must be True or False"):
        model.train("yes")
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


class Scale(Module):
    """A user-defined module: y = a * x, with a child and a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.a = Parameter(np.array([2.0]))
        self.register_buffer("calls", np.array(0, np.int64))
        self.inner = nn.Flatten()
        self.note = "plain attribute"

    def forward(self, x):
        self.calls = self.calls + 1
        self._x = x
        return self.inner(x * self.a.data)

    def backward(self, g):
        g = self.inner.backward(g)
        self.a.accumulate(np.array([np.sum(g * self._x)]))
        return g * self.a.data


def test_user_defined_modules_register_by_assignment() -> None:
    module = Scale()
    assert [n for n, _ in module.named_parameters()] == ["a"]
    assert list(module.state_dict()) == ["a", "calls"]
    assert module.children() == [module.inner] and module.note == "plain attribute"
    module(np.ones((2, 3, 1)))
    assert module.calls == 1 and module.state_dict()["calls"] == 1
    assert module.backward(np.ones((2, 3))).shape == (2, 3, 1)
    np.testing.assert_array_equal(module.a.grad, [6.0])
    with pytest.raises(TypeError, match="a is a parameter: assign a Parameter or None"):
        module.a = np.zeros(1)
    module.a = None
    assert module.parameters() == [] and "a" not in module.state_dict()
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        module.missing
    assert repr(module) == "Scale(\n  (inner): Flatten(start_dim=1, end_dim=-1)\n)"


def test_a_module_that_skips_init_gets_a_clear_error() -> None:
    class Forgetful(Module):
        def __init__(self) -> None:
            self.weight = Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match=r"must call Module.__init__\(\) before assigning"):
        Forgetful()


def test_parameter_checks_and_accumulates_in_place() -> None:
    p = Parameter(np.zeros(3))
    p.accumulate(np.ones(3))
    held = p.grad
    p.accumulate(np.ones(3))
    assert held is p.grad and list(held) == [2.0, 2.0, 2.0]
    with pytest.raises(TypeError, match="data must be a numpy.ndarray, but got list"):
        Parameter([1.0])
    with pytest.raises(ValueError, match=r"grad must be None or an array of shape \(3,\)"):
        Parameter(np.zeros(3), np.zeros(2))


def test_sequential_container_protocol() -> None:
    layers = [nn.Flatten(), nn.Linear(4, 2, rng=0), nn.Linear(2, 1, rng=1)]
    model = nn.Sequential(*layers)
    assert len(model) == 3 and list(model) == layers and model[-1] is layers[2]
    head = model[1:]
    assert isinstance(head, nn.Sequential) and list(head) == layers[1:]
    assert list(head.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]
    with pytest.raises(IndexError, match="index 3 is out of range for a Sequential of 3 modules"):
        model[3]
    with pytest.raises(TypeError, match="Sequential takes Modules, but got int for '1'"):
        nn.Sequential(nn.Flatten(), 3)
    named = nn.Sequential({"flat": nn.Flatten(), "fc": nn.Linear(4, 2, rng=0)})
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    assert repr(model).startswith("Sequential(\n  (0): Flatten(start_dim=1, end_dim=-1)\n  (1): Linear(in_features=4")
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    out = model(x)
    assert out.shape == (2, 1)
    assert model.backward(np.ones_like(out)).shape == (2, 2, 2)
