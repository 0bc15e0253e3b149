"""Hostile arrays handed to compiled kernels: wrong types, odd memory, empty batches, NaN and Inf.

Every case ends in the right answer or in a Python exception that names the argument. Cases that
hand unusual memory to C (non-contiguous, misaligned, overlapping, memory-mapped, empty, lying
about their shape, several threads at once) run in a separate process (the ``isolated`` fixture
of tests/conftest.py), so a crash fails the case instead of ending the test run.

The answer for odd memory is checked twice: bitwise equal to the same call on plain C-contiguous
copies (the layout must not change a single bit), and against the oracle of tests/test_fuzz.py.
"""

from __future__ import annotations

import functools
import itertools
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from codegen.kernel import ConvKernel
from symconv import ConvSpec
from symconv.api import build
from tests.reference import conv_forward, conv_grad_weight
from tests.test_fuzz import FIXED, check_all_kernels, check_kernel

DTYPES = ("float32", "float64")
#: Padding, stride, dilation and bias: the layer for the memory-layout cases.
SPEC = FIXED["2d_pad_stride_dilation_bias"]
#: No padding (where the plain reference sums the same terms as the kernels), groups, dilation.
NO_PAD = ConvSpec(input=(2, 4, 7, 7), weight=(4, 2, 2, 3), stride=(2, 1), dilation=(1, 2), groups=2, bias=True)

PASSES = ("forward", "grad_input", "grad_weight", "grad_bias", "backward")
#: Which arrays each pass reads.
READS = {
    "forward": ("x", "w", "b"),
    "grad_input": ("grad_out", "w"),
    "grad_weight": ("x", "grad_out"),
    "grad_bias": ("grad_out",),
    "backward": ("x", "w", "grad_out"),
}


def random_arrays(spec: ConvSpec, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    found = {
        "x": rng.standard_normal(spec.input).astype(dtype),
        "w": rng.standard_normal(spec.weight).astype(dtype),
        "grad_out": rng.standard_normal(spec.output).astype(dtype),
    }
    if spec.bias:
        found["b"] = rng.standard_normal(spec.bias_shape).astype(dtype)
    return found


def call(kernel: ConvKernel, kernel_pass: str, a: dict[str, np.ndarray]) -> tuple[np.ndarray | None, ...]:
    """Run one pass; always a tuple of outputs."""
    if kernel_pass == "forward":
        return (kernel.forward(a["x"], a["w"], a.get("b")),)
    if kernel_pass == "grad_input":
        return (kernel.grad_input(a["grad_out"], a["w"]),)
    if kernel_pass == "grad_weight":
        return (kernel.grad_weight(a["x"], a["grad_out"]),)
    if kernel_pass == "grad_bias":
        return (kernel.grad_bias(a["grad_out"]),)
    return kernel.backward(a["x"], a["w"], a["grad_out"])


def check_with_oracle(spec: ConvSpec, dtype: str, kernel_pass: str, a, outputs) -> None:
    """The outputs of one pass (run on ``a``) against the oracle of tests/test_fuzz.py."""
    names = {"forward": ["forward"], "grad_input": ["grad_input"], "grad_weight": ["grad_weight"],
             "grad_bias": ["grad_bias"], "backward": ["grad_input", "grad_weight", "grad_bias"]}[kernel_pass]
    operands = {
        "forward": (a["x"], a["w"], a.get("b")),
        "grad_input": (a["grad_out"], a["w"], None),
        "grad_weight": (a["x"], a["grad_out"], None),
        "grad_bias": (a["grad_out"], np.ones(1), None),
    }
    for name, got in zip(names, outputs):
        if got is None:
            assert name == "grad_bias" and not spec.bias
            continue
        u, v, b = operands[name]
        check_kernel(name, got, spec, dtype, u, v, b)


# -- odd memory (isolated) ----------------------------------------------------------------------


def _fortran(a: np.ndarray, tmp: Path) -> np.ndarray:
    return np.asfortranarray(a)


def _strided(a: np.ndarray, tmp: Path) -> np.ndarray:
    """Every other element of a bigger array along the last axis."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _reversed(a: np.ndarray, tmp: Path) -> np.ndarray:
    """Negative strides: a reversed view of reversed data."""
    return np.ascontiguousarray(a[..., ::-1])[..., ::-1]


def _broadcast(a: np.ndarray, tmp: Path) -> np.ndarray:
    """Zero strides along the first axis (read-only, many indices alias one element)."""
    return np.broadcast_to(a[:1], a.shape)


def _misaligned(a: np.ndarray, tmp: Path) -> np.ndarray:
    """The data starts one byte into a uint8 buffer."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert a.size == 0 or not view.flags.aligned
    return view


def _offset_view(a: np.ndarray, tmp: Path) -> np.ndarray:
    """C-contiguous and aligned, but starting one element into a bigger buffer."""
    big = np.zeros(a.size + 1, a.dtype)
    view = big[1:].reshape(a.shape)
    view[...] = a
    return view


def _readonly(a: np.ndarray, tmp: Path) -> np.ndarray:
    c = a.copy()
    c.flags.writeable = False
    return c


def _memmap(a: np.ndarray, tmp: Path) -> np.ndarray:
    """A read-only mapping of a file."""
    path = tmp / f"{uuid.uuid4().hex}.bin"
    writer = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    writer[...] = a
    writer.flush()
    del writer
    return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)


