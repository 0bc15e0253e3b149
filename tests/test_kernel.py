"""Compiled kernels (symconv.build → codegen.kernel.ConvKernel) against independent references.

References: the numpy oracle in tests/reference.py, PyTorch (forward and autograd) where
installed, central finite differences, and the adjoint identity ⟨v, J·u⟩ = ⟨Jᵀ·v, u⟩. Every
distinct layer compiles one module (cached on disk), so the number of layers stays modest.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen.kernel import ConvKernel
from symconv import pipeline
from symconv.api import build
from symconv.spec import ConvSpec
from tests.reference import conv_forward, conv_grad_bias, conv_grad_input, conv_grad_weight
from tests.strategies import small_specs

DTYPES = ("float32", "float64")

#: Hand-picked layers covering what random ones may miss.
NAMED_SPECS = {
    "lecture_3x3_2x2": ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)),
    "lecture_5x5_3x3_s2": ConvSpec(input=(1, 1, 5, 5), weight=(1, 1, 3, 3), stride=2),
    "asym_pad_dilation_bias": ConvSpec(
        input=(2, 3, 7, 6), weight=(4, 3, 3, 2), stride=(2, 1), padding=((1, 0), (2, 1)),
        dilation=(1, 2), bias=True,
    ),
    "depthwise": ConvSpec(input=(2, 4, 6, 5), weight=(4, 1, 3, 3), padding=1, groups=4, bias=True),
    "groups_1d_stride3": ConvSpec(input=(2, 6, 11), weight=(4, 3, 3), stride=3, padding=((2, 1),), groups=2),
    "rank3": ConvSpec(input=(1, 2, 4, 5, 3), weight=(2, 2, 2, 3, 2), stride=(1, 2, 1), padding=1, bias=True),
    "dropped_rows": ConvSpec(input=(1, 2, 8, 8), weight=(3, 2, 3, 3), stride=3),  # floor drops a row
}
EMPTY_BATCH = ConvSpec(input=(0, 2, 4, 4), weight=(3, 2, 2, 2), bias=True)


def arrays(spec: ConvSpec, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input).astype(dtype)
    w = rng.standard_normal(spec.weight).astype(dtype)
    b = rng.standard_normal(spec.bias_shape).astype(dtype) if spec.bias else None
    g = rng.standard_normal(spec.output).astype(dtype)
    return x, w, b, g


def tolerance(spec: ConvSpec, dtype: str) -> dict[str, float]:
    """Rounding grows with the length of the sums (standard-normal data, each term O(1))."""
    terms = max(spec.in_per_group * math.prod(spec.kernel), spec.batch * math.prod(spec.out_spatial), 1)
    eps = 1e-6 if dtype == "float32" else 1e-14
    return {"rtol": 20 * eps, "atol": 20 * eps * terms}


def hyper(spec: ConvSpec) -> tuple:
    return spec.stride, spec.padding, spec.dilation, spec.groups


def check_against_oracle(spec: ConvSpec, dtype: str) -> None:
    kernel = build(spec, dtype)
    x, w, b, g = arrays(spec, dtype)
    x64, w64, g64 = (a.astype(np.float64) for a in (x, w, g))
    b64 = None if b is None else b.astype(np.float64)
    tol = tolerance(spec, dtype)

    out = kernel.forward(x, w, b)
    assert out.dtype == np.dtype(dtype) and out.shape == spec.output
    np.testing.assert_allclose(out, conv_forward(x64, w64, b64, *hyper(spec)), **tol)
    if spec.bias:  # b omitted: no bias added
        np.testing.assert_allclose(kernel.forward(x, w), conv_forward(x64, w64, None, *hyper(spec)), **tol)

    dx, dw, db = kernel.backward(x, w, g)
    np.testing.assert_allclose(dx, conv_grad_input(g64, w64, spec.input, *hyper(spec)), **tol)
    np.testing.assert_allclose(dw, conv_grad_weight(x64, g64, spec.weight, *hyper(spec)), **tol)
    np.testing.assert_allclose(kernel.grad_input(g, w), dx, rtol=0, atol=0)
    np.testing.assert_allclose(kernel.grad_weight(x, g), dw, rtol=0, atol=0)
    if spec.bias:
        np.testing.assert_allclose(db, conv_grad_bias(g64), **tol)
        np.testing.assert_allclose(kernel.grad_bias(g), db, rtol=0, atol=0)
    else:
        assert db is None


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=small_specs(), dtype=st.sampled_from(DTYPES))
def test_random_layers_match_oracle(spec: ConvSpec, dtype: str) -> None:
    check_against_oracle(spec, dtype)


@pytest.mark.parametrize("name", NAMED_SPECS)
def test_named_layers_match_oracle(name: str) -> None:
    check_against_oracle(NAMED_SPECS[name], "float64")


@pytest.mark.parametrize("name", ["asym_pad_dilation_bias", "depthwise", "rank3"])
def test_named_layers_float32(name: str) -> None:
    check_against_oracle(NAMED_SPECS[name], "float32")


def test_empty_batch() -> None:
    """N = 0: empty outputs, and weight/bias gradients that are exactly zero (empty sums)."""
    kernel = build(EMPTY_BATCH, "float64")
    x, w, b, g = arrays(EMPTY_BATCH, "float64")
    assert kernel.forward(x, w, b).shape == (0, 3, 3, 3)
    dx, dw, db = kernel.backward(x, w, g)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros(EMPTY_BATCH.weight))
    np.testing.assert_array_equal(db, np.zeros(3))


# -- PyTorch -------------------------------------------------------------------------------------


def torch_reference(spec: ConvSpec, x, w, b, g):
    """Forward and autograd gradients from PyTorch (asymmetric padding by padding the input)."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[spec.rank]
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if b is not None else None
    pads = [p for lo_hi in reversed(spec.padding) for p in lo_hi]  # F.pad: last axis first
    out = conv(F.pad(tx, pads), tw, tb, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    out.backward(torch.tensor(g))
    grads = [t.grad.numpy() for t in (tx, tw)] + [tb.grad.numpy() if tb is not None else None]
    return out.detach().numpy(), *grads


TORCH_CASES = [
    *((name, "float64") for name in ["lecture_5x5_3x3_s2", "asym_pad_dilation_bias", "depthwise",
                                      "groups_1d_stride3", "rank3", "dropped_rows"]),
    *((name, "float32") for name in ["asym_pad_dilation_bias", "depthwise", "rank3"]),
]


@pytest.mark.parametrize("name, dtype", TORCH_CASES)
def test_named_layers_match_torch(name: str, dtype: str) -> None:
    spec = NAMED_SPECS[name]
    x, w, b, g = arrays(spec, dtype, seed=1)
    out_t, dx_t, dw_t, db_t = torch_reference(spec, x, w, b, g)
    kernel = build(spec, dtype)
    tol = tolerance(spec, dtype)
    np.testing.assert_allclose(kernel.forward(x, w, b), out_t, **tol)
    dx, dw, db = kernel.backward(x, w, g)
    np.testing.assert_allclose(dx, dx_t, **tol)
    np.testing.assert_allclose(dw, dw_t, **tol)
    if spec.bias:
        np.testing.assert_allclose(db, db_t, **tol)


@settings(max_examples=4, deadline=None)
@given(spec=small_specs(max_rank=3), dtype=st.sampled_from(DTYPES))
def test_random_layers_match_torch(spec: ConvSpec, dtype: str) -> None:
    x, w, b, g = arrays(spec, dtype, seed=2)
    out_t, dx_t, dw_t, db_t = torch_reference(spec, x, w, b, g)
    kernel = build(spec, dtype)
    tol = tolerance(spec, dtype)
    np.testing.assert_allclose(kernel.forward(x, w, b), out_t, **tol)
    dx, dw, db = kernel.backward(x, w, g)
    np.testing.assert_allclose(dx, dx_t, **tol)
    np.testing.assert_allclose(dw, dw_t, **tol)
    if spec.bias:
        np.testing.assert_allclose(db, db_t, **tol)


# -- gradients without any reference implementation ----------------------------------------------


@pytest.mark.parametrize("name", ["asym_pad_dilation_bias", "groups_1d_stride3"])
def test_gradients_match_central_differences(name: str) -> None:
    """L = ⟨G, O(x, w, b)⟩; each gradient entry against (L(θ+h) − L(θ−h)) / 2h, in float64."""
    spec = NAMED_SPECS[name]
    kernel = build(spec, "float64")
    x, w, b, g = arrays(spec, "float64", seed=3)
    dx, dw, db = kernel.backward(x, w, g)
    rng = np.random.default_rng(4)
    h = 1e-4

    def loss(x_, w_, b_) -> float:
        return float(np.sum(g * kernel.forward(x_, w_, b_)))

    params = {"x": (x, dx), "w": (w, dw)}
    if spec.bias:
        params["b"] = (b, db)
    for which, (value, grad) in params.items():
        for flat in rng.choice(value.size, size=min(12, value.size), replace=False):
            plus, minus = value.copy(), value.copy()
            plus.flat[flat] += h
            minus.flat[flat] -= h
            args_plus = {"x": x, "w": w, "b": b, which: plus}
            args_minus = {"x": x, "w": w, "b": b, which: minus}
            numeric = (loss(**{k + "_": v for k, v in args_plus.items()})
                       - loss(**{k + "_": v for k, v in args_minus.items()})) / (2 * h)
            assert numeric == pytest.approx(grad.flat[flat], rel=1e-7, abs=1e-7), (which, flat)


@pytest.mark.parametrize("name", ["asym_pad_dilation_bias", "depthwise", "rank3"])
def test_adjoint_identity(name: str) -> None:
    """The backward kernels are the transposes of the (linear) forward: ⟨v, J·u⟩ = ⟨Jᵀ·v, u⟩."""
    spec = NAMED_SPECS[name]
    kernel = build(spec, "float64")
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(spec.input), rng.standard_normal(spec.weight)
    u_x, u_w = rng.standard_normal(spec.input), rng.standard_normal(spec.weight)
    v = rng.standard_normal(spec.output)
    # X ↦ O is linear for fixed W, and W ↦ O for fixed X
    assert np.vdot(v, kernel.forward(u_x, w)) == pytest.approx(np.vdot(kernel.grad_input(v, w), u_x), rel=1e-12)
    assert np.vdot(v, kernel.forward(x, u_w)) == pytest.approx(np.vdot(kernel.grad_weight(x, v), u_w), rel=1e-12)
    if spec.bias:
        u_b = rng.standard_normal(spec.bias_shape)
        with_b = kernel.forward(x, w, u_b) - kernel.forward(x, w)
        assert np.vdot(v, with_b) == pytest.approx(np.vdot(kernel.grad_bias(v), u_b), rel=1e-12)


# -- argument checks and memory layout -----------------------------------------------------------

LECTURE = NAMED_SPECS["lecture_3x3_2x2"]
WITH_BIAS = NAMED_SPECS["asym_pad_dilation_bias"]


@pytest.fixture(scope="module")
def lecture() -> ConvKernel:
    return build(LECTURE, "float32")


def test_wrong_type_dtype_and_shape(lecture: ConvKernel) -> None:
    x = np.ones((1, 1, 3, 3), np.float32)
    w = np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(TypeError, match="^x must be a numpy.ndarray, but got list$"):
        lecture.forward(x.tolist(), w)
    with pytest.raises(TypeError, match="^x must be float32, but got float64$"):
        lecture.forward(x.astype(np.float64), w)
    with pytest.raises(TypeError, match="^w must be float32, but got int64$"):
        lecture.forward(x, w.astype(np.int64))
    with pytest.raises(ValueError, match=r"^w must have shape \(1, 1, 2, 2\), but got \(2, 2\)$"):
        lecture.forward(x, w[0, 0])
    with pytest.raises(ValueError, match=r"^grad_out must have shape \(1, 1, 2, 2\), but got \(1, 1, 3, 3\)$"):
        lecture.grad_input(x, w)
    with pytest.raises(ValueError, match=r"^b must be None for a layer built without bias"):
        lecture.forward(x, w, np.ones(1, np.float32))
    with pytest.raises(ValueError, match="^grad_bias needs a layer built with bias=True"):
        lecture.grad_bias(np.ones((1, 1, 2, 2), np.float32))
    with pytest.raises(TypeError, match="^x must be float32, but got >f4$"):
        lecture.forward(x.astype(">f4"), w)  # byte-swapped: refused, never silently read wrong


def test_bias_shape_is_checked() -> None:
    kernel = build(WITH_BIAS, "float64")
    x, w, b, _ = arrays(WITH_BIAS, "float64")
    with pytest.raises(ValueError, match=r"^b must have shape \(4,\), but got \(3,\)$"):
        kernel.forward(x, w, b[:3])


def test_non_contiguous_misaligned_and_readonly_inputs_are_handled() -> None:
    spec = WITH_BIAS
    kernel = build(spec, "float64")
    x, w, b, g = arrays(spec, "float64")
    expected = kernel.forward(x, w, b)
    expected_grads = kernel.backward(x, w, g)

    # non-contiguous: a transposed copy viewed back, and a strided slice of a bigger array
    x_f = np.asfortranarray(x)
    big = np.zeros((spec.weight[0] * 2, *spec.weight[1:]))
    big[::2] = w
    w_strided = big[::2]
    assert not x_f.flags.c_contiguous and not w_strided.flags.c_contiguous
    # misaligned: a float64 array starting one byte into a buffer
    raw = np.zeros(b.nbytes + 1, np.uint8)
    b_mis = raw[1:].view(np.float64)
    b_mis[...] = b
    assert not b_mis.flags.aligned
    np.testing.assert_array_equal(kernel.forward(x_f, w_strided, b_mis), expected)

    g_ro = g.copy()
    g_ro.flags.writeable = False
    for got, want in zip(kernel.backward(x_f, w_strided, g_ro), expected_grads):
        np.testing.assert_array_equal(got, want)
    # the inputs were not modified
    np.testing.assert_array_equal(x_f, x)


class _Tagged(np.ndarray):
    """An ndarray subclass: not the common case the checks look at first, still valid."""


def test_subclasses_and_unusual_strides_take_the_full_checks(lecture: ConvKernel) -> None:
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    w = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    expected = lecture.forward(x, w)
    np.testing.assert_array_equal(lecture.forward(x.view(_Tagged), w.view(_Tagged)), expected)
    # contiguous, but with an arbitrary stride on a length-1 axis (numpy allows it)
    odd = np.lib.stride_tricks.as_strided(x, shape=x.shape, strides=(4, 4, 12, 4))
    assert odd.flags.c_contiguous and odd.strides != x.strides
    np.testing.assert_array_equal(lecture.forward(odd, w), expected)
    with pytest.raises(TypeError, match="^x must be float32, but got float64$"):
        lecture.forward(x.astype(np.float64).view(_Tagged), w)
    with pytest.raises(TypeError, match="^w must be a numpy.ndarray, but got memoryview$"):
        lecture.forward(x, memoryview(w))


def test_outputs_are_fresh(lecture: ConvKernel) -> None:
    x = np.ones((1, 1, 3, 3), np.float32)
    w = np.ones((1, 1, 2, 2), np.float32)
    first, second = lecture.forward(x, w), lecture.forward(x, w)
    assert first is not second and not np.shares_memory(first, second)
    first[...] = 0
    assert (second == 4).all()
    assert first.flags.c_contiguous and first.flags.writeable and first.flags.owndata


def test_threads() -> None:
    spec = NAMED_SPECS["depthwise"]
    kernel = build(spec, "float64")
    x, w, b, g = arrays(spec, "float64")
    kernel.set_num_threads(1)
    serial = kernel.forward(x, w, b), *kernel.backward(x, w, g)
    kernel.set_num_threads(2)
    assert kernel.num_threads == 2
    parallel = kernel.forward(x, w, b), *kernel.backward(x, w, g)
    for a, c in zip(serial, parallel):  # equal up to the order of the sums
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n must be a positive int"):
            kernel.set_num_threads(bad)


def test_default_threads_follow_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from codegen.kernel import default_num_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")
    assert default_num_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_num_threads() >= 1


# -- the API and the pipeline --------------------------------------------------------------------


def test_properties_and_memo() -> None:
    kernel = build(LECTURE, "float64")
    assert build(LECTURE, np.float64) is kernel
    assert build(LECTURE, "float32") is not kernel
    assert kernel.spec is LECTURE or kernel.spec == LECTURE
    assert kernel.dtype == "float64"
    assert (kernel.cache_path / "kernel.c").read_text() == kernel.source
    for fname in kernel.functions.values():
        assert fname in kernel.source
    assert "double" in kernel.source
    assert "1×1×3×3" in repr(kernel)


def test_bad_arguments_to_build() -> None:
    with pytest.raises(TypeError, match="spec must be a ConvSpec, but got dict"):
        build(LECTURE.to_dict())
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', but got 'int32'"):
        build(LECTURE, "int32")


def test_trace_shows_every_stage() -> None:
    stages = pipeline.trace(LECTURE, "float32")
    assert stages.module.ctype == "float"
    assert {k.name for k in stages.module.kernels} == {"forward", "grad_input", "grad_weight"}
    assert set(stages.csource.functions) == {"forward", "grad_input", "grad_weight"}
    assert stages.extension.path == stages.kernel.cache_path
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    w = np.array([[[[1, 2], [3, 4]]]], np.float32)
    np.testing.assert_array_equal(
        stages.kernel.forward(x, w), conv_forward(x, w, None, *hyper(LECTURE))
    )


def test_layer_record_skips_lowering_and_survives_damage(tmp_path, monkeypatch) -> None:
    """The rendered C of a layer is kept on disk; a damaged record is ignored, not trusted."""
    monkeypatch.setenv("SYMCONV_CACHE_DIR", str(tmp_path))
    calls = []
    original = pipeline.lower_stage
    monkeypatch.setattr(pipeline, "lower_stage", lambda *a: calls.append(a) or original(*a))
    first = pipeline.rendered(LECTURE, "float32")
    again = pipeline.rendered(LECTURE, "float32")
    assert again == first and len(calls) == 1
    (record,) = (tmp_path / "layers").iterdir()
    record.write_text(record.read_text().replace("acc", "ACC", 1))  # source no longer matches its hash
    assert pipeline.rendered(LECTURE, "float32") == first and len(calls) == 2
    record.write_text("{")
    assert pipeline.rendered(LECTURE, "float32") == first and len(calls) == 3
