"""Hostile input to the public entry points: ConvSpec, derive, build, nn.Conv2d, export, check_claims.

Each case ends in the right result or in a Python exception whose message names the argument and
what was given. What ``tests/test_spec.py`` already checks (plain floats, bools and strings as
hyper-parameters, zero and negative sizes, groups that do not divide) is not repeated here; this
adds the other numeric types (numpy scalars, Fraction, Decimal, complex, 0-d arrays), absurd
sizes whose index arithmetic would overflow, and the other entry points.

Related batteries: tests/test_hostile_kernel.py (arrays handed to compiled kernels),
tests/test_hostile_cli.py (the command line), tests/test_hostile_cache.py (cache and compiler),
tests/test_hostile_determinism.py (bitwise repeatability).
"""

from __future__ import annotations

import decimal
import fractions
import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from symconv import ConvSpec, derive
from symconv.api import build
from symconv.check import check_claims
from symconv.export import export
from symconv.nn import Conv2d

CC = shutil.which("gcc") or shutil.which("cc")
LECTURE = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
#: A valid layer the type cases start from (rank 2, groups 2).
OK = dict(input=(1, 4, 5, 5), weight=(6, 2, 3, 3), groups=2)

# -- hyper-parameters of other numeric types ------------------------------------------------------

NOT_INTS: dict[str, Any] = {
    "numpy_float": np.float64(2.0),
    "numpy_bool": np.bool_(True),
    "fraction": fractions.Fraction(2, 1),
    "decimal": decimal.Decimal(2),
    "complex": 2 + 0j,
    "none": None,
    "zero_d_array": np.array(2),
}
FIELDS = ("stride", "padding", "dilation", "groups")


@pytest.mark.parametrize("kind", NOT_INTS)
@pytest.mark.parametrize("field", FIELDS)
def test_non_integer_hyper_parameters_are_refused(field: str, kind: str) -> None:
    value = NOT_INTS[kind]
    with pytest.raises(TypeError, match=rf"^{field} must be .*but got {re.escape(repr(value))}"):
        ConvSpec(**{**OK, field: value})


@pytest.mark.parametrize("kind", NOT_INTS)
@pytest.mark.parametrize("field", FIELDS[:3])
def test_non_integer_entries_of_per_axis_tuples_are_refused(field: str, kind: str) -> None:
    value = (1, NOT_INTS[kind])
    with pytest.raises(TypeError, match=rf"^{field} .*but got"):
        ConvSpec(**{**OK, field: value})


@pytest.mark.parametrize("kind", NOT_INTS)
@pytest.mark.parametrize("field", ["input", "weight"])
def test_non_integer_sizes_are_refused(field: str, kind: str) -> None:
    shape = list(OK[field])
    shape[2] = NOT_INTS[kind]
    with pytest.raises(TypeError, match=rf"^{field} must contain only ints, but got"):
        ConvSpec(**{**OK, field: tuple(shape)})


NUMPY_INTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("itype", NUMPY_INTS, ids=lambda t: t.__name__)
def test_numpy_integers_everywhere_become_plain_ints(itype) -> None:
    spec = ConvSpec(
        input=tuple(itype(v) for v in (1, 4, 5, 5)), weight=tuple(itype(v) for v in (6, 2, 3, 3)),
        stride=itype(2), padding=(itype(1), (itype(0), itype(2))), dilation=(itype(1), itype(2)), groups=itype(2),
    )
    assert spec == ConvSpec(input=(1, 4, 5, 5), weight=(6, 2, 3, 3), stride=2, padding=(1, (0, 2)),
                            dilation=(1, 2), groups=2)
    values = [*spec.input, *spec.weight, *spec.stride, *spec.dilation, spec.groups, *sum(spec.padding, ())]
    assert all(type(v) is int for v in values)


@pytest.mark.parametrize("field", ["stride", "dilation", "groups"])
def test_negative_numpy_integers_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be >= 1"):
        ConvSpec(**{**OK, field: np.int8(-1)})