LAYOUTS: dict[str, Callable[[np.ndarray, Path], np.ndarray]] = {
    "fortran": _fortran,
    "strided": _strided,
    "negative_strides": _reversed,
    "zero_strides": _broadcast,
    "misaligned_1_byte": _misaligned,
    "offset_view": _offset_view,
    "read_only": _readonly,
    "memmap_read_only": _memmap,
}


def layout_case(layout: str, kernel_pass: str, dtype: str) -> None:
    kernel = build(SPEC, dtype)
    plain = random_arrays(SPEC, dtype, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        hostile = {k: LAYOUTS[layout](v, Path(tmp)) for k, v in plain.items()}
        before = {k: np.array(v, copy=True) for k, v in hostile.items()}
        equivalent = {k: np.ascontiguousarray(v) for k, v in hostile.items()}
        got = call(kernel, kernel_pass, hostile)
        want = call(kernel, kernel_pass, equivalent)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)  # bitwise: the layout changes nothing
            assert g is None or (g.flags.c_contiguous and g.flags.writeable and g.flags.owndata)
        for k in READS[kernel_pass]:
            np.testing.assert_array_equal(hostile[k], before[k])  # inputs untouched
        check_with_oracle(SPEC, dtype, kernel_pass, equivalent, want)


def overlap_case(which: str, dtype: str) -> None:
    """Inputs that are views of one buffer: read-only aliasing is allowed and must not matter."""
    spec = SPEC
    rng = np.random.default_rng(2)
    sizes = {"x": int(np.prod(spec.input)), "w": int(np.prod(spec.weight)),
             "grad_out": int(np.prod(spec.output)), "b": spec.out_channels}
    first, second = which.split("+")
    buffer = rng.standard_normal(sizes[first] + sizes[second]).astype(dtype)
    start = sizes[first] // 3  # the second array starts inside the first
    a = random_arrays(spec, dtype, seed=3)
    shapes = {"x": spec.input, "w": spec.weight, "grad_out": spec.output, "b": spec.bias_shape}
    a[first] = buffer[: sizes[first]].reshape(shapes[first])
    a[second] = buffer[start : start + sizes[second]].reshape(shapes[second])
    assert np.shares_memory(a[first], a[second])
    copies = {k: v.copy() for k, v in a.items()}
    kernel = build(spec, dtype)
    for kernel_pass in PASSES:
        for g, w in zip(call(kernel, kernel_pass, a), call(kernel, kernel_pass, copies)):
            np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(buffer[: sizes[first]].reshape(shapes[first]), copies[first])


def same_array_twice_case(dtype: str) -> None:
    """One array passed as both x and w (same object), and as both x and grad_out."""
    spec = ConvSpec(input=(2, 2, 3, 3), weight=(2, 2, 3, 3), padding=1)  # x, w and O share a shape
    kernel = build(spec, dtype)
    a = np.random.default_rng(4).standard_normal(spec.input).astype(dtype)
    np.testing.assert_array_equal(kernel.forward(a, a), kernel.forward(a, a.copy()))
    np.testing.assert_array_equal(kernel.grad_weight(a, a), kernel.grad_weight(a, a.copy()))
    np.testing.assert_array_equal(kernel.grad_input(a, a), kernel.grad_input(a, a.copy()))
    check_kernel("forward", kernel.forward(a, a), spec, dtype, a, a)


