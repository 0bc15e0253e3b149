"""The register-tiled kernels (symconv.lower_blocked) against the numpy oracle.

Layers are drawn so that the tiled path is taken (enough channels for the vector lanes), with
what makes its tables and tiles differ: channel counts that are not multiples of the lanes, odd
widths, strides 1-4 (residue classes of the input gradient), dilation, asymmetric padding, groups.
Each layer is checked twice: compiled for this machine through the normal build (AVX-512 where
there is one), and compiled portably (``-O2``, no ``-march``) through ctypes, where the vector
code is lowered to whatever the baseline target has.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen import ir
from codegen.render import render_module
from symconv import ConvSpec
from symconv.lower import lower
from symconv.pipeline import run
from symconv.target import AVX2, DEFAULT, Target
from tests.test_render_c import (
    CC, assert_close, build_library, call_kernels, needs_avx2, random_arrays, reference_outputs,
)

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")

KERNEL_ARRAYS = {"forward": "out", "grad_input": "grad_x", "grad_weight": "grad_w"}


@st.composite
def tiled_specs(draw) -> ConvSpec:
    """2-D layers with enough channels for the tiled path (most of the time on every pass)."""
    groups = draw(st.sampled_from([1, 1, 1, 2]))
    if groups == 1:
        out_channels = draw(st.sampled_from([12, 16, 20, 32, 40, 64]))
        in_channels = draw(st.sampled_from([1, 3, 13, 16, 24, 32]))
    else:
        out_channels, in_channels = 2 * draw(st.sampled_from([16, 32])), 2 * draw(st.sampled_from([16, 3]))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    spatial = []
    for k, d, (lo, hi) in zip(kernel, dilation, padding):
        reach = d * (k - 1) + 1
        spatial.append(draw(st.integers(max(1, reach - lo - hi), reach + 14)))
    return ConvSpec(
        input=(draw(st.integers(1, 2)), in_channels, *spatial),
        weight=(out_channels, in_channels // groups, *kernel),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
    )


def tiled_kernels(spec: ConvSpec, dtype: str) -> set[str]:
    return {plan.kernel for plan in lower(spec, dtype).blocked}


def check_built(spec: ConvSpec, dtype: str, seed: int = 0) -> None:
    """The kernels of the normal build (this machine's instruction set) against the oracle."""
    kernel = run(spec, dtype)
    arrays = random_arrays(spec, dtype, seed)
    expected = reference_outputs(spec, arrays)
    x, w, g = arrays["x"], arrays["w"], arrays["grad_out"]
    got = {
        "out": kernel.forward(x, w, arrays.get("b")),
        "grad_x": kernel.grad_input(g, w),
        "grad_w": kernel.grad_weight(x, g),
    }
    for name, array in got.items():
        assert_close(array, expected[name], dtype, f"{name} of {spec.describe()} ({dtype})")


def check_portable(spec: ConvSpec, dtype: str, target: Target = DEFAULT, flags: Sequence[str] = ()) -> None:
    """The C with ``target``'s tiles compiled for the baseline CPU (no -march; or for what
    ``flags`` enable), through ctypes."""
    c = render_module(lower(spec, dtype, target=target))
    arrays = random_arrays(spec, dtype, 1)
    expected = reference_outputs(spec, arrays)
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_library(c.source, Path(tmp), extra=flags)
        got = call_kernels(lib, c, spec, arrays)
    for name in ("out", "grad_x", "grad_w"):
        assert_close(got[name], expected[name], dtype, f"{name} of {spec.describe()} ({dtype}, {target.name} tiles, portable)")


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=tiled_specs(), dtype=st.sampled_from(["float32", "float64"]))
def test_tiled_kernels_match_the_oracle(spec: ConvSpec, dtype: str) -> None:
    check_built(spec, dtype)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=tiled_specs(), dtype=st.sampled_from(["float32", "float64"]))
def test_tiled_kernels_compile_portably(spec: ConvSpec, dtype: str) -> None:
    check_portable(spec, dtype)


