"""Tests for ``symconv.render``: the derivation pages in text, LaTeX, Markdown and JSON.

Expected equations are written here from the definition of cross-correlation (with this file's own
subscript table), never with the renderer's helpers; the JSON equations are evaluated at random
integers and compared with the numpy oracle in tests/reference.py.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from symconv import ConvSpec, derive
from symconv.render import FORMATS, build_page, document, render

from .reference import conv_forward, conv_grad_bias, conv_grad_input, conv_grad_weight
from .strategies import small_specs

SUB = dict(zip("0123456789,", "₀₁₂₃₄₅₆₇₈₉,"))


def sub(*index: int, comma: bool = False) -> str:
    """Unicode subscript of 1-based indices: sub(1, 2) -> '₁₂'."""
    text = ("," if comma else "").join(str(i) for i in index)
    return "".join(SUB[c] for c in text)


LECTURE = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
LECTURE_004 = ConvSpec(input=(1, 1, 5, 5), weight=(1, 1, 3, 3), stride=2)
BUSY = ConvSpec(input=(1, 4, 5, 5), weight=(4, 2, 2, 2), stride=2, padding=1, dilation=2, groups=2, bias=True)
LARGE = ConvSpec(input=(8, 64, 56, 56), weight=(64, 64, 3, 3), padding=1)


@pytest.fixture(scope="module")
def lecture_text() -> str:
    return render(derive(LECTURE))


def unwrapped(page: str) -> list[str]:
    """The page's lines, with long sums (continued on lines starting with '+') joined again."""
    lines: list[str] = []
    for line in page.splitlines():
        if line.strip().startswith("+ ") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def lines_of(page: str) -> list[str]:
    return [line.strip() for line in unwrapped(page)]


def section_lines(page: str, title: str) -> list[str]:
    """The lines of the numbered text section whose title starts with ``title``."""
    lines = unwrapped(page)
    start = next(i for i, line in enumerate(lines) if re.match(rf"\d+\. {re.escape(title)}", line))
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"\d+\. ", lines[i])), len(lines))
    return [line.strip() for line in lines[start + 1 : end] if line.strip()]


# -- the lecture example (lecture 000: 3×3 input, 2×2 filter) ----------------------------------


def test_lecture_forward_equations_exactly_as_the_lecture(lecture_text):
    # O_ij = Σ_{r,t} X_{i+r, j+t} F_{r,t}, 1-based, terms in filter order.
    expected = []
    for i, j in itertools.product(range(1, 3), repeat=2):
        terms = [f"X{sub(i + r, j + t)}F{sub(r + 1, t + 1)}" for r in range(2) for t in range(2)]
        expected.append(f"O{sub(i, j)} = " + " + ".join(terms))
    assert expected[0] == "O₁₁ = X₁₁F₁₁ + X₁₂F₁₂ + X₂₁F₂₁ + X₂₂F₂₂"
    forward = section_lines(lecture_text, "Forward")
    assert forward == expected


def test_lecture_local_gradients(lecture_text):
    local = " ".join(section_lines(lecture_text, "Local gradients"))
    for i, j, r, t in itertools.product(range(1, 3), repeat=4):
        assert f"∂O{sub(i, j)}/∂F{sub(r, t)} = X{sub(i + r - 1, j + t - 1)}" in local
        assert f"∂O{sub(i, j)}/∂X{sub(i + r - 1, j + t - 1)} = F{sub(r, t)}" in local


def test_lecture_filter_gradient_sums(lecture_text):
    lines = section_lines(lecture_text, "Filter gradient")
    for r, t in itertools.product(range(1, 3), repeat=2):
        terms = [f"∂L/∂O{sub(i, j)}·X{sub(i + r - 1, j + t - 1)}" for i in range(1, 3) for j in range(1, 3)]
        assert f"∂L/∂F{sub(r, t)} = " + " + ".join(terms) in lines
    assert "⇒ ∂L/∂F = X ⋆ ∂L/∂O   (valid cross-correlation)   ✓ proven" in lines


def test_lecture_input_gradient_sums_and_full_convolution(lecture_text):
    lines = section_lines(lecture_text, "Input gradient")
    for y, x in itertools.product(range(1, 4), repeat=2):
        terms = [
            f"∂L/∂O{sub(i, j)}·F{sub(y - i + 1, x - j + 1)}"
            for i in range(1, 3)
            for j in range(1, 3)
            if 1 <= y - i + 1 <= 2 and 1 <= x - j + 1 <= 2
        ]
        assert f"∂L/∂X{sub(y, x)} = " + " + ".join(terms) in lines
    # The slide has ∂L/∂O₁₂·F₂₁ here; the definition gives F₁₁.
    assert "∂L/∂X₁₂ = ∂L/∂O₁₁·F₁₂ + ∂L/∂O₁₂·F₁₁" in lines
    assert "⇒ ∂L/∂X = pad₁(∂L/∂O) ⋆ rot180(F)   (full convolution)   ✓ proven" in lines
    matrix = [re.sub(r"\s+", " ", line) for line in lines if line.startswith("[")]
    assert "[0 0 0 0] [F₂₂ F₂₁]" in matrix[0]
    assert matrix[1] == "[0 ∂L/∂O₁₁ ∂L/∂O₁₂ 0] ⋆ [F₁₂ F₁₁]"


