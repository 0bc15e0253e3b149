"""The layer kernels' argument checks, their C (warning-free, readable), thread-count independence
and memoisation."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from symconv.kernels import activation, avgpool2d, batchnorm2d, cross_entropy, linear, maxpool2d, softmax


def small_kernels():
    return [
        activation("relu", (3, 4), "float32"),
        activation("sigmoid", (3, 4), "float64"),
        maxpool2d((2, 3, 7, 7), 3, 2, 1, 2, True, "float32"),
        avgpool2d((2, 3, 7, 7), 3, 2, 1, True, False, "float64"),
        softmax((3, 4), "float32"),
        cross_entropy((3, 4), "float64"),
        batchnorm2d((2, 3, 4, 4), "float32"),
        linear(3, 5, 4, True, "float32"),
        linear(0, 5, 4, False, "float64"),
        linear(64, 256, 256, True, "float32"),  # threaded
    ]


# -- bad arguments -------------------------------------------------------------------------------


def test_wrong_dtype_shape_and_type_are_refused_naming_the_argument():
    k = maxpool2d((1, 2, 4, 4), 2, dtype="float32")
    with pytest.raises(TypeError, match=r"x must be float32, but got float64"):
        k.forward(np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"x must have shape \(1, 2, 4, 4\), but got \(1, 2, 4, 5\)"):
        k.forward(np.zeros((1, 2, 4, 5), np.float32))
    with pytest.raises(TypeError, match=r"x must be a numpy.ndarray, but got list"):
        k.forward([[0.0]])
    y, idx = k.forward(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(TypeError, match=r"indices must be int64, but got int32"):
        k.backward(y, idx.astype(np.int32))
    with pytest.raises(ValueError, match=r"grad_out must have shape"):
        k.backward(np.zeros((1, 2, 3, 3), np.float32), idx)


def test_non_contiguous_inputs_are_copied_and_inputs_never_change():
    k = activation("sigmoid", (3, 4), "float64")
    base = np.random.default_rng(0).standard_normal((4, 3))
    x = base.T  # a transposed view: not C-contiguous
    kept = x.copy()
    np.testing.assert_allclose(k.forward(x), 1 / (1 + np.exp(-kept)), rtol=1e-14)
    np.testing.assert_array_equal(x, kept)


def test_outputs_are_fresh_arrays():
    k = softmax((3, 4), "float64")
    x = np.ones((3, 4))
    a, b = k.forward(x), k.forward(x)
    assert a is not b and not np.shares_memory(a, x) and not np.shares_memory(a, b)


@pytest.mark.parametrize("bad", [-1, 4, 100])
def test_cross_entropy_target_out_of_range_names_target_and_value(bad):
    k = cross_entropy((3, 4), "float64")
    z = np.zeros((3, 4))
    t = np.array([0, bad, 1])
    with pytest.raises(ValueError, match=rf"target must hold class indices in \[0, 4\), but got {bad} at index 1"):
        k.forward(z, t)
    _, probs = k.forward(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=rf"target .* but got {bad}"):
        k.backward(probs, t)


def test_cross_entropy_target_must_be_int64_of_shape_n():
    k = cross_entropy((3, 4), "float64")
    with pytest.raises(TypeError, match="target must be int64, but got int32"):
        k.forward(np.zeros((3, 4)), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"target must have shape \(3,\)"):
        k.forward(np.zeros((3, 4)), np.zeros(4, np.int64))


@pytest.mark.parametrize("bad", [-1, 16, 1 << 40])
def test_maxpool_backward_refuses_indices_outside_the_plane(bad):
    k = maxpool2d((1, 2, 4, 4), 2, dtype="float64")
    y, idx = k.forward(np.random.default_rng(1).standard_normal((1, 2, 4, 4)))
    idx[0, 1, 1, 0] = bad
    with pytest.raises(ValueError, match=rf"indices must be flat positions h\*W \+ w in \[0, 16\).*got {bad} at \(0, 1, 1, 0\)"):
        k.backward(np.ones_like(y), idx)


@pytest.mark.parametrize("args,message", [
    (((1, 1, 5, 5), 3, 1, 2), "padding must be at most half of kernel_size"),
    (((1, 1, 2, 2), 3), "too small"),
    (((1, 1, 5, 5), 0), "kernel_size must be ints >= 1"),
    (((1, 1, 5, 5), 2, 0), "stride must be ints >= 1"),
    (((1, 1, 5, 5), 2, 1, -1), "padding must be ints >= 0"),
    (((1, 1, 5), 2), "input_shape must be a tuple of 4 positive ints"),
    (((1, 1, 5, 0), 2), "input_shape must be a tuple of 4 positive ints"),
    (((1, 1, 4, 4), 2, 1, 1, 5), "reads only padding"),
])
def test_bad_pooling_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        maxpool2d(*args)


def test_bad_factory_arguments():
    with pytest.raises(ValueError, match=r"kind must be one of \['relu', 'sigmoid'\], but got 'tanh'"):
        activation("tanh", (3,))
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', but got 'float16'"):
        softmax((2, 3), "float16")
    with pytest.raises(ValueError, match="shape must be a tuple of 2 positive ints"):
        cross_entropy((2, 3, 4))
    with pytest.raises(ValueError, match="ceil_mode must be a bool, but got 1"):
        maxpool2d((1, 1, 4, 4), 2, 2, 0, 1, 1)
    k = batchnorm2d((2, 3, 4, 4), "float64")
    with pytest.raises(ValueError, match="eps must be a non-negative real number"):
        k.forward_train(np.zeros((2, 3, 4, 4)), np.ones(3), np.zeros(3), -1.0)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        k.forward_train(np.zeros((2, 3, 4, 4)), np.ones(4), np.zeros(3), 1e-5)


def test_linear_refuses_bad_arguments_naming_them():
    k = linear(2, 3, 4, True, "float32")
    x, w, b = np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32), np.zeros(4, np.float32)
    with pytest.raises(TypeError, match=r"^x must be float32, but got float64"):
        k.forward(np.zeros((2, 3)), w, b)
    with pytest.raises(ValueError, match=r"^weight must have shape \(4, 3\), but got \(3, 4\)"):
        k.forward(x, w.T, b)
    with pytest.raises(ValueError, match=r"^bias must have shape \(4,\), but got \(3,\)"):
        k.forward(x, w, b[:3])
    with pytest.raises(ValueError, match="^bias must be given: this kernel was built with bias=True"):
        k.forward(x, w)
    with pytest.raises(ValueError, match=r"^grad_out must have shape \(2, 4\), but got \(2, 3\)"):
        k.grad_input(np.zeros((2, 3), np.float32), w)
    with pytest.raises(TypeError, match="^grad_out must be a numpy.ndarray, but got list"):
        k.grad_weight(x, [[0.0] * 4] * 2)
    plain = linear(2, 3, 4, False, "float32")
    with pytest.raises(ValueError, match="^bias must be None: this kernel was built with bias=False"):
        plain.forward(x, w, b)
    with pytest.raises(ValueError, match="^grad_bias needs a kernel built with bias=True"):
        plain.grad_bias(np.zeros((2, 4), np.float32))
    assert plain.backward(x, w, np.zeros((2, 4), np.float32))[2] is None


@pytest.mark.parametrize("args,error,message", [
    ((-1, 3, 4), ValueError, "batch must be a non-negative int, but got -1"),
    ((2, 0, 4), ValueError, "in_features must be a positive int, but got 0"),
    ((2, 3, 4.0), ValueError, "out_features must be a positive int, but got 4.0"),
    ((True, 3, 4), ValueError, "batch must be a non-negative int, but got True"),
    ((2, 3, 4, 1), ValueError, "bias must be a bool, but got 1"),
    ((2, 3, 4, True, "float16"), ValueError, "dtype must be 'float32' or 'float64', but got 'float16'"),
    ((2**40, 2**30, 4), ValueError, "at most 2\\^62"),
])
def test_bad_linear_factory_arguments(args, error, message):
    with pytest.raises(error, match=message):
        linear(*args)


def _fortran(a):
    return np.asfortranarray(a)


def _negative(a):
    return np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1] if a.ndim == 2 else np.ascontiguousarray(a[::-1])[::-1]


def _misaligned(a):
    raw = np.empty(a.nbytes + 1, np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


def _read_only(a):
    c = a.copy()
    c.flags.writeable = False
    return c


ODD = {"fortran": _fortran, "negative_strides": _negative, "misaligned": _misaligned, "read_only": _read_only}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ODD)
def test_linear_on_odd_memory_is_bitwise_a_contiguous_copy(layout, dtype):
    k = linear(6, 19, 21, True, dtype)
    rng = np.random.default_rng(31)
    plain = {name: rng.standard_normal(shape).astype(dtype)
             for name, shape in (("x", (6, 19)), ("w", (21, 19)), ("b", (21,)), ("g", (6, 21)))}
    odd = {name: ODD[layout](a) for name, a in plain.items()}
    if layout == "misaligned":
        assert not odd["x"].flags.aligned
    elif layout != "read_only":
        assert not odd["x"].flags.c_contiguous
    before = {name: a.copy() for name, a in odd.items()}

    def run(a):
        return (k.forward(a["x"], a["w"], a["b"]), *k.backward(a["x"], a["w"], a["g"]),
                k.grad_input(a["g"], a["w"]), k.grad_weight(a["x"], a["g"]), k.grad_bias(a["g"]))

    for got, want in zip(run(odd), run(plain)):
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous and got.flags.writeable
    for name in odd:
        np.testing.assert_array_equal(odd[name], before[name])


def test_linear_overlapping_inputs():
    """x and the weight (or grad_out) may be views of one buffer: only outputs are written."""
    k = linear(4, 4, 4, True, "float64")
    a = np.random.default_rng(37).standard_normal((4, 4))
    y, (dx, dw, db) = k.forward(a, a, a[0]), k.backward(a, a, a)
    c = a.copy()
    np.testing.assert_array_equal(y, k.forward(c, c.copy(), c[0].copy()))
    for got, want in zip((dx, dw, db), k.backward(c, c.copy(), c.copy())):
        np.testing.assert_array_equal(got, want)


# -- the C -----------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("openmp", [True, False])
def test_generated_c_compiles_without_warnings(tmp_path, openmp):
    for i, k in enumerate(small_kernels()):
        path = tmp_path / f"k{i}.c"
        path.write_text(k.source)
        command = ["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", "-c", str(path),
                   "-o", str(tmp_path / f"k{i}.o"), *(["-fopenmp"] if openmp else [])]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, f"{k!r}\n{done.stderr}"


def test_source_says_what_it_computes_and_repr_names_the_layer():
    for k in small_kernels():
        head = k.source.split("*/", 1)[0]
        assert k.name in head and "What this file computes" in head
        assert k.dtype in repr(k)
    assert "expf(" in activation("sigmoid", (3, 4), "float32").source
    assert "expf(" not in activation("sigmoid", (3, 4), "float64").source
    assert "exp(" in activation("sigmoid", (3, 4), "float64").source
    k = maxpool2d((2, 3, 7, 7), 3, 2, 1, 2, True, "float32")
    # floor((7 + 2 - 2*(3-1) - 1 + (2-1)) / 2) + 1 = 3, and the last window starts at 2*2 - 1 < 7
    assert k.output_shape == (2, 3, 3, 3) and "maxpool2d" in repr(k)


def test_factories_are_memoised():
    assert maxpool2d((1, 2, 4, 4), 2, dtype="float32") is maxpool2d((1, 2, 4, 4), 2, dtype="float32")
    assert softmax((3, 4), "float32") is not softmax((3, 4), "float64")
    assert linear(2, 3, 4, True, "float32") is linear(2, 3, 4, True, "float32")
    assert linear(2, 3, 4, True, "float32") is not linear(2, 3, 4, False, "float32")


# -- threads ---------------------------------------------------------------------------------------


def test_results_do_not_depend_on_the_thread_count():
    """Layers large enough to use threads give bitwise the same results on one and two threads."""
    rng = np.random.default_rng(23)
    shape = (16, 8, 32, 32)
    x = rng.standard_normal(shape).astype(np.float32)
    pool, bn = maxpool2d(shape, 2, dtype="float32"), batchnorm2d(shape, "float32")
    assert "#pragma omp parallel for" in pool.source and "#pragma omp parallel for" in bn.source
    gamma, beta = np.ones(8, np.float32), np.zeros(8, np.float32)
    results = []
    for threads in (1, 2):
        pool.set_num_threads(threads)
        bn.set_num_threads(threads)
        y, idx = pool.forward(x)
        dx = pool.backward(np.ones_like(y), idx)
        out, mean, var = bn.forward_train(x, gamma, beta, 1e-5)
        grads = bn.backward(x, x, gamma, mean, var, 1e-5)
        results.append((y, idx, dx, out, mean, var, *grads))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_linear_results_do_not_depend_on_the_thread_count():
    """A linear layer large enough for threads: bitwise the same on one, two and three threads;
    the LeNet-sized one stays on the calling thread."""
    assert "#pragma omp parallel for" not in linear(32, 128, 120, True, "float32").source
    k = linear(64, 256, 256, True, "float32")
    assert "#pragma omp parallel for" in k.source
    rng = np.random.default_rng(41)
    x, w, b, g = (rng.standard_normal(s).astype(np.float32) for s in ((64, 256), (256, 256), (256,), (64, 256)))
    results = []
    for threads in (1, 2, 3):
        k.set_num_threads(threads)
        results.append((k.forward(x, w, b), *k.backward(x, w, g)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)
