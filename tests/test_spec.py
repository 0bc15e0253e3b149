"""ConvSpec: output shapes against an independent count and against PyTorch; bad input is refused.

The expected output size is never computed with the floor formula of ``symconv.spec``: it is
counted window by window (how many placements of the dilated kernel fit in the padded input),
and cross-checked with the shapes PyTorch produces on zero tensors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from symconv import ConvSpec, derive

from .reference import conv_forward

# -- independent arithmetic --------------------------------------------------------------------


def count_windows(size: int, lo: int, hi: int, kernel: int, stride: int, dilation: int) -> int:
    """How many kernel placements (start = 0, s, 2s, ...) fit entirely in the padded input."""
    padded = size + lo + hi
    extent = dilation * (kernel - 1) + 1
    return sum(1 for start in range(0, padded, stride) if start + extent <= padded)


def expected_output(kwargs: dict[str, Any], padding: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """Output shape from window counting, for a given normalised padding."""
    x, w = kwargs["input"], kwargs["weight"]
    rank = len(x) - 2
    stride = per_axis(kwargs.get("stride", 1), rank)
    dilation = per_axis(kwargs.get("dilation", 1), rank)
    sizes = tuple(
        count_windows(n, lo, hi, k, s, d)
        for n, (lo, hi), k, s, d in zip(x[2:], padding, w[2:], stride, dilation)
    )
    return (x[0], w[0], *sizes)


def per_axis(value: Any, rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def explicit_pairs(padding: Any, rank: int) -> tuple[tuple[int, int], ...]:
    """The (lo, hi) pairs an explicit int / per-axis / pair padding stands for."""
    if padding == "valid":
        return ((0, 0),) * rank
    entries = per_axis(padding, rank)
    return tuple((e, e) if isinstance(e, int) else (e[0], e[1]) for e in entries)


# -- strategies --------------------------------------------------------------------------------


@st.composite
def spec_arguments(draw, allow_same: bool = True) -> dict[str, Any]:
    """Keyword arguments of a valid ConvSpec, in every spelling the constructor accepts."""
    rank = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 4)) for _ in range(rank)]
    stride = [draw(st.integers(1, 4)) for _ in range(rank)]
    dilation = [draw(st.integers(1, 3)) for _ in range(rank)]
    kinds = ["int", "axes", "pairs", "valid"] + (["same"] if allow_same else [])
    kind = draw(st.sampled_from(kinds))
    pad = st.integers(0, 3)
    padding: Any
    if kind == "int":
        padding = draw(pad)
    elif kind == "axes":
        padding = tuple(draw(pad) for _ in range(rank))
    elif kind == "pairs":
        padding = tuple((draw(pad), draw(pad)) for _ in range(rank))
    else:
        padding = kind
    lows = [0] * rank if kind in ("same", "valid") else [lo + hi for lo, hi in explicit_pairs(padding, rank)]
    spatial = []
    for k, d, both in zip(kernel, dilation, lows):
        extent = d * (k - 1) + 1
        smallest = 1 if kind == "same" else max(1, extent - both)
        spatial.append(draw(st.integers(smallest, smallest + 7)))
    scalar = draw(st.booleans())  # spell uniform stride/dilation as one int sometimes

    def spell(values: list[int]) -> Any:
        return values[0] if scalar and len(set(values)) == 1 else tuple(values)

    return {
        "input": (draw(st.integers(0, 2)), cg * groups, *spatial),
        "weight": (kg * groups, cg, *kernel),
        "stride": spell(stride),
        "padding": padding,
        "dilation": spell(dilation),
        "groups": groups,
        "bias": draw(st.booleans()),
    }


# -- output shape ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(kwargs=spec_arguments(allow_same=False))
def test_output_shape_matches_window_count(kwargs):
    spec = ConvSpec(**kwargs)
    rank = len(kwargs["input"]) - 2
    pairs = explicit_pairs(kwargs["padding"], rank)
    assert spec.padding == pairs
    assert spec.output == expected_output(kwargs, pairs)
    assert spec.out_spatial == spec.output[2:]
    assert all(o >= 1 for o in spec.out_spatial)


@settings(max_examples=200, deadline=None)
@given(kwargs=spec_arguments())
def test_normalised_fields(kwargs):
    spec = ConvSpec(**kwargs)
    rank = len(kwargs["input"]) - 2
    assert spec.rank == rank
    assert spec.input == tuple(kwargs["input"]) and spec.weight == tuple(kwargs["weight"])
    assert spec.stride == per_axis(kwargs["stride"], rank)
    assert spec.dilation == per_axis(kwargs["dilation"], rank)
    assert len(spec.padding) == rank and all(len(p) == 2 for p in spec.padding)
    assert spec.pad_lo == tuple(p[0] for p in spec.padding)
    assert spec.pad_hi == tuple(p[1] for p in spec.padding)
    assert (spec.batch, spec.in_channels) == tuple(kwargs["input"][:2])
    assert spec.out_channels == kwargs["weight"][0]
    assert spec.in_per_group * spec.groups == spec.in_channels
    assert spec.out_per_group * spec.groups == spec.out_channels
    assert spec.spatial == tuple(kwargs["input"][2:]) and spec.kernel == tuple(kwargs["weight"][2:])
    assert spec.bias_shape == (kwargs["weight"][0],)


@settings(max_examples=100, deadline=None)
@given(kwargs=spec_arguments())
def test_to_dict_round_trips_through_json(kwargs):
    spec = ConvSpec(**kwargs)
    data = json.loads(json.dumps(spec.to_dict()))
    again = ConvSpec(**data)
    assert again == spec and hash(again) == hash(spec)


@settings(max_examples=100, deadline=None)
@given(kwargs=spec_arguments())
def test_macs_counts_every_output_channel_tap_triple(kwargs):
    spec = ConvSpec(**kwargs)
    per_output = spec.in_per_group * math.prod(spec.kernel)
    assert spec.macs() == math.prod(spec.output) * per_output


# -- "same" padding ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(kwargs=spec_arguments())
def test_same_padding_gives_ceil_of_input_over_stride(kwargs):
    kwargs = {**kwargs, "padding": "same"}
    spec = ConvSpec(**kwargs)
    for n, s, k, d, (lo, hi) in zip(spec.spatial, spec.stride, spec.kernel, spec.dilation, spec.padding):
        want = -(-n // s)
        assert count_windows(n, lo, hi, k, s, d) == want
        # the odd pixel goes to the high side, as in PyTorch and TensorFlow
        assert hi - lo in (0, 1)
        # and the padding is the least that gives that many outputs
        if lo + hi > 0:
            fewer = lo + hi - 1
            assert count_windows(n, fewer // 2, fewer - fewer // 2, k, s, d) < want
    assert spec.output == expected_output(kwargs, spec.padding)


def test_same_padding_examples():
    # stride 1, 3x3: one on each side; even kernel: the extra pixel at the end
    assert ConvSpec(input=(1, 1, 5, 5), weight=(1, 1, 3, 3), padding="same").padding == ((1, 1), (1, 1))
    assert ConvSpec(input=(1, 1, 5, 5), weight=(1, 1, 2, 4), padding="same").padding == ((0, 1), (1, 2))
    # stride 2 on 5: 3 outputs need (3-1)*2 + 3 = 7 padded rows, so 2 rows of padding
    spec = ConvSpec(input=(1, 1, 5), weight=(1, 1, 3), stride=2, padding="same")
    assert spec.padding == ((1, 1),) and spec.output == (1, 1, 3)
    # stride 2 on 6: 3 outputs need 7 rows, one extra at the end
    spec = ConvSpec(input=(1, 1, 6), weight=(1, 1, 3), stride=2, padding="same")
    assert spec.padding == ((0, 1),) and spec.output == (1, 1, 3)
    # a 1-tap kernel with a large stride needs no padding at all
    spec = ConvSpec(input=(1, 1, 7), weight=(1, 1, 1), stride=3, padding="same")
    assert spec.padding == ((0, 0),) and spec.output == (1, 1, 3)


def test_valid_padding_is_zero():
    spec = ConvSpec(input=(2, 3, 7, 6), weight=(4, 3, 3, 2), padding="valid", stride=(2, 1))
    assert spec.padding == ((0, 0), (0, 0))
    assert spec.output == (2, 4, 3, 5)


def test_lecture_layer():
    spec = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
    assert spec.output == (1, 1, 2, 2)
    assert spec.describe() == "X 1×1×3×3 ⋆ W 1×1×2×2, stride 1, no padding → O 1×1×2×2"


def test_describe_mentions_every_hyper_parameter():
    spec = ConvSpec(
        # output rows: (9 + 1 - 5) // 2 + 1 = 3
        input=(1, 4, 9, 9), weight=(6, 2, 3, 3), stride=2, padding=((1, 0), (1, 0)), dilation=2,
        groups=2, bias=True,
    )
    line = spec.describe()
    for part in ("stride 2", "padding ((1, 0), (1, 0))", "dilation 2", "groups 2", "bias", "→ O 1×6×3×3"):
        assert part in line


def test_spec_is_frozen_and_compares_by_value():
    a = ConvSpec(input=(1, 1, 4, 4), weight=(1, 1, 3, 3), padding=1)
    b = ConvSpec(input=[1, 1, 4, 4], weight=[1, 1, 3, 3], stride=(1, 1), padding=((1, 1), (1, 1)))
    assert a == b and hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.stride = (2, 2)  # type: ignore[misc]


def test_numpy_integers_are_accepted_and_normalised():
    spec = ConvSpec(
        input=tuple(np.int64(v) for v in (1, 2, 5, 5)), weight=(np.int32(2), 1, 3, 3),
        stride=np.int64(2), padding=(np.int64(1), (0, np.int8(1))), groups=np.int64(2),
    )
    assert spec.output == (1, 2, 3, 2)  # (5 + 2 - 3) // 2 + 1 and (5 + 1 - 3) // 2 + 1
    assert all(type(v) is int for v in spec.input + spec.weight + spec.stride)
    assert all(type(v) is int for pair in spec.padding for v in pair)
    assert type(spec.groups) is int


# -- PyTorch as a second reference ---------------------------------------------------------------


def torch_output_shape(spec: ConvSpec, torch_padding: Any = None) -> tuple[int, ...]:
    """Shape of PyTorch's convolution of zero tensors (asymmetric padding via F.pad)."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    conv = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[spec.rank]
    x = torch.zeros(spec.input, dtype=torch.float64)
    w = torch.zeros(spec.weight, dtype=torch.float64)
    if torch_padding is None:
        # F.pad takes the last axis first
        x = functional.pad(x, [p for pair in reversed(spec.padding) for p in pair])
        torch_padding = 0
    with torch.no_grad():
        out = conv(x, w, stride=spec.stride, padding=torch_padding, dilation=spec.dilation, groups=spec.groups)
    return tuple(out.shape)