#: Layers that must take the tiled path on every pass (so the tests above cannot pass vacuously).
FIXED = [
    ConvSpec(input=(2, 32, 13, 11), weight=(48, 32, 3, 3), stride=2, padding=1, bias=True),
    ConvSpec(input=(1, 24, 17, 19), weight=(28, 24, 3, 5), stride=(4, 3), padding=((2, 1), (0, 3)), dilation=(2, 1)),
    ConvSpec(input=(1, 64, 9, 9), weight=(64, 32, 3, 3), padding=1, groups=2),
    ConvSpec(input=(2, 32, 7, 9), weight=(16, 32, 1, 1)),
    # three input channels: the input gradient sums the output channels in the lanes
    ConvSpec(input=(2, 3, 23, 21), weight=(40, 3, 5, 5), stride=(4, 3), padding=((0, 2), (1, 1))),
    # filter rows of 9 columns over 56 output columns: rolled rows (tiles of 28 pixels with AVX-512)
    ConvSpec(input=(1, 16, 5, 64), weight=(16, 16, 2, 9), bias=True),
]


@pytest.mark.parametrize("spec", FIXED, ids=lambda s: s.describe().split(" →")[0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fixed_layers_take_the_tiled_path(spec: ConvSpec, dtype: str) -> None:
    assert tiled_kernels(spec, dtype) == {"forward", "grad_input", "grad_weight"}
    check_built(spec, dtype, seed=3)


def test_few_channels_change_the_lanes() -> None:
    """Three input channels in 16 lanes would waste most of each vector: the input gradient puts
    the output channels there instead. Too few channels on both sides put output columns in the
    lanes (forward, weight gradient; LeNet C1's input gradient keeps its loop nest: its border
    columns would outnumber the vectors), and rows too short for a vector keep the loop nest."""
    plans = {plan.kernel: plan for plan in lower(ConvSpec(input=(1, 3, 12, 12), weight=(32, 3, 3, 3))).blocked}
    assert isinstance(plans["forward"], ir.Blocked)
    assert isinstance(plans["grad_input"], ir.BlockedReduce)
    assert isinstance(plans["grad_weight"], ir.BlockedWeight)
    few = ConvSpec(input=(2, 1, 28, 28), weight=(6, 1, 5, 5), bias=True)
    plans = {plan.kernel: plan for plan in lower(few).blocked}
    assert isinstance(plans["forward"], ir.RowVector) and isinstance(plans["grad_weight"], ir.RowWeight)
    assert "grad_input" not in plans
    check_built(few, "float32", seed=1)
    depthwise = ConvSpec(input=(2, 3, 7, 21), weight=(3, 1, 3, 3), padding=1, groups=3, bias=True)
    assert tiled_kernels(depthwise, "float64") == {"forward", "grad_input", "grad_weight"}
    check_built(depthwise, "float64", seed=1)
    assert tiled_kernels(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)), "float32") == set()


def test_weights_changed_in_place_are_seen() -> None:
    """Packed weights are rebuilt on every call: no stale results after an in-place update."""
    spec = ConvSpec(input=(1, 16, 8, 8), weight=(32, 16, 3, 3), padding=1)
    kernel = run(spec, "float32")
    arrays = random_arrays(spec, "float32")
    x, w = arrays["x"], arrays["w"]
    first = kernel.forward(x, w)
    w *= 2
    assert_close(kernel.forward(x, w), 2 * first.astype(np.float64), "float32", "after w *= 2")


