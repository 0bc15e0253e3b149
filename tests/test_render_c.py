"""The rendered C, compiled with gcc and called through ctypes, against the numpy oracle.

This path is independent of the cffi build: each test compiles the rendered translation unit
into a shared library (with ``-Wall -Wextra -Werror``), calls every kernel on numpy arrays and
compares with tests/reference.py (and once with PyTorch).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen.build import cpu_features
from codegen.render import CSource, render_module
from symconv import ConvSpec
from symconv.lower import lower
from tests import reference as ref
from tests.strategies import small_specs

CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")

WARNINGS = ("-std=gnu11", "-Wall", "-Wextra", "-Werror")
NP_TYPES = {"float32": np.float32, "float64": np.float64}


# -- helpers shared with test_export ----------------------------------------------------------


def random_arrays(spec: ConvSpec, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of every kernel: x, w, (b,) grad_out."""
    rng = np.random.default_rng(seed)
    kind = NP_TYPES[dtype]
    arrays = {
        "x": rng.standard_normal(spec.input).astype(kind),
        "w": rng.standard_normal(spec.weight).astype(kind),
        "grad_out": rng.standard_normal(spec.output).astype(kind),
    }
    if spec.bias:
        arrays["b"] = rng.standard_normal(spec.bias_shape).astype(kind)
    return arrays


def reference_outputs(spec: ConvSpec, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What every kernel must produce, computed by the oracle in float64."""
    x, w, g = (arrays[k].astype(np.float64) for k in ("x", "w", "grad_out"))
    b = arrays["b"].astype(np.float64) if "b" in arrays else None
    hyper = (spec.stride, spec.padding, spec.dilation, spec.groups)
    expected = {
        "out": ref.conv_forward(x, w, b, *hyper),
        "grad_x": ref.conv_grad_input(g, w, spec.input, *hyper),
        "grad_w": ref.conv_grad_weight(x, g, spec.weight, *hyper),
    }
    if spec.bias:
        expected["grad_b"] = ref.conv_grad_bias(g)
    return expected


def assert_close(got: np.ndarray, expected: np.ndarray, dtype: str, what: str) -> None:
    """float64: agreement to rounding; float32: 1e-5 relative to the array's magnitude."""
    assert got.shape == expected.shape, what
    assert np.all(np.isfinite(got)), f"{what}: entries not written (NaN) or not finite"
    tol = 1e-12 if dtype == "float64" else 1e-5
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale, err_msg=what)


# -- building and calling ---------------------------------------------------------------------


#: Tests that build C for AVX2 (-mavx2 -mfma) and run it: only on a CPU that has both.
needs_avx2 = pytest.mark.skipif(
    not {"avx2", "fma"} <= set(cpu_features().split()), reason="the AVX2 build needs a CPU with AVX2 and FMA"
)


def build_library(source: str, directory: Path, openmp: bool = False, extra: Sequence[str] = ()) -> ctypes.CDLL:
    """Compile one translation unit into a shared library and load it (``extra``: more flags)."""
    c_path, so_path = directory / "module.c", directory / "module.so"
    c_path.write_text(source, encoding="utf-8")
    flags = [*WARNINGS, "-O2", "-fPIC", "-shared", *(["-fopenmp"] if openmp else []), *extra]
    done = subprocess.run([CC, *flags, str(c_path), "-o", str(so_path)], capture_output=True, text=True)
    assert done.returncode == 0, f"gcc rejected the generated C:\n{done.stderr}"
    return ctypes.CDLL(str(so_path))


def pointer(array: np.ndarray | None) -> ctypes.c_void_p | None:
    if array is None:
        return None
    assert array.flags.c_contiguous
    return ctypes.c_void_p(array.ctypes.data)