@settings(max_examples=100, deadline=None)
@given(kwargs=spec_arguments())
def test_output_shape_matches_pytorch(kwargs):
    spec = ConvSpec(**kwargs)
    assert spec.output == torch_output_shape(spec)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=50, deadline=None)
@given(kwargs=spec_arguments())
def test_same_padding_with_stride_one_matches_pytorch_same(kwargs):
    torch = pytest.importorskip("torch")
    kwargs = {**kwargs, "padding": "same", "stride": 1}
    spec = ConvSpec(**kwargs)
    assert spec.output == torch_output_shape(spec, torch_padding="same")
    assert spec.out_spatial == spec.spatial
    # the placement of the odd pixel matters for the values, not only for the shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal(spec.input)
    w = rng.standard_normal(spec.weight)
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}
    want = conv[spec.rank](
        torch.from_numpy(x), torch.from_numpy(w), padding="same", dilation=spec.dilation, groups=spec.groups
    ).numpy()
    got = conv_forward(x, w, None, spec.stride, spec.padding, spec.dilation, spec.groups)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_pytorch_refuses_strided_same_but_spec_follows_tensorflow():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        torch.nn.functional.conv1d(torch.zeros(1, 1, 6), torch.zeros(1, 1, 3), stride=2, padding="same")
    assert ConvSpec(input=(1, 1, 6), weight=(1, 1, 3), stride=2, padding="same").output == (1, 1, 3)