#: Empty batches (N = 0): empty outputs, and weight/bias gradients that are exactly +0.
ZERO_BATCH = {
    "2d_bias": ConvSpec(input=(0, 2, 4, 4), weight=(3, 2, 2, 2), bias=True),
    "1d_groups_padding": ConvSpec(input=(0, 4, 7), weight=(4, 2, 3), padding=1, groups=2, bias=True),
    "3d_stride": ConvSpec(input=(0, 1, 3, 4, 5), weight=(2, 1, 2, 2, 2), stride=2),
}


def zero_batch_case(name: str, dtype: str) -> None:
    spec = ZERO_BATCH[name]
    kernel = build(spec, dtype)
    a = random_arrays(spec, dtype)
    check_all_kernels(kernel, spec, dtype, a["x"], a["w"], a.get("b"), a["grad_out"])
    dx, dw, db = kernel.backward(a["x"], a["w"], a["grad_out"])
    assert dx.shape == spec.input and kernel.forward(a["x"], a["w"]).shape == spec.output
    assert (dw == 0).all() and not np.signbit(dw).any()
    if spec.bias:
        assert (db == 0).all() and not np.signbit(db).any()
    # the layouts that keep an empty array empty
    for layout in ("fortran", "misaligned_1_byte", "read_only"):
        with tempfile.TemporaryDirectory() as tmp:
            odd = {k: LAYOUTS[layout](v, Path(tmp)) for k, v in a.items()}
        for g, w in zip(call(kernel, "backward", odd), (dx, dw, db)):
            np.testing.assert_array_equal(g, w)


class ShapeLiar(np.ndarray):
    """An ndarray subclass whose ``shape`` attribute claims more elements than its buffer holds."""

    claimed: tuple[int, ...] = ()

    @property  # type: ignore[override]
    def shape(self) -> tuple[int, ...]:
        return self.claimed


class ClassLiar(ShapeLiar):
    """A shape liar that also claims to be a plain ndarray (``__class__``), to reach the fast path."""

    @property  # type: ignore[override]
    def __class__(self) -> type:
        return np.ndarray


class DtypeLiar(np.ndarray):
    """A float16 buffer of the right shape that says it is float32/float64 (half the bytes C reads)."""

    claimed_dtype = np.dtype("float32")

    @property  # type: ignore[override]
    def dtype(self) -> np.dtype:
        return self.claimed_dtype


class FlagsLiar(np.ndarray):
    """A strided view that says it is C-contiguous."""

    @property  # type: ignore[override]
    def flags(self):  # noqa: ANN201
        return np.ones(1).flags


class NotAnArray:
    """Not an ndarray at all, but says it is one and offers a too-small array to numpy."""

    def __init__(self, dtype: str) -> None:
        self.dtype, self.shape, self._small = np.dtype(dtype), SPEC.input, np.zeros(4, dtype)

    @property
    def __class__(self) -> type:
        return np.ndarray

    def __array__(self, dtype=None, copy=None) -> np.ndarray:  # noqa: ANN001
        return self._small


def lying_case(liar: str, dtype: str) -> None:
    """Arrays whose Python attributes lie about their buffer: refuse them (naming x) or give the
    right answer, and never let C read past the buffer."""
    kernel = build(SPEC, dtype)
    w = np.zeros(SPEC.weight, dtype)
    if liar == "flags":  # the truth is a strided view: copied, the answer is right
        base = random_arrays(SPEC, dtype)["x"]
        wide = np.zeros(SPEC.input[:-1] + (2 * SPEC.input[-1],), dtype)
        wide[..., ::2] = base
        view = wide[..., ::2].view(FlagsLiar)
        rw = random_arrays(SPEC, dtype, seed=1)["w"]
        np.testing.assert_array_equal(kernel.forward(view, rw), kernel.forward(base, rw))
        return
    if liar in ("shape", "class"):
        small = np.zeros(4, dtype).view(ShapeLiar if liar == "shape" else ClassLiar)
        small.claimed = SPEC.input
        bad: object = small
    elif liar == "dtype":
        bad = np.zeros(SPEC.input, np.float16).view(DtypeLiar)
        bad.claimed_dtype = np.dtype(dtype)
    else:
        bad = NotAnArray(dtype)
    with pytest.raises((TypeError, ValueError), match="^x "):
        kernel.forward(bad, w)


LIARS = ("shape", "class", "dtype", "flags", "not_an_array")


