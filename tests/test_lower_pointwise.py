"""The pointwise kernels (1x1 filters as a matrix product with pixels in the vector lanes:
``symconv.lower_pointwise``) against the numpy oracle and PyTorch.

Layers are drawn so that the path is taken (1x1 filter, stride 1, no padding, one group, at
least one vector of pixels per plane) with channel counts that leave partial tiles and planes
that leave a tail. The read arrays are placed at every element offset within a cache line, so
every length of head (the pixels before the first line boundary) is taken; outputs large
enough to be stored past the caches are checked both when they are (output at the read array's
offset in a line) and when they cannot be (any other offset).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen import ir
from codegen.kernel import LINE_BYTES, empty_at_line_offset
from symconv import ConvSpec
from symconv.lower import lower
from symconv.lower_pointwise import STREAM_MIN_BYTES
from symconv.pipeline import run
from symconv.target import TARGETS
from tests.test_blocked import check_built, check_portable
from tests.test_lower_rows import check_pytorch
from tests.test_render_c import CC, assert_close, random_arrays, reference_outputs

#: Channels per pointwise tile at most, on the widest target: the layers below span several tiles.
TILE_ROWS = max(target.pointwise_rows for target in TARGETS.values())

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")


def plans(spec: ConvSpec, dtype: str = "float32") -> dict[str, object]:
    return {plan.kernel: plan for plan in lower(spec, dtype).blocked}


def at_offset(array: np.ndarray, elements: int) -> np.ndarray:
    """A copy of ``array`` whose data starts ``elements`` elements past a cache-line boundary."""
    placed = empty_at_line_offset(array.shape, array.dtype, elements * array.itemsize)
    placed[...] = array
    return placed


@st.composite
def pointwise_specs(draw) -> ConvSpec:
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 13))
    if height * width < 16:
        width = -(-16 // height)  # one float32 vector of pixels at least
    channels = draw(st.integers(1, 3 * TILE_ROWS + 1))
    return ConvSpec(
        input=(draw(st.integers(1, 3)), channels, height, width),
        weight=(draw(st.integers(1, 3 * TILE_ROWS + 1)), channels, 1, 1),
        bias=draw(st.booleans()),
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=pointwise_specs(), dtype=st.sampled_from(["float32", "float64"]), offset=st.integers(0, 15))
def test_pointwise_kernels_match_the_oracle(spec: ConvSpec, dtype: str, offset: int) -> None:
    found = plans(spec, dtype)
    assert isinstance(found["forward"], ir.Pointwise) and isinstance(found["grad_input"], ir.Pointwise)
    kernel = run(spec, dtype)
    arrays = random_arrays(spec, dtype, seed=offset)
    expected = reference_outputs(spec, arrays)
    lanes = found["forward"].lanes
    x, g = at_offset(arrays["x"], offset % lanes), at_offset(arrays["grad_out"], offset % lanes)
    assert_close(kernel.forward(x, arrays["w"], arrays.get("b")), expected["out"], dtype, f"out of {spec.describe()}")
    assert_close(kernel.grad_input(g, arrays["w"]), expected["grad_x"], dtype, f"grad_x of {spec.describe()}")


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=pointwise_specs(), dtype=st.sampled_from(["float32", "float64"]))
def test_pointwise_kernels_match_pytorch_and_compile_portably(spec: ConvSpec, dtype: str) -> None:
    check_pytorch(spec, dtype)
    check_portable(spec, dtype)


#: Layers that must take the pointwise path (so the tests above cannot pass vacuously): tiles
#: of six channels and a partial one, a plane with a tail, ResNet's bottleneck shapes scaled down.
FIXED = [
    ConvSpec(input=(2, 32, 7, 9), weight=(16, 32, 1, 1)),
    ConvSpec(input=(3, 13, 5, 5), weight=(7, 13, 1, 1), bias=True),
    ConvSpec(input=(2, 64, 14, 14), weight=(32, 64, 1, 1), bias=True),
]


@pytest.mark.parametrize("spec", FIXED, ids=lambda s: s.describe().split(" →")[0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fixed_layers_take_the_pointwise_path(spec: ConvSpec, dtype: str) -> None:
    found = plans(spec, dtype)
    assert isinstance(found["forward"], ir.Pointwise) and isinstance(found["grad_input"], ir.Pointwise)
    assert not found["forward"].stream  # small outputs stay in the cache
    check_built(spec, dtype, seed=2)
    kernel = run(spec, dtype)
    arrays = random_arrays(spec, dtype, seed=4)
    expected = reference_outputs(spec, arrays)
    for offset in range(found["forward"].lanes):
        x, g = at_offset(arrays["x"], offset), at_offset(arrays["grad_out"], offset)
        assert_close(kernel.forward(x, arrays["w"], arrays.get("b")), expected["out"], dtype, f"out, offset {offset}")
        assert_close(kernel.grad_input(g, arrays["w"]), expected["grad_x"], dtype, f"grad_x, offset {offset}")


def test_where_the_pointwise_path_does_not_apply() -> None:
    """Stride, padding, groups, a larger filter or a plane smaller than one vector: other paths."""
    others = [
        ConvSpec(input=(1, 32, 9, 9), weight=(32, 32, 1, 1), stride=2),
        ConvSpec(input=(1, 32, 9, 9), weight=(32, 32, 1, 1), padding=1),
        ConvSpec(input=(1, 32, 9, 9), weight=(32, 16, 1, 1), groups=2),
        ConvSpec(input=(1, 32, 9, 9), weight=(32, 32, 3, 3)),
        ConvSpec(input=(1, 32, 3, 5), weight=(32, 32, 1, 1)),
    ]
    for spec in others:
        assert not any(isinstance(plan, ir.Pointwise) for plan in lower(spec).blocked), spec.describe()
    # float64 vectors hold 8 pixels: the 15-pixel plane fills one of them, a 6-pixel one does not
    assert isinstance(plans(others[-1], "float64")["forward"], ir.Pointwise)
    small = ConvSpec(input=(1, 32, 2, 3), weight=(32, 32, 1, 1))
    assert not any(isinstance(plan, ir.Pointwise) for plan in lower(small, "float64").blocked)


def test_large_outputs_are_streamed_and_right_at_any_offset() -> None:
    """An output of 4 MB or more is stored past the caches when its vectors start cache lines
    (the kernel object places it so); called directly with an output at another offset, the
    kernel stores it the plain way. Both agree with the oracle."""
    spec = ConvSpec(input=(1, 4, 128, 512), weight=(16, 4, 1, 1), bias=True)
    found = plans(spec)
    assert found["forward"].stream and 16 * 128 * 512 * 4 >= STREAM_MIN_BYTES
    assert not found["grad_input"].stream  # 1 MB
    kernel = run(spec, "float32")
    assert "_stream_ps(" in kernel.source  # _mm512_ or _mm256_, by the target
    arrays = random_arrays(spec, "float32", seed=6)
    expected = reference_outputs(spec, arrays)
    for offset in (0, 3, 12):
        x = at_offset(arrays["x"], offset)
        out = kernel.forward(x, arrays["w"], arrays["b"])
        assert (out.ctypes.data - x.ctypes.data) % LINE_BYTES == 0  # placed to be streamed
        assert_close(out, expected["out"], "float32", f"streamed out, offset {offset}")
        elsewhere = at_offset(np.full(spec.output, np.nan, np.float32), (offset + 5) % 16)
        buffer = kernel._from_buffer
        kernel._c_forward(buffer("float[]", x), buffer("float[]", arrays["w"]), buffer("float[]", arrays["b"]),
                          buffer("float[]", elsewhere))
        assert_close(elsewhere, expected["out"], "float32", f"plain stores, offset {offset}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_do_not_depend_on_threads_or_offsets(dtype: str) -> None:
    """Every output is summed by one thread in one order whatever the thread count; the head
    and the tail of a row are summed in the same order as the vectors (compared bit for bit)."""
    spec = ConvSpec(input=(4, 24, 21, 23), weight=(20, 24, 1, 1), bias=True)
    kernel = run(spec, dtype)
    arrays = random_arrays(spec, dtype, seed=8)
    results = []
    for threads in (1, 2, 3):
        kernel.set_num_threads(threads)
        results.append((kernel.forward(arrays["x"], arrays["w"], arrays["b"]), kernel.grad_input(arrays["grad_out"], arrays["w"])))
    kernel.set_num_threads(1)
    for out, grad_x in results[1:]:
        assert np.array_equal(out, results[0][0]) and np.array_equal(grad_x, results[0][1])


def test_concurrent_calls_agree() -> None:
    """Nothing is packed or kept between calls: calls from several Python threads at once agree."""
    spec = ConvSpec(input=(2, 48, 16, 16), weight=(40, 48, 1, 1))
    kernel = run(spec, "float32")
    arrays = random_arrays(spec, "float32", seed=9)
    expected = reference_outputs(spec, arrays)

    def work(_: int) -> tuple[np.ndarray, np.ndarray]:
        return kernel.forward(arrays["x"], arrays["w"]), kernel.grad_input(arrays["grad_out"], arrays["w"])

    with ThreadPoolExecutor(max_workers=4) as pool:  # an exception in a call is raised here
        results = list(pool.map(work, range(20)))
    for out, grad_x in results:
        assert_close(out, expected["out"], "float32", "concurrent out")
        assert_close(grad_x, expected["grad_x"], "float32", "concurrent grad_x")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("offset", [0, 8, 16, 40, 63])
def test_empty_at_line_offset(dtype: str, offset: int) -> None:
    itemsize = np.dtype(dtype).itemsize
    offset -= offset % itemsize
    array = empty_at_line_offset((3, 5, 7), np.dtype(dtype), offset)
    assert array.shape == (3, 5, 7) and array.dtype == dtype
    assert array.flags.c_contiguous and array.flags.aligned and array.flags.writeable
    assert array.ctypes.data % LINE_BYTES == offset
    array[...] = 1.5
    assert float(array.sum()) == 1.5 * 105