@st.composite
def raw_arguments(draw) -> dict[str, Any]:
    """Positive int arguments that may or may not make a valid layer."""
    rank = draw(st.integers(1, 2))
    return {
        "input": (1, draw(st.integers(1, 4)), *(draw(st.integers(1, 5)) for _ in range(rank))),
        "weight": (draw(st.integers(1, 4)), draw(st.integers(1, 4)), *(draw(st.integers(1, 5)) for _ in range(rank))),
        "stride": draw(st.integers(1, 3)),
        "padding": draw(st.integers(0, 2)),
        "dilation": draw(st.integers(1, 2)),
        "groups": draw(st.integers(1, 3)),
    }


@settings(max_examples=200, deadline=None)
@given(kwargs=raw_arguments())
def test_accepts_exactly_what_pytorch_accepts(kwargs):
    torch = pytest.importorskip("torch")
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[len(kwargs["input"]) - 2]
    try:
        with torch.no_grad():
            shape = tuple(
                conv(
                    torch.zeros(kwargs["input"]), torch.zeros(kwargs["weight"]), stride=kwargs["stride"],
                    padding=kwargs["padding"], dilation=kwargs["dilation"], groups=kwargs["groups"],
                ).shape
            )
    except RuntimeError:
        shape = None
    if shape is None:
        with pytest.raises(ValueError):
            ConvSpec(**kwargs)
    else:
        assert ConvSpec(**kwargs).output == shape


