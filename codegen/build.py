"""Compile one C translation unit into a loadable Python extension, through cffi, with one compiler call.

cffi's API mode gives typed, GIL-releasing wrappers, but its usual route (setuptools) costs over a
second per module. Here cffi only writes the wrapper source (``emit_c_code``); the compiler is
called once, directly, and the result is loaded with ``importlib``:

    source + cdef --cffi--> module.c --$CC -shared--> module.so --importlib--> module.lib

Flags: ``-O3 -march=native`` (when accepted), ``-std=gnu11`` (strict ``c11`` disables FMA
contraction), ``-fopenmp`` (when the compiler supports it; else serial, with one warning) and
``-fno-wrapv`` last. No ``-ffast-math``: results must match the references to rounding.

Sanitised builds: with ``SYMCONV_SANITIZE=1`` every module is also compiled with
``-O1 -fsanitize=address,undefined -fno-sanitize-recover=all`` (any out-of-bounds access or undefined
behaviour in the generated C ends the process with a report). The flags are part of the cache key,
so sanitised and plain modules never mix. The AddressSanitizer runtime must be the first library of
the process, which an ordinary ``python`` is not built for; run it as

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 SYMCONV_SANITIZE=1 python ...

(without the preload the runtime would abort the whole process on load, so building refuses first).

What the compiler supports is probed once per process (``cc --version``) and, for the slow probes
(``-march=native``, OpenMP, the native target description), once per compiler and CPU: the answer
is kept in the cache directory, so that a cache hit in a fresh process stays cheap.

Every built module goes through :mod:`codegen.cache` (content-addressed, safe under concurrency).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Sequence

import cffi

from .cache import Cache, default_cache

#: File names inside one cache entry.
SOURCE_FILE = "kernel.c"  # the generated C, as given (the part a reader wants to see)
WRAPPER_FILE = "module.c"  # what cffi emits around it: the file actually compiled
EXTENSION_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

#: Bump when the way modules are built changes in a way the other key inputs do not show.
BUILD_FORMAT = "1"

#: ``1`` builds every module with AddressSanitizer and UndefinedBehaviorSanitizer (``0``/unset: not).
SANITIZE_ENV = "SYMCONV_SANITIZE"
#: Added to the flags of a sanitised build: abort on the first report, keep frames and lines readable.
#: ``-O1`` (after the normal ``-O3``, so it wins): the level the sanitizers' documentation
#: recommends, and the generated C compiles in less than half the time (a 3x3 layer's module:
#: 10.2 -> 4.3 s), which keeps the sanitised test run short on a 2-core machine.
SANITIZE_FLAGS = (
    "-O1",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
)

_PROBE_C = "int symconv_probe(int x) { return x + 1; }\n"
_PROBE_OPENMP_C = """\
#include <omp.h>
int symconv_probe_omp(void) {
    int n = 0;
#pragma omp parallel reduction(+ : n)
    n += 1;
    return n + omp_get_max_threads();
}
"""


class CompilerError(RuntimeError):
    """The C compiler is missing or rejected a source file.

    Attributes name everything needed to reproduce the failure by hand: ``compiler``,
    ``command`` (the full argument list), ``stderr`` and ``source_path`` (the generated file).
    """

    def __init__(
        self,
        message: str,
        *,
        compiler: str,
        command: Sequence[str] = (),
        stderr: str = "",
        source_path: Path | None = None,
    ) -> None:
        parts = [message, f"compiler: {compiler}"]
        if command:
            parts.append(f"command: {shlex.join(command)}")
        if source_path is not None:
            parts.append(f"source: {source_path}")
        if stderr.strip():
            parts.append("compiler output:\n" + stderr.rstrip())
        super().__init__("\n".join(parts))
        self.compiler = compiler
        self.command = tuple(command)
        self.stderr = stderr
        self.source_path = source_path


# -- the toolchain ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Toolchain:
    """A C compiler as probed on this machine, and the flags kernels are built with."""

    compiler: tuple[str, ...]  # the argument-list prefix, from $CC
    version: str  # `cc --version` output: the compiler's identity
    flags: tuple[str, ...]
    openmp: bool
    cpu: str  # CPU features of this machine (the `flags` line of /proc/cpuinfo)
    target: str  # what -march=native resolves to (`-Q --help=target`), "" if unknown
    sanitize: bool = False  # built with SANITIZE_FLAGS (they are in `flags`, hence in the key)

    @property
    def name(self) -> str:
        return shlex.join(self.compiler)

    def command(self, c_file: str, so_file: str) -> list[str]:
        """The compiler call that turns one wrapper source into an extension module.

        File names are relative to the directory the compiler runs in (the cache entry), so the
        recorded command can be re-run by hand from there.
        """
        include = sysconfig.get_paths()["include"]
        return [*self.compiler, *self.flags, "-I", include, "-o", so_file, c_file]

    def key_inputs(self) -> dict[str, str]:
        """What about the toolchain and CPU decides the bytes of a built module."""
        return {
            "compiler": self.name,
            "compiler_version": self.version,
            "flags": shlex.join(self.flags),
            "cpu": self.cpu,
            "target_sha256": _sha256(self.target.encode()),
        }


def compiler_argv() -> tuple[str, ...]:
    """``$CC`` split like a shell would (it may carry arguments), else ``cc``, else ``gcc``."""
    configured = os.environ.get("CC", "").strip()
    if configured:
        try:
            return tuple(shlex.split(configured))
        except ValueError as exc:  # e.g. an unbalanced quote
            raise CompilerError(
                f"$CC must be a command line such as 'gcc' or 'gcc -m64', but got {configured!r} ({exc})",
                compiler=configured,
            ) from exc
    for candidate in ("cc", "gcc"):
        if shutil.which(candidate):
            return (candidate,)
    return ("cc",)


def cpu_features() -> str:
    """The instruction-set features of this CPU, for the cache key.

    ``-march=native`` code must never be loaded on a CPU that cannot run it, so the exact feature
    list goes into the key. Linux lists it in /proc/cpuinfo; elsewhere the machine name is the
    best cheap answer (and ``Toolchain.target`` still pins the compiler's view of the CPU).
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}".strip()


