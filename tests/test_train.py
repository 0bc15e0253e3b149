"""Training: parity with PyTorch step by step, a short run that learns, and the digits command."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from symconv import nn
from symconv.optim import SGD
from symconv.train import command, digits

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")


def torch_lenet() -> "torch.nn.Sequential":
    """The same architecture as ``digits.lenet``, written independently in PyTorch."""
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 16, 3, padding=1), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(16, 32, 3, padding=1), t.ReLU(), t.MaxPool2d(2),
        t.Flatten(), t.Linear(128, 120), t.ReLU(), t.Linear(120, 84), t.ReLU(), t.Linear(84, 10),
    ).double()


@pytest.fixture(scope="module")
def split() -> digits.Split:
    return digits.load_split(dtype="float64")


def test_split_is_held_out_and_stratified(split: digits.Split) -> None:
    assert split.x_train.shape == (1437, 1, 8, 8) and split.x_test.shape == (360, 1, 8, 8)
    assert abs(split.x_train.mean()) < 1e-9 and abs(split.x_train.std() - 1) < 1e-9  # standardised on train
    assert abs(split.x_test.mean()) > 1e-6  # with the training statistics, not its own
    assert np.bincount(split.y_test).min() >= 35  # every class is represented in the test set
    train_rows = {row.tobytes() for row in split.x_train}
    assert sum(row.tobytes() in train_rows for row in split.x_test) < 5  # (the data hold a few duplicates)


def test_twenty_sgd_steps_agree_with_pytorch(split: digits.Split) -> None:
    """Same LeNet, same initial weights, same batches, SGD with momentum and weight decay (float64)."""
    model = digits.lenet("float64", rng=1)
    twin = torch_lenet()
    twin.load_state_dict({key: torch.from_numpy(value) for key, value in model.state_dict().items()})
    options = dict(lr=0.05, momentum=0.9, weight_decay=5e-3)
    ours, theirs = SGD(model.parameters(), **options), torch.optim.SGD(twin.parameters(), **options)
    loss, reference = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    plan = digits.batches(len(split.y_train), 32, np.random.default_rng(2))[:20]
    gaps = []
    for index in plan:
        x, y = split.x_train[index], split.y_train[index]
        value, _ = digits.train_step(model, loss, ours, x, y)
        theirs.zero_grad()
        expected = reference(twin(torch.from_numpy(x)), torch.from_numpy(y))
        expected.backward()
        theirs.step()
        gaps.append(abs(value - expected.item()))
    assert max(gaps) < 1e-4, gaps
    for key, value in twin.state_dict().items():  # and the weights after 20 steps
        np.testing.assert_allclose(model.state_dict()[key], value.numpy(), rtol=1e-6, atol=1e-8)


def test_a_few_steps_reduce_the_loss(split: digits.Split) -> None:
    model = digits.lenet("float32", rng=0)
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss = nn.CrossEntropyLoss()
    x, y = split.x_train[:32].astype(np.float32), split.y_train[:32]
    losses = [digits.train_step(model, loss, optimizer, x, y)[0] for _ in range(25)]
    assert losses[-1] < 0.9 * losses[0] and losses[-1] == min(losses), losses
    again = digits.lenet("float32", rng=0)  # deterministic: the same seed gives the same run
    optimizer = SGD(again.parameters(), lr=0.05, momentum=0.9)
    assert [digits.train_step(again, loss, optimizer, x, y)[0] for _ in range(3)] == losses[:3]


def command_args(**changes) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_train_command(parser.add_subparsers(dest="command"))
    argv = ["train", "--quiet"] + [f"--{k.replace('_', '-')}={v}" for k, v in changes.items()]
    return parser.parse_args(argv)


def test_the_command_writes_curves_weights_and_history(tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    args = command_args(epochs=2, out=tmp_path / "run", lr=0.1)
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "curves.png" in out
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["test_accuracy"]) == 2 and history["test_accuracy"][-1] > 0.3
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = digits.lenet("float32", rng=123)
    model.load(tmp_path / "run" / "lenet_digits.npz")  # strict: every weight is there
    split = digits.load_split()
    _, accuracy = digits.evaluate(model, split.x_test, split.y_test)
    assert accuracy == pytest.approx(history["test_accuracy"][-1])


@pytest.mark.parametrize(
    "changes, words", [(dict(epochs=0), "--epochs must be >= 1"), (dict(lr=-1), "--lr must be > 0"),
                       (dict(batch_size=5000), "batch_size must be between 1 and 1437")],
)
def test_the_command_refuses_bad_arguments(tmp_path, capsys, changes, words) -> None:
    args = command_args(out=tmp_path / "run", **changes)
    assert args.handler(args) == 2
    assert words in capsys.readouterr().err
