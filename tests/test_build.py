"""codegen.build: one direct compiler call per module, flags, probes, and clear compiler errors.

Hand-written C sources stand in for generated kernels here: building does not care what the C
computes, and numpy checks the results independently.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

from codegen import build as build_mod
from codegen.build import CompilerError, build_extension, toolchain
from codegen.cache import Cache

SAXPY_C = """\
#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#endif
void saxpy(float a, const float *restrict x, const float *restrict y, float *restrict out, long n) {
#pragma omp parallel for
    for (long i = 0; i < n; i++) out[i] = a * x[i] + y[i];
}
int has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
int wraps(int x) { return x + 1 > x; }  /* folded to 1 without -fwrapv */
"""
SAXPY_CDEF = """\
void saxpy(float a, const float *x, const float *y, float *out, long n);
int has_openmp(void);
int wraps(int x);
"""


def unique(prefix: str) -> str:
    """A fresh module name, so that no in-process memo answers for another test."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


def fake_compiler(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fakecc"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(script)


def test_builds_loads_and_computes(cache: Cache) -> None:
    ext = build_extension(unique("saxpy"), SAXPY_C, SAXPY_CDEF, cache=cache)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(1000, dtype=np.float32), rng.standard_normal(1000, dtype=np.float32)
    out = np.empty_like(x)
    buf = ext.ffi.from_buffer
    ext.lib.saxpy(2.5, buf("float[]", x), buf("float[]", y), buf("float[]", out), x.size)
    # float64 reference: the compiler may contract a*x+y into one FMA (one rounding, not two)
    np.testing.assert_allclose(out, 2.5 * x.astype(np.float64) + y, rtol=1e-6, atol=1e-7)
    assert not ext.from_cache
    assert ext.path.parent == cache.root
    assert ext.source_path.read_text() == SAXPY_C
    assert ext.so_path.is_file()


def test_flags_and_openmp(cache: Cache) -> None:
    tools = toolchain(cache)
    flags = list(tools.flags)
    assert "-O3" in flags and "-std=gnu11" in flags and "-shared" in flags and "-fPIC" in flags
    assert flags[-1] == "-fno-wrapv"
    assert not any("fast-math" in f or f == "-std=c11" for f in flags)
    assert ("-fopenmp" in flags) == tools.openmp
    ext = build_extension(unique("omp"), SAXPY_C, SAXPY_CDEF, cache=cache)
    assert ext.lib.has_openmp() == int(tools.openmp)
    # -fno-wrapv: signed overflow is undefined again, so `x + 1 > x` may fold to true.
    assert ext.lib.wraps(2**31 - 1) == 1


def test_gcc_supports_openmp_and_native(cache: Cache) -> None:
    """On a machine with gcc (as documented for this project) both probes must succeed."""
    if "gcc" not in toolchain(cache).version.lower() and "free software" not in toolchain(cache).version.lower():
        pytest.skip("the compiler is not gcc")
    tools = toolchain(cache)
    assert tools.openmp
    assert "-march=native" in tools.flags
    assert tools.target  # gcc describes what -march=native means


def test_in_process_memo_returns_same_module(cache: Cache) -> None:
    name = unique("memo")
    first = build_extension(name, SAXPY_C, SAXPY_CDEF, cache=cache)
    again = build_extension(name, SAXPY_C, SAXPY_CDEF, cache=cache)
    assert again is first


def test_recorded_command_reproduces_the_build(cache: Cache) -> None:
    ext = build_extension(unique("cmd"), SAXPY_C, SAXPY_CDEF, cache=cache)
    command = list(ext.command)
    assert command[: len(toolchain(cache).compiler)] == list(toolchain(cache).compiler)
    out = command.index("-o")
    command[out + 1] = "again.so"
    subprocess.run(command, cwd=ext.path, check=True, capture_output=True)
    assert (ext.path / "again.so").stat().st_size > 0
    (ext.path / "again.so").unlink()


def test_bad_name_is_refused(cache: Cache) -> None:
    with pytest.raises(ValueError, match="name must be a C identifier, but got 'not-valid'"):
        build_extension("not-valid", SAXPY_C, SAXPY_CDEF, cache=cache)


def test_syntax_error_names_command_stderr_and_source(cache: Cache) -> None:
    broken = "void broken(void) { this is not C; }\n"
    with pytest.raises(CompilerError) as info:
        build_extension(unique("broken"), broken, "void broken(void);", cache=cache)
    err = info.value
    text = str(err)
    assert err.source_path is not None and err.source_path.read_text() == broken
    assert str(err.source_path) in text
    assert shlex.join(err.command) in text
    assert "error" in err.stderr and err.stderr.strip() in text
    assert err.compiler in text
    # no half-built entry is left where a finished one would be
    assert [p.name for p in cache.root.iterdir() if len(p.name) == 64] == []


def test_missing_compiler(monkeypatch: pytest.MonkeyPatch, cache: Cache) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(CompilerError, match="/nonexistent/cc") as info:
        build_extension(unique("nocc"), SAXPY_C, SAXPY_CDEF, cache=cache)
    err = info.value
    assert err.compiler == "/nonexistent/cc"
    assert "/nonexistent/cc --version" in str(err)
    assert err.source_path is not None and err.source_path.read_text() == SAXPY_C
    assert str(err.source_path) in str(err)


def test_compiler_that_always_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: Cache) -> None:
    cc = fake_compiler(tmp_path, 'echo "fakecc: licence expired" >&2\nexit 1\n')
    monkeypatch.setenv("CC", cc)
    with pytest.raises(CompilerError) as info:
        build_extension(unique("failcc"), SAXPY_C, SAXPY_CDEF, cache=cache)
    text = str(info.value)
    assert cc in text and "licence expired" in text and "exit code 1" in text
    assert info.value.source_path is not None and str(info.value.source_path) in text


