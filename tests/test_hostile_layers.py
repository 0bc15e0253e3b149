"""Hostile input to the layers besides the convolution: symconv.nn, their kernels
(symconv.kernels), their specs (symconv.layers), SGD, gradcheck and the ``layer`` / ``train``
commands.

The battery of tests/test_hostile.py, tests/test_hostile_kernel.py and tests/test_hostile_cli.py,
run over MaxPool2d, AvgPool2d, ReLU, Sigmoid, Softmax, Flatten, Linear, CrossEntropyLoss,
BatchNorm2d, ConvTranspose2d and Sequential. Every case ends in the right answer or in a Python
exception whose message names the argument and what was wrong with it.

* odd memory (Fortran order, negative strides, strided, zero strides, misaligned, read-only) for
  inputs, upstream gradients, targets and argmax indices: bitwise the answer of a plain
  C-contiguous copy, inputs untouched; int64 arrays that lie about their buffer are refused.
  These run in a separate process (the ``isolated`` fixture of tests/conftest.py), so a crash
  fails one case instead of the run;
* NaN, ±Inf, the largest finite values, subnormals and signed zeros: where PyTorch puts them
  (PyTorch is the reference wherever its semantics are the same; ``DIFFERS`` says where and why
  symconv differs on purpose);
* empty batches: empty outputs, zero parameter gradients and buffers as PyTorch leaves them;
* wrong types, dtypes, ranks, shapes, targets, gradients, state dicts, constructor and kernel
  factory arguments, and a backward before any forward;
* command lines: exit code 2 and exactly one ``symconv: error:`` line, no traceback.
"""

from __future__ import annotations

import decimal
import fractions
import functools
import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

from symconv import nn
from symconv import kernels as K
from symconv.gradcheck import gradcheck, gradcheck_model
from symconv.layers import (
    ActivationSpec, AvgPool2dSpec, BatchNorm2dSpec, ConvTranspose2dSpec, CrossEntropySpec, LinearSpec,
    MaxPool2dSpec, SoftmaxSpec, derive_layer,
)
from symconv.optim import SGD
from tests.conftest import ROOT, child_env
from tests.test_hostile_cli import CASE_TIMEOUT_S, DRIVER

torch = pytest.importorskip("torch")

DTYPES = ("float32", "float64")
OTHER = {"float32": "float64", "float64": "float32"}
HUGE = 2**70

# -- the layers under test -------------------------------------------------------------------------


def _seq(dtype: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, dtype=dtype, rng=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 5, dtype=dtype, rng=1), nn.Sigmoid(),
    )


def _bn_eval(dtype: str) -> nn.BatchNorm2d:
    layer = nn.BatchNorm2d(3, dtype=dtype)
    rng = np.random.default_rng(7)
    layer.load_state_dict({
        "weight": rng.uniform(0.5, 2, 3).astype(dtype), "bias": rng.standard_normal(3).astype(dtype),
        "running_mean": rng.standard_normal(3).astype(dtype), "running_var": rng.uniform(0.5, 2, 3).astype(dtype),
        "num_batches_tracked": np.array(4, np.int64),
    })
    return layer.eval()


def _bn_train(dtype: str) -> nn.BatchNorm2d:
    layer = nn.BatchNorm2d(3, dtype=dtype)
    rng = np.random.default_rng(8)
    layer.weight.data[...] = rng.uniform(0.5, 2, 3)
    layer.bias.data[...] = rng.standard_normal(3)
    return layer


#: name -> (make(dtype), torch twin(), input shape). The twins load the layer's state_dict (same
#: key names), so they hold the same numbers.
LAYERS: dict[str, tuple[Callable[[str], nn.Module], Callable[[], Any], tuple[int, ...]]] = {
    "relu": (lambda dt: nn.ReLU(), lambda: torch.nn.ReLU(), (2, 3, 4, 4)),
    "sigmoid": (lambda dt: nn.Sigmoid(), lambda: torch.nn.Sigmoid(), (2, 3, 4)),
    "softmax": (lambda dt: nn.Softmax(1), lambda: torch.nn.Softmax(1), (3, 5)),
    "maxpool": (lambda dt: nn.MaxPool2d(3, stride=2, padding=1), lambda: torch.nn.MaxPool2d(3, 2, 1), (2, 3, 5, 5)),
    "maxpool_dilated_ceil": (lambda dt: nn.MaxPool2d(2, stride=2, dilation=2, ceil_mode=True),
                             lambda: torch.nn.MaxPool2d(2, 2, dilation=2, ceil_mode=True), (2, 2, 7, 6)),
    "avgpool": (lambda dt: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
                lambda: torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 5, 5)),
    "flatten": (lambda dt: nn.Flatten(), lambda: torch.nn.Flatten(), (2, 3, 2, 2)),
    "linear": (lambda dt: nn.Linear(6, 4, dtype=dt, rng=0), lambda: torch.nn.Linear(6, 4), (2, 3, 6)),
    "batchnorm_train": (_bn_train, lambda: torch.nn.BatchNorm2d(3), (2, 3, 3, 4)),
    "batchnorm_eval": (_bn_eval, lambda: torch.nn.BatchNorm2d(3).eval(), (2, 3, 3, 4)),
    "conv_transpose": (lambda dt: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, dtype=dt, rng=0),
                       lambda: torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), (2, 3, 3, 4)),
    "batchnorm_batch_stats_in_eval": (lambda dt: nn.BatchNorm2d(3, affine=False, track_running_stats=False, dtype=dt).eval(),
                                      lambda: torch.nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval(),
                                      (2, 3, 2, 3)),
    "avgpool_ceil_include_pad": (lambda dt: nn.AvgPool2d(2, stride=2, padding=1, ceil_mode=True),
                                 lambda: torch.nn.AvgPool2d(2, 2, 1, ceil_mode=True), (2, 3, 5, 4)),
    "linear_no_bias": (lambda dt: nn.Linear(5, 3, bias=False, dtype=dt, rng=2), lambda: torch.nn.Linear(5, 3, bias=False), (4, 5)),
    "conv_transpose_groups_output_padding": (
        lambda dt: nn.ConvTranspose2d(4, 6, (2, 3), stride=(1, 2), output_padding=(1, 0), dilation=(2, 1), groups=2, dtype=dt, rng=3),
        lambda: torch.nn.ConvTranspose2d(4, 6, (2, 3), stride=(1, 2), output_padding=(1, 0), dilation=(2, 1), groups=2),
        (2, 4, 3, 3)),
    "sequential": (_seq, lambda: torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(16, 5), torch.nn.Sigmoid()), (2, 3, 4, 4)),
}
#: Layers whose parameters have a fixed dtype: input of the other float dtype is refused.
TYPED = {"linear", "linear_no_bias", "batchnorm_train", "batchnorm_eval", "batchnorm_batch_stats_in_eval",
         "conv_transpose", "conv_transpose_groups_output_padding", "sequential"}


def make(name: str, dtype: str) -> nn.Module:
    return LAYERS[name][0](dtype)


def twin(name: str, layer: nn.Module, dtype: str) -> Any:
    """The PyTorch module holding the same numbers as ``layer``."""
    reference = LAYERS[name][1]().to(getattr(torch, dtype))
    state = {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}
    reference.load_state_dict(state)
    return reference


def data(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def run(layer: nn.Module, x: np.ndarray, g: np.ndarray | None = None, seed: int = 1):
    """Forward, backward; (y, dx, {parameter: grad}, state_dict)."""
    layer.zero_grad()
    y = layer(x)
    g = data(y.shape, y.dtype.name, seed) if g is None else g
    dx = layer.backward(g)
    grads = {k: None if p.grad is None else p.grad.copy() for k, p in layer.named_parameters()}
    return y, dx, grads, layer.state_dict()


def torch_run(reference: Any, x: np.ndarray, g: np.ndarray):
    tx = torch.tensor(x, requires_grad=True)
    out = reference(tx)
    out.backward(torch.from_numpy(np.array(g, order="C")))
    grads = {k: p.grad.numpy() for k, p in reference.named_parameters()}
    return out.detach().numpy(), tx.grad.numpy(), grads


# -- odd memory (isolated) --------------------------------------------------------------------------


def _fortran(a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a)


def _reversed(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[..., ::-1])[..., ::-1]


def _strided(a: np.ndarray) -> np.ndarray:
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _zero_strides(a: np.ndarray) -> np.ndarray:
    """A broadcast (read-only, every batch entry the same memory)."""
    return np.broadcast_to(a[:1], a.shape)


def _misaligned(a: np.ndarray) -> np.ndarray:
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned
    return view


def _read_only(a: np.ndarray) -> np.ndarray:
    c = a.copy()
    c.flags.writeable = False
    return c


LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "fortran": _fortran, "negative_strides": _reversed, "strided": _strided, "zero_strides": _zero_strides,
    "misaligned": _misaligned, "read_only": _read_only,
}


def layout_case(name: str, layout: str, dtype: str) -> None:
    """Input and upstream gradient in odd memory: bitwise the result on plain copies, inputs untouched."""
    shape = LAYERS[name][2]
    x = LAYOUTS[layout](data(shape, dtype))
    x_before = np.array(x, copy=True)
    g = LAYOUTS[layout](data(make(name, dtype)(data(shape, dtype)).shape, dtype, 1))
    y_plain, dx_plain, grads_plain, state_plain = run(make(name, dtype), np.ascontiguousarray(x), np.ascontiguousarray(g))
    y, dx, grads, state = run(make(name, dtype), x, g)
    np.testing.assert_array_equal(y, y_plain)
    np.testing.assert_array_equal(dx, dx_plain)
    assert grads.keys() == grads_plain.keys()
    for key in grads:
        np.testing.assert_array_equal(grads[key], grads_plain[key])
    for key in state:  # running statistics too
        np.testing.assert_array_equal(state[key], state_plain[key])
    np.testing.assert_array_equal(x, x_before)


def _kernel_arrays(kind: str, dtype: str) -> tuple[Any, Callable[..., Any], dict[str, np.ndarray]]:
    """A kernel, a call of all its passes, and the arrays that call reads."""
    rng = np.random.default_rng(3)
    if kind == "maxpool":
        k = K.maxpool2d((2, 3, 5, 5), 3, 2, 1, 1, False, dtype)
        arrays = {"x": rng.standard_normal((2, 3, 5, 5)).astype(dtype), "g": rng.standard_normal(k.output_shape).astype(dtype)}
        idx = k.forward(np.ascontiguousarray(arrays["x"]))[1]
        arrays["indices"] = idx

        def call(x, g, indices):
            y, i = k.forward(x)
            return y, i, k.backward(g, indices)
    elif kind == "avgpool":
        k = K.avgpool2d((2, 3, 5, 5), 3, 2, 1, True, True, dtype)
        arrays = {"x": rng.standard_normal((2, 3, 5, 5)).astype(dtype), "g": rng.standard_normal(k.output_shape).astype(dtype)}

        def call(x, g):
            return k.forward(x), k.backward(g)
    elif kind in ("relu", "sigmoid"):
        k = K.activation(kind, (3, 4, 5), dtype)
        x = rng.standard_normal((3, 4, 5)).astype(dtype)
        arrays = {"x": x, "y": k.forward(x), "g": rng.standard_normal((3, 4, 5)).astype(dtype)}

        def call(x, y, g):
            return k.forward(x), k.backward(x, y, g)
    elif kind == "softmax":
        k = K.softmax((4, 6), dtype)
        x = rng.standard_normal((4, 6)).astype(dtype)
        arrays = {"x": x, "y": k.forward(x), "g": rng.standard_normal((4, 6)).astype(dtype)}

        def call(x, y, g):
            return k.forward(x), k.backward(y, g)
    elif kind == "cross_entropy":
        k = K.cross_entropy((4, 6), dtype)
        z = rng.standard_normal((4, 6)).astype(dtype)
        arrays = {"z": z, "t": np.array([0, 5, 2, 2], np.int64), "p": k.forward(z, np.array([0, 5, 2, 2]))[1]}

        def call(z, t, p):
            loss, probs = k.forward(z, t)
            return np.array(loss), probs, k.backward(p, t, 0.5)
    else:  # batchnorm
        k = K.batchnorm2d((2, 3, 3, 4), dtype)
        arrays = {"x": rng.standard_normal((2, 3, 3, 4)).astype(dtype), "g": rng.standard_normal((2, 3, 3, 4)).astype(dtype),
                  "gamma": rng.uniform(0.5, 2, 3).astype(dtype), "beta": rng.standard_normal(3).astype(dtype),
                  "mean": rng.standard_normal(3).astype(dtype), "var": rng.uniform(0.5, 2, 3).astype(dtype)}

        def call(x, g, gamma, beta, mean, var):
            return (*k.forward_train(x, gamma, beta, 1e-5), k.forward_eval(x, gamma, beta, mean, var, 1e-5),
                    *k.backward(g, x, gamma, mean, var, 1e-5))
    return k, call, arrays


