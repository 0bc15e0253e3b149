"""A content-addressed, process-safe cache of built artifacts (here: compiled kernel modules).

One entry is a directory named by its key, the sha256 of everything that decides its bytes (the
caller's ``inputs``: source and declarations, compiler identity and flags, CPU features, versions).
It holds the files the builder wrote and a ``manifest.json`` with the key inputs and the sha256 of
every file. The layout of the cache root::

    <key>/             one finished entry: the builder's files + manifest.json
    locks/<key>.lock   one file lock per key, held while the entry is built or repaired
    build/<key>-...    work directories; a failed build is left here (its error names the files)
    toolchains/        small JSON records of slow compiler probes

Why it is safe:

* an entry appears only through an atomic ``os.replace`` of a finished work directory, so a
  reader never sees half an entry, and a crash never leaves one behind;
* builders of the same key take a lock and check again, so N processes asking for the same
  kernel at once run the compiler once and all load the same artifact;
* every hit is checked against its manifest (key, inputs, file hashes, pinned hashes) before it
  is loaded, and an entry that fails any check, or does not load, is removed and rebuilt.

Location: ``$SYMCONV_CACHE_DIR``, else the per-user cache directory; created with mode 0o700 (as
are its subdirectories and entries), and made absolute once, so a later ``chdir`` does not move it.
If it cannot be written, or any user may write to it (a world-writable directory such as /tmp:
anyone could plant a module there, with a manifest that checks out, and have it loaded), a fresh
private temporary directory is used instead, with one warning.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

import filelock

T = TypeVar("T")

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
ENV_VAR = "SYMCONV_CACHE_DIR"
#: How long to wait for another process that is building the same entry.
LOCK_TIMEOUT_S = 600.0


class CacheWarning(UserWarning):
    """The cache had to work around something (unwritable directory, corrupted entry)."""


class CacheError(RuntimeError):
    """The cache could not produce a usable entry."""


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """What :meth:`Cache.fetch` returns: the loaded value, where it lives, and whether it was a hit."""

    value: T
    path: Path
    hit: bool  # True if this call did not build it
    manifest: Mapping[str, Any]


def default_root() -> Path:
    """``$SYMCONV_CACHE_DIR``, else the per-user cache directory for symconv."""
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured:
        return Path(configured).expanduser().absolute()
    try:
        import platformdirs
    except ImportError:  # keep working without it: the XDG default it would return on Linux
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "symconv"
    return Path(platformdirs.user_cache_dir("symconv"))


_roots: dict[str, Path] = {}
_roots_lock = threading.Lock()


def resolve_root(requested: Path) -> Path:
    """The directory to use for ``requested``: itself if writable, else a temporary one (warned once)."""
    with _roots_lock:
        found = _roots.get(str(requested))
        if found is None:
            problem = _prepare(requested)
            if problem is None:
                found = requested
            else:
                found = Path(tempfile.mkdtemp(prefix="symconv-cache-"))
                # this process's alone, so it goes when the process does (loaded modules stay mapped)
                atexit.register(shutil.rmtree, found, ignore_errors=True)
                warnings.warn(
                    f"cache directory {str(requested)!r} is not usable ({problem}); "
                    f"using {str(found)!r} for this process instead (set ${ENV_VAR} to choose another)",
                    CacheWarning,
                    stacklevel=4,
                )
            _roots[str(requested)] = found
        return found


def _prepare(root: Path) -> str | None:
    """Create ``root`` (mode 0o700) and prove it writable and not shared; return what is wrong, or None."""
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        root.mkdir(mode=0o700, exist_ok=True)
        if not root.is_dir():
            return "not a directory"
        mode = root.stat().st_mode
        if mode & stat.S_IWOTH:
            return f"any user may write to it (mode {stat.S_IMODE(mode):#o})"
        handle, probe = tempfile.mkstemp(prefix=".probe-", dir=root)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


def default_cache() -> Cache:
    """The cache at :func:`default_root` (read from the environment on every call)."""
    return Cache(default_root())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Cache:
    """A cache rooted at one directory (resolved, and created, on first use)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        # absolute now: a relative root must not follow the process into another working directory
        self._requested = Path(root).expanduser().absolute() if root is not None else default_root()
        self._root: Path | None = None

    def __repr__(self) -> str:
        return f"Cache({str(self._requested)!r})"

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = resolve_root(self._requested)
        return self._root

    @staticmethod
    def key(inputs: Mapping[str, str]) -> str:
        """sha256 over the key inputs, in a canonical JSON form."""
        canonical = json.dumps({"manifest_format": MANIFEST_FORMAT, **inputs}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def entry(self, key: str) -> Path:
        return self.root / key

    # -- the main operation --------------------------------------------------------------------
    def fetch(
        self,
        key: str,
        inputs: Mapping[str, str],
        make: Callable[[Path], Mapping[str, Any] | None],
        load: Callable[[Path], T],
        pinned: Mapping[str, str] | None = None,
    ) -> Fetched[T]:
        """Load the entry for ``key``, building it with ``make(work_dir)`` if needed.

        ``make`` writes the entry's files into an empty directory and may return extra plain data
        for the manifest (``manifest["build"]``). ``load`` turns a checked entry into the value;
        an ``ImportError``/``OSError`` from it marks the entry as corrupted. ``pinned`` maps file
        names to the sha256 they must have (files whose content is itself part of the key).
        """
        if key != self.key(inputs):
            raise ValueError(f"key must be Cache.key(inputs) = {self.key(inputs)}, but got {key}")
        pinned = dict(pinned or {})
        entry = self.entry(key)
        if entry.is_dir():  # the fast path: no lock for a good entry
            manifest, _ = self._check(entry, key, inputs, pinned)
            if manifest is not None:
                try:
                    return Fetched(load(entry), entry, True, manifest)
                except (ImportError, OSError):
                    pass  # repaired below, under the lock
        with self._lock(key):
            return self._fetch_locked(key, inputs, make, load, pinned)

    def _fetch_locked(self, key, inputs, make, load, pinned) -> Fetched:
        entry = self.entry(key)
        if entry.exists():
            manifest, problem = self._check(entry, key, inputs, pinned)
            if manifest is not None:
                try:
                    return Fetched(load(entry), entry, True, manifest)  # another process built it
                except (ImportError, OSError) as exc:
                    problem = f"it cannot be loaded: {exc}"
            warnings.warn(
                f"cache entry {str(entry)!r} is corrupted ({problem}); rebuilding it",
                CacheWarning,
                stacklevel=4,
            )
            self._discard(entry)
        manifest = self._build(key, inputs, make)
        try:
            value = load(entry)
        except (ImportError, OSError) as exc:
            # Out of the way, but kept for the error report: left in place, every later fetch
            # would find it, fail to load it, rebuild the same thing and fail again.
            kept = self._set_aside(entry, "unloadable")
            raise CacheError(
                f"cache entry for key {key} was just built but cannot be loaded ({exc}); "
                f"the files are kept in {str(kept)!r}"
            ) from exc
        return Fetched(value, entry, False, manifest)

    def _build(self, key: str, inputs: Mapping[str, str], make) -> dict[str, Any]:
        builds = self.root / "build"
        builds.mkdir(mode=0o700, exist_ok=True)
        for stale in builds.glob(f"{key}-*"):  # earlier failures or crashes (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=builds))
        # On an exception the work directory stays, so the error can point at its files.
        extra = make(work) or {}
        files = {p.name: sha256_file(p) for p in sorted(work.iterdir()) if p.is_file()}
        manifest = {
            "format": MANIFEST_FORMAT,
            "key": key,
            "inputs": dict(inputs),
            "files": files,
            "build": dict(extra),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(work, self.entry(key))
        return manifest

    def _check(self, entry: Path, key: str, inputs: Mapping[str, str], pinned: Mapping[str, str]):
        """``(manifest, None)`` for a good entry, else ``(None, what is wrong)``."""
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            return None, f"unreadable manifest: {exc}"
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            return None, "manifest has an unknown format"
        if manifest.get("key") != key or manifest.get("inputs") != dict(inputs):
            return None, "manifest belongs to other inputs"
        files = manifest.get("files")
        if not isinstance(files, dict) or not files:
            return None, "manifest lists no files"
        for name, expected in pinned.items():
            if files.get(name) != expected:
                return None, f"{name} does not match the key"
        for name, expected in files.items():
            try:
                actual = sha256_file(entry / name)
            except OSError as exc:
                return None, f"{name} is missing ({exc.strerror or exc})"
            if actual != expected:
                return None, f"{name} does not match its hash in the manifest"
        return manifest, None

    def _discard(self, entry: Path) -> None:
        """Move a bad entry out of the way atomically, then delete it."""
        shutil.rmtree(self._set_aside(entry, "discarded"), ignore_errors=True)

    def _set_aside(self, entry: Path, why: str) -> Path:
        """Move an entry atomically to ``build/<key>-<why>-<random>`` (removed by the next build of
        that key, like any work directory); returns where it went."""
        builds = self.root / "build"
        builds.mkdir(mode=0o700, exist_ok=True)
        aside = builds / f"{entry.name}-{why}-{uuid.uuid4().hex}"
        os.replace(entry, aside)
        return aside

    def _lock(self, key: str) -> _TimedLock:
        locks = self.root / "locks"
        locks.mkdir(mode=0o700, exist_ok=True)
        return _TimedLock(locks / f"{key}.lock")

    # -- small records ---------------------------------------------------------------------------
    def read_json(self, kind: str, name: str) -> Any:
        """A small JSON record (None if absent or unreadable)."""
        try:
            return json.loads((self.root / kind / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None

    def write_json(self, kind: str, name: str, data: Any) -> None:
        """Store a small JSON record atomically; failures are ignored (records only save time)."""
        folder = self.root / kind
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=folder)
            with os.fdopen(handle, "w") as f:
                json.dump(data, f)
            os.replace(tmp, folder / f"{name}.json")
        except OSError:
            pass


class _TimedLock:
    """A file lock that says which file it waited on when it gives up."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = filelock.FileLock(str(path), timeout=LOCK_TIMEOUT_S)

    def __enter__(self) -> None:
        try:
            self._lock.acquire()
        except filelock.Timeout as exc:
            raise CacheError(
                f"waited {LOCK_TIMEOUT_S:.0f} s for the cache lock {str(self._path)!r}; "
                "another process may be stuck building this entry"
            ) from exc

    def __exit__(self, *exc_info: Any) -> None:
        self._lock.release()