def test_compiler_that_fails_to_compile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: Cache) -> None:
    """Answers --version, rejects everything else: no OpenMP (one warning), then a CompilerError."""
    cc = fake_compiler(
        tmp_path,
        'if [ "$1" = "--version" ]; then echo "fakecc 1.0"; exit 0; fi\n'
        'echo "fakecc: cannot compile $*" >&2\nexit 1\n',
    )
    monkeypatch.setenv("CC", cc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CompilerError) as info:
            build_extension(unique("fakecc"), SAXPY_C, SAXPY_CDEF, cache=cache)
        with pytest.raises(CompilerError):  # same toolchain again: no second warning
            build_extension(unique("fakecc"), SAXPY_C, SAXPY_CDEF, cache=cache)
    omp = [w for w in caught if "OpenMP" in str(w.message)]
    assert len(omp) == 1 and "one thread" in str(omp[0].message)
    err = info.value
    assert err.command[0] == cc and "module.c" in err.command
    assert "fakecc: cannot compile" in err.stderr and "fakecc: cannot compile" in str(err)
    assert err.source_path is not None and err.source_path.read_text() == SAXPY_C
    tools = toolchain(cache)
    assert not tools.openmp and "-fopenmp" not in tools.flags and "-march=native" not in tools.flags


def test_cc_with_arguments(monkeypatch: pytest.MonkeyPatch, cache: Cache) -> None:
    """$CC may carry arguments, as in `CC="gcc -m64"`."""
    monkeypatch.setenv("CC", "gcc -DSYMCONV_TEST_DEFINE=7")
    source = "int seven(void) { return SYMCONV_TEST_DEFINE; }\n"
    ext = build_extension(unique("ccargs"), source, "int seven(void);", cache=cache)
    assert ext.lib.seven() == 7
    assert ext.command[:2] == ("gcc", "-DSYMCONV_TEST_DEFINE=7")


def test_cpu_features_are_in_the_key(cache: Cache) -> None:
    tools = toolchain(cache)
    inputs = tools.key_inputs()
    assert inputs["cpu"] == build_mod.cpu_features() and inputs["cpu"]
    if os.path.exists("/proc/cpuinfo"):
        flags_line = next(
            line for line in open("/proc/cpuinfo") if line.startswith(("flags", "Features"))
        )
        assert set(inputs["cpu"].split()) == set(flags_line.split(":", 1)[1].split())