def sanitize_requested() -> bool:
    """Whether ``$SYMCONV_SANITIZE`` asks for sanitised builds (``1``; ``0`` or unset: no)."""
    value = os.environ.get(SANITIZE_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"${SANITIZE_ENV} must be 0 or 1, but got {value!r}")
    return value == "1"


def sanitizer_runtime_loaded() -> bool:
    """Whether this process runs with the AddressSanitizer runtime (preloaded, so first in line)."""
    try:
        return hasattr(ctypes.CDLL(None), "__asan_init")
    except OSError:
        return False


class SanitizerRuntimeError(RuntimeError):
    """A sanitised build was asked for in a process that cannot load one (no ASan runtime)."""


def require_sanitizer_runtime(tools: Toolchain) -> None:
    """Refuse to load a sanitised module into a process without the runtime: it would abort it."""
    if not tools.sanitize or sanitizer_runtime_loaded():
        return
    try:
        found = _run([*tools.compiler, "-print-file-name=libasan.so"]).stdout.strip()
    except OSError:
        found = ""
    library = found or "$(gcc -print-file-name=libasan.so)"
    raise SanitizerRuntimeError(
        f"${SANITIZE_ENV}=1 builds kernels with AddressSanitizer, whose runtime must be loaded before "
        f"Python starts, but this process runs without it; run it as "
        f"LD_PRELOAD={library} ASAN_OPTIONS=detect_leaks=0 {SANITIZE_ENV}=1 python ... "
        f"(or unset {SANITIZE_ENV})"
    )


_toolchains: dict[tuple[tuple[str, ...], str, bool], Toolchain] = {}
_toolchain_lock = threading.Lock()


def toolchain(cache: Cache | None = None) -> Toolchain:
    """The probed toolchain for the current ``$CC`` and ``$SYMCONV_SANITIZE`` (memoised per process)."""
    argv = compiler_argv()
    sanitize = sanitize_requested()
    cache = cache if cache is not None else default_cache()
    memo_key = (argv, str(cache.root), sanitize)
    with _toolchain_lock:
        found = _toolchains.get(memo_key)
        if found is None:
            found = _probe(argv, cache, sanitize)
            _toolchains[memo_key] = found
        return found


def _run(command: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=cwd, capture_output=True, text=True, errors="replace", check=False
    )