# -- absurd sizes: 64-bit index arithmetic ---------------------------------------------------------

#: Beyond 2^31 elements (a 32-bit index would wrap), well inside 2^63.
BIG = ConvSpec(input=(2, 3, 50_000, 50_000), weight=(4, 3, 3, 3), padding=((1, 0), (0, 2)), stride=(1, 2))


def test_layers_beyond_32_bit_indexing_get_64_bit_index_arithmetic(tmp_path: Path) -> None:
    """No array this big is allocated: the generated C is read and compiled, not run."""
    c_path, _ = export(BIG, tmp_path, name="big")
    source = c_path.read_text()
    loops = re.findall(r"for \((\w+) \w+ =", source)
    assert loops and set(loops) == {"ptrdiff_t"}, set(loops)
    # `int` appears only in the two helpers (a thread count and a flag), never in index arithmetic
    int_lines = [line.strip() for line in source.splitlines() if re.search(r"\bint\b", line)]
    assert all("set_num_threads" in line or "has_openmp" in line for line in int_lines), int_lines
    assert not re.search(r"\b(unsigned|short|int32_t|uint32_t)\b", source)
    input_size = int(np.prod(BIG.input))
    assert input_size > 2**32 and re.search(rf"\b{input_size}\b", source)
    # a batch stride past 2^32 is written as a literal (gcc types it as long)
    batch_stride = int(np.prod(BIG.input[1:]))
    assert re.search(rf"\b{batch_stride}\*n\b", source), "the batch offset is not a 64-bit literal"
    if CC:
        done = subprocess.run(
            [CC, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Woverflow", "-c", str(c_path), "-o", str(tmp_path / "big.o")],
            capture_output=True, text=True,
        )
        assert done.returncode == 0, done.stderr


#: Layers whose indices cannot be held in 64 bits (or whose constants cannot be written in C).
BEYOND_64_BIT = {
    "2^80_input_elements": dict(input=(1, 1, 2**40, 2**40), weight=(1, 1, 1, 1)),
    "stride_2^70": dict(input=(1, 1, 4), weight=(1, 1, 1), stride=2**70),
    "padding_2^70": dict(input=(1, 1, 4), weight=(1, 1, 1), padding=2**70),
    "dilation_2^70": dict(input=(1, 1, 4), weight=(1, 1, 2), dilation=2**70, padding=2**70),
}
FIELD_OF = {"2^80_input_elements": "input", "stride_2^70": "stride", "padding_2^70": "padding",
            "dilation_2^70": "dilation"}


@pytest.mark.parametrize("case", BEYOND_64_BIT)
def test_layers_beyond_64_bit_indexing_are_refused_clearly(case: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"^{FIELD_OF[case]} must .*at most .*but got"):
        export(ConvSpec(**BEYOND_64_BIT[case]), tmp_path)
    assert list(tmp_path.iterdir()) == []


#: Derived arrays past 2^62 elements, each from sizes and hyper-parameters that are fine alone.
DERIVED_BEYOND_64_BIT = {
    "padded_input": (dict(input=(1, 1, 2**31, 2**31), weight=(1, 1, 1, 1), padding=2**31 - 1),
                     "the padded input (input plus padding)"),
    "output": (dict(input=(1, 1, 2**31), weight=(2**40, 1, 1)), "the output"),
    "empty_batch_of_huge_samples": (dict(input=(0, 1, 2**70), weight=(1, 1, 1)), "input"),
    "same_padding_of_a_huge_kernel": (dict(input=(1, 1, 2**40), weight=(1, 1, 2**40), padding="same"), "padding"),
}


@pytest.mark.parametrize("case", DERIVED_BEYOND_64_BIT)
def test_derived_sizes_beyond_64_bit_indexing_are_refused(case: str) -> None:
    args, name = DERIVED_BEYOND_64_BIT[case]
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} must .*at most .*but got"):
        ConvSpec(**args)


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_hyper_parameters_at_the_limit_give_c_that_compiles(tmp_path: Path) -> None:
    """The largest accepted stride, dilation and padding are written as valid C constants."""
    limit = 2**31 - 1
    specs = [
        ConvSpec(input=(2, 3, 4), weight=(2, 3, 2), stride=limit, padding=((limit, limit),)),
        ConvSpec(input=(2, 3, 4), weight=(2, 3, 2), dilation=limit, padding=((0, limit),)),
    ]
    with pytest.raises(ValueError, match=r"^stride must be at most 2147483647 \(2\^31 - 1\)"):
        ConvSpec(input=(1, 1, 4, 4), weight=(1, 1, 2, 2), stride=(limit + 1, 1))
    for i, spec in enumerate(specs):
        c_path, _ = export(spec, tmp_path, name=f"edge{i}")
        done = subprocess.run(
            [CC, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Woverflow", "-c", str(c_path),
             "-o", str(tmp_path / f"e{i}.o")],
            capture_output=True, text=True,
        )
        assert done.returncode == 0, done.stderr