KERNEL_KINDS = ("maxpool", "avgpool", "relu", "sigmoid", "softmax", "cross_entropy", "batchnorm")


def kernel_layout_case(kind: str, layout: str, dtype: str) -> None:
    """Every array a kernel reads (int64 indices and targets too) in odd memory."""
    _, call, arrays = _kernel_arrays(kind, dtype)
    if layout == "zero_strides":  # a broadcast index or target would be another valid call: skip them
        odd = {k: (v if v.dtype == np.int64 else LAYOUTS[layout](v)) for k, v in arrays.items()}
    else:
        odd = {k: LAYOUTS[layout](v) for k, v in arrays.items()}
    before = {k: np.array(v, copy=True) for k, v in odd.items()}
    plain = {k: np.ascontiguousarray(v) for k, v in odd.items()}
    for got, want in zip(call(**odd), call(**plain)):
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous and got.flags.writeable
    for k in odd:
        np.testing.assert_array_equal(odd[k], before[k])


def zero_batch_case(name: str, dtype: str) -> None:
    """N = 0: empty output and input gradient of PyTorch's shapes, parameter gradients exactly +0,
    buffers as PyTorch leaves them."""
    shape = (0, *LAYERS[name][2][1:])
    layer = make(name, dtype)
    reference = twin(name, layer, dtype)
    x = np.zeros(shape, dtype)
    y, dx, grads, state = run(layer, x)
    want_y, want_dx, want_grads = torch_run(reference, x, np.zeros(y.shape, dtype))
    for key, value in reference.state_dict().items():  # batch norm: statistics unchanged, the batch counted
        np.testing.assert_array_equal(state[key], value.numpy(), err_msg=key)
    assert y.shape == want_y.shape and y.dtype == np.dtype(dtype)
    assert dx.shape == x.shape and dx.dtype == np.dtype(dtype)
    for key, grad in grads.items():
        assert grad is not None and grad.shape == want_grads[key].shape
        assert (grad == 0).all() and not np.signbit(grad).any(), key


def maxpool_indices_layout_case(layout: str) -> None:
    """MaxPool2d(return_indices=True): the indices it hands out, made odd, still work in its kernel."""
    layer = nn.MaxPool2d(2, return_indices=True)
    x = data((2, 2, 4, 4), "float32")
    y, indices = layer(x)
    k = K.maxpool2d(x.shape, 2, dtype="float32")
    g = data(y.shape, "float32", 2)
    np.testing.assert_array_equal(k.backward(g, LAYOUTS[layout](indices)), layer.backward(g))


def cross_entropy_layout_case(layout: str, dtype: str) -> None:
    """Logits and targets in odd memory: the loss and dL/dlogits bitwise those of plain copies."""
    logits = LAYOUTS[layout](data((4, 5), dtype))
    target = LAYOUTS[layout](np.array([4, 0, 2, 2], np.int64))
    before = np.array(logits, copy=True), np.array(target, copy=True)
    results = []
    for z, t in ((logits, target), (np.ascontiguousarray(logits), np.ascontiguousarray(target))):
        loss = nn.CrossEntropyLoss()
        results.append((loss(z, t), loss.backward(0.75)))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(logits, before[0])
    np.testing.assert_array_equal(target, before[1])


ISOLATED_CASES: dict[str, Callable[[], None]] = {
    **{f"layout-cross_entropy-{layout}-{dtype}": functools.partial(cross_entropy_layout_case, layout, dtype)
       for layout in LAYOUTS for dtype in DTYPES},
    **{f"layout-{name}-{layout}-{dtype}": functools.partial(layout_case, name, layout, dtype)
       for name in LAYERS for layout in LAYOUTS for dtype in DTYPES},
    **{f"kernel_layout-{kind}-{layout}-{dtype}": functools.partial(kernel_layout_case, kind, layout, dtype)
       for kind in KERNEL_KINDS for layout in LAYOUTS for dtype in DTYPES},
    **{f"zero_batch-{name}-{dtype}": functools.partial(zero_batch_case, name, dtype)
       for name in LAYERS for dtype in DTYPES},
    **{f"indices_layout-{layout}": functools.partial(maxpool_indices_layout_case, layout)
       for layout in ("fortran", "negative_strides", "strided", "misaligned", "read_only")},
}


@pytest.fixture(scope="module")
def outcomes(isolated):
    return isolated.run(__name__, ISOLATED_CASES)


def _cases(prefix: str) -> list[str]:
    return [name for name in ISOLATED_CASES if name.startswith(prefix)]


@pytest.mark.parametrize("name", _cases("layout-"))
def test_layers_on_odd_memory(name: str, outcomes) -> None:
    outcomes[name].check()


@pytest.mark.parametrize("name", _cases("kernel_layout-"))
def test_layer_kernels_on_odd_memory(name: str, outcomes) -> None:
    outcomes[name].check()


@pytest.mark.parametrize("name", _cases("zero_batch-"))
def test_layers_on_an_empty_batch(name: str, outcomes) -> None:
    outcomes[name].check()


@pytest.mark.parametrize("name", _cases("indices_layout-"))
def test_maxpool_indices_on_odd_memory(name: str, outcomes) -> None:
    outcomes[name].check()


# -- NaN and ±Inf: where PyTorch puts them ---------------------------------------------------------

SPECIAL = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}
#: Where symconv deliberately differs from PyTorch on special values, and why.
DIFFERS: dict[tuple[str, str, str], str] = {
    # The transposed layer's output is cropped by its padding. In symconv a cropped position is
    # not an output of the layer, so it contributes no term to dL/dW (the convolution's
    # documented semantics, see tests/test_hostile_kernel.py); PyTorch multiplies the zero
    # gradient of the cropped positions by the input, and 0·NaN = NaN, 0·Inf = NaN, spreads NaN
    # to every weight tap that reaches the crop (its float64 kernel does; its float32 one, another
    # algorithm, agrees with symconv). The reference is the in-range sum below.
    ("conv_transpose", "x", "weight"): "no term for cropped output positions (no 0·NaN, no 0·Inf)",
}


def in_range_transpose_grad_weight(layer: nn.ConvTranspose2d, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dL/dW[c, o, kh, kw] = Σ x[n, c, i, j] · g[n, o, i·s + kh − p, j·s + kw − p] over the
    (n, i, j) whose output position lies inside the output (groups 1, dilation 1)."""
    assert layer.groups == 1 and layer.dilation == (1, 1)
    (sh, sw), (ph, pw) = layer.stride, layer.padding
    out = np.zeros(layer.weight.shape)
    n_, c_, h_, w_ = x.shape
    oh, ow = g.shape[2:]
    for c, o, kh, kw in np.ndindex(*layer.weight.shape):
        total = 0.0
        for n, i, j in np.ndindex(n_, h_, w_):
            p, q = i * sh + kh - ph, j * sw + kw - pw
            if 0 <= p < oh and 0 <= q < ow:
                total += float(x[n, c, i, j]) * float(g[n, o, p, q])
        out[c, o, kh, kw] = total
    return out


def _plant(a: np.ndarray, value: float) -> np.ndarray:
    a = a.copy()
    flat = a.reshape(-1)
    for i in (0, flat.size // 2, flat.size - 1):
        flat[i] = value
    return a


def _same_specials(got: np.ndarray, want: np.ndarray, dtype: str, what: str) -> None:
    """Same NaN positions, same infinities, finite values equal to rounding."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, what
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=f"{what}: +Inf positions")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=f"{what}: -Inf positions")
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == "float32" else dict(rtol=1e-11, atol=1e-12)
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], **tol, err_msg=what)


#: The Sequential starts with a padded Conv2d, whose "no term for padding" semantics differ from
#: PyTorch's 0·NaN on purpose (tests/test_hostile_kernel.py checks that against its own reference).
NAN_LAYERS = [n for n in LAYERS if n != "sequential"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["x", "grad_out"])
@pytest.mark.parametrize("special", SPECIAL)
@pytest.mark.parametrize("name", NAN_LAYERS)
def test_nan_and_inf_propagate_as_in_torch(name: str, special: str, where: str, dtype: str) -> None:
    layer = make(name, dtype)
    reference = twin(name, layer, dtype)
    x = data(LAYERS[name][2], dtype)
    if where == "x":
        x = _plant(x, SPECIAL[special])
    with np.errstate(all="ignore"):
        y = layer(x)
        g = data(y.shape, dtype, 1)
        if where == "grad_out":
            g = _plant(g, SPECIAL[special])
        dx = layer.backward(g)
    want_y, want_dx, want_grads = torch_run(reference, x, g)
    _same_specials(y, want_y, dtype, "output")
    _same_specials(dx, want_dx, dtype, "dL/dx")
    for key, value in reference.state_dict().items():  # running statistics, poisoned as in torch
        if key in layer.state_dict() and value.dtype.is_floating_point:
            _same_specials(layer.state_dict()[key], value.numpy(), dtype, key)
    for key, p in layer.named_parameters():
        if (name, where, key) in DIFFERS:
            with np.errstate(invalid="ignore"):
                want = in_range_transpose_grad_weight(layer, x, g)
            _same_specials(p.grad, want, dtype, f"dL/d{key} (in-range reference)")
            if dtype == "float64":  # the difference is real (PyTorch's float32 kernel skips the crop too)
                assert (np.isnan(want_grads[key]) & ~np.isnan(p.grad)).any()
            continue
        _same_specials(p.grad, want_grads[key], dtype, f"dL/d{key}")


def _extremes(dtype: str) -> dict[str, tuple[float, float, float]]:
    info = np.finfo(dtype)
    return {"largest": (float(info.max), -float(info.max), float(info.max) / 3),
            "subnormal": (float(info.smallest_subnormal), -float(info.tiny) / 8, 0.0),
            "signed_zeros": (-0.0, 0.0, -0.0)}