def test_lecture_general_form_and_size(lecture_text):
    general = section_lines(lecture_text, "General index form")
    head = "∂L/∂X[n, c, y, x] = Σ_{k<K} Σ_{r<k_h} Σ_{t<k_w} ∂L/∂O[n, k, "
    assert any(line.startswith(head) for line in general)
    assert any("mod s_h = 0" in line for line in general)
    assert any(line.startswith("Output size: out_h = ⌊") for line in general)


# -- lecture 004: 5×5 input, 3×3 filter, stride 2 ------------------------------------------------


def test_lecture_004_nine_filter_sums_of_four_terms():
    page = render(derive(LECTURE_004), wrt="weight")
    sums = [line for line in section_lines(page, "Filter gradient") if line.startswith("∂L/∂F")]
    assert len(sums) == 9
    for line in sums:
        lhs, rhs = line.split(" = ")
        r, t = (int(SUB_INV[c]) for c in lhs[len("∂L/∂F"):])
        terms = rhs.split(" + ")
        assert len(terms) == 4
        expected = [f"∂L/∂O{sub(i + 1, j + 1)}·X{sub(2 * i + r, 2 * j + t)}" for i in range(2) for j in range(2)]
        assert terms == expected
    assert "⇒ ∂L/∂F = X ⋆ dilate₂(∂L/∂O)   (valid cross-correlation)   ✓ proven" in lines_of(page)


SUB_INV = {v: k for k, v in SUB.items()}


# -- index bases and naming --------------------------------------------------------------------


def test_zero_based_full_indices():
    page = render(derive(LECTURE), index_base=0)
    expected = "O[0,0,1,0] = " + " + ".join(
        f"X[0,0,{1 + r},{t}]·W[0,0,{r},{t}]" for r in range(2) for t in range(2)
    )
    assert expected in lines_of(page)
    assert "∂L/∂W[0,0,0,1] = ∂L/∂O[0,0,0,0]·X[0,0,0,1]" in page
    assert "F₁₁" not in page and "X₁₁" not in page
    assert all(len(line) <= 100 for line in page.splitlines() if "=" in line and "[n" not in line)


def test_two_digit_indices_use_commas():
    page = render(derive(ConvSpec(input=(1, 1, 11, 2), weight=(1, 1, 2, 1))), wrt="input")
    forward = section_lines(page, "Forward")
    assert f"O{sub(10, 1, comma=True)} = X{sub(10, 1, comma=True)}·F{sub(1, 1, comma=True)} + " \
        f"X{sub(11, 1, comma=True)}·F{sub(2, 1, comma=True)}" in forward


def test_channels_are_printed_when_more_than_one():
    page = render(derive(BUSY))
    # O[n=0, k=0, i=1, j=1] with N = 1 dropped: O₁,₂,₂ (k, i, j); the bias comes first.
    line = next(line for line in section_lines(page, "Forward") if line.startswith(f"O{sub(1, 2, 2, comma=True)} ="))
    assert line.split(" = ")[1].startswith(f"b{sub(1)} + ")


# -- large layers ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_large_layer_prints_the_general_form_and_a_note(fmt):
    page = render(derive(LARGE), fmt)
    assert "omitted" in page
    assert "multiply terms" in page
    if fmt == "json":
        data = json.loads(page)
        assert data["elementwise"] is False
        assert [s["key"] for s in data["sections"]] == ["general"]
        assert [e["name"] for e in data["sections"][0]["entries"]] == ["O", "dW", "dX"]
    else:
        assert "General index form" in page
        assert "Forward" not in page and "Local gradients" not in page
    assert len(page) < 20_000


def test_many_equations_fall_back_to_the_general_form():
    page = render(derive(ConvSpec(input=(1, 1, 16, 16), weight=(1, 1, 3, 3))))
    assert "would need 256 equations" in page
    assert "∂L/∂X₁₁" not in page and "General index form" in page


def test_general_only():
    page = render(derive(LECTURE), general_only=True)
    assert re.findall(r"^\d+\. .*$", page, flags=re.M) == ["1. General index form (any size)"]
    assert "O₁₁" not in page


