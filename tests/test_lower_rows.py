"""The row-vectorised kernels (output columns in the vector lanes: ``symconv.lower_blocked.
plan_rows`` and ``plan_rows_weight``) against the numpy oracle and PyTorch.

They serve layers with too few channels for channel lanes: LeNet's C1 (forward and weight
gradient) and depthwise layers (every pass, padding as border columns and per-row tap ranges).
Layers are drawn so that the path is taken: rows whose width is a multiple of the vector and
rows that end with an overlapping vector, widths below one AVX-512 vector (narrower vectors,
at least four lanes), strides along the height and dilations, several input channels, 1-5
output channels (fewer than three quarters of a float64 vector: more would take the channel
lanes), one group or one per input channel. Each is compiled for this machine and portably
(``-O2``, ``-Wall -Wextra -Werror``, no ``-march``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen import ir
from symconv import ConvSpec
from symconv.lower import lower
from symconv.pipeline import run
from tests.test_blocked import check_built, check_portable
from tests.test_render_c import CC, assert_close, random_arrays, reference_outputs

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")


def row_plans(spec: ConvSpec, dtype: str) -> dict[str, object]:
    return {plan.kernel: plan for plan in lower(spec, dtype).blocked}


@st.composite
def row_specs(draw) -> ConvSpec:
    """Unpadded 2-D layers with few output channels and rows of at least four output columns."""
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride_h = draw(st.integers(1, 3))
    if kernel == (1, 1) and stride_h == 1:
        kernel = (1, 2)  # a 1x1 filter at stride 1 takes the pointwise path
    out_h, out_w = draw(st.integers(1, 6)), draw(st.integers(4, 40))
    height = (out_h - 1) * stride_h + dilation[0] * (kernel[0] - 1) + 1
    width = out_w - 1 + dilation[1] * (kernel[1] - 1) + 1
    in_channels = draw(st.integers(1, 4))
    return ConvSpec(
        input=(draw(st.integers(1, 3)), in_channels, height, width),
        weight=(draw(st.integers(1, 5)), in_channels, *kernel),
        stride=(stride_h, 1),
        dilation=dilation,
        bias=draw(st.booleans()),
    )


def check_pytorch(spec: ConvSpec, dtype: str, seed: int = 5) -> None:
    """Every pass of the normal build against PyTorch (float64 autograd) on the same arrays
    (padding, which may differ per side here, is applied to x with ``F.pad`` first)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    kernel = run(spec, dtype)
    arrays = random_arrays(spec, dtype, seed)
    x = torch.tensor(arrays["x"].astype(np.float64), requires_grad=True)
    w = torch.tensor(arrays["w"].astype(np.float64), requires_grad=True)
    b = torch.tensor(arrays["b"].astype(np.float64)) if "b" in arrays else None
    (top, bottom), (left, right) = zip(spec.pad_lo, spec.pad_hi)
    padded = F.pad(x, (left, right, top, bottom))
    out = F.conv2d(padded, w, b, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    out.backward(torch.tensor(arrays["grad_out"].astype(np.float64)))
    got = {
        "out": kernel.forward(arrays["x"], arrays["w"], arrays.get("b")),
        "grad_x": kernel.grad_input(arrays["grad_out"], arrays["w"]),
        "grad_w": kernel.grad_weight(arrays["x"], arrays["grad_out"]),
    }
    for key, tensor in (("out", out), ("grad_x", x.grad), ("grad_w", w.grad)):
        assert_close(got[key], tensor.detach().numpy(), dtype, f"{key} of {spec.describe()} ({dtype}) vs PyTorch")


@st.composite
def bordered_specs(draw) -> ConvSpec:
    """Layers with padding and groups where the forward pass and the gradients take the row
    path: any filter height, vertical stride, dilation and padding (per-row tap ranges);
    filter width 3 with one column of padding on each side (two border columns), rows of at
    least 34 columns (three float32 vectors or more); one group, or one per input channel."""
    kernel_h = draw(st.integers(1, 4))
    dilation_h, stride_h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    pad_h = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    reach = dilation_h * (kernel_h - 1) + 1
    height = draw(st.integers(max(1, reach - sum(pad_h)), reach + 6))
    width = draw(st.integers(34, 50))
    in_channels = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    groups = in_channels if depthwise else 1
    out_channels = in_channels * draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 4))
    return ConvSpec(
        input=(draw(st.integers(1, 2)), in_channels, height, width),
        weight=(out_channels, in_channels // groups, kernel_h, 3),
        stride=(stride_h, 1),
        padding=(pad_h, (1, 1)),
        dilation=(dilation_h, 1),
        groups=groups,
        bias=draw(st.booleans()),
    )


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=bordered_specs(), dtype=st.sampled_from(["float32", "float64"]))
def test_row_kernels_with_borders_and_groups(spec: ConvSpec, dtype: str) -> None:
    plans = row_plans(spec, dtype)
    assert isinstance(plans.get("forward"), ir.RowVector), spec.describe()
    assert isinstance(plans.get("grad_weight"), ir.RowWeight), spec.describe()
    if spec.groups > 1 or spec.input[1] == 1:  # several input channels take plan_reduce's lanes
        assert isinstance(plans.get("grad_input"), ir.RowVector), spec.describe()
    check_built(spec, dtype)
    check_pytorch(spec, dtype)


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=row_specs(), dtype=st.sampled_from(["float32", "float64"]))
def test_row_kernels_match_the_oracle_and_pytorch(spec: ConvSpec, dtype: str) -> None:
    plans = row_plans(spec, dtype)
    assert isinstance(plans.get("forward"), ir.RowVector), spec.describe()
    assert isinstance(plans.get("grad_weight"), ir.RowWeight), spec.describe()
    check_built(spec, dtype)
    check_pytorch(spec, dtype)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.one_of(row_specs(), bordered_specs()), dtype=st.sampled_from(["float32", "float64"]))
