"""Smoke tests of the benchmark harness (benchmarks/suite.py): it runs and its checks can fail.

No timing is asserted anywhere: only that the harness produces its outputs, that its correctness
check passes on correct kernels and flags wrong results, and that its numpy baseline is right.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import reference

pytest.importorskip("torch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # suite.py imports its sibling peak.py
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


suite = _load("suite")


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="needs a C compiler")
def test_tiny_shape_runs_and_passes_its_check(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:start -->\nold\n<!-- bench:end -->\noutro\n")
    code = suite.main([
        "--shapes", "seed_tiny", "--threads", "1", "--repeat", "1", "--rounds", "2", "--quick",
        "--out", str(tmp_path), "--update-readme", "--readme", str(readme),
    ])
    assert code == 0
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["failures"] == []
    rows = report["rows"]
    assert {(r["shape"], r["pass"], r["threads"]) for r in rows} == {
        ("seed_tiny", p, 1) for p in ("forward", "backward_data", "backward_weight")
    }
    for row in rows:
        for library in ("symconv", "torch"):
            assert row[library]["status"] == "ok"
            assert row[library]["check"] == "ok"
            assert len(row[library]["samples"]) == 2  # --repeat 1, two rounds
            assert row[library]["seconds"] == statistics.median(row[library]["rounds"])
    assert rows[0]["numpy"]["check"] == "ok"
    assert report["peak"]["used"]["1"] > 0
    page = (tmp_path / "latest.md").read_text()
    assert "seed_tiny" in page and page in capsys.readouterr().out
    text = readme.read_text()
    assert text.startswith("intro\n<!-- bench:start -->\n") and text.endswith("<!-- bench:end -->\noutro\n")
    assert "old" not in text and "seed_tiny" in text


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="needs a C compiler")
def test_a_wrong_kernel_result_fails_the_run_loudly(tmp_path, monkeypatch, capsys):
    right = suite.symconv_ops

    def off_by_a_bit(kernel, case):
        ops = right(kernel, case)
        ops["backward_data"] = lambda: tuple(a * 1.01 for a in right(kernel, case)["backward_data"]())
        return ops

    monkeypatch.setattr(suite, "symconv_ops", off_by_a_bit)
    args = ["--shapes", "seed_tiny", "--threads", "1", "--repeat", "1", "--quick", "--out", str(tmp_path)]
    code = suite.main(args)
    assert code == 1
    report = json.loads((tmp_path / "latest.json").read_text())
    assert len(report["failures"]) == 1 and "backward-data" in report["failures"][0]
    assert "CORRECTNESS FAILURES" in capsys.readouterr().out


def test_rounds_take_the_median_and_stop_at_a_skip():
    def ok(seconds, error=1e-7):
        return {"status": "ok", "seconds": seconds, "samples": [seconds], "rel_error": error, "check": "ok"}

    spoiled = suite.combine_rounds([ok(1.0), ok(9.0, 2e-7), ok(1.2)])  # a busy moment in round 2
    assert spoiled["seconds"] == 1.2 and spoiled["rounds"] == [1.0, 9.0, 1.2]
    assert spoiled["samples"] == [1.0, 9.0, 1.2] and spoiled["rel_error"] == 2e-7 and spoiled["check"] == "ok"
    failed = suite.combine_rounds([ok(1.0), dict(ok(1.0), check="FAIL")])
    assert failed["check"] == "FAIL"
    skipped = {"status": "skipped", "note": "predicted too slow"}
    assert suite.combine_rounds([skipped]) == skipped


def test_check_flags_a_wrong_result():
    expected = (np.linspace(-1.0, 1.0, 12).reshape(3, 4),)
    assert suite.relative_error(expected, expected) == 0.0
    wrong = expected[0].astype(np.float32).copy()
    wrong[1, 2] += 1e-3
    assert suite.relative_error((wrong,), expected) > suite.TOLERANCE
    assert suite.relative_error((wrong[:2],), expected) == np.inf  # wrong shape
    assert suite.relative_error((np.full((3, 4), np.nan),), expected) == np.inf


def test_readme_block_needs_both_markers():
    assert suite.replace_block("no markers here", "new") is None
    assert suite.replace_block("<!-- bench:end --> <!-- bench:start -->", "new") is None
    text = "a <!-- bench:start -->x<!-- bench:end --> b"
    assert suite.replace_block(text, "new") == "a <!-- bench:start -->\nnew\n<!-- bench:end --> b"


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, dilation, groups",
    [
        ((2, 3, 7, 6), (4, 3, 3, 2), 1, 0, 1, 1),
        ((1, 4, 9, 9), (6, 2, 3, 3), 2, 1, 1, 2),
        ((2, 2, 8, 7), (2, 1, 2, 3), 3, 2, 2, 2),
        ((1, 3, 5, 5), (3, 1, 3, 3), 1, 1, 1, 3),
    ],
)
def test_numpy_im2col_matches_the_reference(x_shape, w_shape, stride, padding, dilation, groups):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    got = suite.im2col_forward(x, w, b, stride, padding, dilation, groups)
    want = reference.conv_forward(x, w, b, (stride,) * 2, ((padding, padding),) * 2, (dilation,) * 2, groups)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_flops_follow_the_formula():
    # resnet_3x3_s2: 2·N·K·C·OH·OW·KH·KW/groups with OH = OW = (56 + 2 - 3)//2 + 1 = 28.
    assert suite.SHAPES["resnet_3x3_s2"].flops() == 2 * 8 * 128 * 128 * 28 * 28 * 9
    assert suite.SHAPES["depthwise"].flops() == 2 * 8 * 64 * 64 * 56 * 56 * 9 // 64
    for shape in suite.SUITE:
        assert shape.output == shape.spec().output  # the harness agrees with ConvSpec


def test_a_busy_second_core_is_flagged():
    def peaks(one: float, two: float) -> dict:
        return {1: {"best_gflops": one}, 2: {"best_gflops": two}}

    quiet = {"peak": {"start": peaks(240, 470), "end": peaks(238, 465)}}
    busy = {"peak": {"start": peaks(240, 470), "end": {"1": {"best_gflops": 238}, "2": {"best_gflops": 250}}}}
    assert suite.contention_warning(quiet) is None
    warning = suite.contention_warning(busy)
    assert warning and "1.05×" in warning and "unreliable" in warning
    assert suite.contention_warning({"peak": {"start": {}, "end": {}}}) is None  # no probe, no claim


def test_asm_check_counts_multiply_adds_spills_and_register_copies():
    """A hand-written loop: two zmm multiply-adds (one reading a spilled sum), a store to the
    stack, one register-to-register copy; the loads from memory are neither spills nor copies."""
    asm_check = _load("asm_check")
    assembly = "\n".join([
        "tile:",
        "\tvmovaps\t%zmm7, %zmm8",  # outside the loop: not counted
        ".L3:",
        "\tvbroadcastss\t(%rax), %zmm1",
        "\tvfmadd231ps\t%zmm0, %zmm1, %zmm2",
        "\tvmovaps\t%zmm2, %zmm3",
        "\tvmovaps\t%zmm4, 64(%rsp)",
        "\tvmovaps\t64(%rdx), %zmm6",
        "\tvfmadd231ps\t(%rsp), %zmm1, %zmm5",
        "\taddq\t$4, %rax",
        "\tjne\t.L3",
        "\tret",
    ])
    report = asm_check.inspect("tile", asm_check.functions(assembly)["tile"])
    assert (report.register, report.fmas, report.spills, report.moves, report.lines) == ("zmm", 2, 2, 1, 8)