def threads_case(dtype: str) -> None:
    """Four Python threads calling one kernel at once (the C runs without the GIL)."""
    kernel = build(SPEC, dtype)
    a = random_arrays(SPEC, dtype, seed=5)
    want = call(kernel, "forward", a) + call(kernel, "backward", a)
    errors: list[BaseException] = []
    # A call that finds the layer's packed buffers in use runs the loop nest instead, whose sums
    # are rounded in another order: equal to rounding, not bit for bit.
    tol = 1e-12 if dtype == "float64" else 1e-5

    def worker(threads: int) -> None:
        try:
            for _ in range(25):
                got = call(kernel, "forward", a) + call(kernel, "backward", a)
                for g, w in zip(got, want):
                    np.testing.assert_allclose(g, w, rtol=tol, atol=tol * float(np.abs(w).max()))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in (1, 2, 1, 2)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors[0]


ISOLATED_CASES: dict[str, Callable[[], None]] = {
    **{f"layout-{layout}-{p}-{dtype}": functools.partial(layout_case, layout, p, dtype)
       for layout in LAYOUTS for p in PASSES for dtype in DTYPES},
    **{f"overlap-{pair}-{dtype}": functools.partial(overlap_case, pair, dtype)
       for pair in ("x+w", "x+grad_out", "grad_out+w", "grad_out+b") for dtype in DTYPES},
    **{f"overlap-same_array-{dtype}": functools.partial(same_array_twice_case, dtype) for dtype in DTYPES},
    **{f"zero_batch-{name}-{dtype}": functools.partial(zero_batch_case, name, dtype)
       for name in ZERO_BATCH for dtype in DTYPES},
    **{f"lying-{liar}-{dtype}": functools.partial(lying_case, liar, dtype) for liar in LIARS for dtype in DTYPES},
    **{f"threads-{dtype}": functools.partial(threads_case, dtype) for dtype in DTYPES},
}

@pytest.fixture(scope="module")
def outcomes(isolated):
    return isolated.run(__name__, ISOLATED_CASES)


def _cases(prefix: str) -> list[str]:
    return [name for name in ISOLATED_CASES if name.startswith(prefix)]


@pytest.mark.parametrize("name", _cases("layout-"))
def test_odd_memory_layouts(name: str, outcomes) -> None:
    outcomes[name].check()


@pytest.mark.parametrize("name", _cases("overlap-"))
def test_overlapping_inputs(name: str, outcomes) -> None:
    outcomes[name].check()


@pytest.mark.parametrize("name", _cases("zero_batch-"))
def test_zero_batch(name: str, outcomes) -> None:
    outcomes[name].check()


@pytest.mark.parametrize("name", _cases("lying-"))
def test_array_lying_about_its_buffer(name: str, outcomes) -> None:
    outcomes[name].check()


@pytest.mark.parametrize("name", _cases("threads-"))
def test_concurrent_calls(name: str, outcomes) -> None:
    outcomes[name].check()


# -- wrong arguments (refused before any C runs) -------------------------------------------------


@pytest.fixture(scope="module")
def kernel32() -> ConvKernel:
    return build(SPEC, "float32")


def _args(kernel_pass: str, arg: str, value: object) -> dict[str, object]:
    a: dict[str, object] = dict(random_arrays(SPEC, "float32"))
    a[arg] = value
    return a


ARG_PASSES = [(p, arg) for p in PASSES for arg in READS[p]]
WRONG_DTYPES = ["float64", "float16", "int32", "int64", "bool", "complex64", "object", ">f4"]


@pytest.mark.parametrize("dtype", WRONG_DTYPES)
@pytest.mark.parametrize("kernel_pass, arg", ARG_PASSES)
def test_wrong_dtype_is_refused(kernel32: ConvKernel, kernel_pass: str, arg: str, dtype: str) -> None:
    right = random_arrays(SPEC, "float32")[arg]
    value = right.astype(dtype)
    with pytest.raises(TypeError, match=rf"^{arg} must be float32, but got {np.dtype(dtype)}$"):
        call(kernel32, kernel_pass, _args(kernel_pass, arg, value))