# -- bad input ----------------------------------------------------------------------------------

OK = {"input": (1, 4, 5, 5), "weight": (6, 2, 3, 3), "groups": 2}

BAD: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    # wrong number of dimensions
    ("input 2-d", {"input": (3, 3)}, ValueError, r"input must have 3 to 5 dimensions .*but got 2"),
    ("input 6-d", {"input": (1, 4, 2, 2, 2, 2)}, ValueError, r"input must have 3 to 5 dimensions .*but got 6"),
    ("weight 2-d", {"weight": (6, 2)}, ValueError, r"weight must have 3 to 5 dimensions .*but got 2"),
    (
        "mismatched ranks", {"weight": (6, 2, 3)}, ValueError,
        r"input and weight must have the same number of dimensions, but got 4 .* and 3",
    ),
    # shapes that are not tuples of ints
    ("input string", {"input": "1455"}, TypeError, r"input must be a tuple of ints, but got '1455'"),
    ("input None", {"input": None}, TypeError, r"input must be a tuple of ints, but got None"),
    ("input float", {"input": (1, 4, 5.0, 5)}, TypeError, r"input must contain only ints, but got \(1, 4, 5\.0, 5\)"),
    ("input bool", {"input": (1, 4, True, 5)}, TypeError, r"input must contain only ints, but got \(1, 4, True, 5\)"),
    ("weight float", {"weight": (6.0, 2, 3, 3)}, TypeError,
        r"weight must contain only ints, but got \(6\.0, 2, 3, 3\)"),
    # non-positive sizes
    ("zero channels", {"input": (1, 0, 5, 5)}, ValueError,
        r"input dimensions must be positive, but got \(1, 0, 5, 5\)"),
    ("negative batch", {"input": (-1, 4, 5, 5)}, ValueError,
        r"input dimensions must be positive, but got \(-1, 4, 5, 5\)"),
    ("zero kernel", {"weight": (6, 2, 0, 3)}, ValueError,
        r"weight dimensions must be positive, but got \(6, 2, 0, 3\)"),
    ("no filters", {"weight": (0, 2, 3, 3)}, ValueError,
        r"weight must have at least one output channel, but got \(0, 2, 3, 3\)"),
    # stride and dilation
    ("stride zero", {"stride": 0}, ValueError, r"stride must be >= 1 on every axis, but got 0"),
    ("stride negative", {"stride": (1, -2)}, ValueError, r"stride must be >= 1 on every axis, but got \(1, -2\)"),
    ("stride float", {"stride": 2.0}, TypeError, r"stride must be an int or a tuple of 2 ints, but got 2\.0"),
    ("stride bool", {"stride": True}, TypeError, r"stride must be an int or a tuple of 2 ints, but got True"),
    ("stride string", {"stride": "2"}, TypeError, r"stride must be an int or a tuple of 2 ints, but got '2'"),
    ("stride length", {"stride": (1, 1, 1)}, ValueError,
        r"stride must have one entry per spatial axis \(2\), but got \(1, 1, 1\)"),
    ("dilation zero", {"dilation": 0}, ValueError, r"dilation must be >= 1 on every axis, but got 0"),
    ("dilation negative", {"dilation": (-1, 1)}, ValueError, r"dilation must be >= 1 on every axis, but got \(-1, 1\)"),
    ("dilation bool", {"dilation": (1, True)}, TypeError,
        r"dilation must be an int or a tuple of 2 ints, but got \(1, True\)"),
    ("dilation length", {"dilation": (2,)}, ValueError,
        r"dilation must have one entry per spatial axis \(2\), but got \(2,\)"),
    # padding
    ("padding negative", {"padding": -1}, ValueError, r"padding must be >= 0, but got"),
    ("padding negative hi", {"padding": ((0, -1), (0, 0))}, ValueError,
        r"padding must be >= 0, but got \(\(0, -1\), \(0, 0\)\)"),
    ("padding triple", {"padding": ((1, 2, 3), (0, 0))}, TypeError,
        r"padding entries must be ints or \(lo, hi\) pairs of ints, but got"),
    ("padding single", {"padding": ((1,), (0, 0))}, TypeError,
        r"padding entries must be ints or \(lo, hi\) pairs of ints, but got"),
    ("padding str in pair", {"padding": ((1, "a"), (0, 0))}, TypeError,
        r"padding entries must be ints or \(lo, hi\) pairs"),
    ("padding float entry", {"padding": (1.5, 1)}, TypeError,
        r"padding entries must be ints or \(lo, hi\) pairs of ints, but got \(1\.5, 1\)"),
    ("padding bool entry", {"padding": (True, 0)}, TypeError,
        r"padding entries must be ints or \(lo, hi\) pairs of ints, but got \(True, 0\)"),
    ("padding axes", {"padding": (1, 1, 1)}, ValueError,
        r"padding must be an int, 2 ints, or 2 \(lo, hi\) pairs, but got \(1, 1, 1\)"),
    ("padding SAME", {"padding": "SAME"}, ValueError,
        r"padding must be an int, a tuple, \"valid\" or \"same\", but got 'SAME'"),
    ("padding full", {"padding": "full"}, ValueError, r"padding must be .*\"valid\" or \"same\", but got 'full'"),
    # groups
    ("groups in", {"input": (1, 3, 5, 5), "weight": (6, 1, 3, 3), "groups": 2}, ValueError,
        r"groups must divide in_channels, but got 2 and 3"),
    ("groups out", {"weight": (5, 2, 3, 3)}, ValueError, r"groups must divide out_channels, but got 2 and 5"),
    ("groups zero", {"groups": 0}, ValueError, r"groups must be >= 1, but got 0"),
    ("groups float", {"groups": 2.0}, TypeError, r"groups must be an int, but got 2\.0"),
    ("groups bool", {"groups": True}, TypeError, r"groups must be an int, but got True"),
    (
        "weight channels", {"weight": (6, 4, 3, 3)}, ValueError,
        r"weight\.shape\[1\] must be in_channels / groups = 4 / 2 = 2, but got 4",
    ),
    # kernel larger than the padded input
    (
        "kernel too large", {"weight": (6, 2, 6, 3)}, ValueError,
        r"kernel does not fit in the padded input on spatial axis 0: "
        r"dilated kernel extent 6 > padded input 5 \+ 0 \+ 0 = 5",
    ),
    (
        "dilated kernel too large", {"dilation": (1, 3)}, ValueError,
        r"kernel does not fit in the padded input on spatial axis 1: "
        r"dilated kernel extent 7 > padded input 5 \+ 0 \+ 0 = 5",
    ),
    (
        "padding too small on one axis", {"weight": (6, 2, 6, 6), "padding": ((0, 1), (0, 0))}, ValueError,
        r"kernel does not fit in the padded input on spatial axis 1: "
        r"dilated kernel extent 6 > padded input 5 \+ 0 \+ 0 = 5",
    ),
    # bias
    ("bias int", {"bias": 1}, TypeError, r"bias must be True or False, but got 1"),
    ("bias None", {"bias": None}, TypeError, r"bias must be True or False, but got None"),
]


