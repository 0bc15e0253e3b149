"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

from symconv import ConvSpec


@st.composite
def small_specs(draw, max_rank: int = 3, max_terms: int = 400) -> ConvSpec:
    """Random valid layers: rank 1-3, stride, asymmetric padding, dilation, groups, bias.

    Sizes are small so the element-wise derivation stays quick.
    """
    rank = draw(st.integers(1, max_rank))
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(1, 2))
    kg = draw(st.integers(1, 2))
    batch = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(rank))
    spatial = []
    for k, d, (lo, hi) in zip(kernel, dilation, padding):
        reach = d * (k - 1) + 1
        spatial.append(draw(st.integers(max(1, reach - lo - hi), reach + 3)))
    spec = ConvSpec(
        input=(batch, cg * groups, *spatial),
        weight=(kg * groups, cg, *kernel),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
    )
    if rank == 3 or spec.macs() > max_terms:
        # keep the element-wise work bounded: shrink to one batch item, one group
        spec = ConvSpec(
            input=(1, cg, *spatial), weight=(kg, cg, *kernel), stride=stride,
            padding=padding, dilation=dilation, bias=spec.bias,
        )
    return spec