def call_kernels(
    lib: ctypes.CDLL, c: CSource, spec: ConvSpec, arrays: dict[str, np.ndarray], with_bias: bool = True
) -> dict[str, np.ndarray]:
    """Call every kernel once; outputs start as NaN so an unwritten entry cannot pass."""
    kind = arrays["x"].dtype
    outputs = {
        "out": np.full(spec.output, np.nan, kind),
        "grad_x": np.full(spec.input, np.nan, kind),
        "grad_w": np.full(spec.weight, np.nan, kind),
    }
    b = arrays.get("b") if with_bias else None
    x, w, g = arrays["x"], arrays["w"], arrays["grad_out"]
    calls = {
        "forward": (x, w, b, outputs["out"]),
        "grad_input": (g, w, outputs["grad_x"]),
        "grad_weight": (x, g, outputs["grad_w"]),
    }
    if spec.bias:
        outputs["grad_b"] = np.full(spec.bias_shape, np.nan, kind)
        calls["grad_bias"] = (g, outputs["grad_b"])
    assert set(c.functions) == set(calls)
    for kernel, args in calls.items():
        function = getattr(lib, c.functions[kernel])
        function.restype = None
        function.argtypes = [ctypes.c_void_p] * len(args)
        function(*(pointer(a) for a in args))
    return outputs


def has_openmp() -> bool:
    command = [CC, "-fopenmp", "-x", "c", "-", "-fsyntax-only"]
    return subprocess.run(command, input=b"int x;", capture_output=True).returncode == 0


def check_spec(spec: ConvSpec, dtype: str, seed: int = 0, openmp: bool = False, threads: int = 1) -> None:
    c = render_module(lower(spec, dtype))
    arrays = random_arrays(spec, dtype, seed)
    with tempfile.TemporaryDirectory(prefix="symconv-test-") as tmp:
        lib = build_library(c.source, Path(tmp), openmp=openmp)
        assert getattr(lib, f"{c.name}_has_openmp")() == int(openmp)
        getattr(lib, f"{c.name}_set_num_threads")(threads)
        got = call_kernels(lib, c, spec, arrays)
    expected = reference_outputs(spec, arrays)
    for key in expected:
        assert_close(got[key], expected[key], dtype, f"{key} of {spec.describe()} ({dtype})")


# -- the tests --------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(spec=small_specs(), dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**16))
def test_random_layers_match_the_reference(spec: ConvSpec, dtype: str, seed: int) -> None:
    check_spec(spec, dtype, seed)


@pytest.mark.parametrize(
    "spec, dtype",
    [
        (ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)), "float32"),
        # depthwise: one input channel per group, two outputs each, with bias
        (ConvSpec(input=(2, 3, 6, 5), weight=(6, 1, 3, 3), padding=1, groups=3, bias=True), "float64"),
        # rank 1, stride larger than the kernel: input entries no window touches
        (ConvSpec(input=(2, 2, 11), weight=(3, 2, 2), stride=4, padding=((1, 0),)), "float64"),
        # rank 3: stride, asymmetric padding, dilation
        (
            ConvSpec(
                input=(1, 2, 5, 6, 4), weight=(2, 2, 2, 3, 2), stride=(2, 1, 2),
                padding=((1, 0), (0, 2), (1, 1)), dilation=(2, 1, 1), bias=True,
            ),
            "float32",
        ),
        # "same" padding with an even kernel (the odd pixel goes after)
        (ConvSpec(input=(1, 2, 7, 8), weight=(4, 1, 4, 2), padding="same", groups=2), "float64"),
    ],
    ids=["lecture", "depthwise", "rank1-gaps", "rank3", "same-even"],
)
def test_chosen_layers_match_the_reference(spec: ConvSpec, dtype: str) -> None:
    check_spec(spec, dtype)


def test_untouched_input_rows_get_exactly_zero() -> None:
    """Stride 3 over 9 rows with a 2-row kernel: windows cover rows 0-1, 3-4 and 6-7, so rows
    2 and 5 (between windows) and 8 (dropped by the floor in the output size) feed nothing."""
    spec = ConvSpec(input=(1, 1, 9, 1), weight=(1, 1, 2, 1), stride=(3, 1))
    c = render_module(lower(spec, "float64"))
    arrays = random_arrays(spec, "float64")
    with tempfile.TemporaryDirectory() as tmp:
        got = call_kernels(build_library(c.source, Path(tmp)), c, spec, arrays)
    rows = got["grad_x"][0, 0, :, 0]
    assert list(np.flatnonzero(rows == 0.0)) == [2, 5, 8]
    assert np.array_equal(rows == 0.0, reference_outputs(spec, arrays)["grad_x"][0, 0, :, 0] == 0.0)