@pytest.mark.parametrize(("change", "error", "pattern"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments_are_refused_with_a_clear_message(change, error, pattern):
    with pytest.raises(error, match=pattern):
        ConvSpec(**{**OK, **change})


def test_base_of_bad_cases_is_valid():
    assert ConvSpec(**OK).output == (1, 6, 3, 3)


def test_padding_rescues_a_kernel_larger_than_the_input():
    spec = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 4, 4), padding=((0, 1), (1, 0)))
    assert spec.output == (1, 1, 1, 1)


def test_derive_refuses_anything_but_a_spec():
    with pytest.raises(TypeError, match=r"derive expects a ConvSpec, but got dict"):
        derive({"input": (1, 1, 3, 3), "weight": (1, 1, 2, 2)})  # type: ignore[arg-type]


# -- messages that echo the value given ---------------------------------------------------------


def test_negative_padding_message_shows_the_value_given():
    with pytest.raises(ValueError) as caught:
        ConvSpec(**{**OK, "padding": -1})
    assert str(caught.value) == "padding must be >= 0, but got -1"


@pytest.mark.parametrize("max_terms", ["1000", 1.5, None])
def test_derive_refuses_a_max_terms_that_is_not_an_int(max_terms):
    spec = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
    try:
        d = derive(spec, max_terms=max_terms)  # type: ignore[arg-type]
        d.O  # noqa: B018 - where the limit is first used
    except (TypeError, ValueError) as error:
        assert isinstance(error, TypeError) and "max_terms must be an int" in str(error), str(error)
    else:
        raise AssertionError(f"max_terms={max_terms!r} was accepted")