# -- wrt -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrt, keys, forms",
    [
        ("all", ["forward", "local", "filter", "input", "bias", "general"], ["O", "dW", "dX", "db"]),
        ("input", ["forward", "local", "input", "general"], ["O", "dX"]),
        ("weight", ["forward", "local", "filter", "general"], ["O", "dW"]),
        ("bias", ["forward", "local", "bias", "general"], ["O", "db"]),
    ],
)
def test_wrt_selects_sections(wrt, keys, forms):
    spec = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2), bias=True)
    data = json.loads(render(derive(spec), "json", wrt=wrt))
    assert [s["key"] for s in data["sections"]] == keys
    assert [e["name"] for e in data["sections"][-1]["entries"]] == forms
    local = next(s for s in data["sections"] if s["key"] == "local")
    arrays = {e["wrt"]["array"] for e in local["entries"]}
    assert arrays == {"all": {"W", "X", "b"}, "input": {"X"}, "weight": {"W"}, "bias": {"b"}}[wrt]


def test_bad_arguments_raise():
    d = derive(LECTURE)
    with pytest.raises(ValueError, match="wrt='bias'"):
        render(d, wrt="bias")
    with pytest.raises(ValueError, match="wrt must be one of"):
        render(d, wrt="filter")
    with pytest.raises(ValueError, match="format must be one of"):
        render(d, "pdf")
    with pytest.raises(ValueError, match="index_base must be 0 or 1"):
        render(d, index_base=2)


def test_printers_fail_loudly_on_what_they_cannot_print():
    from symconv.render.latex import prose
    from symconv.render.text import TextPrinter

    with pytest.raises(TypeError, match="cannot print"):
        TextPrinter({}, {}).doprint(object())
    with pytest.raises(ValueError, match="no LaTeX spelling"):
        prose("an ü")


# -- LaTeX and Markdown structure --------------------------------------------------------------


def assert_balanced_latex(tex: str) -> None:
    assert tex.isascii(), "LaTeX output must be plain ASCII"
    depth = 0
    for match in re.finditer(r"\\[{}]|[{}]", tex):
        token = match.group()
        if token in (r"\{", r"\}"):
            continue
        depth += 1 if token == "{" else -1
        assert depth >= 0, f"unbalanced '}}' at {match.start()}"
    assert depth == 0, "unbalanced braces"
    stack = []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]*)\}", tex):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"\\end{{{name}}} does not close the open environment"
    assert not stack
    assert tex.count(r"\left") == tex.count(r"\right")
    assert tex.count(r"\[") == tex.count(r"\]")
    math_shifts = re.sub(r"\\\$", "", tex).count("$")
    assert math_shifts % 2 == 0


@pytest.mark.parametrize("spec", [LECTURE, LECTURE_004, BUSY, LARGE], ids=["lecture", "004", "busy", "large"])
def test_latex_is_structurally_sound(spec):
    tex = render(derive(spec), "latex")
    assert_balanced_latex(tex)
    full = document(tex)
    assert full.startswith(r"\documentclass") and full.rstrip().endswith(r"\end{document}")
    assert_balanced_latex(full)


def test_latex_lecture_equations():
    tex = render(derive(LECTURE), "latex")
    for i, j in itertools.product(range(1, 3), repeat=2):
        terms = [f"X_{{{i + r}{j + t}}} F_{{{r + 1}{t + 1}}}" for r in range(2) for t in range(2)]
        assert f"O_{{{i}{j}}} &= " + " + ".join(terms) in tex
    assert r"\frac{\partial L}{\partial X_{12}} &= \frac{\partial L}{\partial O_{11}} \cdot F_{12} + " \
        r"\frac{\partial L}{\partial O_{12}} \cdot F_{11}" in tex


def test_markdown_page():
    md = render(derive(LECTURE_004), "markdown")
    headings = re.findall(r"^### \d+\. (.*)$", md, flags=re.M)
    assert [h.split(" (")[0] for h in headings] == [
        "Forward", "Local gradients", "Filter gradient", "Input gradient", "General index form"
    ]
    assert md.count("$$") % 2 == 0
    assert "**✓ proven**" in md
    blocks = re.findall(r"\$\$\n(.*?)\n\$\$", md, flags=re.S)
    assert blocks
    for block in blocks:
        assert_balanced_latex(block)


def test_notebook_display_hooks():
    d = derive(LECTURE)
    assert d._repr_latex_() == render(d, "latex")
    assert d._repr_markdown_() == render(d, "markdown")


# -- JSON: structure, and the equations evaluated against the numpy oracle ---------------------


def evaluate_entry(sympy_text: str, arrays: dict[str, np.ndarray]) -> float:
    """Value of the right-hand side of ``Eq(lhs, rhs)`` with the arrays' numbers plugged in."""
    namespace = {"__builtins__": {}, "Eq": lambda lhs, rhs: rhs, "Derivative": lambda f, v: None, "L": None}
    namespace.update(arrays)
    return eval(sympy_text, namespace)  # our own output: products and sums of array entries


