"""Standalone export: the .c/.h pair compiled with a plain C harness (no Python in the C path).

tests/c/harness.c reads the inputs from a binary file, calls every kernel and writes the
results; they are compared with tests/reference.py here. Also: the golden files in generated/
are exactly what the generator produces now.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from symconv import ConvSpec
from symconv.cli import main
from symconv.export import GOLDEN, GOLDEN_DIR, export, update_golden
from tests.test_render_c import assert_close, has_openmp, random_arrays, reference_outputs

CC = shutil.which("cc") or shutil.which("gcc")
HARNESS = Path(__file__).parent / "c" / "harness.c"
NP_TYPES = {"float32": np.float32, "float64": np.float64}
C_TYPES = {"float32": "float", "float64": "double"}

LECTURE = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
LENET_C3 = ConvSpec(input=(1, 6, 14, 14), weight=(16, 6, 5, 5), bias=True)
EVERYTHING = ConvSpec(
    input=(2, 4, 9, 8), weight=(6, 2, 3, 2), stride=(2, 1), padding=((1, 2), (0, 1)),
    dilation=(1, 2), groups=2, bias=True,
)
RANK3 = ConvSpec(
    input=(1, 2, 4, 5, 3), weight=(3, 2, 2, 2, 2), stride=(1, 2, 1), padding=1, dilation=(2, 1, 1)
)

needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")


def build_harness(spec: ConvSpec, dtype: str, directory: Path, name: str, openmp: bool = False) -> Path:
    c_path, h_path = export(spec, directory, dtype, name)
    exe = directory / f"{name}_harness"
    command = [
        CC, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", *(["-fopenmp"] if openmp else []),
        f"-I{directory}", f'-DKERNEL_HEADER="{h_path.name}"', f"-DKERNEL_NAME={name}",
        f"-DKERNEL_PREFIX={name.upper()}_", f"-DREAL={C_TYPES[dtype]}", f"-DHAS_BIAS={int(spec.bias)}",
        str(HARNESS), str(c_path), "-o", str(exe),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr}"
    return exe


def run_harness(exe: Path, spec: ConvSpec, dtype: str, arrays: dict[str, np.ndarray], threads: int = 1):
    order = ["x", "w", *(["b"] if spec.bias else []), "grad_out"]
    in_path, out_path = exe.with_suffix(".in"), exe.with_suffix(".out")
    np.concatenate([arrays[k].ravel() for k in order]).astype(NP_TYPES[dtype]).tofile(in_path)
    command = [str(exe), str(in_path), str(out_path), str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    flat = np.fromfile(out_path, dtype=NP_TYPES[dtype])
    shapes = {"out": spec.output, "grad_x": spec.input, "grad_w": spec.weight}
    if spec.bias:
        shapes["grad_b"] = spec.bias_shape
    results, start = {}, 0
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        results[key] = flat[start : start + size].reshape(shape)
        start += size
    assert start == flat.size, "the harness wrote an unexpected amount of data"
    return results, done.stdout


@needs_cc
@pytest.mark.parametrize(
    "spec, dtype",
    [(LECTURE, "float32"), (LECTURE, "float64"), (LENET_C3, "float32"), (EVERYTHING, "float32"),
     (EVERYTHING, "float64"), (RANK3, "float64")],
    ids=["lecture-f32", "lecture-f64", "lenet-c3-f32", "everything-f32", "everything-f64", "rank3-f64"],
)
def test_exported_kernels_match_the_reference(spec: ConvSpec, dtype: str, tmp_path: Path) -> None:
    exe = build_harness(spec, dtype, tmp_path, "layer")
    arrays = random_arrays(spec, dtype, seed=3)
    got, stdout = run_harness(exe, spec, dtype, arrays)
    assert "openmp=0" in stdout
    for key, expected in reference_outputs(spec, arrays).items():
        assert_close(got[key], expected, dtype, f"{key} of {spec.describe()} ({dtype})")


@needs_cc
def test_exported_kernels_with_openmp(tmp_path: Path) -> None:
    if not has_openmp():
        pytest.skip("the C compiler has no OpenMP")
    exe = build_harness(EVERYTHING, "float64", tmp_path, "layer", openmp=True)
    arrays = random_arrays(EVERYTHING, "float64", seed=5)
    got, stdout = run_harness(exe, EVERYTHING, "float64", arrays, threads=2)
    assert "openmp=1" in stdout
    for key, expected in reference_outputs(EVERYTHING, arrays).items():
        assert_close(got[key], expected, "float64", key)


def test_export_writes_the_pair_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir"
    c_path, h_path = export(LECTURE, target, "float64")
    assert (c_path.parent, h_path.parent) == (target, target)
    assert c_path.name.endswith("_f64.c") and h_path.name == c_path.name[:-2] + ".h"
    assert sorted(p.name for p in target.iterdir()) == sorted([c_path.name, h_path.name])  # no temp files
    assert f'#include "{h_path.name}"' not in c_path.read_text()  # the .c stands alone
    assert "malloc" not in c_path.read_text() and "#include <stdlib.h>" not in c_path.read_text()
    assert oct(c_path.stat().st_mode & 0o777) == oct(0o644)


def test_export_overwrites_atomically(tmp_path: Path) -> None:
    c_path, _ = export(LECTURE, tmp_path, name="layer")
    before = c_path.stat().st_ino
    export(LENET_C3, tmp_path, name="layer")
    assert c_path.stat().st_ino != before  # replaced by rename, never rewritten in place
    assert "16×6×5×5" in c_path.read_text(encoding="utf-8")


def test_export_rejects_bad_arguments(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(NotADirectoryError, match="out_dir"):
        export(LECTURE, a_file)
    with pytest.raises(ValueError, match="name must be a C identifier"):
        export(LECTURE, tmp_path, name="3x3")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', but got 'int8'"):
        export(LECTURE, tmp_path, dtype="int8")
    with pytest.raises(TypeError, match="spec must be a ConvSpec"):
        export({"input": (1, 1, 3, 3)}, tmp_path)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_command_line_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layer = ["--input", "1x2x5x5", "--weight", "2x1x3x3", "--groups", "2", "--padding", "1"]
    assert main(["generate", *layer, "--dtype", "float64", "--name", "dw", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "dw.c").is_file() and (tmp_path / "dw.h").is_file()
    assert str(tmp_path / "dw.c") in capsys.readouterr().out
    assert main(["generate", "3x3", "2x2", "--name", "3x3", "--out", str(tmp_path)]) == 2
    assert "name must be a C identifier" in capsys.readouterr().err
    assert main(["generate", "--out", str(tmp_path)]) == 2
    assert "give a layer" in capsys.readouterr().err


def test_golden_examples_are_the_briefed_layers() -> None:
    lecture, dtype = GOLDEN["lecture"]
    assert (lecture.input, lecture.weight, lecture.bias) == ((1, 1, 3, 3), (1, 1, 2, 2), False)
    assert dtype == "float32"
    lenet, dtype = GOLDEN["lenet_c3"]
    assert (lenet.input, lenet.weight, lenet.bias, dtype) == ((1, 6, 14, 14), (16, 6, 5, 5), True, "float32")


def test_golden_files_are_up_to_date(tmp_path: Path) -> None:
    """Every change to the generated C must show up in review as a change to generated/."""
    written = update_golden(tmp_path)
    assert len(written) == 2 * len(GOLDEN)
    for fresh in written:
        committed = GOLDEN_DIR / fresh.name
        assert committed.is_file(), (
            f"generated/{fresh.name} is missing; run `symconv generate --update-golden`"
        )
        old, new = committed.read_text(encoding="utf-8"), fresh.read_text(encoding="utf-8")
        if old != new:
            diff = "".join(
                list(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                          f"generated/{fresh.name}", "now"))[:60]
            )
            pytest.fail(
                f"generated/{fresh.name} differs from what the code generator produces now.\n"
                f"If the change is intended, run `symconv generate --update-golden` "
                f"and commit the new files.\n{diff}"
            )


@needs_cc
def test_golden_files_compile_cleanly(tmp_path: Path) -> None:
    for name in GOLDEN:
        for flags in ([], ["-fopenmp"]):
            done = subprocess.run(
                [CC, "-std=gnu11", "-Wall", "-Wextra", "-Werror", *flags, "-c",
                 str(GOLDEN_DIR / f"{name}.c"), "-o", os.devnull],
                capture_output=True, text=True,
            )
            assert done.returncode == 0, done.stderr