# -- derive and build ------------------------------------------------------------------------------


def test_derive_of_a_huge_layer_stays_lazy_and_refuses_element_wise_work() -> None:
    d = derive(ConvSpec(input=(1, 1, 10**6, 10**6), weight=(1, 1, 3, 3)))
    with pytest.raises(ValueError, match="too large for an element-wise derivation"):
        d.O  # noqa: B018
    assert d.general().forms  # the size-independent form is still there


@pytest.mark.parametrize("max_terms, error", [(-5, ValueError), (True, TypeError), (2.5, TypeError), ("9", TypeError)])
def test_derive_max_terms(max_terms: Any, error: type) -> None:
    with pytest.raises(error, match="max_terms must be"):
        derive(LECTURE, max_terms=max_terms).O  # noqa: B018


BAD_DTYPES = ["float16", np.float16, "int8", np.int64, "complex64", object, "float128", "bool", "f2", "not a dtype"]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=repr)
def test_build_refuses_other_dtypes(dtype: Any) -> None:
    with pytest.raises(ValueError, match=r"^dtype must be 'float32' or 'float64', but got"):
        build(LECTURE, dtype)


@pytest.mark.parametrize("dtype", ["float32", "f4", np.float32, np.dtype(">f4"), "float64", float, np.dtype("<f8")],
                         ids=repr)
def test_build_accepts_every_spelling_of_the_two_dtypes(dtype: Any) -> None:
    kernel = build(LECTURE, dtype)
    want = np.dtype(dtype).newbyteorder("=").name
    assert kernel.dtype == want
    ones = np.ones(LECTURE.input, want), np.ones(LECTURE.weight, want)
    np.testing.assert_array_equal(kernel.forward(*ones), np.full(LECTURE.output, 4, want))


@pytest.mark.parametrize("spec", [LECTURE.to_dict(), "3x3 2x2", None, (1, 1, 3, 3)], ids=repr)
def test_build_and_export_refuse_what_is_not_a_spec(spec: Any, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="spec must be a ConvSpec"):
        build(spec)
    with pytest.raises(TypeError, match="spec must be a ConvSpec"):
        export(spec, tmp_path)


# -- export ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("out_dir", [None, 3, b"/tmp/out", 2.5], ids=repr)
def test_export_out_dir_must_be_a_path(out_dir: Any) -> None:
    with pytest.raises(TypeError, match="out_dir must be a path"):
        export(LECTURE, out_dir)


