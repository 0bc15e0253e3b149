"""The main job, end to end: the report says every stage passed, and says so only when true."""

import io

import numpy as np
import pytest

from symconv import ConvSpec, demo
from symconv.cli import main


def run(spec=demo.LECTURE_EXAMPLE, **kwargs):
    out = io.StringIO()
    code = demo.run_demo(spec, out=out, **kwargs)
    return code, out.getvalue()


def test_lecture_example_passes_every_stage():
    code, report = run()
    assert code == 0, report
    for stage in ("derive", "verify", "generate", "compile", "run"):
        assert stage in report
    assert "O₁₁ = X₁₁F₁₁ + X₁₂F₁₂ + X₂₁F₂₁ + X₂₂F₂₂" in report
    assert report.rstrip().endswith("All stages passed.")


def test_busier_layer_in_float64():
    spec = ConvSpec(input=(1, 2, 5, 5), weight=(2, 1, 3, 3), stride=2, padding=1, groups=2, bias=True)
    code, report = run(spec, dtype="float64")
    assert code == 0, report


def test_a_wrong_kernel_result_is_reported(monkeypatch):
    real = demo.run_kernels

    def off_by_one(kernel, arrays):
        results = real(kernel, arrays)
        results["dX"] = results["dX"] + np.float32(1)
        return results

    monkeypatch.setattr(demo, "run_kernels", off_by_one)
    code, report = run()
    assert code == 1
    assert "✗ C kernels" in report and "did NOT agree" in report


def test_cli_demo_refuses_a_large_layer(capsys):
    assert main(["demo", "--input", "8x64x56x56", "--weight", "64x64x3x3"]) == 2
    assert "small layer" in capsys.readouterr().err


def test_cli_demo_default(capsys):
    assert main(["demo"]) == 0
    assert "All stages passed." in capsys.readouterr().out