# -- limits of 64-bit index arithmetic ----------------------------------------------------------

LIMIT = 2**31 - 1  # the largest stride, dilation, padding and group count
ELEMENTS = 2**62  # the most elements any array (input, padded input, weight, output) may have


@pytest.mark.parametrize("field", ["stride", "dilation", "padding"])
def test_hyper_parameters_up_to_2_31_minus_1(field: str) -> None:
    base = dict(input=(1, 1, 4), weight=(1, 1, 2), padding=((0, LIMIT),))  # room for any dilation
    assert getattr(ConvSpec(**{**base, field: LIMIT}), field)
    with pytest.raises(ValueError, match=rf"^{field} must be at most {LIMIT} \(2\^31 - 1\).*but got {LIMIT + 1}$"):
        ConvSpec(**{**base, field: LIMIT + 1})


def test_groups_up_to_2_31_minus_1() -> None:
    assert ConvSpec(input=(1, LIMIT, 1), weight=(LIMIT, 1, 1), groups=LIMIT).groups == LIMIT
    with pytest.raises(ValueError, match=rf"^groups must be at most {LIMIT} \(2\^31 - 1\), but got {LIMIT + 1}$"):
        ConvSpec(input=(1, LIMIT + 1, 1), weight=(LIMIT + 1, 1, 1), groups=LIMIT + 1)


@pytest.mark.parametrize("name, args", [
    ("input", dict(input=(2, 1, 2**61 + 1), weight=(1, 1, 1))),
    ("weight", dict(input=(1, 1, 2), weight=(2**31, 1, 2**31 + 1))),
    ("the padded input (input plus padding)", dict(input=(2, 1, 2**61), weight=(1, 1, 1), padding=((0, 1),))),
    ("the output", dict(input=(1, 1, 2**32), weight=(2**30 + 1, 1, 1))),
])
def test_arrays_up_to_2_62_elements(name: str, args: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} must have at most 2\^62 = {ELEMENTS} elements"):
        ConvSpec(**args)


def test_exactly_2_62_elements_is_accepted() -> None:
    spec = ConvSpec(input=(2, 1, 2**61), weight=(1, 1, 1))
    assert math.prod(spec.input) == ELEMENTS and math.prod(spec.output) == ELEMENTS
