"""The input gradient with batch items in the vector lanes (``symconv.lower_batch``): which layers
take it, and its results against the oracle (full batch blocks and a partial last one, stride,
padding, dilation, float64, the portable build, concurrent calls that take the loop nest)."""

from __future__ import annotations

import numpy as np
import pytest

from codegen import ir
from codegen.render import CACHE_SET_STRIDE, batch_context, render_module, spread_planes
from symconv import ConvSpec, lower_blocked
from symconv.derive import derive
from symconv.lower import Layer, c_type, lower, size_macros, tensor_macros, tensors
from symconv.lower_batch import MIN_CHANNELS
from symconv.pipeline import run
from symconv.target import AVX2, AVX512, Target
from tests.test_blocked import calls_from_threads, check_built, check_portable
from tests.test_render_c import assert_close, needs_avx2, random_arrays, reference_outputs


def input_gradient_plan(spec: ConvSpec, dtype: str, target: Target = AVX512) -> ir.Plan | None:
    return next((p for p in lower(spec, dtype, target=target).blocked if p.kernel == "grad_input"), None)


#: Layers whose input gradient takes the batch lanes: LeNet's C3 (four full blocks of 16), a batch
#: of 28 (the second block holds 12 items), stride, asymmetric padding and dilation per axis, and
#: float64 (8 lanes: 9 input channels would fill only 9 of 16 channel lanes), rows and columns that
#: no filter tap reaches.
BATCHED = [
    (ConvSpec(input=(64, 6, 14, 14), weight=(16, 6, 5, 5), bias=True), "float32"),
    (ConvSpec(input=(28, 6, 9, 12), weight=(20, 6, 3, 3), padding=1), "float32"),
    (ConvSpec(input=(16, 7, 11, 13), weight=(5, 7, 3, 4), stride=(2, 1), padding=((1, 0), (2, 1)),
              dilation=(1, 2)), "float32"),
    (ConvSpec(input=(12, 9, 8, 10), weight=(11, 9, 3, 3), stride=2, padding=1, bias=True), "float64"),
    # stride 3 over 2x2 filters: every third row and column is reached by no tap (zeros)
    (ConvSpec(input=(16, 6, 11, 11), weight=(8, 6, 2, 2), stride=3), "float32"),
]