def test_row_kernels_compile_portably(spec: ConvSpec, dtype: str) -> None:
    check_portable(spec, dtype)


#: Layers that take the row path on the forward and weight passes, for the sanitised run.
FIXED = [
    ConvSpec(input=(3, 1, 28, 28), weight=(5, 1, 5, 5), bias=True),  # 24 columns: 0..15 and 8..23
    ConvSpec(input=(2, 3, 11, 37), weight=(5, 3, 3, 2), stride=(2, 1), dilation=(1, 2)),
    ConvSpec(input=(1, 2, 6, 9), weight=(1, 2, 2, 3), bias=True),  # 7 columns: vectors of 4
    # depthwise, padded: per-row tap ranges and border columns (every pass)
    ConvSpec(input=(2, 4, 9, 37), weight=(4, 1, 3, 3), padding=1, groups=4, bias=True),
]


@pytest.mark.parametrize("spec", FIXED, ids=lambda s: s.describe().split(" →")[0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fixed_layers_take_the_row_path(spec: ConvSpec, dtype: str) -> None:
    plans = row_plans(spec, dtype)
    assert isinstance(plans["forward"], ir.RowVector)
    assert isinstance(plans["grad_weight"], ir.RowWeight)
    if spec.groups > 1:
        assert isinstance(plans["grad_input"], ir.RowVector)
    check_built(spec, dtype, seed=2)
    check_pytorch(spec, dtype)


def test_overlapping_lanes_are_added_once() -> None:
    """A value in the columns two vectors of a row share reaches dL/dW once: an infinity there
    gives ±Inf (not NaN from Inf - Inf, nor a doubled finite term), as in the oracle."""
    spec = ConvSpec(input=(1, 1, 6, 28), weight=(2, 1, 3, 5))  # 24 output columns: 0..15, 8..23
    kernel = run(spec, "float64")
    arrays = random_arrays(spec, "float64", 4)
    x, g = arrays["x"], arrays["grad_out"]
    g[0, 0, 2, 12] = 1e300  # a column both vectors hold
    expected = reference_outputs(spec, {**arrays, "grad_out": g})["grad_w"]
    got = kernel.grad_weight(x, g)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    g[0, 0, 2, 12] = np.inf
    got = kernel.grad_weight(x, g)
    assert np.array_equal(np.isposinf(got), np.isposinf(reference_outputs(spec, {**arrays, "grad_out": g})["grad_w"]))


def test_where_the_row_path_does_not_apply() -> None:
    """More border columns than interior vectors (LeNet C1's input gradient: 8 against 2), a
    stride along the row, rows narrower than four columns, and layers with channels enough for
    channel lanes keep their other kernels."""
    lenet_c1 = ConvSpec(input=(4, 1, 28, 28), weight=(6, 1, 5, 5))
    assert not isinstance(row_plans(lenet_c1, "float32").get("grad_input"), ir.RowVector)
    for spec in (
        ConvSpec(input=(1, 1, 12, 12), weight=(6, 1, 5, 5), padding=1),
        ConvSpec(input=(1, 1, 12, 12), weight=(6, 1, 5, 5), stride=(1, 2)),
        ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)),
        ConvSpec(input=(1, 1, 12, 12), weight=(32, 1, 3, 3)),
    ):
        plans = row_plans(spec, "float32")
        assert not isinstance(plans.get("forward"), ir.RowVector), spec.describe()
        assert not isinstance(plans.get("grad_weight"), ir.RowWeight), spec.describe()
