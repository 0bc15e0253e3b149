"""Hostile command lines: non-numeric, out-of-range and absurd arguments to ``symconv``.

A bad argument must end the process with exit code 2 and exactly one line on stderr,
``symconv: error: …`` naming the problem, and no traceback. Absurd but valid arguments must not
crash either.

Every case runs in its own process, as a user would meet it. Starting a fresh interpreter per case
would cost a second each, so one driver process imports the program once and forks a child per
case; the child runs ``main(argv)`` exactly as ``sys.exit(main())`` would (an uncaught exception
prints its traceback and exits 1), with its own stdout/stderr files and a time limit. One case is
also run as a real ``python -m symconv.cli`` to show that the driver and the program agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest

from tests.conftest import ROOT, child_env

#: Seconds one case may run before its process is killed.
CASE_TIMEOUT_S = 120

DRIVER = r"""
import json, os, sys, tempfile, time, traceback
from symconv.cli import main


def child(argv, env, out_path, err_path):
    code = 1
    try:
        os.environ.update(env)
        for fd, path in ((1, out_path), (2, err_path)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        try:
            code = main(argv)
        except SystemExit as exc:  # what the interpreter does with it
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


def run(case, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(case["argv"], case["env"], out_path, err_path)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                code = None
                break
            time.sleep(0.005)
        read = lambda p: open(p, encoding="utf-8", errors="replace").read() if os.path.exists(p) else ""
        return {"code": code, "out": read(out_path), "err": read(err_path)}


cases = json.loads(sys.stdin.read())
print(json.dumps({name: run(case, case["timeout"]) for name, case in cases.items()}))
"""


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    words: str = ""  # must appear in the error line
    env: tuple[tuple[str, str], ...] = ()
    valid: bool = False  # absurd but valid: exit 0 (or 1 for a failed proof), no traceback


HUGE = "9" * 30
#: The largest stride, dilation and padding a layer may have (symconv/spec.py).
LIMIT = 2**31 - 1

BAD_NUMBERS = {
    "groups_word": Case(("derive", "3x3", "2x2", "--groups", "abc"), "invalid int value: 'abc'"),
    "groups_float": Case(("derive", "3x3", "2x2", "--groups", "1.5"), "invalid int value: '1.5'"),
    "groups_empty": Case(("derive", "3x3", "2x2", "--groups", ""), "invalid int value: ''"),
    "groups_zero": Case(("derive", "3x3", "2x2", "--groups", "0"), "groups must be >= 1, but got 0"),
    "groups_negative": Case(("derive", "3x3", "2x2", "--groups", "-2"), "groups must be >= 1, but got -2"),
    "groups_huge": Case(("derive", "3x3", "2x2", "--groups", HUGE), "groups must divide in_channels"),
    "stride_word": Case(("derive", "3x3", "2x2", "--stride", "two"), "--stride must be an int"),
    "stride_float": Case(("derive", "3x3", "2x2", "--stride", "1.5"), "--stride must be an int"),
    "stride_empty_entry": Case(("derive", "3x3", "2x2", "--stride", "1,,1"), "--stride must be an int"),
    "stride_zero": Case(("derive", "3x3", "2x2", "--stride", "0"), "stride must be >= 1"),
    "stride_negative": Case(("derive", "3x3", "2x2", "--stride", "-1"), "stride must be >= 1"),
    "stride_three_axes": Case(("derive", "3x3", "2x2", "--stride", "1,1,1"), "one entry per spatial axis"),
    "dilation_word": Case(("derive", "3x3", "2x2", "--dilation", "x"), "--dilation must be an int"),
    "dilation_zero": Case(("derive", "3x3", "2x2", "--dilation", "0"), "dilation must be >= 1"),
    "dilation_too_big": Case(("derive", "3x3", "2x2", "--dilation", "5"), "kernel does not fit"),
    "padding_negative": Case(("derive", "3x3", "2x2", "--padding", "-1"), "padding must be >= 0"),
    "padding_word": Case(("derive", "3x3", "2x2", "--padding", "full"), "padding must be"),
    "padding_triple": Case(("derive", "3x3", "2x2", "--padding", "1:2:3"), "padding must be"),
    "padding_mixed": Case(("derive", "3x3", "2x2", "--padding", "same,1"), "padding must be"),
    "padding_empty": Case(("derive", "3x3", "2x2", "--padding", ""), "padding must be"),
    "index_base_five": Case(("derive", "3x3", "2x2", "--index-base", "5"), "invalid choice: 5"),
    "index_base_word": Case(("derive", "3x3", "2x2", "--index-base", "one"), "invalid int value"),
    "seed_word": Case(("demo", "--seed", "abc"), "invalid int value: 'abc'"),
    "seed_negative": Case(("demo", "--seed", "-1"), "argument --seed: must be >= 0, but got -1"),
    "stride_beyond_limit": Case(("derive", "3x3", "2x2", "--stride", HUGE),
                                f"stride must be at most {LIMIT} (2^31 - 1) on every axis, but got {HUGE}"),
    "padding_beyond_limit": Case(("derive", "3x3", "2x2", "--padding", HUGE, "--general"),
                                 f"padding must be at most {LIMIT} (2^31 - 1) on every side, but got {HUGE}"),
    "dilation_beyond_limit": Case(("derive", "3x3", "2x2", "--dilation", HUGE, "--padding", HUGE, "--general"),
                                  f"dilation must be at most {LIMIT}"),
    "input_beyond_64_bit": Case(("derive", "--input", f"1x1x{2**40}x{2**40}", "--weight", "1x1x1x1", "--general"),
                                "input must have at most 2^62"),
}

BAD_SHAPES = {
    "trailing_x": Case(("derive", "3x", "2x2"), "input must be sizes"),
    "letters": Case(("derive", "axb", "2x2"), "input must be sizes"),
    "negative": Case(("derive", "-3x3", "2x2"), "unrecognized arguments: -3x3"),
    "float": Case(("derive", "3.0x3", "2x2"), "input must be sizes"),
    "exponent": Case(("derive", "1e3x3", "2x2"), "input must be sizes"),
    "empty": Case(("derive", "", "2x2"), "input must be sizes"),
    "zero_size": Case(("derive", "0x3", "2x2"), "input dimensions must be positive"),
    "zero_kernel": Case(("derive", "3x3", "0x2"), "weight dimensions must be positive"),
    "rank_four": Case(("derive", "3x3x3x3", "2x2x2x2"), "dimensions"),
    "ranks_differ": Case(("derive", "3x3", "2x2x2"), "same number of dimensions"),
    "kernel_too_big": Case(("derive", "3x3", "4x4"), "kernel does not fit"),
    "one_shape": Case(("derive", "3x3"), "two positional shapes"),
    "three_shapes": Case(("derive", "3x3", "2x2", "1x1"), "two positional shapes"),
    "zero_channels": Case(("derive", "--input", "1x0x3x3", "--weight", "1x0x2x2"), "must be positive"),
    "weight_channels": Case(("derive", "--input", "1x2x3x3", "--weight", "1x3x2x2"), "weight.shape[1]"),
    "missing_weight": Case(("derive", "--input", "1x1x3x3"), "the layer is missing"),
}

BAD_CHOICES = {
    "no_command": Case((), "required"),
    "unknown_command": Case(("prove", "3x3", "2x2"), "invalid choice: 'prove'"),
    "unknown_option": Case(("derive", "3x3", "2x2", "--speed", "11"), "unrecognized arguments"),
    "format": Case(("derive", "3x3", "2x2", "--format", "pdf"), "invalid choice: 'pdf'"),
    "wrt": Case(("derive", "3x3", "2x2", "--wrt", "nothing"), "invalid choice: 'nothing'"),
    "wrt_bias_without_bias": Case(("derive", "3x3", "2x2", "--wrt", "bias"), "--wrt bias needs"),
    "dtype": Case(("demo", "--dtype", "float16"), "invalid choice: 'float16'"),
    "demo_large_layer": Case(("demo", "200x200", "3x3"), "give a small layer"),
    "verify_huge_layer": Case(("verify", "1000000000x1000000000", "3x3"), "too large for an element-wise proof"),
    "index_style": Case(("check", "3x3", "2x2", "--claim", "dL/dX_11 = 0", "--index-style", "rows"), "index_style"),
    "claims_file_missing": Case(("check", "3x3", "2x2", "--claims-file", "/nonexistent/claims.txt"), "cannot read"),
    "claims_file_directory": Case(("check", "3x3", "2x2", "--claims-file", "/"), "cannot read"),
    "claims_file_binary": Case(("check", "3x3", "2x2", "--claims-file", sys.executable), "claims-file"),
    "claim_unparsable": Case(("check", "3x3", "2x2", "--claim", "dL/dX_11 = __import__('os')"), "claim"),
}

ABSURD_BUT_VALID = {
    "padding_at_limit": Case(("derive", "3", "2", "--padding", str(LIMIT), "--general"), valid=True),
    "stride_at_limit": Case(("derive", "3x3", "2x2", "--stride", str(LIMIT)), valid=True),
    "dilation_at_limit_padded": Case(
        ("derive", "3", "2", "--dilation", str(LIMIT), "--padding", str(LIMIT), "--general"), valid=True),
    "batch_zero": Case(("derive", "--input", "0x1x3x3", "--weight", "1x1x2x2"), valid=True),
    "fullwidth_digits": Case(("derive", "３x３", "２x２"), valid=True),
    "huge_layer_general_form": Case(("derive", "99999x99999", "3x3", "--format", "json"), valid=True),
    "seed_huge": Case(("demo", "--seed", HUGE), valid=True),
}

ENVIRONMENT = {
    "demo_missing_compiler": Case(("demo",), "compiler", env=(("CC", "/nonexistent/cc"),)),
    "demo_malformed_cc": Case(("demo",), "$CC", env=(("CC", 'gcc "'),)),
    "demo_bad_sanitize_flag": Case(("demo",), "SYMCONV_SANITIZE", env=(("SYMCONV_SANITIZE", "yes"),)),
    "demo_failing_compiler": Case(("demo",), "failed on --version", env=(("CC", "false"),)),
    "demo_sanitize_without_runtime": Case(("demo",), "LD_PRELOAD=", env=(("SYMCONV_SANITIZE", "1"),)),
}

GENERATE = {
    "nothing_to_do": Case(("generate",), "give a layer"),
    "golden_with_a_layer": Case(("generate", "3x3", "2x2", "--update-golden"), "give no layer"),
    "name_not_identifier": Case(("generate", "3x3", "2x2", "--name", "3x3"), "name must be a C identifier"),
    "name_too_long": Case(("generate", "3x3", "2x2", "--name", "a" * 65), "at most 64"),
    "out_is_a_file": Case(("generate", "3x3", "2x2", "--out", sys.executable), "out_dir"),
    "out_unwritable": Case(("generate", "3x3", "2x2", "--out", "/proc/symconv-cannot-be-here"), "/proc/"),
    "dtype": Case(("generate", "3x3", "2x2", "--dtype", "int8"), "invalid choice: 'int8'"),
    "stride_zero": Case(("generate", "3x3", "2x2", "--stride", "0"), "stride must be >= 1"),
    "stride_beyond_64_bit": Case(("generate", "3x3", "2x2", "--stride", HUGE, "--out", "/nonexistent/dir"),
                                 "stride must be at most"),
}

CATEGORIES = {
    "bad_number": BAD_NUMBERS, "bad_shape": BAD_SHAPES, "bad_choice": BAD_CHOICES,
    "absurd_but_valid": ABSURD_BUT_VALID, "environment": ENVIRONMENT, "generate": GENERATE,
}
ALL = {f"{category}-{name}": case for category, cases in CATEGORIES.items() for name, case in cases.items()}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    cache = tmp_path_factory.mktemp("cache")  # for the environment cases: nothing leaks into the real cache
    payload = {
        name: {"argv": list(c.argv), "timeout": CASE_TIMEOUT_S,
               "env": {"SYMCONV_CACHE_DIR": str(cache), **dict(c.env)} if c.env else {}}
        for name, c in ALL.items()
    }
    done = subprocess.run(
        [sys.executable, "-c", DRIVER], input=json.dumps(payload), capture_output=True, text=True,
        env=child_env(PYTHONIOENCODING="utf-8"), cwd=ROOT, timeout=CASE_TIMEOUT_S * 4,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(name: str, result: dict) -> None:
    case = ALL[name]
    code, out, err = result["code"], result["out"], result["err"]
    assert code is not None, f"still running after {CASE_TIMEOUT_S} s"
    assert "Traceback" not in err, err
    if case.valid:
        assert code in (0, 1), (code, err)
        return
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{err}"
    assert code == 2, (code, err)
    assert lines[0].startswith("symconv: error: "), lines[0]
    assert out == "", out
    assert case.words in lines[0], lines[0]


def _params(category: str) -> list[str]:
    return [f"{category}-{n}" for n in CATEGORIES[category]]


@pytest.mark.parametrize("name", _params("bad_number"))
def test_bad_numbers(name: str, results) -> None:
    check(name, results[name])


@pytest.mark.parametrize("name", _params("bad_shape"))
def test_bad_shapes(name: str, results) -> None:
    check(name, results[name])


@pytest.mark.parametrize("name", _params("bad_choice"))
def test_bad_choices_and_files(name: str, results) -> None:
    check(name, results[name])


@pytest.mark.parametrize("name", _params("absurd_but_valid"))
def test_absurd_but_valid_arguments(name: str, results) -> None:
    check(name, results[name])


@pytest.mark.parametrize("name", _params("environment"))
def test_broken_environment(name: str, results) -> None:
    check(name, results[name])


@pytest.mark.parametrize("name", _params("generate"))
def test_generate_command(name: str, results) -> None:
    check(name, results[name])


def test_driver_agrees_with_the_real_program(results) -> None:
    """The same bad command line, run as ``python -m symconv.cli``: same exit code and message."""
    name = "bad_number-stride_zero"
    real = subprocess.run(
        [sys.executable, "-m", "symconv.cli", *ALL[name].argv], capture_output=True, text=True,
        env=child_env(PYTHONIOENCODING="utf-8"), cwd=ROOT, timeout=CASE_TIMEOUT_S,
    )
    assert (real.returncode, real.stdout, real.stderr) == (results[name]["code"], results[name]["out"],
                                                           results[name]["err"])