@pytest.mark.parametrize("name", ["", "3x3", "a-b", "é", "a" * 65, "for", 3], ids=repr)
def test_export_name_must_be_a_c_identifier(name: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^name must be"):
        export(LECTURE, tmp_path, name=name)
    assert list(tmp_path.iterdir()) == []


def test_export_into_a_missing_and_unwritable_place(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="/proc/"):
        export(LECTURE, "/proc/symconv-cannot-be-here")
    nested = tmp_path / "a b" / "ü ✓"
    c_path, h_path = export(LECTURE, nested)  # spaces and non-ASCII: fine
    assert c_path.parent == nested and h_path.is_file()


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("name", ["int", "double", "restrict", "main", "NULL", "_"])
def test_export_names_that_are_c_words_still_compile(name: str, tmp_path: Path) -> None:
    """The name only prefixes functions and macros (``int_forward``, ``INT_N``): never a clash."""
    spec = ConvSpec(input=(1, 2, 5, 5), weight=(2, 2, 3, 3), padding=1, bias=True)
    c_path, h_path = export(spec, tmp_path, name=name)
    main = tmp_path / "use.c"
    main.write_text(f'#include "{h_path.name}"\nint use(void) {{ return {name}_has_openmp(); }}\n')
    for source in (c_path, main):
        done = subprocess.run(
            [CC, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-c", str(source), "-o", str(source.with_suffix(".o"))],
            capture_output=True, text=True, cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr


# -- check_claims --------------------------------------------------------------------------------------

#: Claims that try to make the parser run code: each must be refused, and nothing may run.
INJECTIONS = {
    "import": "dL/dX_11 = __import__('os').system('touch {sentinel}')",
    "eval": "dL/dX_11 = eval(\"open('{sentinel}', 'w')\")",
    "attribute": "dL/dX_11 = F_11.__class__.__mro__",
    "lambda": "dL/dX_11 = (lambda: open('{sentinel}', 'w'))()",
    "comprehension": "dL/dX_11 = [open('{sentinel}', 'w') for F_11 in (1,)]",
    "sympy_name": "dL/dX_11 = Symbol('x')",
    "semicolon": "dL/dX_11 = F_11; open('{sentinel}', 'w')",
    "walrus": "dL/dX_11 = (q := open('{sentinel}', 'w'))",
}


@pytest.mark.parametrize("case", INJECTIONS)
def test_claims_never_run_code(case: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    claim = INJECTIONS[case].format(sentinel=sentinel)
    with pytest.raises(ValueError, match=re.escape(repr(claim)[:40])):
        check_claims(LECTURE, claim)
    assert not sentinel.exists()


ODD_CLAIMS = {
    "nul": "dL/dX_11 = \x00",
    "right_to_left_mark": "dL/dX_11 = \u202eF_11",
    "math_bold_letter": "dL/dX_11 = 𝐅_11",
    "huge_float": "dL/dX_11 = 1e999",
    "hex": "dL/dX_11 = 0x10",
    "underscore_number": "dL/dX_11 = 1_000",
    "deep_parentheses": "dL/dX_11 = " + "(" * 5000 + "1" + ")" * 5000,
    "negative_power": "dL/dX_11 = F_11**-1",
    "big_power": "dL/dX_11 = 2**1000000",
    "divide_by_zero": "dL/dX_11 = 1/(1-1)",
    "infinity_name": "dL/dX_11 = oo",
    "no_lhs": "= F_11",
    "two_equals": "dL/dX_11 = F_11 = F_12",
    "index_out_of_range": "dL/dX_99 = F_11",
}


@pytest.mark.parametrize("case", ODD_CLAIMS)
def test_odd_claims_are_value_errors_naming_the_claim(case: str) -> None:
    claim = ODD_CLAIMS[case]
    with pytest.raises(ValueError) as info:
        check_claims(LECTURE, claim)
    assert repr(claim)[:30] in str(info.value) or claim[:30] in str(info.value)


def test_a_long_but_reasonable_claim_is_judged() -> None:
    claim = "dL/dX_11 = " + " + ".join(["dL/dO_11*F_11"] * 200)
    verdict = check_claims(LECTURE, claim)
    assert not verdict.ok  # 200·G·F where G·F is right: a wrong coefficient, explained


def test_power_tower_claim_is_refused_naming_the_claim() -> None:
    claim = "dL/dX_11 = 9**9**5"
    with pytest.raises(ValueError, match=re.escape(repr(claim))):
        check_claims(LECTURE, claim)


def test_very_long_claim_is_a_value_error() -> None:
    """Thousands of terms would exhaust the recursion depth of Python's compiler inside parse_expr."""
    claim = "dL/dX_11 = F_11" + " + F_11" * 5000
    with pytest.raises(ValueError, match=r"^claim 'dL/dX_11 = F_11 \+ F_11.*too long: 10001 tokens.*at most 2000") as info:
        check_claims(LECTURE, claim)
    assert len(str(info.value)) < 1000  # the message quotes the start of the claim, not all of it


def test_a_claim_just_under_the_length_limit_is_judged() -> None:
    claim = "dL/dX_11 = F_11" + "+F_11" * 999  # 1999 tokens, no spaces: 1000 chained additions
    verdict = check_claims(LECTURE, claim)
    assert not verdict.ok  # 1000·F where G·F is right: judged, not refused


# -- nn.Conv2d -----------------------------------------------------------------------------------------

CONV2D_BAD: dict[str, tuple[dict[str, Any], type, str]] = {
    "kernel_size_zero": (dict(kernel_size=0), ValueError, "weight dimensions must be positive"),
    "kernel_size_negative": (dict(kernel_size=-1), ValueError, "weight dimensions must be positive"),
    "kernel_size_float": (dict(kernel_size=2.0), TypeError, "kernel_size must be an int or a pair"),
    "kernel_size_bool": (dict(kernel_size=True), TypeError, "kernel_size must be an int or a pair"),
    "kernel_size_triple": (dict(kernel_size=(3, 3, 3)), TypeError, "kernel_size must be an int or a pair"),
    "kernel_size_none": (dict(kernel_size=None), TypeError, "kernel_size must be an int or a pair"),
    "stride_bool": (dict(stride=True), TypeError, "stride must be an int or a pair"),
    "stride_numpy_float": (dict(stride=np.float32(1)), TypeError, "stride must be an int or a pair"),
    "stride_zero": (dict(stride=0), ValueError, "stride must be >= 1"),
    "dilation_negative": (dict(dilation=(1, -1)), ValueError, "dilation must be >= 1"),
    "padding_negative": (dict(padding=-1), ValueError, "padding must be >= 0"),
    "padding_float": (dict(padding=1.5), TypeError, "padding must be"),
    "padding_upper_case": (dict(padding="SAME"), ValueError, "padding must be"),
    "padding_ragged_pairs": (dict(padding=((1, 2), (3,))), TypeError, "padding entries must be"),
    "groups_not_dividing": (dict(in_channels=3, groups=2), ValueError, "groups must divide in_channels"),
    "groups_float": (dict(groups=2.0), ValueError, "groups must be a positive int"),
    "in_channels_bool": (dict(in_channels=True), ValueError, "in_channels must be a positive int"),
    "out_channels_negative": (dict(out_channels=-3), ValueError, "out_channels must be a positive int"),
    "bias_numpy_bool": (dict(bias=np.bool_(True)), TypeError, "bias must be True or False"),
    "dtype_float16": (dict(dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'"),
    "huge_kernel_dilation": (dict(kernel_size=3, dilation=10**6), None, ""),  # valid: fits a big input
}


@pytest.mark.parametrize("case", CONV2D_BAD)
def test_conv2d_constructor_arguments(case: str) -> None:
    change, error, words = CONV2D_BAD[case]
    args = {**dict(in_channels=2, out_channels=2, kernel_size=3), **change}
    if error is None:
        assert Conv2d(**args).weight.shape == (2, 2, 3, 3)
        return
    with pytest.raises(error, match=re.escape(words)):
        Conv2d(**args)


@pytest.mark.parametrize("rng", [-1, "seed", 1.5], ids=repr)
def test_conv2d_bad_rng_is_named(rng: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="rng"):
        Conv2d(1, 1, 3, rng=rng)


CONV2D_CALLS: dict[str, tuple[Callable[[Conv2d], Any], type, str]] = {
    "forward_3d": (lambda l: l(np.zeros((1, 5, 5), np.float32)), ValueError, r"x must have shape \(N, 2, H, W\)"),
    "forward_5d": (lambda l: l(np.zeros((1, 2, 1, 5, 5), np.float32)), ValueError, r"x must have shape"),
    "forward_channels": (lambda l: l(np.zeros((1, 3, 5, 5), np.float32)), ValueError, r"x must have shape"),
    "forward_int": (lambda l: l(np.zeros((1, 2, 5, 5), np.int32)), TypeError, "x must be float32, but got int32"),
    "forward_float64": (lambda l: l(np.zeros((1, 2, 5, 5))), TypeError, "x must be float32, but got float64"),
    "forward_list": (lambda l: l([[[[0.0]]]]), TypeError, "x must be a numpy.ndarray, but got list"),
    "forward_too_small": (lambda l: l(np.zeros((1, 2, 2, 5), np.float32)), ValueError, "kernel does not fit"),
    "forward_empty_height": (lambda l: l(np.zeros((1, 2, 0, 5), np.float32)), ValueError, "must be positive"),
    "backward_first": (lambda l: l.backward(np.zeros((1, 2, 3, 3), np.float32)), RuntimeError, "forward pass first"),
}


@pytest.mark.parametrize("case", CONV2D_CALLS)
def test_conv2d_bad_calls(case: str) -> None:
    call, error, words = CONV2D_CALLS[case]
    with pytest.raises(error, match=words):
        call(Conv2d(2, 2, 3, rng=0))


@pytest.mark.parametrize("grad", ["float64", "wrong_shape", "list"])
def test_conv2d_bad_upstream_gradient(grad: str) -> None:
    layer = Conv2d(2, 2, 3, rng=0)
    out = layer(np.zeros((1, 2, 5, 5), np.float32))
    value = {"float64": np.zeros(out.shape), "wrong_shape": np.zeros((1, 2, 2, 2), np.float32),
             "list": out.tolist()}[grad]
    with pytest.raises((TypeError, ValueError), match="^grad_out must"):
        layer.backward(value)


def _conv2d_layout_case(layout: str) -> None:
    """The layer on odd memory gives bitwise what it gives on a plain copy."""
    layer = Conv2d(3, 4, (3, 2), stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2), rng=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    odd = {
        "fortran": np.asfortranarray(x),
        "negative_strides": np.ascontiguousarray(x[..., ::-1])[..., ::-1],
        "misaligned": None,
        "zero_batch": x[:0],
    }[layout]
    if layout == "misaligned":
        raw = np.zeros(x.nbytes + 1, np.uint8)
        odd = raw[1:].view(np.float32).reshape(x.shape)
        odd[...] = x
    plain = np.ascontiguousarray(odd)
    got, want = layer(odd), layer(plain)
    np.testing.assert_array_equal(got, want)
    g = rng.standard_normal(want.shape).astype(np.float32)
    g_odd = np.asfortranarray(g)
    # Gradients accumulate across backward calls (as in PyTorch): clear them before each pass
    # and keep a copy, so the two passes are compared and not one array with itself.
    layer.zero_grad()
    layer(odd)
    dx_odd, dw_odd = layer.backward(g_odd), layer.weight.grad.copy()
    layer.zero_grad()
    layer(plain)
    np.testing.assert_array_equal(dx_odd, layer.backward(g))
    np.testing.assert_array_equal(dw_odd, layer.weight.grad)
    if layout == "zero_batch":
        assert got.shape == (0, *layer(x).shape[1:]) and (dw_odd == 0).all() and (layer.bias.grad == 0).all()


ISOLATED_CASES = {
    f"conv2d-{layout}": functools.partial(_conv2d_layout_case, layout)
    for layout in ("fortran", "negative_strides", "misaligned", "zero_batch")
}


@pytest.fixture(scope="module")
def outcomes(isolated):
    return isolated.run(__name__, ISOLATED_CASES)


@pytest.mark.parametrize("name", ISOLATED_CASES)
def test_conv2d_on_odd_memory(name: str, outcomes) -> None:
    outcomes[name].check()