#: Layers whose every output entry sums at most a handful of terms in a fixed order. Linear,
#: the transposed convolution and batch norm are left out on purpose: a long sum that overflows
#: may end in +Inf, -Inf or NaN depending on its order (IEEE fixes no order), and batch norm
#: accumulates its statistics in double where PyTorch's float32 kernel rounds and cancels.
EXTREME_LAYERS = ["relu", "sigmoid", "softmax", "maxpool", "maxpool_dilated_ceil", "avgpool", "avgpool_ceil_include_pad",
                  "flatten"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("extreme", ["largest", "subnormal", "signed_zeros"])
@pytest.mark.parametrize("name", EXTREME_LAYERS)
def test_extreme_finite_values_as_in_torch(name: str, extreme: str, dtype: str) -> None:
    x = data(LAYERS[name][2], dtype)
    flat = x.reshape(-1)
    for i, value in zip((0, flat.size // 2, flat.size - 1), _extremes(dtype)[extreme]):
        flat[i] = value
    g = data(make(name, dtype)(x).shape, dtype, 1)
    with np.errstate(all="ignore"):
        y, dx, _, _ = run(make(name, dtype), x, g)
    want_y, want_dx, _ = torch_run(twin(name, make(name, dtype), dtype), x, g)
    _same_specials(y, want_y, dtype, "output")
    _same_specials(dx, want_dx, dtype, "dL/dx")
    if extreme == "signed_zeros" and name in ("relu", "maxpool", "flatten"):  # the sign of zero too
        np.testing.assert_array_equal(np.signbit(y), np.signbit(want_y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("special", SPECIAL)
def test_cross_entropy_nan_and_inf_logits_as_in_torch(special: str, dtype: str) -> None:
    logits = _plant(data((3, 4), dtype), SPECIAL[special])
    target = np.array([1, 0, 3])
    loss = nn.CrossEntropyLoss()
    tz = torch.tensor(logits, requires_grad=True)
    reference = torch.nn.functional.cross_entropy(tz, torch.from_numpy(target))
    reference.backward()
    with np.errstate(all="ignore"):
        value = loss(logits, target)
        grad = loss.backward()
    _same_specials(np.array(value), reference.detach().numpy().astype(np.float64), dtype, "loss")
    _same_specials(grad, tz.grad.numpy(), dtype, "dL/dlogits")


# -- wrong inputs and gradients (refused before any C runs) ----------------------------------------


def _inputs(name: str, dtype: str) -> dict[str, tuple[Any, type, str]]:
    """Bad forward inputs: kind -> (value, exception, words of the message)."""
    shape = LAYERS[name][2]
    x = data(shape, dtype)
    other = OTHER[dtype]
    cases: dict[str, tuple[Any, type, str]] = {
        "int32": (x.astype(np.int32), TypeError, r"^x must be float.*but got int32"),
        "float16": (x.astype(np.float16), TypeError, r"^x must be float.*but got float16"),
        "complex": (x.astype(np.complex64), TypeError, r"^x must be float.*but got complex64"),
        "list": (x.tolist(), TypeError, r"^x must be a numpy.ndarray, but got list"),
        "scalar": (1.0, TypeError, r"^x must be a numpy.ndarray, but got float"),
        "none": (None, TypeError, r"^x must be a numpy.ndarray, but got NoneType"),
    }
    if name in TYPED:
        cases["other_float"] = (x.astype(other), TypeError, rf"^x must be {dtype}, but got {other}")
    if name == "flatten":  # like torch.flatten: any dtype is reshaped
        for kind in ("int32", "float16", "complex"):
            cases.pop(kind)
    if name not in ("relu", "sigmoid", "flatten", "linear", "linear_no_bias"):  # fixed rank
        cases["one_axis_fewer"] = (x[0], ValueError, r"^x must have shape")
        cases["one_axis_more"] = (x[None], ValueError, r"^x must have shape")
    if name in TYPED:
        wrong = list(shape)
        wrong[-1 if name.startswith("linear") else 1] += 1
        cases["wrong_channels"] = (np.zeros(wrong, dtype), ValueError, r"^x must have shape")
    return cases


INPUT_CASES = [(n, k) for n in LAYERS for k in _inputs(n, "float32")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, kind", INPUT_CASES, ids=[f"{n}-{k}" for n, k in INPUT_CASES])
def test_bad_forward_input_is_refused(name: str, kind: str, dtype: str) -> None:
    value, error, words = _inputs(name, dtype)[kind]
    with pytest.raises(error, match=words):
        make(name, dtype)(value)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["relu", "sigmoid"])
@pytest.mark.parametrize("shape", [(), (1,), (0,), (3, 0, 2)], ids=["0d", "1d_one", "1d_empty", "3d_empty"])
def test_activations_on_scalars_and_empty_arrays_as_torch(shape: tuple[int, ...], kind: str, dtype: str) -> None:
    x = np.asarray(data(shape, dtype) if shape else np.array(-0.75, dtype))
    layer = nn.ReLU() if kind == "relu" else nn.Sigmoid()
    reference = torch.nn.ReLU() if kind == "relu" else torch.nn.Sigmoid()
    g = np.asarray(np.full(shape, 1.5, dtype))
    y, dx, _, _ = run(layer, x, g)
    want_y, want_dx, _ = torch_run(reference, x, g)
    assert y.shape == want_y.shape == shape and dx.shape == shape and y.dtype == dx.dtype == np.dtype(dtype)
    _same_specials(y, want_y, dtype, "output")
    _same_specials(dx, want_dx, dtype, "dL/dx")


POOL_EMPTY_AXES = {"no_channels": (1, 0, 4, 4), "no_rows": (2, 3, 0, 4), "no_columns": (2, 3, 4, 0)}


@pytest.mark.parametrize("axes", POOL_EMPTY_AXES)
@pytest.mark.parametrize("pool", [nn.MaxPool2d, nn.AvgPool2d], ids=["maxpool", "avgpool"])
def test_pooling_refuses_empty_channels_and_planes(pool: Callable[..., nn.Module], axes: str) -> None:
    """Only the batch may be empty (PyTorch refuses the others too)."""
    with pytest.raises(ValueError, match=r"^x must have positive channels, height and width, but got shape"):
        pool(2)(np.zeros(POOL_EMPTY_AXES[axes], np.float32))


BACKWARD_FIRST = [n for n in LAYERS] + ["cross_entropy"]


@pytest.mark.parametrize("name", BACKWARD_FIRST)
def test_backward_before_forward_is_a_clear_error(name: str) -> None:
    if name == "cross_entropy":
        layer, grad = nn.CrossEntropyLoss(), 1.0
    else:
        layer, grad = make(name, "float32"), np.zeros(LAYERS[name][2], np.float32)
    with pytest.raises(RuntimeError, match="forward pass first"):
        layer.backward(grad)


def _grads(y: np.ndarray, name: str) -> dict[str, tuple[Any, type, str]]:
    other = OTHER[y.dtype.name]
    cases = {
        "other_float": (y.astype(other), TypeError, rf"^grad_out must be {y.dtype.name}, but got {other}"),
        "int": (y.astype(np.int64), TypeError, rf"^grad_out must be {y.dtype.name}, but got int64"),
        "float16": (y.astype(np.float16), TypeError, "^grad_out must be"),
        "list": (y.tolist(), TypeError, r"^grad_out must be a numpy.ndarray, but got list"),
        "none": (None, TypeError, r"^grad_out must be a numpy.ndarray, but got NoneType"),
        "wrong_shape": (np.zeros(y.shape[:-1] + (y.shape[-1] + 1,), y.dtype), ValueError, "^grad_out must have"),
        "transposed": (np.zeros(y.shape[::-1], y.dtype), ValueError, "^grad_out must have"),
        "one_axis_more": (y[None], ValueError, "^grad_out must have"),
    }
    if name == "flatten":  # no arithmetic, any dtype (as torch): only the size matters
        for kind in ("other_float", "int", "float16", "transposed"):
            cases.pop(kind)
        cases["wrong_shape"] = (cases["wrong_shape"][0], ValueError, "^grad_out must have as many entries")
        cases["one_axis_more"] = (np.zeros(y.size + 1, y.dtype), ValueError, "^grad_out must have as many entries")
    return cases


GRAD_CASES = [(n, k) for n in LAYERS for k in _grads(np.zeros((2, 3, 4)), n)]


@pytest.mark.parametrize("name, kind", GRAD_CASES, ids=[f"{n}-{k}" for n, k in GRAD_CASES])
def test_bad_upstream_gradient_is_refused(name: str, kind: str) -> None:
    layer = make(name, "float64")
    y = layer(data(LAYERS[name][2], "float64"))
    value, error, words = _grads(y, name)[kind]
    with pytest.raises(error, match=words):
        layer.backward(value)


def test_a_refused_gradient_leaves_the_layer_usable() -> None:
    """After a refused backward the saved forward is still there and the grads are unchanged."""
    layer = nn.Linear(3, 2, dtype="float64", rng=0)
    x = data((4, 3), "float64")
    y = layer(x)
    with pytest.raises(TypeError):
        layer.backward(y.astype(np.float32))
    assert layer.weight.grad is None
    g = data(y.shape, "float64", 1)
    np.testing.assert_allclose(layer.backward(g), g @ layer.weight.data, rtol=1e-12)


# -- cross-entropy targets and loss gradients -------------------------------------------------------

LOGITS = np.zeros((3, 4), np.float32)
TARGETS: dict[str, tuple[Any, type | None, str]] = {
    "float": (np.array([0.0, 1.0, 2.0]), TypeError, "^target must hold integer class indices, but got dtype float64"),
    "bool": (np.array([True, False, True]), TypeError, "^target must hold integer class indices, but got dtype bool"),
    "object": (np.array([0, 1, 2], object), TypeError, "^target must hold integer class indices"),
    "list": ([0, 1, 2], TypeError, "^target must be a numpy.ndarray of class indices, but got list"),
    "scalar": (np.int64(1), TypeError, "^target must be a numpy.ndarray"),
    "too_short": (np.array([0, 1]), ValueError, r"^target must have shape \(3,\)"),
    "column": (np.array([[0], [1], [2]]), ValueError, r"^target must have shape \(3,\)"),
    "negative": (np.array([0, -1, 2]), ValueError, r"^target must hold class indices in \[0, 4\), but got -1 at index 1"),
    "equal_to_classes": (np.array([0, 4, 2]), ValueError, r"^target must hold class indices in \[0, 4\), but got 4 at index 1"),
    "int64_min": (np.array([0, 1, np.iinfo(np.int64).min]), ValueError, rf"but got {np.iinfo(np.int64).min} at index 2"),
    "uint64_beyond_int64": (np.array([0, 2**63, 1], np.uint64), ValueError, rf"but got {2**63} at index 1"),
    "uint8_out_of_range": (np.array([0, 200, 1], np.uint8), ValueError, r"but got 200 at index 1"),
    "int8": (np.array([3, 0, 1], np.int8), None, ""),
    "uint16": (np.array([3, 0, 1], np.uint16), None, ""),
    "non_contiguous": (np.array([3, 9, 0, 9, 1, 9])[::2], None, ""),
    "read_only": (np.array([3, 0, 1]), None, ""),
}


@pytest.mark.parametrize("case", TARGETS)
def test_cross_entropy_targets(case: str) -> None:
    target, error, words = TARGETS[case]
    loss = nn.CrossEntropyLoss()
    if error is not None:
        with pytest.raises(error, match=words):
            loss(LOGITS, target)
        return
    if case == "read_only":
        target.flags.writeable = False
    before = np.array(target, copy=True)
    value = loss(LOGITS, target)
    assert value == pytest.approx(np.log(4), rel=1e-6)  # uniform logits: log C whatever the classes
    want = np.full((3, 4), 0.25 / 3, np.float32)
    want[np.arange(3), before.astype(int)] -= 1 / 3
    np.testing.assert_allclose(loss.backward(), want, rtol=1e-6)
    np.testing.assert_array_equal(target, before)


LOGIT_CASES: dict[str, tuple[Any, type, str]] = {
    "int": (np.zeros((3, 4), np.int64), TypeError, "^logits must be float32 or float64, but got int64"),
    "float16": (np.zeros((3, 4), np.float16), TypeError, "^logits must be float32 or float64, but got float16"),
    "list": (np.zeros((3, 4)).tolist(), TypeError, "^logits must be a numpy.ndarray, but got list"),
    "one_d": (np.zeros(3, np.float32), ValueError, r"^logits must have shape \(N, C\)"),
    "three_d": (np.zeros((3, 4, 1), np.float32), ValueError, r"^logits must have shape \(N, C\)"),
    # PyTorch's mean over an empty batch is 0/0 = NaN; symconv refuses the empty batch instead
    # (a training loop that feeds one has a bug worth hearing about).
    "empty_batch": (np.zeros((0, 4), np.float32), ValueError, r"^logits must have shape \(N, C\) with N >= 1"),
    "no_classes": (np.zeros((3, 0), np.float32), ValueError, r"^logits must have shape \(N, C\) with .*C >= 1"),
}


@pytest.mark.parametrize("case", LOGIT_CASES)
def test_cross_entropy_bad_logits(case: str) -> None:
    logits, error, words = LOGIT_CASES[case]
    target = np.zeros(np.shape(logits)[0] if np.ndim(logits) else 1, np.int64)
    with pytest.raises(error, match=words):
        nn.CrossEntropyLoss()(logits, target)


GRAD_LOSS: dict[str, tuple[Any, type | None, str]] = {
    "nan": (float("nan"), ValueError, "^grad_loss must be finite"),
    "inf": (float("inf"), ValueError, "^grad_loss must be finite"),
    "beyond_float": (10**400, ValueError, "^grad_loss must be finite"),
    "string": ("1", TypeError, "^grad_loss must be a real number"),
    "bool": (True, TypeError, "^grad_loss must be a real number"),
    "none": (None, TypeError, "^grad_loss must be a real number"),
    "complex": (1 + 0j, TypeError, "^grad_loss must be a real number"),
    "array": (np.ones(3), TypeError, "^grad_loss must be a real number"),
    "numpy_float32": (np.float32(2.5), None, ""),
    "fraction": (fractions.Fraction(5, 2), None, ""),
    "int": (2, None, ""),
    "zero": (0.0, None, ""),
    "negative": (-2.5, None, ""),
}


@pytest.mark.parametrize("case", GRAD_LOSS)
def test_cross_entropy_grad_loss(case: str) -> None:
    value, error, words = GRAD_LOSS[case]
    logits = data((3, 4), "float64")
    target = np.array([0, 3, 1])
    loss = nn.CrossEntropyLoss()
    loss(logits, target)
    if error is not None:
        with pytest.raises(error, match=words):
            loss.backward(value)
        return
    tz = torch.tensor(logits, requires_grad=True)
    (float(value) * torch.nn.functional.cross_entropy(tz, torch.from_numpy(target))).backward()
    np.testing.assert_allclose(loss.backward(value), tz.grad.numpy(), rtol=1e-10, atol=1e-14)


# -- constructor arguments ---------------------------------------------------------------------------

#: (class, base arguments, change, exception or None for valid, words)
CTOR: dict[str, tuple[Callable[..., Any], dict[str, Any], dict[str, Any], type | None, str]] = {}


def _ctor(prefix: str, cls: Callable[..., Any], base: dict[str, Any], cases: dict[str, tuple[dict, type | None, str]]) -> None:
    for case, (change, error, words) in cases.items():
        CTOR[f"{prefix}-{case}"] = (cls, base, change, error, words)


_POOL_WINDOW = {
    "kernel_zero": (dict(kernel_size=0), ValueError, "kernel_size must be >= 1"),
    "kernel_negative": (dict(kernel_size=-2), ValueError, "kernel_size must be >= 1"),
    "kernel_bool": (dict(kernel_size=True), TypeError, "kernel_size must be an int or a pair"),
    "kernel_float": (dict(kernel_size=2.0), TypeError, "kernel_size must be an int or a pair"),
    "kernel_string": (dict(kernel_size="2"), TypeError, "kernel_size must be an int or a pair"),
    "kernel_none": (dict(kernel_size=None), TypeError, "kernel_size must be an int or a pair"),
    "kernel_triple": (dict(kernel_size=(2, 2, 2)), TypeError, "kernel_size must be an int or a pair"),
    "kernel_huge": (dict(kernel_size=HUGE), ValueError, "kernel_size must be at most"),
    "kernel_numpy_int": (dict(kernel_size=np.int16(2)), None, ""),
    "stride_zero": (dict(stride=0), ValueError, "stride must be >= 1"),
    "stride_negative_pair": (dict(stride=(1, -1)), ValueError, "stride must be >= 1"),
    "stride_bool": (dict(stride=False), TypeError, "stride must be an int or a pair"),
    "stride_float": (dict(stride=1.5), TypeError, "stride must be an int or a pair"),
    "stride_huge": (dict(stride=HUGE), ValueError, "stride must be at most"),
    "padding_negative": (dict(padding=-1), ValueError, "padding must be >= 0"),
    "padding_float": (dict(padding=0.5), TypeError, "padding must be an int or a pair"),
    "padding_more_than_half": (dict(kernel_size=3, padding=2), ValueError, "padding must be at most half of kernel_size"),
    "padding_huge": (dict(padding=HUGE), ValueError, "padding must be at most"),
    "ceil_mode_int": (dict(ceil_mode=1), TypeError, "ceil_mode must be True or False"),
    "ceil_mode_string": (dict(ceil_mode="yes"), TypeError, "ceil_mode must be True or False"),
    "ceil_mode_numpy_bool": (dict(ceil_mode=np.bool_(True)), None, ""),
}
_ctor("MaxPool2d", nn.MaxPool2d, dict(kernel_size=2), {
    **_POOL_WINDOW,
    "dilation_zero": (dict(dilation=0), ValueError, "dilation must be >= 1"),
    "dilation_float": (dict(dilation=2.0), TypeError, "dilation must be an int or a pair"),
    "dilation_huge": (dict(dilation=HUGE), ValueError, "dilation must be at most"),
    "return_indices_int": (dict(return_indices=1), TypeError, "return_indices must be True or False"),
})
_ctor("AvgPool2d", nn.AvgPool2d, dict(kernel_size=2), {
    **_POOL_WINDOW,
    "count_include_pad_none": (dict(count_include_pad=None), TypeError, "count_include_pad must be True or False"),
    "divisor_override": (dict(divisor_override=3), ValueError, "divisor_override is not supported"),
})
_ctor("Linear", nn.Linear, dict(in_features=3, out_features=2), {
    "in_zero": (dict(in_features=0), ValueError, "in_features must be a positive int, but got 0"),
    "in_negative": (dict(in_features=-3), ValueError, "in_features must be a positive int, but got -3"),
    "in_bool": (dict(in_features=True), TypeError, "in_features must be a positive int, but got True"),
    "in_float": (dict(in_features=3.0), TypeError, "in_features must be a positive int, but got 3.0"),
    "in_huge": (dict(in_features=HUGE), ValueError, "in_features"),
    "out_zero": (dict(out_features=0), ValueError, "out_features must be a positive int, but got 0"),
    "out_string": (dict(out_features="2"), TypeError, "out_features must be a positive int, but got '2'"),
    "out_huge": (dict(out_features=HUGE), ValueError, "out_features"),
    "bias_int": (dict(bias=1), TypeError, "bias must be True or False"),
    "dtype_float16": (dict(dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'"),
    "dtype_int": (dict(dtype=np.int32), ValueError, "dtype must be 'float32' or 'float64'"),
    "rng_negative": (dict(rng=-1), ValueError, "rng must be a non-negative int seed"),
    "rng_string": (dict(rng="seed"), TypeError, "rng must be a numpy.random.Generator"),
    "numpy_sizes": (dict(in_features=np.uint8(3), out_features=np.int64(2)), None, ""),
})
_ctor("BatchNorm2d", nn.BatchNorm2d, dict(num_features=3), {
    "features_zero": (dict(num_features=0), ValueError, "num_features must be a positive int, but got 0"),
    "features_float": (dict(num_features=3.0), TypeError, "num_features must be a positive int"),
    "features_huge": (dict(num_features=HUGE), ValueError, "num_features"),
    "eps_zero": (dict(eps=0), ValueError, "eps must be > 0"),
    "eps_negative": (dict(eps=-1e-5), ValueError, "eps must be > 0"),
    "eps_nan": (dict(eps=float("nan")), ValueError, "eps must be finite"),
    "eps_inf": (dict(eps=float("inf")), ValueError, "eps must be finite"),
    "eps_beyond_float": (dict(eps=10**400), ValueError, "eps must be finite"),
    "eps_string": (dict(eps="1e-5"), TypeError, "eps must be a real number"),
    "eps_bool": (dict(eps=True), TypeError, "eps must be a real number"),
    "eps_complex": (dict(eps=1e-5 + 0j), TypeError, "eps must be a real number"),
    "eps_decimal": (dict(eps=decimal.Decimal("1e-5")), TypeError, "eps must be a real number"),
    "eps_fraction": (dict(eps=fractions.Fraction(1, 10**5)), None, ""),
    "momentum_negative": (dict(momentum=-0.1), ValueError, "momentum must be >= 0"),
    "momentum_nan": (dict(momentum=float("nan")), ValueError, "momentum must be finite"),
    "momentum_string": (dict(momentum="0.1"), TypeError, "momentum must be a real number"),
    "momentum_none": (dict(momentum=None), None, ""),  # the cumulative average, as PyTorch
    "affine_int": (dict(affine=0), TypeError, "affine must be True or False"),
    "track_running_stats_none": (dict(track_running_stats=None), TypeError, "track_running_stats must be True or False"),
    "dtype_float16": (dict(dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'"),
})
_ctor("ConvTranspose2d", nn.ConvTranspose2d, dict(in_channels=2, out_channels=4, kernel_size=3), {
    "in_zero": (dict(in_channels=0), ValueError, "in_channels must be a positive int"),
    "in_bool": (dict(in_channels=True), TypeError, "in_channels must be a positive int"),
    "out_negative": (dict(out_channels=-4), ValueError, "out_channels must be a positive int"),
    "out_huge": (dict(out_channels=HUGE), ValueError, "out_channels"),
    "kernel_zero": (dict(kernel_size=0), ValueError, "kernel_size must be >= 1"),
    "kernel_float": (dict(kernel_size=3.0), TypeError, "kernel_size must be an int or a pair"),
    "kernel_huge": (dict(kernel_size=HUGE), ValueError, "kernel_size"),
    "stride_zero": (dict(stride=0), ValueError, "stride must be >= 1"),
    "stride_huge": (dict(stride=HUGE), ValueError, "stride must be at most"),
    "padding_negative": (dict(padding=-1), ValueError, "padding must be >= 0"),
    "padding_string": (dict(padding="same"), TypeError, "padding must be an int or a pair"),
    "padding_huge": (dict(padding=HUGE), ValueError, "padding must be at most"),
    "output_padding_not_below_stride": (dict(output_padding=1), ValueError, "output_padding must be smaller than stride"),
    "output_padding_negative": (dict(output_padding=-1), ValueError, "output_padding must be >= 0"),
    "dilation_zero": (dict(dilation=0), ValueError, "dilation must be >= 1"),
    "dilation_huge": (dict(dilation=HUGE), ValueError, "dilation must be at most"),
    "groups_zero": (dict(groups=0), ValueError, "groups must be a positive int"),
    "groups_not_dividing_in": (dict(in_channels=3, groups=2), ValueError, "groups must divide in_channels, but got 2 and 3"),
    "groups_not_dividing_out": (dict(out_channels=3, groups=2), ValueError, "groups must divide out_channels, but got 2 and 3"),
    "bias_string": (dict(bias="no"), TypeError, "bias must be True or False"),
    "dtype_int": (dict(dtype="int64"), ValueError, "dtype must be 'float32' or 'float64'"),
    "output_padding_below_dilation": (dict(output_padding=1, dilation=2), None, ""),
})
_ctor("Softmax", nn.Softmax, {}, {
    "dim_zero": (dict(dim=0), ValueError, "dim must be 1 (or -1)"),
    "dim_two": (dict(dim=2), ValueError, "dim must be 1 (or -1)"),
    "dim_float": (dict(dim=1.0), TypeError, "dim must be an int"),
    "dim_bool": (dict(dim=True), TypeError, "dim must be an int"),
    "dim_none": (dict(dim=None), TypeError, "dim must be an int"),
    "dim_minus_one": (dict(dim=-1), None, ""),
})
_ctor("Flatten", nn.Flatten, {}, {
    "start_float": (dict(start_dim=1.0), TypeError, "start_dim must be an int"),
    "end_bool": (dict(end_dim=False), TypeError, "end_dim must be an int"),
    "end_string": (dict(end_dim="-1"), TypeError, "end_dim must be an int"),
})
_ctor("ReLU", nn.ReLU, {}, {"inplace": (dict(inplace=True), ValueError, "inplace must be False")})
_ctor("Sigmoid", nn.Sigmoid, {}, {"inplace_string": (dict(inplace="no"), ValueError, "inplace must be False")})
_ctor("CrossEntropyLoss", nn.CrossEntropyLoss, {}, {
    "reduction_sum": (dict(reduction="sum"), ValueError, "reduction must be 'mean'"),
    "reduction_none": (dict(reduction=None), ValueError, "reduction must be 'mean'"),
})


@pytest.mark.parametrize("case", CTOR)
def test_constructor_arguments(case: str) -> None:
    cls, base, change, error, words = CTOR[case]
    if error is None:
        assert isinstance(cls(**{**base, **change}), nn.Module)
        return
    with pytest.raises(error, match=re.escape(words)):
        cls(**{**base, **change})


#: Valid but absurd constructions whose first forward must be refused, naming the problem.
FORWARD_REFUSED: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], str]] = {
    "maxpool_kernel_larger_than_input": (lambda: nn.MaxPool2d(5), (1, 1, 4, 4), "too small for kernel_size"),
    "maxpool_dilation_beyond_input": (lambda: nn.MaxPool2d(2, dilation=4), (1, 1, 4, 4), "too small for kernel_size"),
    "avgpool_kernel_larger_than_input": (lambda: nn.AvgPool2d((1, 7)), (1, 1, 4, 4), "too small for kernel_size"),
    "flatten_start_after_end": (lambda: nn.Flatten(2, 1), (1, 2, 3), "start_dim=2 and end_dim=1 must name axes"),
    "flatten_axis_beyond_ndim": (lambda: nn.Flatten(5), (1, 2, 3), "must name axes of x (ndim 3)"),
    "conv_transpose_output_empty": (lambda: nn.ConvTranspose2d(1, 1, 1, padding=2, rng=0), (1, 1, 3, 3),
                                    "non-positive output size"),
    "conv_transpose_output_beyond_64_bit": (lambda: nn.ConvTranspose2d(1, 1, 2, stride=2**31 - 1, rng=0),
                                            (1, 1, 2**31, 3), "output"),
}


@pytest.mark.parametrize("case", FORWARD_REFUSED)
def test_absurd_layers_refuse_their_first_forward(case: str) -> None:
    build_layer, shape, words = FORWARD_REFUSED[case]
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape, (0,) * len(shape))  # no memory
    with pytest.raises(ValueError, match=re.escape(words)):
        build_layer()(x)


# -- containers and modules ------------------------------------------------------------------------------

MODULE_BAD: dict[str, tuple[Callable[[], Any], type, str]] = {
    "sequential_of_a_function": (lambda: nn.Sequential(nn.ReLU(), np.tanh), TypeError,
                                 "Sequential takes Modules, but got ufunc for '1'"),
    "sequential_of_a_class": (lambda: nn.Sequential(nn.ReLU), TypeError, "Sequential takes Modules, but got type"),
    "sequential_dotted_name": (lambda: nn.Sequential({"a.b": nn.ReLU()}), ValueError, "module names must be non-empty strings without '.'"),
    "sequential_empty_name": (lambda: nn.Sequential({"": nn.ReLU()}), ValueError, "module names must be non-empty strings"),
    "sequential_int_name": (lambda: nn.Sequential({0: nn.ReLU()}), ValueError, "module names must be non-empty strings"),
    "sequential_index_out_of_range": (lambda: nn.Sequential(nn.ReLU())[3], IndexError, "index 3 is out of range for a Sequential of 1"),
    "sequential_index_bool": (lambda: nn.Sequential(nn.ReLU())[True], TypeError, "index must be an int or a slice"),
    "sequential_index_string": (lambda: nn.Sequential(nn.ReLU())["0"], TypeError, "index must be an int or a slice"),
    "sequential_mismatched_layers": (lambda: nn.Sequential(nn.Linear(4, 3, rng=0), nn.Linear(5, 2, rng=0))(np.ones((2, 4), np.float32)),
                                     ValueError, "x must have shape (*, 5), but got (2, 3)"),
    "parameter_of_a_list": (lambda: nn.Parameter([1.0, 2.0]), TypeError, "data must be a numpy.ndarray, but got list"),
    "parameter_grad_wrong_shape": (lambda: nn.Parameter(np.ones(3), np.ones(4)), ValueError, "grad must be None or an array of shape (3,)"),
    "assign_array_to_parameter": (lambda: setattr(nn.Linear(2, 2, rng=0), "weight", np.ones((2, 2))), TypeError,
                                  "weight is a parameter: assign a Parameter or None, but got ndarray"),
    "assign_list_to_buffer": (lambda: setattr(nn.BatchNorm2d(2), "running_mean", [0.0, 0.0]), TypeError,
                              "running_mean is a buffer: assign a numpy.ndarray or None, but got list"),
    "train_mode_int": (lambda: nn.Sequential(nn.ReLU()).train(1), TypeError, "mode must be True or False, but got 1"),
}


@pytest.mark.parametrize("case", MODULE_BAD)
def test_containers_and_modules(case: str) -> None:
    call, error, words = MODULE_BAD[case]
    with pytest.raises(error, match=re.escape(words)):
        call()


# -- state dicts -------------------------------------------------------------------------------------


def _state_layers() -> dict[str, nn.Module]:
    return {"linear": nn.Linear(3, 2, rng=0), "batchnorm": nn.BatchNorm2d(2),
            "conv_transpose": nn.ConvTranspose2d(2, 3, 2, rng=0), "sequential": _seq("float32")}


def _bad_states(layer: nn.Module) -> dict[str, tuple[dict[str, Any], type, str]]:
    state = layer.state_dict()
    first = next(iter(state))
    wrong_shape = {**state, first: np.zeros(state[first].shape + (1,), state[first].dtype)}
    other = "float64" if state[first].dtype == np.float32 else "float32"
    return {
        "missing_key": ({k: v for k, v in state.items() if k != first}, KeyError, f"missing keys ['{first}']"),
        "extra_key": ({**state, "extra.weight": np.zeros(1)}, KeyError, "unexpected keys ['extra.weight']"),
        "wrong_shape": (wrong_shape, ValueError, f"state['{first}'] must have shape {state[first].shape}"),
        "wrong_dtype": ({**state, first: state[first].astype(other)}, TypeError, f"state['{first}'] must be float32"),
        "list_value": ({**state, first: state[first].tolist()}, TypeError, f"state['{first}'] must be float32"),
        "not_a_mapping": ([(k, v) for k, v in state.items()], TypeError, "state must be a mapping"),
    }


STATE_CASES = [(n, c) for n in ("linear", "batchnorm", "conv_transpose", "sequential") for c in
               ("missing_key", "extra_key", "wrong_shape", "wrong_dtype", "list_value", "not_a_mapping")]


@pytest.mark.parametrize("name, case", STATE_CASES, ids=[f"{n}-{c}" for n, c in STATE_CASES])
def test_load_state_dict_refuses_and_changes_nothing(name: str, case: str) -> None:
    layer = _state_layers()[name]
    before = layer.state_dict()
    bad, error, words = _bad_states(layer)[case]
    with pytest.raises(error, match=re.escape(words)):
        layer.load_state_dict(bad)
    after = layer.state_dict()
    assert after.keys() == before.keys()
    for key in after:
        np.testing.assert_array_equal(after[key], before[key])


@pytest.mark.parametrize("case", ["missing_key", "extra_key"])
def test_load_state_dict_not_strict_reports_what_it_skipped(case: str) -> None:
    layer = nn.Linear(3, 2, rng=0)
    bad = _bad_states(layer)[case][0]
    result = layer.load_state_dict(bad, strict=False)
    assert (result.missing_keys, result.unexpected_keys) == ((["weight"], []) if case == "missing_key" else ([], ["extra.weight"]))


# -- SGD --------------------------------------------------------------------------------------------

SGD_BAD: dict[str, tuple[dict[str, Any], type, str]] = {
    "lr_negative": (dict(lr=-0.1), ValueError, "lr must be >= 0"),
    "lr_nan": (dict(lr=float("nan")), ValueError, "lr must be finite"),
    "lr_inf": (dict(lr=float("inf")), ValueError, "lr must be finite"),
    "lr_beyond_float": (dict(lr=10**400), ValueError, "lr must be finite"),
    "lr_string": (dict(lr="0.1"), TypeError, "lr must be a real number"),
    "lr_bool": (dict(lr=True), TypeError, "lr must be a real number"),
    "lr_none": (dict(lr=None), TypeError, "lr must be a real number"),
    "lr_array": (dict(lr=np.array([0.1])), TypeError, "lr must be a real number"),
    "momentum_negative": (dict(momentum=-0.5), ValueError, "momentum must be >= 0"),
    "momentum_nan": (dict(momentum=float("nan")), ValueError, "momentum must be finite"),
    "dampening_inf": (dict(dampening=float("-inf")), ValueError, "dampening must be finite"),
    "weight_decay_negative": (dict(weight_decay=-1e-4), ValueError, "weight_decay must be >= 0"),
    "weight_decay_complex": (dict(weight_decay=1j), TypeError, "weight_decay must be a real number"),
    "nesterov_int": (dict(nesterov=1), TypeError, "nesterov must be True or False"),
    "nesterov_without_momentum": (dict(nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
    "nesterov_with_dampening": (dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, "dampening = 0"),
}


@pytest.mark.parametrize("case", SGD_BAD)
def test_sgd_hyper_parameters(case: str) -> None:
    change, error, words = SGD_BAD[case]
    with pytest.raises(error, match=re.escape(words)):
        SGD(nn.Linear(2, 2, rng=0).parameters(), **{"lr": 0.1, **change})


SGD_PARAMS: dict[str, tuple[Callable[[], Any], type, str]] = {
    "empty": (lambda: [], ValueError, "params must contain at least one Parameter"),
    "one_parameter": (lambda: nn.Linear(2, 2).weight, TypeError, "params must be an iterable of Parameters"),
    "arrays": (lambda: [np.zeros(3)], TypeError, "params[0] must be a Parameter, but got ndarray"),
    "module": (lambda: nn.Linear(2, 2), TypeError, "params must be an iterable of Parameters, but got Linear"),
    "none": (lambda: None, TypeError, "params must be an iterable of Parameters"),
    "twice": (lambda: [nn.Linear(2, 2).weight] * 2, ValueError, "must not contain the same Parameter twice"),
    "generator_of_junk": (lambda: (x for x in [nn.Linear(2, 2).weight, 3]), TypeError, "params[1] must be a Parameter"),
}


@pytest.mark.parametrize("case", SGD_PARAMS)
def test_sgd_params(case: str) -> None:
    params, error, words = SGD_PARAMS[case]
    with pytest.raises(error, match=re.escape(words)):
        SGD(params(), lr=0.1)


def _sgd_step(grad: Any) -> tuple[nn.Parameter, SGD]:
    p = nn.Parameter(np.ones(3, np.float32))
    p.grad = grad
    return p, SGD([p], lr=0.5, momentum=0.9)


SGD_GRADS: dict[str, tuple[Any, type, str]] = {
    "wrong_shape": (np.ones(4, np.float32), ValueError, "grad must have shape (3,)"),
    "other_float": (np.ones(3, np.float64), TypeError, "grad must be float32, but got float64"),
    "int": (np.ones(3, np.int64), TypeError, "grad must be float32, but got int64"),
    "list": ([1.0, 1.0, 1.0], TypeError, "grad must be a numpy.ndarray, but got list"),
}


@pytest.mark.parametrize("case", SGD_GRADS)
def test_sgd_step_refuses_a_bad_grad_and_changes_nothing(case: str) -> None:
    grad, error, words = SGD_GRADS[case]
    p, opt = _sgd_step(grad)
    with pytest.raises(error, match=re.escape(words)):
        opt.step()
    np.testing.assert_array_equal(p.data, np.ones(3, np.float32))
    assert opt.state_dict()["momentum_buffer"] == {}


SGD_PARAMETER_DATA: dict[str, tuple[Callable[[], np.ndarray], type, str]] = {
    "int": (lambda: np.ones(3, np.int64), TypeError, "params[0] must be float32 or float64, but got int64"),
    "float16": (lambda: np.ones(3, np.float16), TypeError, "params[0] must be float32 or float64, but got float16"),
    "read_only": (lambda: np.broadcast_to(np.ones(1, np.float32), (3,)), ValueError, "params[0] must be a writeable array"),
}


@pytest.mark.parametrize("case", SGD_PARAMETER_DATA)
def test_sgd_refuses_parameters_it_cannot_update(case: str) -> None:
    """An integer parameter would round lr·grad to 0 (no update, no error); a read-only one would
    fail inside numpy without naming the parameter."""
    make_data, error, words = SGD_PARAMETER_DATA[case]
    p = nn.Parameter(make_data())
    p.grad = np.ones(3, p.data.dtype)
    before = p.data.copy()
    with pytest.raises(error, match=re.escape(words)):
        SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(p.data, before)


@pytest.mark.parametrize("special", SPECIAL)
def test_sgd_propagates_nan_and_inf_as_torch(special: str) -> None:
    grad = np.array([1.0, SPECIAL[special], -2.0], np.float32)
    p = nn.Parameter(np.ones(3, np.float32))
    opt = SGD([p], lr=0.5, momentum=0.9, weight_decay=0.1, nesterov=True)
    tp = torch.nn.Parameter(torch.ones(3))
    topt = torch.optim.SGD([tp], lr=0.5, momentum=0.9, weight_decay=0.1, nesterov=True)
    for _ in range(2):
        p.grad = grad.copy()
        tp.grad = torch.from_numpy(grad.copy())
        with np.errstate(all="ignore"):
            opt.step()
        topt.step()
    _same_specials(p.data, tp.detach().numpy(), "float32", "parameters")


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_with_lr_zero_changes_nothing(momentum: float) -> None:
    """lr = 0 is allowed (as in PyTorch) and leaves the parameters exactly as they were."""
    p = nn.Parameter(np.ones(3, np.float32))
    p.grad = np.full(3, 5.0, np.float32)
    SGD([p], lr=0.0, momentum=momentum, weight_decay=0.1).step()
    np.testing.assert_array_equal(p.data, np.ones(3, np.float32))


# -- gradcheck -----------------------------------------------------------------------------------------

GRADCHECK_BAD: dict[str, tuple[Callable[[], Any], type, str]] = {
    "float32_input": (lambda: gradcheck(nn.ReLU(), np.ones((2, 2), np.float32)), TypeError,
                      "x must be float64 for a finite-difference check, but got float32"),
    "float32_module": (lambda: gradcheck(nn.Linear(2, 2, rng=0), np.ones((2, 2))), TypeError,
                       "parameter weight must be float64"),
    "list_input": (lambda: gradcheck(nn.ReLU(), [[1.0]]), TypeError, "x must be a numpy.ndarray, but got list"),
    "not_a_module": (lambda: gradcheck(np.sin, np.ones(2)), TypeError, "module must be a symconv.nn.Module"),
    "eps_zero": (lambda: gradcheck(nn.ReLU(), np.ones(2), eps=0), ValueError, "eps must be > 0"),
    "eps_nan": (lambda: gradcheck(nn.ReLU(), np.ones(2), eps=float("nan")), ValueError, "eps must be finite"),
    "atol_negative": (lambda: gradcheck(nn.ReLU(), np.ones(2), atol=-1), ValueError, "atol must be >= 0"),
    "rtol_string": (lambda: gradcheck(nn.ReLU(), np.ones(2), rtol="1"), TypeError, "rtol must be a real number"),
    "max_entries_zero": (lambda: gradcheck(nn.ReLU(), np.ones(2), max_entries=0), ValueError, "max_entries must be a positive int"),
    "max_entries_float": (lambda: gradcheck(nn.ReLU(), np.ones(2), max_entries=2.0), TypeError, "max_entries must be a positive int"),
    "seed_negative": (lambda: gradcheck(nn.ReLU(), np.ones(2), seed=-1), ValueError, "seed must be a non-negative int"),
    "grad_out_wrong_shape": (lambda: gradcheck(nn.ReLU(), np.ones(2), grad_out=np.ones(3)), ValueError,
                             "grad_out must be a float64 array of the output's shape (2,)"),
    "grad_out_float32": (lambda: gradcheck(nn.ReLU(), np.ones(2), grad_out=np.ones(2, np.float32)), ValueError,
                         "grad_out must be a float64 array"),
    "grad_out_list": (lambda: gradcheck(nn.ReLU(), np.ones(2), grad_out=[1.0, 1.0]), ValueError,
                      "grad_out must be a float64 array of the output's shape (2,), but got list"),
    "model_target_out_of_range": (lambda: gradcheck_model(nn.Linear(2, 3, dtype="float64", rng=0), nn.CrossEntropyLoss(),
                                                          np.ones((2, 2)), np.array([0, 3])), ValueError,
                                  "target must hold class indices in [0, 3), but got 3"),
    "model_target_float": (lambda: gradcheck_model(nn.Linear(2, 3, dtype="float64", rng=0), nn.CrossEntropyLoss(),
                                                   np.ones((2, 2)), np.array([0.0, 1.0])), TypeError,
                           "target must hold integer class indices"),
}


@pytest.mark.parametrize("case", GRADCHECK_BAD)
def test_gradcheck_arguments(case: str) -> None:
    call, error, words = GRADCHECK_BAD[case]
    with pytest.raises(error, match=re.escape(words)):
        call()


def test_gradcheck_after_a_refusal_leaves_the_module_as_it_was() -> None:
    layer = nn.Sequential(nn.BatchNorm2d(2, dtype="float64"), nn.Flatten())
    x = data((2, 2, 2, 2), "float64")
    before = layer.state_dict()
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        gradcheck_model(layer, nn.CrossEntropyLoss(), x, np.array([0.0, 1.0]))
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_gradcheck_with_nan_input_reports_failure_not_success() -> None:
    """A NaN input makes NaN gradients: the check must not call that agreement."""
    x = np.array([[1.0, np.nan, -2.0]])
    result = gradcheck(nn.Linear(3, 2, dtype="float64", rng=0), x)
    assert not result.ok


# -- kernels, called directly -------------------------------------------------------------------------

FACTORY_BAD: dict[str, tuple[Callable[[], Any], type, str]] = {
    "activation_kind": (lambda: K.activation("tanh", (2, 2)), ValueError, "kind must be one of ['relu', 'sigmoid'], but got 'tanh'"),
    "activation_kind_none": (lambda: K.activation(None, (2, 2)), ValueError, "kind must be one of"),
    "activation_shape_zero": (lambda: K.activation("relu", (2, 0)), ValueError, "shape must be a tuple of positive ints"),
    "activation_shape_empty": (lambda: K.activation("relu", ()), ValueError, "shape must be a tuple of positive ints"),
    "activation_shape_bool": (lambda: K.activation("relu", (True, 2)), ValueError, "shape must be a tuple of positive ints"),
    "activation_shape_float": (lambda: K.activation("relu", (2.0, 2)), ValueError, "shape must be a tuple of positive ints"),
    "activation_shape_int": (lambda: K.activation("relu", 4), ValueError, "shape must be a tuple of positive ints, but got 4"),
    "activation_shape_beyond_64_bit": (lambda: K.activation("relu", (2**40, 2**40)), ValueError, "shape must"),
    "activation_dtype": (lambda: K.activation("relu", (2, 2), "float16"), ValueError, "dtype must be 'float32' or 'float64'"),
    "softmax_rank": (lambda: K.softmax((2, 2, 2)), ValueError, "shape must be a tuple of 2 positive ints"),
    "cross_entropy_negative": (lambda: K.cross_entropy((-2, 3)), ValueError, "shape must be a tuple of 2 positive ints"),
    "batchnorm_rank": (lambda: K.batchnorm2d((2, 3, 4)), ValueError, "shape must be a tuple of 4 positive ints"),
    "batchnorm_dtype": (lambda: K.batchnorm2d((2, 3, 4, 4), "int8"), ValueError, "dtype must be 'float32' or 'float64'"),
    "maxpool_input_rank": (lambda: K.maxpool2d((1, 4, 4), 2), ValueError, "input_shape must be a tuple of 4 positive ints"),
    "maxpool_kernel_zero": (lambda: K.maxpool2d((1, 1, 4, 4), 0), ValueError, "kernel_size must be ints >= 1"),
    "maxpool_kernel_huge": (lambda: K.maxpool2d((1, 1, 4, 4), HUGE), ValueError, "kernel_size must be at most"),
    "maxpool_stride_huge": (lambda: K.maxpool2d((1, 1, 4, 4), 2, HUGE), ValueError, "stride must be at most"),
    "maxpool_stride_bool": (lambda: K.maxpool2d((1, 1, 4, 4), 2, True), ValueError, "stride must be ints >= 1"),
    "maxpool_padding_huge": (lambda: K.maxpool2d((1, 1, 4, 4), 2, 1, HUGE), ValueError, "padding must be at most"),
    "maxpool_dilation_huge": (lambda: K.maxpool2d((1, 1, 4, 4), 2, 1, 0, HUGE), ValueError, "dilation must be at most"),
    "maxpool_padding_above_half": (lambda: K.maxpool2d((1, 1, 4, 4), 2, 1, 2), ValueError, "padding must be at most half"),
    "maxpool_windows_in_padding": (lambda: K.maxpool2d((1, 1, 2, 2), 2, 1, 1, 3), ValueError, "reads only padding"),
    "maxpool_ceil_int": (lambda: K.maxpool2d((1, 1, 4, 4), 2, 2, 0, 1, 1), ValueError, "ceil_mode must be a bool"),
    "avgpool_stride_huge": (lambda: K.avgpool2d((1, 1, 4, 4), 2, HUGE), ValueError, "stride must be at most"),
    "avgpool_count_include_pad_none": (lambda: K.avgpool2d((1, 1, 4, 4), 2, 2, 0, False, None), ValueError,
                                       "count_include_pad must be a bool"),
    "avgpool_too_small": (lambda: K.avgpool2d((1, 1, 2, 2), 3), ValueError, "too small for kernel_size"),
}


@pytest.mark.parametrize("case", FACTORY_BAD)
def test_kernel_factory_arguments(case: str) -> None:
    call, error, words = FACTORY_BAD[case]
    with pytest.raises(error, match=re.escape(words)):
        call()


@pytest.fixture(scope="module")
def kernel_sets() -> dict[str, tuple[Any, Callable[..., Any], dict[str, np.ndarray]]]:
    return {kind: _kernel_arrays(kind, "float32") for kind in KERNEL_KINDS}


KERNEL_ARGS = {
    "maxpool": ("x", "g", "indices"), "avgpool": ("x", "g"), "relu": ("x", "y", "g"), "sigmoid": ("x", "y", "g"),
    "softmax": ("x", "y", "g"), "cross_entropy": ("z", "t", "p"), "batchnorm": ("x", "g", "gamma", "beta", "mean", "var"),
}
#: The name each kernel gives an argument in its messages.
ARG_NAMES = {"g": "grad_out", "z": "logits", "t": "target", "p": "probs", "mean": "(mean|running_mean)",
             "var": "(var|running_var)"}


def _bad_values(a: np.ndarray) -> dict[str, tuple[Any, type, str]]:
    index = a.dtype == np.int64
    return {
        "int32": (a.astype(np.int32), TypeError, "must be int64, but got int32" if index else "must be float32, but got int32"),
        "float64": (a.astype(np.float64), TypeError, "must be int64" if index else "must be float32, but got float64"),
        "float16": (a.astype(np.float16), TypeError, "must be"),
        "list": (a.tolist(), TypeError, "must be a numpy.ndarray, but got list"),
        "none": (None, TypeError, "must be a numpy.ndarray, but got NoneType"),
        "one_more": (np.zeros(a.shape + (1,), a.dtype), ValueError, "must have shape"),
        "one_fewer": (np.zeros(a.shape[1:], a.dtype), ValueError, "must have shape"),
        "flat": (a.reshape(-1), ValueError, "must have shape"),
    }


#: Arguments that are one-dimensional already ("flat" is no change for them).
ONE_D = {"t", "gamma", "beta", "mean", "var"}
KERNEL_BAD_CASES = [(kind, arg, bad) for kind, args in KERNEL_ARGS.items() for arg in args
                    for bad in ("int32", "float64", "float16", "list", "none", "one_more", "one_fewer", "flat")
                    if not (bad == "flat" and arg in ONE_D)]


@pytest.mark.parametrize("kind, arg, bad", KERNEL_BAD_CASES, ids=[f"{k}-{a}-{b}" for k, a, b in KERNEL_BAD_CASES])
def test_kernel_arguments_are_checked(kernel_sets, kind: str, arg: str, bad: str) -> None:
    _, call, arrays = kernel_sets[kind]
    value, error, words = _bad_values(arrays[arg])[bad]
    assert value is None or np.shape(value) != arrays[arg].shape or bad in ("int32", "float64", "float16", "list")
    name = ARG_NAMES.get(arg, arg)
    with pytest.raises(error, match=rf"^{name} {words}"):
        call(**{**arrays, arg: value})


MAXPOOL_INDICES = {"negative": -1, "plane_size": 25, "int64_max": np.iinfo(np.int64).max, "int64_min": np.iinfo(np.int64).min}


@pytest.mark.parametrize("bad", MAXPOOL_INDICES)
def test_maxpool_kernel_refuses_indices_outside_the_plane(kernel_sets, bad: str) -> None:
    k, _, arrays = kernel_sets["maxpool"]
    indices = arrays["indices"].copy()
    indices[1, 2, 0, 1] = MAXPOOL_INDICES[bad]
    with pytest.raises(ValueError, match=rf"^indices must be flat positions h\*W \+ w in \[0, 25\).*but got "
                                         rf"{MAXPOOL_INDICES[bad]} at \(1, 2, 0, 1\)"):
        k.backward(arrays["g"], indices)


@pytest.mark.parametrize("value, error, words", [
    (-1e-5, ValueError, "eps must be a non-negative real number"), (float("nan"), ValueError, "eps must be"),
    (True, ValueError, "eps must be"), ("1e-5", ValueError, "eps must be"), (None, ValueError, "eps must be"),
], ids=["negative", "nan", "bool", "string", "none"])
def test_batchnorm_kernel_eps(kernel_sets, value: Any, error: type, words: str) -> None:
    k, _, a = kernel_sets["batchnorm"]
    with pytest.raises(error, match=re.escape(words)):
        k.forward_train(a["x"], a["gamma"], a["beta"], value)


@pytest.mark.parametrize("target", [[0, 6, 1, 1], [-1, 0, 0, 0]], ids=["too_big", "negative"])
def test_cross_entropy_kernel_targets(kernel_sets, target: list[int]) -> None:
    k, _, a = kernel_sets["cross_entropy"]
    bad = [v for v in target if not 0 <= v < 6][0]
    for call in (lambda: k.forward(a["z"], np.array(target)), lambda: k.backward(a["p"], np.array(target), 1.0)):
        with pytest.raises(ValueError, match=rf"^target must hold class indices in \[0, 6\), but got {bad} at index"):
            call()


# -- layer specs and derive_layer ------------------------------------------------------------------------

SPECS_BAD: dict[str, tuple[Callable[[], Any], type, str]] = {
    "activation_kind": (lambda: ActivationSpec("tanh"), ValueError, "kind must be one of 'relu', 'sigmoid'"),
    "activation_kind_none": (lambda: ActivationSpec(None), ValueError, "kind must be one of"),
    "activation_shape_zero": (lambda: ActivationSpec("relu", (0, 3)), ValueError, "shape must have every size >= 1"),
    "activation_shape_float": (lambda: ActivationSpec("relu", (1.0, 3)), TypeError, "shape must contain only ints"),
    "activation_shape_bool": (lambda: ActivationSpec("relu", (True, 3)), TypeError, "shape must contain only ints"),
    "activation_shape_string": (lambda: ActivationSpec("relu", "1,3"), TypeError, "shape must be a tuple of ints"),
    "activation_shape_int": (lambda: ActivationSpec("relu", 3), TypeError, "shape must be a tuple of ints"),
    "activation_rank_five": (lambda: ActivationSpec("relu", (1, 1, 1, 1, 2)), ValueError, "shape must have 1 or 2 or 3 or 4 dimensions"),
    "activation_huge": (lambda: ActivationSpec("relu", (HUGE, 2)), ValueError, "for a symbolic derivation"),
    "maxpool_input_rank": (lambda: MaxPool2dSpec((1, 4, 4)), ValueError, "input must have 4 dimensions"),
    "maxpool_kernel_zero": (lambda: MaxPool2dSpec((1, 1, 4, 4), 0), ValueError, "kernel_size must be >= 1"),
    "maxpool_kernel_float": (lambda: MaxPool2dSpec((1, 1, 4, 4), 2.0), TypeError, "kernel_size must be an int or a pair"),
    "maxpool_kernel_bool": (lambda: MaxPool2dSpec((1, 1, 4, 4), True), TypeError, "kernel_size must be an int or a pair"),
    "maxpool_kernel_triple": (lambda: MaxPool2dSpec((1, 1, 4, 4), (2, 2, 2)), ValueError, "kernel_size must have one entry per spatial axis"),
    "maxpool_kernel_huge": (lambda: MaxPool2dSpec((1, 1, 4, 4), HUGE), ValueError, "input must be at least as large as the (dilated) kernel"),
    "maxpool_stride_negative": (lambda: MaxPool2dSpec((1, 1, 4, 4), 2, -1), ValueError, "stride must be >= 1"),
    "maxpool_padding_above_half": (lambda: MaxPool2dSpec((1, 1, 4, 4), 2, 1, 2), ValueError, "padding must be at most half"),
    "maxpool_dilation_zero": (lambda: MaxPool2dSpec((1, 1, 4, 4), 2, dilation=0), ValueError, "dilation must be >= 1"),
    "maxpool_ceil_int": (lambda: MaxPool2dSpec((1, 1, 4, 4), ceil_mode=1), TypeError, "ceil_mode must be a bool"),
    "maxpool_too_big": (lambda: MaxPool2dSpec((1, 1, 100, 100)), ValueError, "must be at most 256 for a symbolic derivation"),
    "avgpool_count_include_pad_string": (lambda: AvgPool2dSpec((1, 1, 4, 4), count_include_pad="no"), TypeError,
                                         "count_include_pad must be a bool"),
    "avgpool_stride_huge_is_one_window": (lambda: AvgPool2dSpec((1, 1, 4, 4), 2, HUGE), None, ""),
    "linear_in_zero": (lambda: LinearSpec(0, 2), ValueError, "in_features must be >= 1"),
    "linear_out_float": (lambda: LinearSpec(2, 2.0), TypeError, "out_features must be an int"),
    "linear_batch_negative": (lambda: LinearSpec(2, 2, batch=-1), ValueError, "batch must be >= 1"),
    "linear_bias_int": (lambda: LinearSpec(2, 2, bias=1), TypeError, "bias must be a bool"),
    "linear_huge": (lambda: LinearSpec(HUGE, 2), ValueError, "for a symbolic derivation"),
    "softmax_rank": (lambda: SoftmaxSpec((3,)), ValueError, "shape must have 2 dimensions"),
    "softmax_too_big": (lambda: SoftmaxSpec((10, 10)), ValueError, "N × C must be at most"),
    "cross_entropy_reduction": (lambda: CrossEntropySpec((1, 3), reduction="none"), ValueError, "reduction must be one of 'mean', 'sum'"),
    "cross_entropy_target_too_big": (lambda: CrossEntropySpec((2, 3), (0, 3)), ValueError, "target must hold class indices below C = 3"),
    "cross_entropy_target_negative": (lambda: CrossEntropySpec((2, 3), (0, -1)), ValueError, "target must have every size >= 0"),
    "cross_entropy_target_count": (lambda: CrossEntropySpec((2, 3), (0,)), ValueError, "target must have one class index per sample (2)"),
    "cross_entropy_target_float": (lambda: CrossEntropySpec((2, 3), (0, 1.0)), TypeError, "target must contain only ints"),
    "cross_entropy_target_int": (lambda: CrossEntropySpec((1, 3), 2), TypeError, "target must be a tuple of ints"),
    "batchnorm_one_value": (lambda: BatchNorm2dSpec((1, 1, 1, 1)), ValueError, "at least 2 values per channel"),
    "batchnorm_affine_none": (lambda: BatchNorm2dSpec((1, 1, 1, 3), affine=None), TypeError, "affine must be a bool"),
    "batchnorm_huge": (lambda: BatchNorm2dSpec((HUGE, 1, 1, 3)), ValueError, "for a symbolic derivation"),
    "transpose_channels": (lambda: ConvTranspose2dSpec((1, 2, 2, 2), (1, 1, 2, 2)), ValueError,
                           "weight must have the input's channels first"),
    "transpose_output_padding": (lambda: ConvTranspose2dSpec((1, 1, 2, 2), (1, 1, 2, 2), stride=2, output_padding=2),
                                 ValueError, "output_padding must be smaller than the stride"),
    "transpose_groups": (lambda: ConvTranspose2dSpec((1, 3, 2, 2), (3, 1, 2, 2), groups=2), ValueError,
                         "groups must divide in_channels, but got 2 and 3"),
    "transpose_groups_float": (lambda: ConvTranspose2dSpec((1, 2, 2, 2), (2, 1, 2, 2), groups=2.0), TypeError,
                               "groups must be an int"),
    "transpose_empty_output": (lambda: ConvTranspose2dSpec((1, 1, 1, 1), (1, 1, 1, 1), padding=1), ValueError,
                               "the output must have a size >= 1"),
    "transpose_huge_stride": (lambda: ConvTranspose2dSpec((1, 1, 2, 2), (1, 1, 1, 1), stride=HUGE), ValueError,
                              "for a symbolic derivation"),
    "transpose_bias_string": (lambda: ConvTranspose2dSpec((1, 1, 2, 2), (1, 1, 2, 2), bias="yes"), TypeError,
                              "bias must be a bool"),
    "derive_layer_conv_spec": (lambda: derive_layer(LinearSpec(2, 2).as_conv()), TypeError, "spec must be one of"),
    "derive_layer_dict": (lambda: derive_layer({"kind": "relu"}), TypeError, "spec must be one of"),
    "derive_layer_options": (lambda: derive_layer(SoftmaxSpec(), values=[1, 2, 3]), TypeError, "takes no options"),
    "derive_layer_maxpool_values_shape": (lambda: derive_layer(MaxPool2dSpec((1, 1, 2, 2)), values=np.zeros((2, 2))).Y,
                                          ValueError, "values"),
    "derive_layer_maxpool_values_strings": (lambda: derive_layer(MaxPool2dSpec((1, 1, 1, 2), (1, 2)), values=np.array([[[["1", "b"]]]])).Y,
                                            TypeError, "values must be real numbers, but got '1'"),
    "derive_layer_maxpool_values_complex": (lambda: derive_layer(MaxPool2dSpec((1, 1, 1, 2), (1, 2)), values=np.full((1, 1, 1, 2), 1j)).Y,
                                            TypeError, "values must be real numbers, but got 1j"),
    "derive_layer_maxpool_values_none": (lambda: derive_layer(MaxPool2dSpec((1, 1, 1, 2), (1, 2)), values=np.full((1, 1, 1, 2), None)).Y,
                                         TypeError, "values must be real numbers, but got None"),
    "derive_layer_maxpool_values_bool": (lambda: derive_layer(MaxPool2dSpec((1, 1, 1, 2), (1, 2)), values=np.ones((1, 1, 1, 2), bool)).Y,
                                         TypeError, "values must be numbers, but got True"),
    "derive_layer_maxpool_values_beyond_float": (lambda: derive_layer(MaxPool2dSpec((1, 1, 1, 2), (1, 2)),
                                                                      values=np.array([[[[fractions.Fraction(10**400), 1]]]], object)).Y,
                                                 ValueError, "values must be finite numbers"),
    "derive_layer_maxpool_values_nan": (lambda: derive_layer(MaxPool2dSpec((1, 1, 2, 2)), values=np.full((1, 1, 2, 2), np.nan)).Y,
                                        ValueError, "values"),
}


@pytest.mark.parametrize("case", SPECS_BAD)
def test_layer_specs(case: str) -> None:
    call, error, words = SPECS_BAD[case]
    if error is None:
        call()
        return
    with pytest.raises(error, match=re.escape(words)):
        call()


# -- command lines: ``symconv layer`` and ``symconv train`` ------------------------------------------------


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    words: str


LAYER_CLI = {
    "kind_unknown": Case(("layer", "tanh"), "invalid choice: 'tanh'"),
    "no_kind": Case(("layer",), "required: kind"),
    "shape_word": Case(("layer", "relu", "--shape", "two,three"), "--shape must be ints"),
    "shape_float": Case(("layer", "relu", "--shape", "1.5,3"), "--shape must be ints"),
    "shape_empty": Case(("layer", "relu", "--shape", ""), "--shape must be ints"),
    "shape_zero": Case(("layer", "sigmoid", "--shape", "0,3"), "shape must have every size >= 1"),
    "shape_negative_as_option": Case(("layer", "sigmoid", "--shape", "-1,3"), "--shape: expected one argument"),
    "shape_negative": Case(("layer", "sigmoid", "--shape=-1,3"), "shape must have every size >= 1"),
    "shape_huge": Case(("layer", "relu", "--shape", "9" * 30), "at most"),
    "shape_rank_five": Case(("layer", "relu", "--shape", "1,1,1,1,2"), "dimensions"),
    "maxpool_no_input": Case(("layer", "maxpool"), "maxpool needs --input"),
    "maxpool_input_rank": Case(("layer", "maxpool", "--input", "4,4"), "input must have 4 dimensions"),
    "maxpool_kernel_zero": Case(("layer", "maxpool", "--input", "1,1,4,4", "--kernel", "0"), "kernel_size must be >= 1"),
    "maxpool_kernel_word": Case(("layer", "maxpool", "--input", "1,1,4,4", "--kernel", "big"), "--kernel must be ints"),
    "maxpool_kernel_triple": Case(("layer", "maxpool", "--input", "1,1,4,4", "--kernel", "2,2,2"), "one entry per spatial axis"),
    "maxpool_stride_negative": Case(("layer", "maxpool", "--input", "1,1,4,4", "--stride=-1"), "stride must be >= 1"),
    "maxpool_padding_negative": Case(("layer", "maxpool", "--input", "1,1,4,4", "--padding=-1"), "padding must be >= 0"),
    "conv_transpose_stride_zero": Case(("layer", "conv_transpose", "--input", "1,1,2,2", "--weight", "1,1,2,2", "--stride", "0"),
                                       "stride must be >= 1"),
    "conv_transpose_dilation_zero": Case(("layer", "conv_transpose", "--input", "1,1,2,2", "--weight", "1,1,2,2",
                                          "--dilation", "0,1"), "dilation must be >= 1"),
    "maxpool_padding_above_half": Case(("layer", "maxpool", "--input", "1,1,4,4", "--padding", "2"), "padding must be at most half"),
    "maxpool_dilation_zero": Case(("layer", "maxpool", "--input", "1,1,4,4", "--dilation", "0"), "dilation must be >= 1"),
    "maxpool_kernel_too_big": Case(("layer", "maxpool", "--input", "1,1,4,4", "--kernel", "9"), "at least as large"),
    "maxpool_values_word": Case(("layer", "maxpool", "--input", "1,1,2,2", "--values", "1,2,x,4"), "--values must be comma-separated numbers"),
    "maxpool_values_count": Case(("layer", "maxpool", "--input", "1,1,2,2", "--values", "1,2,3"), "one number per input entry (4)"),
    "maxpool_values_nan": Case(("layer", "maxpool", "--input", "1,1,2,2", "--values", "1,nan,3,4"), "values"),
    "maxpool_values_inf": Case(("layer", "maxpool", "--input", "1,1,2,2", "--values", "1,inf,3,4"), "values"),
    "values_not_maxpool": Case(("layer", "relu", "--values", "1,2,3"), "--values is for maxpool only"),
    "avgpool_stride_zero": Case(("layer", "avgpool", "--input", "1,1,4,4", "--stride", "0"), "stride must be >= 1"),
    "linear_no_features": Case(("layer", "linear"), "linear needs --in-features"),
    "linear_features_word": Case(("layer", "linear", "--in-features", "three", "--out-features", "2"), "invalid int value: 'three'"),
    "linear_features_zero": Case(("layer", "linear", "--in-features", "0", "--out-features", "2"), "in_features must be >= 1"),
    "linear_batch_negative": Case(("layer", "linear", "--in-features", "2", "--out-features", "2", "--batch", "-2"), "batch must be >= 1"),
    "linear_features_huge": Case(("layer", "linear", "--in-features", "9" * 30, "--out-features", "2"), "at most"),
    "softmax_rank": Case(("layer", "softmax", "--shape", "3"), "shape must have 2 dimensions"),
    "cross_entropy_target_range": Case(("layer", "cross_entropy", "--shape", "2,3", "--target", "0,3"), "target must hold class indices below"),
    "cross_entropy_target_negative": Case(("layer", "cross_entropy", "--shape", "2,3", "--target", "0,-1"), "target"),
    "cross_entropy_target_count": Case(("layer", "cross_entropy", "--shape", "2,3", "--target", "0"), "one class index per sample"),
    "cross_entropy_target_word": Case(("layer", "cross_entropy", "--target", "cat"), "--target must be ints"),
    "cross_entropy_reduction": Case(("layer", "cross_entropy", "--reduction", "none"), "invalid choice: 'none'"),
    "batchnorm_one_value": Case(("layer", "batchnorm", "--input", "1,1,1,1"), "at least 2 values per channel"),
    "conv_transpose_no_weight": Case(("layer", "conv_transpose", "--input", "1,1,2,2"), "conv_transpose needs --weight"),
    "conv_transpose_groups_word": Case(("layer", "conv_transpose", "--input", "1,1,2,2", "--weight", "1,1,2,2", "--groups", "x"),
                                       "invalid int value: 'x'"),
    "conv_transpose_groups_zero": Case(("layer", "conv_transpose", "--input", "1,1,2,2", "--weight", "1,1,2,2", "--groups", "0"),
                                       "groups must be >= 1"),
    "conv_transpose_output_padding": Case(("layer", "conv_transpose", "--input", "1,1,2,2", "--weight", "1,1,2,2",
                                           "--output-padding", "1"), "output_padding must be smaller than the stride"),
    "format": Case(("layer", "relu", "--format", "pdf"), "invalid choice: 'pdf'"),
    "index_base": Case(("layer", "relu", "--index-base", "2"), "invalid choice: 2"),
}

TRAIN_CLI = {
    "epochs_zero": Case(("train", "--epochs", "0"), "--epochs must be >= 1, but got 0"),
    "epochs_word": Case(("train", "--epochs", "many"), "invalid int value: 'many'"),
    "epochs_float": Case(("train", "--epochs", "1.5"), "invalid int value: '1.5'"),
    "batch_size_zero": Case(("train", "--batch-size", "0"), "--batch-size must be >= 1, but got 0"),
    "batch_size_negative": Case(("train", "--batch-size=-32"), "--batch-size must be >= 1"),
    "lr_zero": Case(("train", "--lr", "0"), "--lr must be > 0"),
    "lr_negative": Case(("train", "--lr=-0.1"), "--lr must be > 0"),
    "lr_nan": Case(("train", "--lr", "nan"), "--lr must be"),
    "lr_inf": Case(("train", "--lr", "inf"), "--lr must be finite"),
    "lr_word": Case(("train", "--lr", "fast"), "invalid float value: 'fast'"),
    "momentum_negative": Case(("train", "--momentum=-0.9"), "--momentum must be >= 0"),
    "momentum_nan": Case(("train", "--momentum", "nan"), "--momentum must be"),
    "weight_decay_negative": Case(("train", "--weight-decay=-1e-4"), "--weight-decay must be >= 0"),
    "weight_decay_inf": Case(("train", "--weight-decay", "inf"), "--weight-decay must be"),
    "seed_negative": Case(("train", "--seed=-1"), "--seed must be between 0 and"),
    "seed_beyond_32_bit": Case(("train", "--seed", str(2**32)), "--seed must be between 0 and 2^32 - 1"),
    "threads_huge": Case(("train", "--threads", "9" * 30), "--threads must be between 0 and"),
    "seed_word": Case(("train", "--seed", "x"), "invalid int value: 'x'"),
    "threads_negative": Case(("train", "--threads=-2"), "--threads must be between 0 and"),
    "dtype": Case(("train", "--dtype", "float16"), "invalid choice: 'float16'"),
    "schedule": Case(("train", "--schedule", "step"), "invalid choice: 'step'"),
    "out_is_a_file": Case(("train", "--epochs", "1", "--quiet", "--out", sys.executable), "python"),
    # refused once the data are loaded (the training set's size is known then), or without
    # scikit-learn by the message that says it is needed: one error line either way
    "batch_size_beyond_the_training_set": Case(
        ("train", "--epochs", "1", "--quiet", "--batch-size", "100000", "--out", "{tmp}/run"),
        "batch_size must be between 1 and" if importlib.util.find_spec("sklearn") else "needs scikit-learn"),
}

CLI = {**{f"layer-{k}": v for k, v in LAYER_CLI.items()}, **{f"train-{k}": v for k, v in TRAIN_CLI.items()}}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory) -> dict[str, dict]:
    tmp = str(tmp_path_factory.mktemp("cli"))  # where a case that gets as far as writing may write
    payload = {name: {"argv": [a.replace("{tmp}", tmp) for a in c.argv], "timeout": CASE_TIMEOUT_S, "env": {}}
               for name, c in CLI.items()}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER], input=json.dumps(payload), capture_output=True, text=True,
        env=child_env(PYTHONIOENCODING="utf-8"), cwd=ROOT, timeout=CASE_TIMEOUT_S * 4,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", CLI)
def test_bad_command_lines(name: str, cli_results) -> None:
    result, case = cli_results[name], CLI[name]
    code, out, err = result["code"], result["out"], result["err"]
    assert code is not None, f"still running after {CASE_TIMEOUT_S} s"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{err}"
    assert code == 2, (code, err)
    assert lines[0].startswith("symconv: error: "), lines[0]
    assert out == "", out
    assert case.words in lines[0], lines[0]


# -- int64 index arrays that lie about their buffer (isolated) -----------------------------------------


def lying_index_case(liar: str, which: str) -> None:
    """Indices (max-pool argmax) and targets (cross-entropy) whose Python attributes lie about the
    buffer: refused naming the argument, and C never reads past the buffer."""
    from tests.test_hostile_kernel import ClassLiar, DtypeLiar, ShapeLiar

    if which == "indices":
        k, _, a = _kernel_arrays("maxpool", "float32")
        shape, name = a["indices"].shape, "indices"
        call = lambda bad: k.backward(a["g"], bad)  # noqa: E731
    else:
        k, _, a = _kernel_arrays("cross_entropy", "float32")
        shape, name = a["t"].shape, "target"
        call = lambda bad: k.forward(a["z"], bad)  # noqa: E731
    if liar in ("shape", "class"):
        bad = np.zeros(1, np.int64).view(ShapeLiar if liar == "shape" else ClassLiar)
        bad.claimed = shape
    else:  # int8 data that says it is int64: an eighth of the bytes C would read
        bad = np.zeros(shape, np.int8).view(DtypeLiar)
        bad.claimed_dtype = np.dtype(np.int64)
    with pytest.raises((TypeError, ValueError), match=rf"^{name} "):
        call(bad)


ISOLATED_CASES.update({f"lying-{liar}-{which}": functools.partial(lying_index_case, liar, which)
                       for liar in ("shape", "class", "dtype") for which in ("indices", "target")})


@pytest.mark.parametrize("name", _cases("lying-"))
def test_index_arrays_lying_about_their_buffer(name: str, outcomes) -> None:
    outcomes[name].check()