def _shape_changes(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    changes = {"one_axis_fewer": shape[:-1], "one_axis_more": shape + (1,)}
    for axis in range(len(shape)):
        changes[f"axis{axis}+1"] = shape[:axis] + (shape[axis] + 1,) + shape[axis + 1 :]
    changes["axes_swapped"] = shape[::-1]
    return changes


SHAPES = {"x": SPEC.input, "w": SPEC.weight, "grad_out": SPEC.output, "b": SPEC.bias_shape}
SHAPE_CASES = [
    (p, arg, change) for p, arg in ARG_PASSES for change, shape in _shape_changes(SHAPES[arg]).items()
    if shape != SHAPES[arg]
]


@pytest.mark.parametrize("kernel_pass, arg, change", SHAPE_CASES)
def test_wrong_shape_or_ndim_is_refused(kernel32: ConvKernel, kernel_pass: str, arg: str, change: str) -> None:
    shape = _shape_changes(SHAPES[arg])[change]
    value = np.zeros(shape, np.float32)
    expected = str(SHAPES[arg]).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=rf"^{arg} must have shape {expected}, but got"):
        call(kernel32, kernel_pass, _args(kernel_pass, arg, value))


NOT_ARRAYS = {
    "list": lambda a: a.tolist(),
    "tuple": lambda a: tuple(a.tolist()),
    "float": lambda a: 1.0,
    "memoryview": lambda a: memoryview(a),
    "bytes": lambda a: a.tobytes(),
    "None": lambda a: None,
}


#: b=None is a correct call (no bias added): not a case here.
NOT_ARRAY_CASES = [(p, arg, kind) for p, arg in ARG_PASSES for kind in NOT_ARRAYS if (arg, kind) != ("b", "None")]


@pytest.mark.parametrize("kernel_pass, arg, kind", NOT_ARRAY_CASES)
def test_not_an_array_is_refused(kernel32: ConvKernel, kernel_pass: str, arg: str, kind: str) -> None:
    value = NOT_ARRAYS[kind](random_arrays(SPEC, "float32")[arg])
    with pytest.raises(TypeError, match=rf"^{arg} must be a numpy.ndarray, but got {type(value).__name__}$"):
        call(kernel32, kernel_pass, _args(kernel_pass, arg, value))


# -- NaN and Inf ----------------------------------------------------------------------------------

SPECIAL = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}