@pytest.mark.parametrize("spec, dtype", BATCHED, ids=["lenet_c3", "partial_block", "strided_dilated", "float64", "unreached"])
def test_batch_lanes_match_the_oracle(spec: ConvSpec, dtype: str) -> None:
    plan = input_gradient_plan(spec, dtype)
    assert isinstance(plan, ir.BlockedBatch)
    lanes = 64 // np.dtype(dtype).itemsize
    assert plan.lanes == lanes and plan.blocks == -(-spec.input[0] // lanes)
    # every input column is written by exactly one tile
    columns = sorted(tile.out + p * plan.out_pixel for tile in plan.tiles for p in range(tile.width))
    assert columns == list(range(spec.input[-1]))
    check_built(spec, dtype, seed=5)


def test_batch_lanes_compile_portably() -> None:
    """Without -march the vectors are the compiler's generic ones: the same results."""
    spec, dtype = BATCHED[1]
    check_portable(spec, dtype)


@pytest.mark.parametrize(
    "spec, why",
    [
        (ConvSpec(input=(64, MIN_CHANNELS - 1, 14, 14), weight=(16, MIN_CHANNELS - 1, 5, 5)), "too few input channels"),
        (ConvSpec(input=(20, 6, 14, 14), weight=(16, 6, 5, 5)), "20 items fill 20 of 32 lanes"),
        (ConvSpec(input=(2, 6, 14, 14), weight=(16, 6, 5, 5)), "a batch of two"),
    ],
    ids=["channels", "batch_20", "batch_2"],
)
def test_other_layers_keep_the_summed_lanes(spec: ConvSpec, why: str) -> None:
    assert isinstance(input_gradient_plan(spec, "float32"), ir.BlockedReduce), why


def test_concurrent_calls_agree() -> None:
    """Calls from several Python threads at once (those that find the packed G in use take the
    loop nest) all give the oracle's input gradient."""
    spec = BATCHED[1][0]
    kernel = run(spec, "float32")
    arrays = random_arrays(spec, "float32")
    expected = reference_outputs(spec, arrays)["grad_x"]
    results = calls_from_threads(lambda: kernel.grad_input(arrays["grad_out"], arrays["w"]))
    for index, got in enumerate(results):
        assert_close(got, expected, "float32", f"grad_x, call {index}")


#: Six input channels in 8 lanes (AVX2's float32, AVX-512's float64): the channel lanes would
#: apply too (6 of 8 used), the batch lanes come first.
EIGHT_LANES = [(AVX2, "float32"), (AVX512, "float64")]


@pytest.mark.parametrize("target, dtype", EIGHT_LANES, ids=["avx2_float32", "avx512_float64"])
def test_batch_lanes_come_before_part_empty_channel_lanes(target: Target, dtype: str) -> None:
    spec = BATCHED[0][0]
    assert isinstance(channel_lanes_plan(spec, dtype, target), ir.Blocked), "the channel lanes apply as well"
    plan = input_gradient_plan(spec, dtype, target)
    assert isinstance(plan, ir.BlockedBatch) and plan.lanes == 8


def channel_lanes_plan(spec: ConvSpec, dtype: str, target: Target) -> ir.Plan | None:
    """What the channel-lane plan alone makes of the input gradient."""
    layer = Layer.of(spec, size_macros(spec) + tensor_macros(tensors(spec)))
    form = derive(spec).general()["dX"]
    return lower_blocked.plan(form, layer.shapes, c_type(dtype), spec.bias, target)


def test_spread_planes() -> None:
    """Planes whose size is a multiple of the cache-set stride get one cache line more."""
    assert spread_planes(CACHE_SET_STRIDE // 4, 4) == CACHE_SET_STRIDE // 4 + 16
    assert spread_planes(CACHE_SET_STRIDE, 8) == CACHE_SET_STRIDE + 8
    assert spread_planes(1000, 4) == 1000
    assert spread_planes(CACHE_SET_STRIDE // 8, 4) == CACHE_SET_STRIDE // 8  # half the stride


def test_spread_planes_of_a_32x32_image_match_the_oracle() -> None:
    """G of a 32x32 image, 8 or 16 batch items in the lanes: 32 or 64 KB per output channel, so
    the packed planes are spread; the results are the oracle's (native build and both targets'
    tiles built portably)."""
    spec = ConvSpec(input=(16, 6, 32, 32), weight=(8, 6, 3, 3), padding=1)
    for target in (AVX2, AVX512):
        plan = input_gradient_plan(spec, "float32", target)
        assert isinstance(plan, ir.BlockedBatch)
        assert batch_context(plan, "float")["g_chan"] == 32 * 32 * plan.lanes + 16
        check_portable(spec, "float32", target)
    check_built(spec, "float32", seed=2)


@needs_avx2
def test_avx2_packing_by_transposes_matches_the_oracle() -> None:
    """AVX2's float32 tiles pack whole blocks of 8 batch items by 8x8 transposes (compiled only
    where AVX is enabled): a batch of 20 (two whole blocks and one of 4, packed element by
    element), planes of 9x11 (99 elements: 12 transposes and 3 single elements each)."""
    spec = ConvSpec(input=(20, 6, 13, 15), weight=(10, 6, 5, 5), bias=True)
    plan = input_gradient_plan(spec, "float32", AVX2)
    assert isinstance(plan, ir.BlockedBatch) and (plan.grad_h, plan.grad_w) == (9, 11)
    assert "_transpose8(" in render_module(lower(spec, "float32", target=AVX2)).source
    check_portable(spec, "float32", AVX2, flags=("-mavx2", "-mfma"))
