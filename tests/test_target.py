"""Targets: which CPU's tile sizes a layer gets, and that every target's tiles fit its registers
and compute the right numbers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen import ir
from symconv import ConvSpec
from symconv.lower import lower
from symconv.target import AVX2, AVX512, DEFAULT, TARGETS, target_for, target_named
from tests.test_blocked import FIXED, check_built, check_portable, tiled_specs
from tests.test_render_c import CC


def listing(**options: bool) -> str:
    """A ``-Q --help=target`` listing with these options (``avx512f=True`` → ``-mavx512f``)."""
    return "The following options are target specific:\n" + "".join(
        f"  -m{name:<28}\t\t[{'enabled' if on else 'disabled'}]\n" for name, on in options.items()
    )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"avx": True, "avx2": True, "fma": True, "avx512f": True}, AVX512),
        ({"avx": True, "avx2": True, "fma": True, "avx512f": False}, AVX2),
        ({"avx": True, "avx2": False, "fma": False, "avx512f": False}, AVX2),
        ({"sse2": True, "avx": False, "avx512f": False}, DEFAULT),
        ({}, DEFAULT),
    ],
)
def test_target_follows_the_compiler_listing(options: dict[str, bool], expected) -> None:
    assert target_for(listing(**options)) is expected


def test_target_of_this_machine_agrees_with_cpuinfo() -> None:
    """The compiler's view of -march=native against the kernel's list of CPU flags."""
    from codegen.build import toolchain
    from symconv.pipeline import native_target

    if not toolchain().target:
        pytest.skip("the compiler cannot describe -march=native")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next(line for line in f if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        pytest.skip("no x86 /proc/cpuinfo")
    expected = AVX512 if "avx512f" in flags else AVX2 if "avx" in flags else DEFAULT
    assert native_target() is expected


def test_unknown_target_names_are_refused() -> None:
    assert target_named("avx2") is AVX2
    with pytest.raises(ValueError, match="target must be one of avx512, avx2, but got 'sse'"):
        target_named("sse")


def test_layer_records_are_kept_per_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """C rendered for one CPU's tiles is never taken from the cache for another's."""
    from symconv import pipeline

    spec = ConvSpec(input=(2, 16, 8, 8), weight=(16, 16, 3, 3))
    keys = set()
    for target in TARGETS.values():
        monkeypatch.setattr(pipeline, "native_target", lambda target=target: target)
        keys.add(pipeline._layer_key(spec, "float32"))
    assert len(keys) == len(TARGETS)


def tile_sums(plan: ir.Plan) -> int:
    """Accumulator vectors of a plan's largest register tile."""
    if isinstance(plan, ir.Blocked):
        return max(tile.width for tile in plan.tiles) * plan.pair
    if isinstance(plan, ir.BlockedWeight):
        return max(count * width for count, width in plan.shapes) * plan.pair
    if isinstance(plan, (ir.BlockedReduce, ir.BlockedBatch)):
        return max(tile.width for tile in plan.tiles) * plan.channels
    if isinstance(plan, ir.RowVector):
        return max(tile.count * len(tile.starts) for tile in plan.tiles)
    if isinstance(plan, ir.RowWeight):
        return max(count for _, count in plan.k_tiles) * plan.taps_w * max(map(len, plan.start_groups))
    return max(rows for rows, _ in plan.row_tiles) * plan.vectors  # Pointwise


#: Layers of every plan: channel lanes (3x3, 5x5, 11x11 strided, 1x1), summed lanes, batch
#: lanes, column lanes.
PLANNED = [
    *FIXED,
    ConvSpec(input=(4, 3, 40, 40), weight=(32, 3, 11, 11), stride=4),
    ConvSpec(input=(2, 64, 14, 14), weight=(32, 64, 1, 1)),
    ConvSpec(input=(2, 3, 16, 16), weight=(32, 3, 3, 3), padding=1),
    ConvSpec(input=(64, 6, 14, 14), weight=(16, 6, 5, 5)),
    ConvSpec(input=(4, 1, 28, 28), weight=(6, 1, 5, 5)),
]


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
@pytest.mark.parametrize("spec", PLANNED, ids=[spec.describe() for spec in PLANNED])
def test_tiles_fit_the_registers(spec: ConvSpec, target) -> None:
    """Every tile's sums, the broadcast element and one loaded vector fit the register file, and
    every vector is one register of the target."""
    module = lower(spec, "float32", target=target)
    assert module.blocked, f"{spec.describe()} took no fast path"
    for plan in module.blocked:
        if not isinstance(plan, (ir.RowVector, ir.RowWeight)):  # rows narrower than a vector use fewer lanes
            assert plan.lanes == target.lanes(4), plan
        assert tile_sums(plan) + 2 <= target.registers, (type(plan).__name__, tile_sums(plan))


def test_tile_sizes_differ_by_target() -> None:
    """The targets are not one table under two names: ResNet's 3x3 layer gets 16-lane tiles of up
    to 20 sums with AVX-512 and 8-lane tiles of up to 12 with AVX2."""
    spec = ConvSpec(input=(8, 64, 56, 56), weight=(64, 64, 3, 3), padding=1)
    found = {
        name: next(p for p in lower(spec, "float32", target=target).blocked if isinstance(p, ir.Blocked))
        for name, target in TARGETS.items()
    }
    assert (found["avx512"].lanes, tile_sums(found["avx512"])) == (16, 20)
    assert found["avx2"].lanes == 8 and tile_sums(found["avx2"]) <= AVX2.tile_vectors < 20


@pytest.mark.skipif(CC is None, reason="no C compiler")
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=tiled_specs(), dtype=st.sampled_from(["float32", "float64"]), target=st.sampled_from(list(TARGETS.values())))
def test_every_target_matches_the_oracle(spec: ConvSpec, dtype: str, target) -> None:
    """Whatever CPU runs the tests, the C of every target is built (portable flags) and checked."""
    check_portable(spec, dtype, target)


#: Layers whose AVX2 tiles take turns on chunks of the summed channels: narrow tiles at the
#: border of a padded row (a 7-column row as 4 + 3 pixels), a strided, dilated, ragged one.
CHUNKED = [
    ConvSpec(input=(2, 64, 9, 7), weight=(16, 64, 3, 3), padding=1, bias=True),
    ConvSpec(input=(1, 96, 10, 23), weight=(24, 96, 3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1)),
]


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", CHUNKED, ids=[spec.describe() for spec in CHUNKED])
def test_chunked_tiles_match_the_oracle(spec: ConvSpec, dtype: str) -> None:
    chunks = [plan.chunk for plan in lower(spec, dtype, target=AVX2).blocked if isinstance(plan, ir.Blocked)]
    assert chunks and all(0 < chunk < spec.weight[1] for chunk in chunks[:1]), chunks
    for target in TARGETS.values():
        check_portable(spec, dtype, target)
    check_built(spec, dtype)  # this CPU's tiles, its compiler flags
