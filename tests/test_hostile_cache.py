"""The kernel cache and the compiler under stress: races, a build killed halfway, odd paths,
permissions, and compilers that are missing, broken or lying.

tests/test_cache.py covers the cache's own rules with small hand-written modules (hits, corrupted
entries, five racing processes); here the whole pipeline (``symconv.build``: layer records,
compiler probes, the kernel module) meets the same situations, as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

from codegen.build import CompilerError, build_extension
from codegen.cache import Cache, CacheError, CacheWarning
from symconv import ConvSpec
from symconv.api import build
from tests.conftest import ROOT, child_env
from tests.reference import conv_forward

#: A small layer with padding, stride and bias (one module, compiled in well under a second).
SPEC = ConvSpec(input=(2, 3, 6, 5), weight=(4, 3, 3, 2), stride=(2, 1), padding=1, bias=True)
ENTRY_NAME_LENGTH = 64  # an entry directory is named by its sha256 key


def entries(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.iterdir() if p.is_dir() and len(p.name) == ENTRY_NAME_LENGTH]


def expected_forward() -> np.ndarray:
    x, w, b = child_inputs()
    return conv_forward(x, w, b, SPEC.stride, SPEC.padding, SPEC.dilation, SPEC.groups)


def child_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(SPEC.input), rng.standard_normal(SPEC.weight), rng.standard_normal(SPEC.bias_shape))


#: A process that builds SPEC through the pipeline and reports how it went (one JSON line).
CHILD = textwrap.dedent(
    """
    import json, os, sys, time, warnings
    start_at = float(sys.argv[1])
    while time.time() < start_at:  # line the processes up so that they really race
        time.sleep(0.001)
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        from symconv import pipeline
        from tests.test_hostile_cache import SPEC, child_inputs
        csource = pipeline.rendered(SPEC, "float64")
        extension = pipeline.build_stage(csource)
        kernel = pipeline.kernel_stage(SPEC, "float64", csource, extension)
    out = kernel.forward(*child_inputs())
    print(json.dumps({"hit": extension.from_cache, "path": str(extension.path), "out": out.tolist(),
                      "warnings": [str(w.message) for w in caught]}))
    """
)


def spawn(cache_dir: Path, start_at: float = 0.0, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, repr(start_at)],
        env=child_env(SYMCONV_CACHE_DIR=str(cache_dir), **env), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


# -- many processes, one kernel ---------------------------------------------------------------------


def test_eight_processes_build_one_kernel_from_a_cold_cache(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cold"
    start_at = time.time() + 3.0  # after every interpreter has imported the pipeline
    results = [finish(p) for p in [spawn(cache_dir, start_at) for _ in range(8)]]
    want = expected_forward()
    for r in results:
        np.testing.assert_allclose(np.array(r["out"]), want, rtol=1e-12, atol=1e-12)
        assert not r["warnings"], r["warnings"]
    assert len({json.dumps(r["out"]) for r in results}) == 1  # bitwise the same everywhere
    assert sorted(r["hit"] for r in results) == [False] + [True] * 7  # the compiler ran once
    (entry,) = entries(cache_dir)
    assert {r["path"] for r in results} == {str(entry)}
    assert list((cache_dir / "build").iterdir()) == []
    assert len(list((cache_dir / "layers").glob("*.json"))) == 1  # one layer record, whole
    assert all(not p.name.startswith(".") for p in (cache_dir / "layers").iterdir())  # no temp file left


def test_threads_of_one_process_build_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "compiles.log"
    cc = tmp_path / "countingcc"
    cc.write_text(f'#!/bin/sh\ncase "$*" in *module.c*) echo x >> "{log}" ;; esac\nexec gcc "$@"\n')
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    cache = Cache(tmp_path / "c")
    source = "double third(double x) { return x / 3; }\n"
    name = f"_third_{uuid.uuid4().hex[:8]}"
    found: list = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        found.append(build_extension(name, source, "double third(double x);", cache=cache))

    pool = [threading.Thread(target=worker) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len(found) == 4 and len({id(f) for f in found}) == 1  # one module object for everyone
    assert found[0].lib.third(9.0) == 3.0
    assert log.read_text().count("x") == 1  # the compiler ran once
    assert len(entries(cache.root)) == 1 and list((cache.root / "build").iterdir()) == []


# -- a build killed halfway ------------------------------------------------------------------------

#: A compiler that is gcc, except that while $HANG_FLAG exists it stops in the middle of building
#: a module (after cffi has written module.c), says so by creating $STARTED, and waits.
HANGING_CC = """#!/bin/sh
case "$*" in
  *module.c*) if [ -e "$HANG_FLAG" ]; then : > "$STARTED"; sleep 300; fi ;;