def _compiler_version(argv: tuple[str, ...]) -> str:
    name = shlex.join(argv)
    try:
        done = _run([*argv, "--version"])
    except OSError as exc:  # not found, not executable
        raise CompilerError(
            f"C compiler {name!r} could not be run ({exc.strerror or exc}); install gcc or set $CC",
            compiler=name,
            command=[*argv, "--version"],
        ) from exc
    if done.returncode != 0:
        raise CompilerError(
            f"C compiler {name!r} failed on --version (exit code {done.returncode})",
            compiler=name,
            command=[*argv, "--version"],
            stderr=done.stderr or done.stdout,
        )
    return done.stdout.strip()


def _probe(argv: tuple[str, ...], cache: Cache, sanitize: bool = False) -> Toolchain:
    version = _compiler_version(argv)
    cpu = cpu_features()
    resolved = shutil.which(argv[0]) or argv[0]
    try:
        stat = os.stat(resolved)
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        stamp = ""
    probe_key = _sha256(json.dumps([BUILD_FORMAT, list(argv), resolved, stamp, version, cpu]).encode())
    found = cache.read_json("toolchains", probe_key)
    if not _probe_record_ok(found):
        found = _slow_probes(argv)
        cache.write_json("toolchains", probe_key, found)
    flags = ["-O3"]
    if found["march_native"]:
        flags.append("-march=native")
    flags += ["-std=gnu11", "-fPIC", "-shared"]
    if found["openmp"]:
        flags.append("-fopenmp")
    else:
        warnings.warn(
            f"C compiler {shlex.join(argv)!r} cannot build OpenMP code "
            f"({found['openmp_error'] or 'no reason given'}); kernels will run on one thread",
            RuntimeWarning,
            stacklevel=3,
        )
    if sanitize:
        flags += SANITIZE_FLAGS
    flags.append("-fno-wrapv")  # last, so that it wins over any default that says otherwise
    return Toolchain(argv, version, tuple(flags), bool(found["openmp"]), cpu, found["target"], sanitize)


def _probe_record_ok(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("march_native"), bool)
        and isinstance(record.get("openmp"), bool)
        and isinstance(record.get("openmp_error"), str)
        and isinstance(record.get("target"), str)
    )


def _slow_probes(argv: tuple[str, ...]) -> dict[str, Any]:
    """Compile tiny programs to learn what the compiler accepts."""
    with tempfile.TemporaryDirectory(prefix="symconv-probe-") as tmp:
        work = Path(tmp)
        (work / "probe.c").write_text(_PROBE_C)
        (work / "omp.c").write_text(_PROBE_OPENMP_C)
        march = _run([*argv, "-march=native", "-c", "probe.c", "-o", "probe.o"], cwd=work).returncode == 0
        target = ""
        if march:
            described = _run([*argv, "-march=native", "-Q", "--help=target"], cwd=work)
            target = described.stdout if described.returncode == 0 else ""
        omp = _run([*argv, "-fopenmp", "-fPIC", "-shared", "omp.c", "-o", "omp.so"], cwd=work)
        openmp, reason = omp.returncode == 0, (omp.stderr.strip().splitlines() or [""])[0]
        if openmp:
            try:  # linking is not enough: the OpenMP runtime must also load here
                ctypes.CDLL(str(work / "omp.so")).symconv_probe_omp()
            except OSError as exc:
                openmp, reason = False, str(exc)
    return {"march_native": march, "openmp": openmp, "openmp_error": reason, "target": target}


# -- one module -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extension:
    """A built and loaded extension module: ``lib`` holds the C functions, ``ffi`` the types."""

    name: str
    module: ModuleType
    path: Path  # the cache entry directory
    command: tuple[str, ...]  # the compiler call that produced it
    from_cache: bool  # True if no compiler ran for it in this process

    @property
    def ffi(self) -> Any:
        return self.module.ffi

    @property
    def lib(self) -> Any:
        return self.module.lib

    @property
    def source_path(self) -> Path:
        return self.path / SOURCE_FILE

    @property
    def so_path(self) -> Path:
        return self.path / (self.name + EXTENSION_SUFFIX)


def emit_wrapper(name: str, source: str, cdef: str, c_path: Path) -> None:
    """Let cffi write the extension's C source (``source`` plus the Python bindings for ``cdef``)."""
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source(name, source)
    with contextlib.redirect_stdout(io.StringIO()):  # cffi announces every file it writes
        ffi.emit_c_code(str(c_path))