def test_forward_without_bias_pointer_skips_the_bias() -> None:
    spec = ConvSpec(input=(2, 2, 5, 5), weight=(3, 2, 3, 3), stride=2, padding=1, bias=True)
    c = render_module(lower(spec, "float64"))
    arrays = random_arrays(spec, "float64")
    with tempfile.TemporaryDirectory() as tmp:
        got = call_kernels(build_library(c.source, Path(tmp)), c, spec, arrays, with_bias=False)
    expected = ref.conv_forward(arrays["x"], arrays["w"], None, spec.stride, spec.padding, spec.dilation, 1)
    assert_close(got["out"], expected, "float64", "forward with b = NULL")


def test_openmp_build_on_two_threads_matches() -> None:
    if not has_openmp():
        pytest.skip("the C compiler has no OpenMP")
    # large enough that its kernels are threaded (small ones run on one thread by design)
    spec = ConvSpec(
        input=(6, 4, 24, 25), weight=(6, 2, 3, 2), stride=(1, 2), padding=((0, 1), (2, 0)), groups=2,
        bias=True,
    )
    module = lower(spec, "float64")
    assert all(k.threaded for k in module.kernels if k.name != "grad_bias")
    assert render_module(module).source.count("#pragma omp parallel for") >= 3
    check_spec(spec, "float64", openmp=True, threads=2)


def test_small_layers_touch_no_threads() -> None:
    source = render_module(lower(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)))).source
    assert "#pragma omp parallel" not in source and "one thread:" in source
    assert source.count("#pragma omp simd") == 3


def test_serial_build_reports_no_openmp() -> None:
    c = render_module(lower(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))))
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_library(c.source, Path(tmp))
        assert getattr(lib, f"{c.name}_has_openmp")() == 0
        getattr(lib, f"{c.name}_set_num_threads")(4)  # accepted, does nothing


def test_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    spec = ConvSpec(
        input=(2, 4, 7, 6), weight=(6, 2, 3, 2), stride=(2, 1), padding=1, dilation=(1, 2),
        groups=2, bias=True,
    )
    c = render_module(lower(spec, "float64"))
    arrays = random_arrays(spec, "float64", seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        got = call_kernels(build_library(c.source, Path(tmp)), c, spec, arrays)
    x = torch.tensor(arrays["x"], requires_grad=True)
    w = torch.tensor(arrays["w"], requires_grad=True)
    b = torch.tensor(arrays["b"], requires_grad=True)
    out = torch.nn.functional.conv2d(x, w, b, stride=spec.stride, padding=1, dilation=spec.dilation, groups=2)
    out.backward(torch.tensor(arrays["grad_out"]))
    for key, tensor in (("out", out), ("grad_x", x.grad), ("grad_w", w.grad), ("grad_b", b.grad)):
        assert_close(got[key], tensor.detach().numpy(), "float64", f"{key} vs PyTorch")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_header_and_cdef(dtype: str) -> None:
    """The header compiles on its own; the cdef is what cffi accepts and names every function."""
    cffi = pytest.importorskip("cffi")
    spec = ConvSpec(input=(1, 2, 4, 4), weight=(2, 2, 3, 3), padding=1, bias=True)
    c = render_module(lower(spec, dtype, name="layer"))
    with tempfile.TemporaryDirectory() as tmp:
        header = Path(tmp) / "layer.h"
        header.write_text(c.header, encoding="utf-8")
        done = subprocess.run([CC, *WARNINGS, "-fsyntax-only", str(header)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    ffi = cffi.FFI()
    ffi.cdef(c.cdef)
    assert "restrict" not in c.cdef and "#" not in c.cdef
    ctype = {"float32": "float", "float64": "double"}[dtype]
    for name in c.functions.values():
        assert f"{name}(" in c.cdef and f"{name}(" in c.header and f"{name}(" in c.source
    assert c.functions == {k: f"layer_{k}" for k in ("forward", "grad_input", "grad_weight", "grad_bias")}
    assert f"const {ctype} *x" in c.cdef
    assert "#include <stddef.h>" in c.source and "_OPENMP" in c.source


def test_source_leaves_no_macros_behind() -> None:
    """The size macros are #undef'd, so code placed after the source (cffi's) is unaffected."""
    c = render_module(lower(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)), name="lecture"))
    probe = c.source + "\n#if defined(N) || defined(OUT_H) || defined(INPUT_SIZE)\n#error leaked\n#endif\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.c"
        path.write_text(probe, encoding="utf-8")
        done = subprocess.run([CC, *WARNINGS, "-fsyntax-only", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
