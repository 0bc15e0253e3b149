"""Tests for the ``symconv`` command: derive, verify, check, and one-line errors for bad arguments."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from symconv import ConvSpec
from symconv.cli import main

ROOT = Path(__file__).resolve().parents[1]

# The lecture's first equation, from the definition O_ij = Σ_rt X_{i+r,j+t} F_rt.
O11 = "O₁₁ = X₁₁F₁₁ + X₁₂F₁₂ + X₂₁F₂₁ + X₂₂F₂₂"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- derive ------------------------------------------------------------------------------------


def test_derive_lecture_example(capsys):
    code, out, err = run(capsys, "derive", "3x3", "2x2")
    assert code == 0 and err == ""
    assert O11 in out
    assert "✓ proven" in out


def test_positional_shapes_mean_a_single_channel_layer(capsys):
    _, short, _ = run(capsys, "derive", "3x3", "2x2", "--format", "json")
    _, full, _ = run(capsys, "derive", "--input", "1x1x3x3", "--weight", "1x1x2x2", "--format", "json")
    assert short == full
    assert json.loads(short)["spec"]["input"] == [1, 1, 3, 3]


SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def first_output_equation(kernel: tuple[int, ...]) -> str:
    """O₁… = Σ over the kernel taps of X at the tap times F at the tap (the first window)."""
    def name(letter: str, tap: tuple[int, ...]) -> str:
        return letter + "".join(str(t + 1) for t in tap).translate(SUB)

    taps = list(itertools.product(*(range(k) for k in kernel)))
    origin = (0,) * len(kernel)
    return name("O", origin) + " = " + " + ".join(name("X", t) + name("F", t) for t in taps)


@pytest.mark.parametrize("shapes, kernel", [(("5", "3"), (3,)), (("3x3x3", "2x2x2"), (2, 2, 2))], ids=["1d", "3d"])
def test_derive_other_ranks(capsys, shapes, kernel):
    code, out, _ = run(capsys, "derive", *shapes, "--wrt", "input")
    assert code == 0
    assert first_output_equation(kernel) in [line.strip() for line in out.splitlines()]


@pytest.mark.parametrize(
    "padding, expected",
    [
        ("1", [[1, 1], [1, 1]]),
        ("1,2", [[1, 1], [2, 2]]),
        ("1:0", [[1, 0], [1, 0]]),
        ("1:0,0:2", [[1, 0], [0, 2]]),
        ("valid", [[0, 0], [0, 0]]),
        ("same", [list(p) for p in ConvSpec((1, 1, 5, 5), (1, 1, 3, 2), padding="same").padding]),
    ],
)
def test_padding_forms(capsys, padding, expected):
    code, out, _ = run(capsys, "derive", "5x5", "3x2", "--padding", padding, "--format", "json", "--general")
    assert code == 0
    assert json.loads(out)["spec"]["padding"] == expected


def test_all_layer_options_reach_the_spec(capsys):
    argv = ["derive", "--input", "2x4x9x7", "--weight", "6x2x3x2", "--stride", "2,1", "--padding", "1:0,0:2",
            "--dilation", "1,2", "--groups", "2", "--bias", "--format", "json", "--general"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    expected = ConvSpec((2, 4, 9, 7), (6, 2, 3, 2), stride=(2, 1), padding=((1, 0), (0, 2)), dilation=(1, 2),
                        groups=2, bias=True)
    assert json.loads(out)["spec"] == expected.to_dict()


def test_derive_options(capsys):
    _, general, _ = run(capsys, "derive", "3x3", "2x2", "--general")
    assert "General index form" in general and "Forward" not in general
    _, zero, _ = run(capsys, "derive", "3x3", "2x2", "--index-base", "0", "--wrt", "weight")
    assert "∂L/∂W[0,0,0,0] = ∂L/∂O[0,0,0,0]·X[0,0,0,0] + " in zero
    assert "Input gradient" not in zero
    _, tex, _ = run(capsys, "derive", "3x3", "2x2", "--format", "latex")
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    _, md, _ = run(capsys, "derive", "3x3", "2x2", "--format", "markdown", "--bias", "--wrt", "bias")
    assert "### 3. Bias gradient" in md
    _, no_bias, _ = run(capsys, "derive", "3x3", "2x2", "--no-bias", "--format", "json")
    assert json.loads(no_bias)["spec"]["bias"] is False


# -- verify --------------------------------------------------------------------------------------


def test_verify(capsys):
    code, out, _ = run(capsys, "verify", "5x5", "3x3", "--stride", "2", "--padding", "1", "--bias")
    assert code == 0
    assert "All identities hold." in out


# -- check (the claim checker lives in symconv/check.py) ---------------------------------------


def test_check_claims(capsys, tmp_path):
    # ∂L/∂X₁₂ from the definition: O₁₁ uses X₁₂ with F₁₂, O₁₂ uses it with F₁₁.
    right = "dL/dX_12 = dL/dO_11*F_12 + dL/dO_12*F_11"
    wrong = "dL/dX_12 = dL/dO_11*F_12 + dL/dO_12*F_21"  # the slide's version
    code, out, _ = run(capsys, "check", "3x3", "2x2", "--claim", right)
    assert code == 0 and out.startswith("✓")
    code, out, _ = run(capsys, "check", "3x3", "2x2", "--claim", right, "--claim", wrong)
    assert code == 1
    assert [line[0] for line in out.splitlines()[:2]] == ["✓", "✗"]
    claims = tmp_path / "claims.txt"
    claims.write_text(f"# my answers\n{right}\n\n{right}\n", encoding="utf-8")
    code, out, _ = run(capsys, "check", "3x3", "2x2", "--claims-file", str(claims))
    assert code == 0 and out.count("✓") == 2


def test_check_bad_claims_are_usage_errors(capsys, tmp_path):
    for argv in (
        ["check", "3x3", "2x2"],
        ["check", "3x3", "2x2", "--claim", "dL/dX_12 ="],
        ["check", "3x3", "2x2", "--claims-file", str(tmp_path / "missing.txt")],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == ""
        assert err.startswith("symconv: error: ") and err.count("\n") == 1


# -- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, words",
    [
        (["derive", "3x", "2x2"], "input must be sizes"),
        (["derive", "axb", "2x2"], "input must be sizes"),
        (["derive", "3x3", "2x2", "--stride", "-1"], "stride must be >= 1"),
        (["derive", "3x3", "2x2", "--stride", "two"], "--stride must be an int"),
        (["derive", "--input", "1x4x5x5", "--weight", "4x2x2x2", "--groups", "3"], "groups must divide in_channels"),
        (["derive", "3x3", "4x4"], "kernel does not fit"),
        (["derive", "3x3", "2x2", "--format", "pdf"], "invalid choice: 'pdf'"),
        (["derive", "3x3", "2x2", "--padding", "1:2:3"], "padding must be"),
        (["derive", "3x3", "2x2", "--padding", "1,2,3"], "padding must be"),
        (["derive", "3x3", "2x2", "--wrt", "bias"], "--wrt bias needs"),
        (["derive", "3x3"], "two positional shapes"),
        (["derive", "--input", "1x1x3x3"], "the layer is missing"),
        (["derive", "3x3", "2x2", "--input", "1x1x3x3"], "not both"),
        (["derive", "3x3", "2x2x2"], "same number of dimensions"),
        (["verify", "--input", "8x64x56x56", "--weight", "64x64x3x3"], "too large"),
        ([], "required"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("symconv: error: ") and err.count("\n") == 1, err
    assert words in err
    assert "Traceback" not in err


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "derive", "--help")
    assert code == 0 and "--index-base" in out


def test_demo_is_still_there(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "demo" in out


# -- as a program --------------------------------------------------------------------------------


def program(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "symconv.cli", *argv], capture_output=True, text=True, encoding="utf-8",
        env=env, cwd=ROOT, timeout=300,
    )


def test_runs_as_a_program():
    ok = program("derive", "3x3", "2x2")
    assert ok.returncode == 0, ok.stderr
    assert O11 in ok.stdout
    bad = program("derive", "3x3", "2x2", "--groups", "0")
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr == "symconv: error: groups must be >= 1, but got 0\n"


def test_layer_and_train_are_subcommands(capsys):
    code, out, err = run(capsys, "layer", "sigmoid", "--shape", "1,2")
    assert code == 0, err
    assert "Sigmoid" in out and "Verified: all closed forms hold ✓" in out
    code, out, err = run(capsys, "layer", "maxpool", "--input", "1,1,4,4", "--kernel", "0")
    assert code == 2 and out == "" and err.startswith("symconv: error:") and "kernel" in err
    code, out, err = run(capsys, "train", "--epochs", "0")
    assert code == 2 and out == "" and err == "symconv: error: --epochs must be >= 1, but got 0\n"