def _planted(spec: ConvSpec, dtype: str, arg: str, value: float) -> dict[str, np.ndarray]:
    """Random arrays with ``value`` written at the first, middle and last entry of ``arg``."""
    a = random_arrays(spec, dtype, seed=6)
    flat = a[arg].reshape(-1)
    for i in (0, flat.size // 2, flat.size - 1):
        flat[i] = value
    return a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("arg", ["x", "w", "b", "grad_out"])
@pytest.mark.parametrize("special", SPECIAL)
@pytest.mark.parametrize("layer", ["no_padding", "padding"])
def test_nan_and_inf_propagate(layer: str, special: str, arg: str, dtype: str) -> None:
    """NaN/±Inf where IEEE puts them (oracle), and, without padding, where the reference has them."""
    spec = NO_PAD if layer == "no_padding" else SPEC
    a = _planted(spec, dtype, arg, SPECIAL[special])
    check_all_kernels(build(spec, dtype), spec, dtype, a["x"], a["w"], a.get("b"), a["grad_out"])


# -- padding: no term, never 0·Inf ------------------------------------------------------------------
#
# symconv's documented semantics: a padded position is not a variable of the layer, so it
# contributes no term (the derivation's equations, and the kernels, sum over in-range input
# positions only). An Inf weight (or upstream gradient) next to the border therefore gives ±Inf
# where PyTorch and tests/reference.py, which multiply an explicit zero padding, give 0·Inf = NaN.
# The references below are written from the formula
#     O[n,k,o] = Σ_{c,j : 0 <= o·s + j·d − p_lo < size} X[n, g·Cg + c, o·s + j·d − p_lo] · W[k,c,j]
# (and dW[k,c,j] the same sum over n, o), with Python loops over every index and a range test.


def _positions(spec: ConvSpec, o: tuple[int, ...], j: tuple[int, ...]) -> tuple[int, ...] | None:
    """The input position output ``o`` reads through tap ``j``, or None where it is padding."""
    i = tuple(oa * s + ja * d - lo for oa, ja, s, d, lo in zip(o, j, spec.stride, spec.dilation, spec.pad_lo))
    return i if all(0 <= ia < size for ia, size in zip(i, spec.spatial)) else None


def in_range_forward(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    out = np.zeros(spec.output, np.float64)
    cg, kg = spec.in_per_group, spec.out_per_group
    for n, k in itertools.product(range(spec.batch), range(spec.out_channels)):
        for o in itertools.product(*map(range, spec.out_spatial)):
            total = 0.0
            for c, j in itertools.product(range(cg), itertools.product(*map(range, spec.kernel))):
                i = _positions(spec, o, j)
                if i is not None:
                    total += float(x[(n, (k // kg) * cg + c, *i)]) * float(w[(k, c, *j)])
            out[(n, k, *o)] = total
    return out


def in_range_grad_weight(spec: ConvSpec, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    out = np.zeros(spec.weight, np.float64)
    cg, kg = spec.in_per_group, spec.out_per_group
    for k, c in itertools.product(range(spec.out_channels), range(cg)):
        for j in itertools.product(*map(range, spec.kernel)):
            total = 0.0
            for n, o in itertools.product(range(spec.batch), itertools.product(*map(range, spec.out_spatial))):
                i = _positions(spec, o, j)
                if i is not None:
                    total += float(g[(n, k, *o)]) * float(x[(n, (k // kg) * cg + c, *i)])
            out[(k, c, *j)] = total
    return out


#: Padded layers: the lecture layer padded by one, and one with stride, dilation, groups, 1-D and 3-D.
PADDED = {
    "lecture_pad1": ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2), padding=1),
    "stride_dilation_groups": ConvSpec(input=(2, 4, 6, 5), weight=(4, 2, 3, 2), stride=(2, 1), dilation=(1, 2),
                                       padding=((2, 1), (1, 2)), groups=2),
    "1d": ConvSpec(input=(1, 2, 5), weight=(3, 2, 3), padding=2),
    "3d": ConvSpec(input=(1, 1, 3, 3, 2), weight=(2, 1, 2, 2, 2), padding=1),
}


def _small_integers(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    """Values in -3..3 without 0: every finite sum here is exact in both dtypes, in any order."""
    values = np.random.default_rng(seed).integers(1, 4, size=shape) * np.where(
        np.random.default_rng(seed + 1).random(shape) < 0.5, -1, 1)
    return values.astype(dtype)


def _plant_border_infs(a: np.ndarray) -> None:
    """+Inf at the first entry and -Inf at the last: taps that reach the padding of some output."""
    flat = a.reshape(-1)
    flat[0], flat[-1] = np.inf, -np.inf


@pytest.mark.parametrize("layer", PADDED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_inf_weight_next_to_padding_matches_reference(layer: str, dtype: str) -> None:
    spec = PADDED[layer]
    x, w = _small_integers(spec.input, dtype, 1), _small_integers(spec.weight, dtype, 2)
    _plant_border_infs(w)
    with np.errstate(invalid="ignore"):
        want = in_range_forward(spec, x, w)
        padded_reference = conv_forward(x, w, None, spec.stride, spec.padding, spec.dilation, spec.groups)
    got = build(spec, dtype).forward(x, w)
    np.testing.assert_array_equal(got, want.astype(dtype))
    # the point of the test: the layer really has positions where multiplying the padding differs
    differs = np.isnan(padded_reference) & ~np.isnan(got)
    assert differs.any()


@pytest.mark.parametrize("layer", PADDED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_weight_inf_gradient_next_to_padding_matches_reference(layer: str, dtype: str) -> None:
    spec = PADDED[layer]
    x, g = _small_integers(spec.input, dtype, 3), _small_integers(spec.output, dtype, 4)
    _plant_border_infs(g)
    with np.errstate(invalid="ignore"):
        want = in_range_grad_weight(spec, x, g)
        padded_reference = conv_grad_weight(x, g, spec.weight, spec.stride, spec.padding, spec.dilation, spec.groups)
    got = build(spec, dtype).grad_weight(x, g)
    np.testing.assert_array_equal(got, want.astype(dtype))
    differs = np.isnan(padded_reference) & ~np.isnan(got)
    assert differs.any()


def test_the_in_range_references_agree_with_the_padded_one_on_finite_data() -> None:
    """With no Inf or NaN, skipping padding and multiplying it by zero are the same sums."""
    for spec in PADDED.values():
        x, w, g = (_small_integers(shape, "float64", seed) for seed, shape in
                   enumerate((spec.input, spec.weight, spec.output)))
        hyper = (spec.stride, spec.padding, spec.dilation, spec.groups)
        np.testing.assert_array_equal(in_range_forward(spec, x, w), conv_forward(x, w, None, *hyper))
        np.testing.assert_array_equal(in_range_grad_weight(spec, x, g), conv_grad_weight(x, g, spec.weight, *hyper))
