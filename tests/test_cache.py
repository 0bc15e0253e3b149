"""codegen.cache: content addressing, hits and misses, concurrency, corruption, unwritable dirs.

Generic behaviour is tested with tiny text artifacts (fast); the behaviour that depends on real
extension modules (a corrupted or unloadable .so, a mismatched .c, N processes compiling the same
kernel) with small hand-written C sources, in fresh processes, as a user would meet it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from codegen.cache import MANIFEST, Cache, CacheError, CacheWarning, resolve_root

ROOT = Path(__file__).resolve().parents[1]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- generic behaviour, with text artifacts ------------------------------------------------------


class Recorder:
    """A builder writing ``value.txt`` and ``source.txt``; counts how often it ran."""

    def __init__(self, value: str, source: str = "the source") -> None:
        self.value, self.source, self.builds = value, source, 0

    @property
    def pinned(self) -> dict[str, str]:
        return {"source.txt": sha(self.source.encode())}

    @property
    def inputs(self) -> dict[str, str]:
        return {"source_sha256": sha(self.source.encode()), "what": self.value}

    def make(self, work: Path) -> dict:
        self.builds += 1
        (work / "value.txt").write_text(self.value)
        (work / "source.txt").write_text(self.source)
        return {"note": "made"}

    @staticmethod
    def load(entry: Path) -> str:
        text = (entry / "value.txt").read_text()
        if text.startswith("UNLOADABLE"):
            raise ImportError("cannot load this")
        return text

    def fetch(self, cache: Cache):
        return cache.fetch(cache.key(self.inputs), self.inputs, self.make, self.load, self.pinned)


def test_key_is_canonical_and_covers_every_input() -> None:
    inputs = {"a": "1", "b": "2", "c": "3"}
    key = Cache.key(inputs)
    assert len(key) == 64 and all(ch in "0123456789abcdef" for ch in key)
    assert Cache.key(dict(reversed(list(inputs.items())))) == key
    for name in inputs:
        assert Cache.key({**inputs, name: inputs[name] + "x"}) != key
    assert Cache.key({**inputs, "d": ""}) != key


def test_miss_then_hit(tmp_path: Path) -> None:
    cache, rec = Cache(tmp_path / "c"), Recorder("hello")
    first = rec.fetch(cache)
    assert (first.value, first.hit, rec.builds) == ("hello", False, 1)
    second = rec.fetch(cache)
    assert (second.value, second.hit, rec.builds) == ("hello", True, 1)
    assert second.path == first.path == cache.root / cache.key(rec.inputs)
    other = Recorder("world")
    assert other.fetch(cache).value == "world" and other.builds == 1


def test_entry_layout_manifest_and_modes(tmp_path: Path) -> None:
    root = tmp_path / "fresh" / "cache"
    cache, rec = Cache(root), Recorder("v")
    entry = rec.fetch(cache).path
    assert cache.root == root and (root.stat().st_mode & 0o777) == 0o700
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["key"] == entry.name == Cache.key(rec.inputs)
    assert manifest["inputs"] == rec.inputs
    assert manifest["files"] == {
        "value.txt": sha(b"v"),
        "source.txt": sha(rec.source.encode()),
    }
    assert manifest["build"] == {"note": "made"}
    assert list((root / "build").iterdir()) == []  # no work directory left behind


def test_key_must_match_inputs(tmp_path: Path) -> None:
    cache, rec = Cache(tmp_path), Recorder("v")
    with pytest.raises(ValueError, match="key must be"):
        cache.fetch("0" * 64, rec.inputs, rec.make, rec.load)


def corrupt_and_refetch(tmp_path: Path, damage) -> tuple[Recorder, list[str]]:
    cache, rec = Cache(tmp_path / "c"), Recorder("good")
    entry = rec.fetch(cache).path
    damage(entry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = rec.fetch(cache)
    assert again.value == "good" and not again.hit and rec.builds == 2
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 1 and str(entry) in messages[0] and "rebuilding" in messages[0]
    return rec, messages


def test_tampered_file_is_rebuilt(tmp_path: Path) -> None:
    _, messages = corrupt_and_refetch(tmp_path, lambda e: (e / "value.txt").write_text("evil"))
    assert "value.txt does not match its hash" in messages[0]


def test_truncated_file_is_rebuilt(tmp_path: Path) -> None:
    _, messages = corrupt_and_refetch(tmp_path, lambda e: (e / "value.txt").write_bytes(b""))
    assert "value.txt" in messages[0]


def test_missing_file_is_rebuilt(tmp_path: Path) -> None:
    _, messages = corrupt_and_refetch(tmp_path, lambda e: (e / "value.txt").unlink())
    assert "missing" in messages[0]


def test_garbage_manifest_is_rebuilt(tmp_path: Path) -> None:
    _, messages = corrupt_and_refetch(tmp_path, lambda e: (e / MANIFEST).write_text("{not json"))
    assert "manifest" in messages[0]


def rewrite(entry: Path, name: str, content: str) -> None:
    """Replace a file AND its manifest hash: only the key check can catch this."""
    (entry / name).write_text(content)
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["files"][name] = sha(content.encode())
    (entry / MANIFEST).write_text(json.dumps(manifest))


def test_source_not_matching_key_is_rebuilt(tmp_path: Path) -> None:
    _, messages = corrupt_and_refetch(tmp_path, lambda e: rewrite(e, "source.txt", "other source"))
    assert "source.txt does not match the key" in messages[0]


def test_unloadable_entry_is_rebuilt(tmp_path: Path) -> None:
    _, messages = corrupt_and_refetch(tmp_path, lambda e: rewrite(e, "value.txt", "UNLOADABLE"))
    assert "cannot be loaded" in messages[0]


def test_entry_that_never_loads_raises(tmp_path: Path) -> None:
    cache, rec = Cache(tmp_path), Recorder("UNLOADABLE forever")
    with pytest.raises(CacheError, match="just built but cannot be loaded"):
        rec.fetch(cache)


def test_failed_build_leaves_no_entry(tmp_path: Path) -> None:
    cache, rec = Cache(tmp_path / "c"), Recorder("v")

    def failing(work: Path) -> None:
        (work / "value.txt").write_text("half")
        raise RuntimeError("compiler exploded")

    key = cache.key(rec.inputs)
    with pytest.raises(RuntimeError, match="compiler exploded"):
        cache.fetch(key, rec.inputs, failing, rec.load)
    assert not (cache.root / key).exists()
    kept = list((cache.root / "build").iterdir())
    assert len(kept) == 1 and (kept[0] / "value.txt").read_text() == "half"  # for the error report
    assert rec.fetch(cache).value == "v"
    assert list((cache.root / "build").iterdir()) == []  # the failed work dir was cleaned up


def test_unwritable_dir_falls_back_with_one_warning(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores the mode bits: use a path under a file
            blocker = tmp_path / "a_file"
            blocker.write_text("")
            requested = blocker / "cache"
        else:
            requested = locked / "cache"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = Cache(requested)
            rec = Recorder("v")
            assert rec.fetch(first).value == "v"
            second = Cache(requested)
            assert rec.fetch(second).value == "v"
        messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
        assert len(messages) == 1 and str(requested) in messages[0]
        assert first.root == second.root != requested and first.root.is_dir()
        assert os.access(first.root, os.W_OK)
        assert resolve_root(requested) == first.root
    finally:
        locked.chmod(0o700)


def test_env_var_chooses_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from codegen.cache import default_cache

    monkeypatch.setenv("SYMCONV_CACHE_DIR", str(tmp_path / "from_env"))
    assert default_cache().root == tmp_path / "from_env"


# -- real modules, in fresh processes --------------------------------------------------------------

TWICE_C = "void twice(const double *x, double *y, long n) { for (long i = 0; i < n; i++) y[i] = 2 * x[i]; }\n"

CHILD = textwrap.dedent(
    """
    import json, sys, time, warnings
    start_at = float(sys.argv[2])
    while time.time() < start_at:  # line the processes up so that they really race
        time.sleep(0.001)
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        from codegen.build import build_extension
        ext = build_extension(sys.argv[1], {source!r}, "void twice(const double *x, double *y, long n);")
    x = ext.ffi.new("double[]", [1.0, 2.5, -3.0])
    y = ext.ffi.new("double[]", 3)
    ext.lib.twice(x, y, 3)
    print(json.dumps({{"hit": ext.from_cache, "y": list(y), "path": str(ext.path),
                       "warnings": [str(w.message) for w in caught]}}))
    """
).format(source=TWICE_C)


def spawn(cache_dir: Path, name: str, start_at: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "SYMCONV_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, name, repr(start_at)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def run_child(cache_dir: Path, name: str = "_twice") -> dict:
    return finish(spawn(cache_dir, name))


def test_concurrent_builds_produce_one_artifact(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cold"
    start_at = time.time() + 1.5  # after every interpreter has started
    procs = [spawn(cache_dir, "_twice_race", start_at) for _ in range(5)]
    results = [finish(p) for p in procs]
    assert all(r["y"] == [2.0, 5.0, -6.0] for r in results)
    assert sorted(r["hit"] for r in results) == [False] + [True] * 4  # exactly one compiled
    assert len({r["path"] for r in results}) == 1
    entries = [p for p in cache_dir.iterdir() if len(p.name) == 64]
    assert len(entries) == 1 and str(entries[0]) == results[0]["path"]
    assert list((cache_dir / "build").iterdir()) == []
    assert not any(r["warnings"] for r in results)


def so_file(entry: Path) -> Path:
    (found,) = [p for p in entry.iterdir() if p.suffix == ".so"]
    return found


def test_real_module_hit_and_corruptions(tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    built = run_child(cache_dir)
    assert built["hit"] is False and built["y"] == [2.0, 5.0, -6.0]
    hit = run_child(cache_dir)
    assert hit["hit"] is True and hit["y"] == [2.0, 5.0, -6.0] and not hit["warnings"]
    entry = Path(built["path"])

    # 1. a truncated .so (e.g. a full disk): hash mismatch, rebuilt
    so = so_file(entry)
    so.write_bytes(so.read_bytes()[:100])
    fixed = run_child(cache_dir)
    assert fixed["hit"] is False and fixed["y"] == [2.0, 5.0, -6.0]
    assert len(fixed["warnings"]) == 1 and "does not match its hash" in fixed["warnings"][0]

    # 2. a .so that cannot be loaded although its manifest hash was updated to match
    so = so_file(entry)
    rewrite(entry, so.name, "this is not an ELF file")
    fixed = run_child(cache_dir)
    assert fixed["hit"] is False and fixed["y"] == [2.0, 5.0, -6.0]
    assert len(fixed["warnings"]) == 1 and "cannot be loaded" in fixed["warnings"][0]

    # 3. a .c that is not the source the key was made from (manifest hash updated too)
    rewrite(entry, "kernel.c", TWICE_C.replace("2 * x[i]", "3 * x[i]"))
    fixed = run_child(cache_dir)
    assert fixed["hit"] is False and fixed["y"] == [2.0, 5.0, -6.0]
    assert len(fixed["warnings"]) == 1 and "kernel.c does not match the key" in fixed["warnings"][0]
    assert (entry / "kernel.c").read_text() == TWICE_C

    assert run_child(cache_dir)["hit"] is True