esac
exec gcc "$@"
"""


def test_build_killed_halfway_is_recovered(tmp_path: Path) -> None:
    cc = tmp_path / "hangcc"
    cc.write_text(HANGING_CC)
    cc.chmod(0o755)
    cache_dir, flag, started = tmp_path / "cache", tmp_path / "hang", tmp_path / "started"
    flag.write_text("")
    env = dict(CC=str(cc), HANG_FLAG=str(flag), STARTED=str(started))

    victim = spawn(cache_dir, **env)
    deadline = time.monotonic() + 120
    while not started.exists():
        assert victim.poll() is None, victim.communicate()[1]
        assert time.monotonic() < deadline, "the build never reached the compiler"
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)  # the whole session: python, the shell, its sleep
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL

    # what the crash left: a half-built work directory and a lock file, but no entry
    assert entries(cache_dir) == []
    (stale,) = list((cache_dir / "build").iterdir())
    assert (stale / "module.c").is_file() and not any(p.suffix == ".so" for p in stale.iterdir())
    key = stale.name.split("-")[0]
    assert (cache_dir / "locks" / f"{key}.lock").exists()

    flag.unlink()
    survivor = finish(spawn(cache_dir, **env))  # a lock still held would stop it (CacheError)
    assert survivor["hit"] is False and not survivor["warnings"]
    np.testing.assert_allclose(np.array(survivor["out"]), expected_forward(), rtol=1e-12, atol=1e-12)
    assert [p.name for p in entries(cache_dir)] == [key]  # the same key, now complete
    assert list((cache_dir / "build").iterdir()) == []  # the stale work directory is gone
    assert finish(spawn(cache_dir, **env))["hit"] is True


# -- where the cache lives ---------------------------------------------------------------------------

UMASK_CHILD = textwrap.dedent(
    """
    import os, sys
    os.umask(0)  # the most permissive umask: only the modes the cache asks for protect it
    from symconv import ConvSpec
    from symconv.api import build
    k = build(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)), "float32")
    print(k.cache_path)
    """
)


def test_odd_path_and_private_modes(tmp_path: Path) -> None:
    """Spaces and non-ASCII in the path work; every directory the cache makes is 0o700."""
    cache_dir = tmp_path / "my cache ünïcödé ✓ 日本"
    done = subprocess.run(
        [sys.executable, "-c", UMASK_CHILD], capture_output=True, text=True, cwd=ROOT,
        env=child_env(SYMCONV_CACHE_DIR=str(cache_dir), PYTHONIOENCODING="utf-8"), timeout=300,
    )
    assert done.returncode == 0, done.stderr
    entry = Path(done.stdout.strip())
    assert entry.parent == cache_dir and (entry / "kernel.c").is_file()
    made = [cache_dir, *(p for p in cache_dir.rglob("*") if p.is_dir())]
    assert {p.name for p in made} >= {cache_dir.name, "build", "locks", "toolchains", "layers", entry.name}
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in made}
    assert set(modes.values()) == {oct(0o700)}, modes


def _read_only_mount_works(directory: Path) -> bool:
    """Whether this machine lets us give a child a private read-only view of ``directory``."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", READ_ONLY_MOUNT + 'touch "$1/probe"', "sh", str(directory)],
                           capture_output=True, text=True)
    return probe.returncode != 0 and "Read-only file system" in probe.stderr


#: Shell lines that make "$1" read-only inside a private mount namespace (even root cannot write).
READ_ONLY_MOUNT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '


def test_read_only_cache_directory(tmp_path: Path) -> None:
    """A populated cache on a read-only file system: the process still gets a right answer, from a
    private fallback directory, with one warning naming the directory; nothing is written there.

    (Mode bits do not stop root, which runs this suite in CI; a read-only bind mount stops everyone.
    Without ``unshare`` the mode-bit variant in tests/test_cache.py is what runs.)"""
    cache_dir = tmp_path / "ro cache"
    first = finish(spawn(cache_dir))
    assert first["hit"] is False
    if not _read_only_mount_works(cache_dir):
        pytest.skip("no private mount namespaces here (unshare -m)")
    before = sorted(str(p) for p in cache_dir.rglob("*"))
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", READ_ONLY_MOUNT + 'shift; exec "$@"', "sh", str(cache_dir),
         sys.executable, "-c", CHILD, "0"],
        env=child_env(SYMCONV_CACHE_DIR=str(cache_dir)), cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(result["out"]), expected_forward(), rtol=1e-12, atol=1e-12)
    assert not result["path"].startswith(str(cache_dir))
    (message,) = [w for w in result["warnings"] if "cache directory" in w]
    assert str(cache_dir) in message and "Read-only file system" in message
    assert sorted(str(p) for p in cache_dir.rglob("*")) == before


def test_world_writable_cache_dir_is_not_trusted(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = Cache(shared).root
    assert root != shared and stat.S_IMODE(root.stat().st_mode) == 0o700
    (message,) = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert str(shared) in message and "any user may write" in message and "0o777" in message
    group = tmp_path / "group"
    group.mkdir()
    group.chmod(0o770)  # group-writable (a team cache, or a user-private group): used as it is
    assert Cache(group).root == group


def test_relative_cache_dir_does_not_follow_chdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache made from a relative path stays where it was made when the process changes directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYMCONV_CACHE_DIR", "relative/cache")
    from codegen.cache import default_cache

    from_env, explicit = default_cache(), Cache("other")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert from_env.root == tmp_path / "relative" / "cache"
    assert explicit.root == tmp_path / "other"
    assert not (elsewhere / "relative").exists() and not (elsewhere / "other").exists()


# -- compilers that do not work ----------------------------------------------------------------------


def fake_cc(tmp_path: Path, body: str) -> str:
    """A compiler script: answers --version like a compiler, does ``body`` for everything else."""
    script = tmp_path / f"cc-{uuid.uuid4().hex[:6]}"
    script.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "fakecc 1.0"; exit 0; fi\n' + body)
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("SYMCONV_CACHE_DIR", str(cache_dir))
    return cache_dir


def test_missing_compiler_through_build(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/bin/cc")
    with pytest.raises(CompilerError, match="/nonexistent/bin/cc") as info:
        build(SPEC, "float64")
    assert "install gcc or set $CC" in str(info.value)
    assert info.value.source_path is not None and info.value.source_path.is_file()  # the C is kept
    assert entries(fresh_cache) == []


def test_directory_as_compiler(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC", str(tmp_path))
    with pytest.raises(CompilerError, match="could not be run"):
        build(SPEC, "float64")


def test_malformed_cc_is_named(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", 'gcc "-O2')
    with pytest.raises(CompilerError, match=r"\$CC must be a command line .* but got 'gcc \"-O2'"):
        build(SPEC, "float64")


BROKEN_COMPILERS = {
    "fails": ('echo "fakecc: internal error" >&2\nexit 4\n', CompilerError, "exit code 4"),
    "crashes": ('kill -SEGV $$\n', CompilerError, "exit code -11"),
    "writes_nothing": ("exit 0\n", CompilerError, "exit code 0"),
    "writes_garbage": (
        'while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then echo garbage > "$2"; fi; shift; done\nexit 0\n',
        CacheError, "just built but cannot be loaded .* kept in",
    ),
}


@pytest.mark.parametrize("kind", BROKEN_COMPILERS)
def test_broken_compiler_through_build(kind: str, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    body, error, words = BROKEN_COMPILERS[kind]
    monkeypatch.setenv("CC", fake_cc(tmp_path, body))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "cannot build OpenMP code": expected here
        with pytest.raises(error, match=words):
            build(SPEC, "float64")
    assert entries(fresh_cache) == []  # nothing half-built where a finished entry would be


def test_bad_sanitize_setting_is_named(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMCONV_SANITIZE", "yes")
    with pytest.raises(ValueError, match=r"^\$SYMCONV_SANITIZE must be 0 or 1, but got 'yes'$"):
        build(SPEC, "float64")