def check_json_against_oracle(spec: ConvSpec, text: str, seed: int = 0) -> dict:
    data = json.loads(text)
    assert data["spec"] == spec.to_dict()
    rng = np.random.default_rng(seed)
    arrays = {
        "X": rng.integers(-4, 5, size=spec.input),
        "W": rng.integers(-4, 5, size=spec.weight),
        "G": rng.integers(-4, 5, size=spec.output),
        "b": rng.integers(-4, 5, size=spec.bias_shape) if spec.bias else None,
        "O": np.zeros(spec.output),
    }
    args = (spec.stride, spec.padding, spec.dilation, spec.groups)
    x, w, g, b = (arrays[k] for k in "XWGb")
    oracle = {
        "forward": conv_forward(x, w, b, *args),
        "filter": conv_grad_weight(x, g, spec.weight, *args),
        "input": conv_grad_input(g, w, spec.input, *args),
        "bias": conv_grad_bias(g) if spec.bias else None,
    }
    sections = {s["key"]: s for s in data["sections"]}
    for key, expected in oracle.items():
        if key not in sections:
            continue
        entries = sections[key]["entries"]
        assert sorted(tuple(e["index"]) for e in entries) == list(np.ndindex(*expected.shape))
        for entry in entries:
            assert isinstance(entry["latex"], str) and isinstance(entry["text"], str)
            assert evaluate_entry(entry["sympy"], arrays) == expected[tuple(entry["index"])]
    return data


def test_json_lecture_round_trip():
    text = render(derive(LECTURE), "json")
    data = check_json_against_oracle(LECTURE, text)
    assert json.loads(json.dumps(data)) == data
    forward = data["sections"][0]
    assert forward["key"] == "forward"
    assert forward["entries"][0]["index"] == [0, 0, 0, 0]
    assert forward["entries"][0]["text"] == "O₁₁ = X₁₁F₁₁ + X₁₂F₁₂ + X₂₁F₂₁ + X₂₂F₂₂"
    latex_terms = [f"X_{{{1 + r}{1 + t}}} F_{{{1 + r}{1 + t}}}" for r in range(2) for t in range(2)]
    assert forward["entries"][0]["latex"] == "O_{11} = " + " + ".join(latex_terms)
    filt = next(s for s in data["sections"] if s["key"] == "filter")
    assert filt["identity"]["proven"] is True
    assert filt["identity"]["matrices"][0]["text"] == [[f"X{sub(i, j)}" for j in range(1, 4)] for i in range(1, 4)]
    general = data["sections"][-1]
    assert general["values"]["s_h"] == 1 and general["values"]["in_w"] == 3
    assert all(isinstance(c["sympy"], str) for e in general["entries"] for c in e["conditions"])


@pytest.fixture(scope="module")
def busy_page():
    return build_page(derive(BUSY))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_busy_spec_every_format(busy_page, fmt):
    out = FORMATS[fmt](busy_page)
    if fmt == "json":
        data = check_json_against_oracle(BUSY, out)
        keys = [s["key"] for s in data["sections"]]
        assert keys == ["forward", "local", "filter", "input", "bias", "general"]
        assert all(s["identity"]["proven"] for s in data["sections"] if s["key"] in ("filter", "input", "bias"))
    elif fmt == "text":
        assert out.count("✓ proven") == 3
        assert "⇒ ∂L/∂F = sample₂(pad₁(X) ⋆ dilate₂(∂L/∂O))" in out
        assert "⇒ ∂L/∂X = crop₁(pad₂(dilate₂(∂L/∂O)) ⋆ rot180(dilate₂(F)))" in out
        assert "Shown for the first" in out  # the local gradients are cut at the page limit
    elif fmt == "latex":
        assert_balanced_latex(out)
        assert out.count(r"$\checkmark$ proven") == 3
    else:
        assert out.count("**✓ proven**") == 3
        assert out.count("$$") % 2 == 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=small_specs(max_terms=120))
def test_random_specs_json_matches_the_oracle(spec):
    page = build_page(derive(spec))
    check_json_against_oracle(spec, FORMATS["json"](page))
    assert_balanced_latex(FORMATS["latex"](page))
    assert FORMATS["text"](page).count("✗") == 0


def test_layer_derivations_are_printed_by_their_own_printer() -> None:
    from symconv.layers import ActivationSpec, derive_layer
    from symconv.layers import render as render_layer

    layer = derive_layer(ActivationSpec("sigmoid", (1, 2)))
    for fmt in ("text", "markdown"):
        assert render(layer, fmt) == render_layer(layer, fmt)
    with pytest.raises(TypeError, match="render expects a Derivation"):
        render(layer, wrt="input")  # gradient selection exists only for the convolution's page