def calls_from_threads(call, threads: int = 4, calls: int = 5) -> list:
    """What ``call()`` returned, ``calls`` times on each of ``threads`` Python threads at once."""
    results: list = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(calls):
            got = call()
            with lock:
                results.append(got)

    started = [threading.Thread(target=work) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    assert len(results) == threads * calls
    return results


def test_concurrent_calls_agree() -> None:
    """Calls from several Python threads at once (one takes the loop nest) give the same result."""
    spec = ConvSpec(input=(2, 32, 20, 20), weight=(32, 32, 3, 3), padding=1)
    kernel = run(spec, "float32")
    arrays = random_arrays(spec, "float32")
    expected = reference_outputs(spec, arrays)
    results = calls_from_threads(
        lambda: (kernel.forward(arrays["x"], arrays["w"]), kernel.grad_weight(arrays["x"], arrays["grad_out"]))
    )
    for index, (out, grad_w) in enumerate(results):
        assert_close(out, expected["out"], "float32", f"out, call {index}")
        assert_close(grad_w, expected["grad_w"], "float32", f"grad_w, call {index}")


@pytest.mark.parametrize("batch", [1, 2, 3, 5])
def test_weight_gradient_sums_parts_of_the_batch(batch: int) -> None:
    """A threaded weight gradient sums two parts of the batch on their own (3 images: 1 and 2) and
    adds them up; a batch of one is one part. Each thread count gives the oracle's result, bit for
    bit the same."""
    from symconv.lower_blocked import WEIGHT_PARTS

    spec = ConvSpec(input=(batch, 16, 13, 12), weight=(32, 16, 3, 3), padding=1)
    plan = next(p for p in lower(spec, "float32").blocked if p.kernel == "grad_weight")
    assert isinstance(plan, ir.BlockedWeight) and plan.threaded
    assert plan.parts == (WEIGHT_PARTS if batch >= WEIGHT_PARTS else 1)
    check_built(spec, "float32", seed=batch)
    kernel = run(spec, "float32")
    arrays = random_arrays(spec, "float32", batch)
    found = set()
    for threads in (1, 2, 3):
        kernel.set_num_threads(threads)
        found.add(kernel.grad_weight(arrays["x"], arrays["grad_out"]).tobytes())
    assert len(found) == 1


def test_huge_packs_keep_the_loop_nest(monkeypatch) -> None:
    """A packed copy beyond the static-array limit drops the packed plans (what remains is the
    loop nest, or the row-vectorised passes, which pack nothing)."""
    from symconv import lower_blocked

    spec = ConvSpec(input=(1, 32, 8, 8), weight=(32, 32, 3, 3), padding=1)
    assert tiled_kernels(spec, "float32") == {"forward", "grad_input", "grad_weight"}
    monkeypatch.setattr(lower_blocked, "MAX_PACK_BYTES", 1024)
    packed = (ir.Blocked, ir.BlockedWeight, ir.BlockedReduce)
    assert not any(isinstance(plan, packed) for plan in lower(spec, "float32").blocked)


@pytest.mark.parametrize("lanes", [8, 16])
@pytest.mark.parametrize("count", [1, 2, 3, 6, 16, 18])
def test_lane_sums_add_each_vector_by_halves(lanes: int, count: int) -> None:
    """The shuffle network of the summed-lane tiles, run here on numpy vectors: each vector's
    sum lands where ``where`` says, added in exactly the order of halving that vector alone."""
    from codegen.render import lane_sums

    rng = np.random.default_rng(count)
    names = [f"a{i}" for i in range(count)]
    values = {name: rng.standard_normal(lanes).astype(np.float32) for name in names}
    network = lane_sums(names, lanes)
    assert len(network.steps) == sum(-(-count // 2**level) for level in range(1, lanes.bit_length()))
    for name, first, second, lo, hi in network.steps:
        both = np.concatenate([values[first], values[second]])
        values[name] = both[[int(i) for i in lo.split(", ")]] + both[[int(i) for i in hi.split(", ")]]
    for name in names:
        halved = values[name]
        while len(halved) > 1:
            halved = halved[: len(halved) // 2] + halved[len(halved) // 2 :]
        vector, lane = network.where[name]
        assert values[vector][lane].tobytes() == halved[0].tobytes(), name
        assert np.isclose(values[vector][lane], values[name].astype(np.float64).sum(), rtol=1e-5)


#: LeNet's C3 and AlexNet's first layer, scaled down (in float64, C3's six input channels fill
#: the lanes of a vector of eight: it takes the channel lanes instead).
BORDERS = [
    (ConvSpec(input=(2, 6, 14, 14), weight=(16, 6, 5, 5), bias=True), "float32"),
    (ConvSpec(input=(1, 3, 39, 39), weight=(32, 3, 11, 11), stride=4), "float32"),
    (ConvSpec(input=(1, 3, 39, 39), weight=(32, 3, 11, 11), stride=4), "float64"),
]


@pytest.mark.parametrize("spec, dtype", BORDERS, ids=["lenet_c3", "alexnet_f32", "alexnet_f64"])
def test_border_columns_of_a_full_correlation_share_tiles(spec: ConvSpec, dtype: str) -> None:
    """The input gradient's border columns (reached by 1, 2, 3 ... filter columns) share tiles
    in which each pixel takes its own filter columns, stride residue classes included; the
    results match the oracle."""
    plan = next(p for p in lower(spec, dtype).blocked if p.kernel == "grad_input")
    assert isinstance(plan, ir.BlockedReduce)
    ragged = [tile for tile in plan.tiles if tile.spans]
    assert ragged and all(len(tile.spans) == tile.width > 1 for tile in ragged)
    assert len({tile.spans for tile in ragged}) > 1  # more than one kind of border
    check_built(spec, dtype, seed=11)
    check_portable(spec, dtype)
    if spec.stride == (1, 1):  # C3: input column x is reached by filter columns t with 0 <= x - t < OW
        taps, out_w = spec.weight[-1], spec.output[-1]
        for tile in plan.tiles:
            for p, (first, count) in enumerate(tile.spans or [(0, tile.taps)] * tile.width):
                x = tile.out + p
                assert count == min(x, taps - 1) - max(0, x - out_w + 1) + 1, (tile, p)


def test_bordered_tiles_of_a_full_correlation() -> None:
    """Synthetic one-column tiles of an input gradient (stride 1: each column reads one further,
    each later tap one back): the left border (reached by 1, 2, 3, 4 filter columns, all from
    the first) and the right border (from later and later taps) are recut with per-pixel spans;
    columns whose taps start out of order still share a tile, which starts at the earliest."""
    from symconv.lower_blocked import Axis, bordered_tiles

    axis = Axis(taps=(), tap_step=1, read_step=-1, pixel_step=1, pixel_read=1)
    column = lambda out, tap, taps: ir.BlockTile(out, out - tap, tap, taps, 1)  # noqa: E731
    left = (column(0, 0, 1), column(1, 0, 2), column(2, 0, 3), column(3, 0, 4))
    cut = bordered_tiles(left, axis, max_width=3)
    assert [(t.out, t.width, t.spans) for t in cut] == [(0, 2, ((0, 1), (0, 2))), (2, 2, ((0, 3), (0, 4)))]
    right = (column(10, 1, 4), column(11, 2, 3), column(12, 3, 2), column(13, 4, 1))
    cut = bordered_tiles(right, axis, max_width=4)
    assert [(t.out, t.read, t.tap, t.taps, t.spans) for t in cut] == [(10, 9, 1, 4, ((0, 4), (1, 3), (2, 2), (3, 1)))]
    zigzag = (column(0, 0, 2), column(1, 0, 2), column(2, 1, 2), column(3, 0, 2))
    cut = bordered_tiles(zigzag, axis, max_width=2)
    assert [(t.out, t.read, t.tap, t.taps, t.spans) for t in cut] == [
        (0, 0, 0, 2, ()),
        (2, 2, 0, 3, ((1, 2), (0, 2))),
    ]
    assert bordered_tiles(left, axis, max_width=1) == left
#: Padded layers whose border columns are reached by fewer filter columns than the inside ones:
#: 3x3 padding 1; dilation 2 with two border columns a side; asymmetric padding; stride 2 (the
#: input gradient in residue classes); a row narrower than one tile; float64's 8 lanes.
PADDED = [
    (ConvSpec(input=(2, 16, 5, 23), weight=(32, 16, 3, 3), padding=1, bias=True), "float32"),
    (ConvSpec(input=(1, 16, 6, 25), weight=(32, 16, 3, 3), padding=2, dilation=2), "float32"),
    (ConvSpec(input=(1, 16, 4, 21), weight=(16, 16, 3, 4), padding=((1, 0), (3, 1))), "float32"),
    (ConvSpec(input=(2, 32, 7, 27), weight=(32, 32, 3, 3), stride=2, padding=1), "float32"),
    (ConvSpec(input=(1, 16, 3, 4), weight=(16, 16, 3, 3), padding=1, bias=True), "float32"),
    (ConvSpec(input=(1, 16, 5, 19), weight=(16, 16, 3, 3), padding=1), "float64"),
]


def _forward_columns(spec: ConvSpec) -> list[tuple[int, int, int]]:
    """Per output column of the forward pass, from the convolution's arithmetic alone: its first
    valid filter column, how many there are, and the input column read at the first."""
    (_, width), (_, taps), (_, stride), ((_, _), (left, _)), (_, dilation) = (
        spec.input[2:], spec.weight[2:], spec.stride, spec.padding, spec.dilation)
    columns = []
    for x in range(spec.output[-1]):
        valid = [t for t in range(taps) if 0 <= x * stride - left + t * dilation < width]
        columns.append((valid[0], len(valid), x * stride - left + valid[0] * dilation) if valid else (0, 0, 0))
    return columns


@pytest.mark.parametrize("spec, dtype", PADDED, ids=lambda v: v.describe().split(" →")[0] if isinstance(v, ConvSpec) else v)
def test_border_columns_of_a_padded_layer_share_tiles(spec: ConvSpec, dtype: str) -> None:
    """No output column is a tile of its own next to a wider one: the border columns join their
    neighbours, each pixel with its own filter columns. Every forward tile's pixels take exactly
    the filter columns that the convolution's arithmetic gives them and read where it says; both
    passes cover each output column once; all results match the oracle, also compiled portably."""
    plans = {p.kernel: p for p in lower(spec, dtype).blocked if isinstance(p, ir.Blocked)}
    assert set(plans) == {"forward", "grad_input"}
    for plan in plans.values():
        covered = sorted(tile.out + p * plan.out_pixel for tile in plan.tiles for p in range(tile.width))
        assert covered == list(range(spec.output[-1] if plan.kernel == "forward" else spec.input[-1]))
    forward = plans["forward"]
    assert any(tile.spans for tile in forward.tiles)
    assert not any(tile.width == 1 for tile in forward.tiles) or len(forward.tiles) == 1
    expected = _forward_columns(spec)
    for tile in forward.tiles:
        for p in range(tile.width):
            first, count = tile.spans[p] if tile.spans else (0, tile.taps)
            tap = tile.tap + first * forward.tap_step_w
            read = tile.read + p * forward.read_pixel + first * forward.read_tap_col
            assert (tap, count, read) == expected[tile.out + p], (tile, p)
    check_built(spec, dtype, seed=5)
    check_portable(spec, dtype)


def test_bordered_tiles_recut_runs_that_line_up() -> None:
    """Synthetic tiles of a stride-1 padded row (each column reads one further, each later tap
    one further): a border column, a wide tile and the other border become one run cut into
    nearly equal pieces, pixels keeping their own taps; a tile reading elsewhere, a gap and a
    tile no filter column reaches end the run."""
    from symconv.lower_blocked import Axis, bordered_tiles

    axis = Axis(taps=(), tap_step=1, read_step=1, pixel_step=1, pixel_read=1)
    row = (ir.BlockTile(0, 0, 1, 2, 1), ir.BlockTile(1, 0, 0, 3, 6), ir.BlockTile(7, 6, 0, 2, 1))
    cut = bordered_tiles(row, axis, max_width=4)
    assert [(t.out, t.read, t.tap, t.taps, t.width, t.spans) for t in cut] == [
        (0, -1, 0, 3, 4, ((1, 2), (0, 3), (0, 3), (0, 3))),
        (4, 3, 0, 3, 4, ((0, 3), (0, 3), (0, 3), (0, 2))),
    ]
    inside = bordered_tiles(row, axis, max_width=3)
    assert [(t.out, t.width, t.spans) for t in inside][1] == (3, 3, ())  # uniform pieces stay plain
    broken = (ir.BlockTile(0, 0, 1, 2, 1), ir.BlockTile(1, 5, 0, 3, 2), ir.BlockTile(4, 3, 0, 3, 1),
              ir.BlockTile(5, 0, 0, 0, 1))
    assert bordered_tiles(broken, axis, max_width=4) == broken


def test_weight_gradient_in_several_passes_over_the_batch() -> None:
    """The weight gradient walks the batch a few images at a time, adding each pass to grad_w:
    a layer whose batch takes two passes, the last one shorter, against the oracle."""
    from codegen.render import weight_context

    spec = ConvSpec(input=(6, 16, 40, 40), weight=(32, 16, 3, 3), padding=1, bias=True)
    plan = next(p for p in lower(spec, "float32").blocked if isinstance(p, ir.BlockedWeight))
    chunk = weight_context(plan, "float")["batch_chunk"]
    assert 1 < chunk < spec.input[0] and spec.input[0] % chunk
    check_built(spec, "float32", seed=7)


#: 1x1 layers whose reduced channels the tiles of a row take in turns (more read rows and packed
#: weights than ``CHUNK_BYTES``): forward with 4 vectors per tile in two turns, input gradient
#: in two turns, a strided forward in two turns (its input gradient: empty residue rows). Padded
#: or strided: at stride 1 without padding a 1x1 layer takes the pointwise path instead.
ONE_BY_ONE = [
    ConvSpec(input=(2, 192, 5, 7), weight=(64, 192, 1, 1), padding=(1, 0), bias=True),
    ConvSpec(input=(2, 64, 6, 5), weight=(160, 64, 1, 1), padding=(0, 1)),
    ConvSpec(input=(1, 256, 9, 9), weight=(32, 256, 1, 1), stride=2, bias=True),
]


def _turns(spec: ConvSpec, dtype: str) -> dict[str, int]:
    """Turns per output row of each tiled forward / input-gradient plan."""
    return {
        plan.kernel: plan.reduce // plan.chunk
        for plan in lower(spec, dtype).blocked
        if isinstance(plan, ir.Blocked)
    }


@pytest.mark.parametrize("spec", ONE_BY_ONE, ids=lambda s: s.describe().split(" →")[0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_by_one_layers_take_turns(spec: ConvSpec, dtype: str, monkeypatch) -> None:
    """The turns give what the oracle and PyTorch give, bit for bit what one turn gives, and
    the same bits on one and two threads."""
    from symconv import lower_blocked

    turns = _turns(spec, dtype)
    assert set(turns) == {"forward", "grad_input"}
    assert max(turns.values()) >= 2
    check_built(spec, dtype, seed=5)
    arrays = random_arrays(spec, dtype, 6)
    x, w, g, b = arrays["x"], arrays["w"], arrays["grad_out"], arrays.get("b")
    kernel = run(spec, dtype)
    results = []
    for threads in (1, 2):
        kernel.set_num_threads(threads)
        results.append((kernel.forward(x, w, b), kernel.grad_input(g, w)))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)

    monkeypatch.setattr(lower_blocked, "CHUNK_BYTES", 1 << 30)
    assert set(_turns(spec, dtype).values()) == {1}
    whole = run(spec, dtype)
    np.testing.assert_array_equal(whole.forward(x, w, b), results[0][0])
    np.testing.assert_array_equal(whole.grad_input(g, w), results[0][1])

    torch = pytest.importorskip("torch")
    tw = torch.from_numpy(w)
    assert spec.pad_lo == spec.pad_hi  # symmetric: what PyTorch's padding argument means
    padding = list(spec.pad_lo)
    out = torch.nn.functional.conv2d(torch.from_numpy(x), tw, None if b is None else torch.from_numpy(b),
                                     stride=spec.stride, padding=padding)
    assert_close(results[0][0], out.double().numpy(), dtype, f"forward of {spec.describe()} against PyTorch")
    grad_x = torch.ops.aten.convolution_backward(
        torch.from_numpy(g), torch.from_numpy(x), tw, None, spec.stride, padding, [1, 1], False, [0, 0], 1,
        [True, False, False])[0]
    assert_close(results[0][1], grad_x.double().numpy(), dtype, f"input gradient of {spec.describe()} against PyTorch")


#: Weight-gradient layers whose filter columns share tiles: padding leaves each border column
#: edges (output columns outside the shared range, added one at a time); a small width keeps a
#: column out of its neighbours' tile; dilation with stride splits the columns into two tiles;
#: a width of one leaves two filter columns reaching no output column at all.
SHARED_COLUMNS = [
    ConvSpec(input=(2, 24, 9, 13), weight=(32, 24, 3, 3), padding=1, bias=True),
    ConvSpec(input=(2, 20, 11, 5), weight=(36, 20, 3, 3), padding=1),
    ConvSpec(input=(1, 16, 10, 17), weight=(32, 16, 2, 5), stride=(1, 2), padding=((0, 1), (3, 1)), dilation=(1, 2)),
    ConvSpec(input=(2, 16, 7, 1), weight=(32, 16, 3, 3), stride=(1, 3), padding=1),
    ConvSpec(input=(1, 64, 9, 9), weight=(64, 32, 3, 3), padding=1, groups=2),
]


def _weight_plan(spec: ConvSpec, dtype: str) -> ir.BlockedWeight:
    return next(p for p in lower(spec, dtype).blocked if isinstance(p, ir.BlockedWeight))


def _column_coverage(spec: ConvSpec, plan: ir.BlockedWeight) -> list[list[int]]:
    """Per filter column, the output columns its tile and edges add up, in the plan's terms."""
    covered: list[list[int]] = [[] for _ in range(spec.weight[3])]
    edges = plan.edges or ((0, 0),) * len(covered)
    for tile in plan.tiles:
        for tt in range(tile.width):
            before, after = edges[tile.out + tt]
            covered[tile.out + tt] = list(range(tile.tap - before, tile.tap + tile.taps + after))
    return covered


@pytest.mark.parametrize("spec", SHARED_COLUMNS, ids=lambda s: s.describe().split(" →")[0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weight_tiles_share_filter_columns(spec: ConvSpec, dtype: str) -> None:
    """Each filter column's tile and edges cover exactly the output columns whose input column
    exists (worked out here from the layer's numbers); the kernel agrees with the oracle and
    PyTorch, and gives the same bits on one and two threads."""
    plan = _weight_plan(spec, dtype)
    width, out_w, pad_left = spec.input[3], spec.output[3], spec.padding[1][0]
    stride, dilation = spec.stride[1], spec.dilation[1]
    expected = [
        [j for j in range(out_w) if 0 <= j * stride + t * dilation - pad_left < width]
        for t in range(spec.weight[3])
    ]
    assert _column_coverage(spec, plan) == expected
    assert sorted(tile.out + tt for tile in plan.tiles for tt in range(tile.width)) == list(range(spec.weight[3]))
    check_built(spec, dtype, seed=7)

    arrays = random_arrays(spec, dtype, 8)
    x, g = arrays["x"], arrays["grad_out"]
    kernel = run(spec, dtype)
    results = []
    for threads in (1, 2):
        kernel.set_num_threads(threads)
        results.append(kernel.grad_weight(x, g))
    np.testing.assert_array_equal(results[0], results[1])

    torch = pytest.importorskip("torch")
    padded = np.pad(x, ((0, 0), (0, 0), *spec.padding))  # PyTorch pads both sides alike
    grad_w = torch.ops.aten.convolution_backward(
        torch.from_numpy(g), torch.from_numpy(padded), torch.from_numpy(arrays["w"]), None, spec.stride,
        [0, 0], spec.dilation, False, [0, 0], spec.groups, [False, True, False])[1]
    assert_close(results[0], grad_w.double().numpy(), dtype, f"weight gradient of {spec.describe()} against PyTorch")


def test_weight_tiles_take_the_shared_path() -> None:
    """The layers above exercise what they are meant to: tiles of several filter columns with
    edges, a column kept apart, two tiles of one filter row, columns that reach nothing."""
    plans = [_weight_plan(spec, "float32") for spec in SHARED_COLUMNS]
    assert plans[0].edges and max(tile.width for tile in plans[0].tiles) == 3
    assert [tile.width for tile in plans[1].tiles] == [2, 1]
    assert [tile.width for tile in plans[2].tiles] == [2, 3] and plans[2].edges
    assert [tile.taps for tile in plans[3].tiles] == [0, 1, 0]
    assert plans[4].grouped and plans[4].edges


#: Forward layers whose tiles write back through the 16 x 16 transpose (output pixels next to each
#: other): tiles wider than 16 pixels (two transposes, the second partial), a last vector of
#: lane channels with only 12 real channels, two vectors per tile, 11 x 11 filters with stride 4,
#: groups, and one-pixel border tiles (the scalar write-back) beside them.
TRANSPOSED = [
    ConvSpec(input=(2, 3, 9, 80), weight=(28, 3, 3, 7), stride=(1, 2), bias=True),
    ConvSpec(input=(2, 13, 6, 43), weight=(24, 13, 3, 3), padding=1, bias=True),
    ConvSpec(input=(1, 3, 47, 99), weight=(96, 3, 11, 11), stride=4, bias=True),
    ConvSpec(input=(1, 64, 9, 9), weight=(64, 32, 3, 3), padding=1, groups=2),
]


@pytest.mark.parametrize("spec", TRANSPOSED, ids=lambda s: s.describe().split(" →")[0])
def test_transposed_write_back(spec: ConvSpec) -> None:
    """The forward pass of these layers takes the transposed write-back where AVX-512 is there;
    it agrees with the oracle and PyTorch and gives the same bits on one and two threads."""
    c = render_module(lower(spec, "float32"))
    assert "_forward_put16(" in c.source
    check_built(spec, "float32", seed=11)

    arrays = random_arrays(spec, "float32", 12)
    x, w, b = arrays["x"], arrays["w"], arrays.get("b")
    kernel = run(spec, "float32")
    results = []
    for threads in (1, 2):
        kernel.set_num_threads(threads)
        results.append(kernel.forward(x, w, b))
    np.testing.assert_array_equal(results[0], results[1])

    torch = pytest.importorskip("torch")
    padded = np.pad(x, ((0, 0), (0, 0), *spec.padding))
    out = torch.nn.functional.conv2d(torch.from_numpy(padded), torch.from_numpy(w),
                                     None if b is None else torch.from_numpy(b),
                                     stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    assert_close(results[0], out.double().numpy(), "float32", f"forward of {spec.describe()} against PyTorch")


#: With AVX2's tiles also: one vector of 8 or 7 lane channels, tiles of 9-11 pixels (a whole
#: transpose of 8 pixels, then one of 1-3).
TRANSPOSED_AVX2 = TRANSPOSED + [
    ConvSpec(input=(2, 5, 7, 30), weight=(8, 5, 3, 3), bias=True),
    ConvSpec(input=(2, 5, 7, 31), weight=(7, 5, 3, 3), padding=1),
]


@needs_avx2
@pytest.mark.parametrize("spec", TRANSPOSED_AVX2, ids=lambda s: s.describe().split(" →")[0])
def test_transposed_write_back_avx2(spec: ConvSpec) -> None:
    """AVX2's tiles write back through an 8 x 8 transpose where AVX is enabled (8 lane channels
    of a tile, its pixels stored 8, or 4, 2 and 1 at a time): built with -mavx2 -mfma, against
    the oracle."""
    c = render_module(lower(spec, "float32", target=AVX2))
    assert "_forward_put8(" in c.source
    check_portable(spec, "float32", AVX2, flags=("-mavx2", "-mfma"))