def compile_extension(tools: Toolchain, work: Path, c_file: str, so_file: str, source_file: str) -> list[str]:
    """Run the compiler once in ``work``; raise :class:`CompilerError` with all needed to reproduce."""
    command = tools.command(c_file, so_file)
    where = dict(compiler=tools.name, command=command, source_path=work / source_file)
    try:
        done = _run(command, cwd=work)
    except OSError as exc:
        raise CompilerError(
            f"C compiler {tools.name!r} could not be run in {work} ({exc.strerror or exc})", **where
        ) from exc
    if done.returncode != 0 or not (work / so_file).is_file():
        raise CompilerError(
            f"C compiler {tools.name!r} failed in {work} (exit code {done.returncode})",
            stderr=done.stderr or done.stdout,
            **where,
        )
    return command


def load_extension(name: str, so_path: Path) -> ModuleType:
    """Import an extension module from a file without touching ``sys.path`` or ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, so_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load an extension module from {so_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_loaded: dict[tuple[str, str], Extension] = {}
_loaded_lock = threading.Lock()


def build_extension(
    name: str,
    source: str,
    cdef: str,
    *,
    cache: Cache | None = None,
    project: str = "",
) -> Extension:
    """Compile (or fetch from the cache) and load the module for one C source.

    ``name`` is the module name (a C identifier; the module's init function is named after it),
    ``source`` the complete C translation unit, ``cdef`` the declarations Python may call, and
    ``project`` the version of the code generator (one more key input). Repeated calls in one
    process with the same inputs return the same loaded module.
    """
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"name must be a C identifier, but got {name!r}")
    cache = cache if cache is not None else default_cache()
    try:
        tools = toolchain(cache)
    except CompilerError as exc:  # no usable compiler: still leave the C where the user can read it
        kept = _keep_source(cache, name, source)
        raise CompilerError(
            str(exc).split("\n", 1)[0], compiler=exc.compiler, command=exc.command, stderr=exc.stderr,
            source_path=kept,
        ) from exc
    inputs = {
        "format": BUILD_FORMAT,
        "module": name,
        "source_sha256": _sha256(source.encode()),
        "cdef_sha256": _sha256(cdef.encode()),
        **tools.key_inputs(),
        "cffi": cffi.__version__,
        "python": sys.version,
        "abi": f"{sys.implementation.cache_tag} {EXTENSION_SUFFIX}",
        "project": project,
    }
    key = cache.key(inputs)
    memo_key = (str(cache.root), key)
    with _loaded_lock:
        if memo_key in _loaded:
            return _loaded[memo_key]
    require_sanitizer_runtime(tools)  # before any load: without the runtime, loading aborts Python

    so_name = name + EXTENSION_SUFFIX

    def make(work: Path) -> dict[str, Any]:
        (work / SOURCE_FILE).write_text(source)
        emit_wrapper(name, source, cdef, work / WRAPPER_FILE)
        command = compile_extension(tools, work, WRAPPER_FILE, so_name, SOURCE_FILE)
        return {"command": command}

    def load(entry: Path) -> ModuleType:
        return load_extension(name, entry / so_name)

    fetched = cache.fetch(key, inputs, make, load, pinned={SOURCE_FILE: inputs["source_sha256"]})
    command = tuple(fetched.manifest.get("build", {}).get("command", ()))
    extension = Extension(name, fetched.value, fetched.path, command, from_cache=fetched.hit)
    with _loaded_lock:
        return _loaded.setdefault(memo_key, extension)


def _keep_source(cache: Cache, name: str, source: str) -> Path | None:
    """Write the C source to ``<cache>/build/unbuilt-<name>/kernel.c`` (None if that fails)."""
    try:
        folder = cache.root / "build" / f"unbuilt-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SOURCE_FILE).write_text(source)
        return folder / SOURCE_FILE
    except OSError:
        return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe(extension: Extension) -> Mapping[str, Any]:
    """Plain data about a built module (for printing: where it is, how it was built)."""
    return {
        "name": extension.name,
        "path": str(extension.path),
        "source": str(extension.source_path),
        "command": shlex.join(extension.command),
        "from_cache": extension.from_cache,
    }
