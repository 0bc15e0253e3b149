"""Determinism: the same inputs give bitwise the same outputs, call after call, process after
process, whatever the thread count and wherever the arrays sit in memory.

Why it holds today: every output entry is accumulated in one fixed order (the parallel loops
split batch items, channels and output positions; where the weight gradient splits its sum over
the batch, the parts are fixed by the layer, not by the thread count, and added up in one order),
and the flags allow no reassociation (no -ffast-math). A kernel whose split of a sum followed the
thread count would make the answer depend on it; these tests would then fail.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from codegen.build import toolchain
from symconv import ConvSpec
from symconv.api import build
from tests.conftest import ROOT, child_env
from tests.test_fuzz import FIXED

DTYPES = ("float32", "float64")
#: Big enough that two threads both get work in every parallel loop (batch × channels × rows).
LAYERS = {
    "grouped_padded_bias": ConvSpec(input=(4, 8, 12, 11), weight=(8, 4, 3, 3), padding=1, groups=2, bias=True),
    "strided_dilated": ConvSpec(input=(3, 3, 15, 14), weight=(6, 3, 3, 2), stride=(2, 3), dilation=(2, 1), bias=True),
    "small_2d": FIXED["2d_pad_stride_dilation_bias"],
    # 16 output channels: the register-tile ("blocked") kernels, vectorised over channels and threaded
    "blocked_threaded": ConvSpec(input=(4, 8, 14, 14), weight=(16, 8, 3, 3), padding=1, bias=True),
    # six input channels and a batch of 16: the input gradient with batch items in the lanes
    "batch_lanes": ConvSpec(input=(16, 6, 10, 10), weight=(16, 6, 3, 3), bias=True),
    "blocked_grouped_strided": ConvSpec(input=(4, 8, 15, 14), weight=(16, 4, 3, 2), stride=(2, 1), dilation=(1, 2),
                                        padding=((1, 0), (2, 1)), groups=2, bias=True),
}


def inputs(spec: ConvSpec, dtype: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {
        "x": rng.standard_normal(spec.input).astype(dtype),
        "w": rng.standard_normal(spec.weight).astype(dtype),
        "b": rng.standard_normal(spec.bias_shape).astype(dtype),
        "g": rng.standard_normal(spec.output).astype(dtype),
    }


def every_pass(kernel, a: dict[str, np.ndarray]) -> list[np.ndarray]:
    dx, dw, db = kernel.backward(a["x"], a["w"], a["g"])
    return [kernel.forward(a["x"], a["w"], a["b"]), kernel.grad_input(a["g"], a["w"]),
            kernel.grad_weight(a["x"], a["g"]), kernel.grad_bias(a["g"]), dx, dw, db]


def digest(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode() + a.dtype.str.encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer", LAYERS)
def test_repeated_calls_are_bitwise_equal(layer: str, dtype: str) -> None:
    kernel = build(LAYERS[layer], dtype)
    a = inputs(LAYERS[layer], dtype)
    first = digest(every_pass(kernel, a))
    assert all(digest(every_pass(kernel, a)) == first for _ in range(5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer", LAYERS)
def test_thread_count_does_not_change_a_bit(layer: str, dtype: str) -> None:
    if not toolchain().openmp:
        pytest.skip("the compiler builds no OpenMP code here: there is one thread whatever is asked")
    kernel = build(LAYERS[layer], dtype)
    a = inputs(LAYERS[layer], dtype)
    before = kernel.num_threads
    try:
        results = {}
        for n in (1, 2, 3, 8):  # 3 and 8 on two cores: uneven splits and oversubscription
            kernel.set_num_threads(n)
            results[n] = digest(every_pass(kernel, a))
    finally:
        kernel.set_num_threads(before)
    assert len(set(results.values())) == 1, results


@pytest.mark.parametrize("dtype", DTYPES)
def test_where_the_arrays_sit_in_memory_does_not_change_a_bit(dtype: str) -> None:
    """Aligned views that start 1..15 elements into a buffer go to C as they are (no copy): the
    vectoriser's alignment peeling must not change any entry's order of summation."""
    spec = LAYERS["grouped_padded_bias"]
    kernel = build(spec, dtype)
    a = inputs(spec, dtype)
    want = digest(every_pass(kernel, a))
    for shift in range(1, 16):
        moved = {}
        for name, array in a.items():
            buffer = np.empty(array.size + shift, dtype)
            moved[name] = buffer[shift:].reshape(array.shape)
            moved[name][...] = array
            assert moved[name].flags.c_contiguous and moved[name].flags.aligned
        assert digest(every_pass(kernel, moved)) == want, f"shifted by {shift} elements"


CHILD = textwrap.dedent(
    """
    import json, sys
    from tests.test_hostile_determinism import LAYERS, digest, every_pass, inputs
    from symconv.api import build
    found = {}
    for name, spec in LAYERS.items():
        for dtype in ("float32", "float64"):
            kernel = build(spec, dtype)
            found[f"{name}-{dtype}"] = digest(every_pass(kernel, inputs(spec, dtype)))
    print(json.dumps(found))
    """
)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_another_process_gets_the_same_bits(threads: str) -> None:
    """A fresh process (the module loaded from the disk cache), with OMP_NUM_THREADS 1 or 2."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=ROOT,
        env=child_env(OMP_NUM_THREADS=threads), timeout=300,
    )
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours = {
        f"{name}-{dtype}": digest(every_pass(build(spec, dtype), inputs(spec, dtype)))
        for name, spec in LAYERS.items() for dtype in DTYPES
    }
    assert theirs == ours
