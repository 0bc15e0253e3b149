"""What every layer kernel shares: building its module, checking arguments, threads, memoising.

A layer kernel is one C module (one layer instance, one dtype) built by
:func:`codegen.build.build_extension` (so it is cached on disk, loaded once per process, and built
with the sanitizers under ``SYMCONV_SANITIZE=1``), wrapped in a Python object that checks every
argument with :func:`codegen.kernel.pointer_checker` (or :func:`codegen.layers.index_checker` for
int64 arrays) before C sees a pointer, and allocates every output fresh.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from math import prod
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from codegen.build import build_extension
from codegen.kernel import applied_threads, default_num_threads, pointer_checker, thread_count
from codegen.layers import LayerSource, index_checker

from ..lower import PARALLEL_MIN_WORK
from ..pipeline import MODULE_PREFIX, dtype_name

C_TYPES = {"float32": "float", "float64": "double"}
DTYPE_SUFFIX = {"float32": "f32", "float64": "f64"}
#: The largest window size, stride, padding or dilation (as the convolution's ``ConvSpec``).
MAX_PARAMETER = 2**31 - 1
#: The most elements an array may have (so that 64-bit index arithmetic cannot overflow).
MAX_ELEMENTS = 2**62
#: Longest readable module name; longer ones are replaced by a hash of the layer's parameters.
MAX_NAME = 60


def worth_threads(work: int) -> bool:
    """Whether ``work`` element operations pay for waking the OpenMP team (the convolution's
    threshold: below it a layer runs on the calling thread alone)."""
    return work >= PARALLEL_MIN_WORK


def module_name(kind: str, parts: Sequence[object], dtype: str) -> str:
    """``maxpool2d_64x6x24x24_k2x2_s2x2_p0x0_d1x1_f32`` — or ``maxpool2d_<hash>_f32`` if too long."""
    text = "_".join([kind, *map(str, parts), DTYPE_SUFFIX[dtype]])
    if len(text) <= MAX_NAME and text.isidentifier():
        return text
    digest = hashlib.sha256(json.dumps([kind, list(map(str, parts))]).encode()).hexdigest()[:12]
    return f"{kind}_{digest}_{DTYPE_SUFFIX[dtype]}"


def dims(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def check_shape(name: str, shape: object, ndim: int | None = None) -> tuple[int, ...]:
    """A tuple of positive ints (of length ``ndim`` if given), else a ValueError naming ``name``."""
    expected = f"a tuple of {ndim} positive ints" if ndim else "a tuple of positive ints"
    try:
        values = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be {expected}, but got {shape!r}") from None
    ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in values)
    if not values or not ok or (ndim is not None and len(values) != ndim):
        raise ValueError(f"{name} must be {expected}, but got {shape!r}")
    values = tuple(int(v) for v in values)
    if prod(values) > MAX_ELEMENTS:
        raise ValueError(
            f"{name} must have at most 2^62 = {MAX_ELEMENTS} elements so that 64-bit index arithmetic "
            f"cannot overflow, but got {values}: {prod(values)} elements"
        )
    return values


def pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (PyTorch's ``_pair``), each at least ``minimum``."""
    values = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        a, b = values  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, but got {value!r}") from None
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
            raise ValueError(f"{name} must be ints >= {minimum}, but got {value!r}")
        if v > MAX_PARAMETER:  # written into the C as a constant, multiplied by 64-bit indices
            raise ValueError(f"{name} must be at most {MAX_PARAMETER} (2^31 - 1), but got {value!r}")
    return int(a), int(b)


def flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, but got {value!r}")
    return bool(value)


class LayerKernel:
    """A built layer module plus the Python half: checks, output allocation, threads.

    Subclasses define the passes; everything they pass to C goes through ``self._ptr`` or
    ``self._index_ptr`` checkers made once at construction.
    """

    kind = "layer"

    def __init__(self, csource: LayerSource, dtype: str, output_shape: tuple[int, ...]) -> None:
        from .. import __version__

        extension = build_extension(
            MODULE_PREFIX + csource.name, csource.source, csource.cdef, project=__version__
        )
        self._lib, self._ffi = extension.lib, extension.ffi
        self._dtype = np.dtype(dtype)
        self._ctype = C_TYPES[dtype] + "[]"
        self._from_buffer = self._ffi.from_buffer
        self._c = {kind: getattr(self._lib, fname) for kind, fname in csource.functions.items()}
        self._set_threads_c = getattr(self._lib, f"{csource.name}_set_num_threads")
        self._threads = default_num_threads()
        self.name = csource.name
        self.source = csource.source
        self.cache_path: Path = extension.path
        self.output_shape = output_shape

    # -- description ---------------------------------------------------------------------------
    @property
    def dtype(self) -> str:
        return self._dtype.name

    @property
    def num_threads(self) -> int:
        return self._threads

    def set_num_threads(self, n: int) -> None:
        """Run this kernel's calls on ``n`` OpenMP threads (default: $OMP_NUM_THREADS, else all cores)."""
        self._threads = thread_count(n)

    def describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dtype} {self.describe()} → {dims(self.output_shape)}>"

    # -- helpers for the passes ----------------------------------------------------------------
    def _ptr(self, name: str, shape: tuple[int, ...]) -> Callable[[Any], Any]:
        return pointer_checker(name, shape, self._dtype, self._ffi)

    def _index_ptr(self, name: str, shape: tuple[int, ...]) -> Callable[[Any], Any]:
        return index_checker(name, shape, self._ffi)

    def _out(self, shape: tuple[int, ...], dtype: np.dtype | None = None) -> tuple[np.ndarray, Any]:
        array = np.empty(shape, self._dtype if dtype is None else dtype)
        ctype = self._ctype if dtype is None else {"int64": "int64_t[]", "float64": "double[]"}[dtype.name]
        return array, self._from_buffer(ctype, array)

    def _into_new(self, function: Callable[..., None], shape: tuple[int, ...], *pointers: Any) -> np.ndarray:
        """Call ``function(*pointers, out)`` on a fresh output array of ``shape``; return it."""
        out, pout = self._out(shape)
        self._ready()
        function(*pointers, pout)
        return out

    def _ready(self) -> None:
        """Set this kernel's thread count in the OpenMP runtime if the last call used another one
        (the record is shared with the convolution kernels: one runtime per process)."""
        if applied_threads.count != self._threads:
            self._set_threads_c(self._threads)
            applied_threads.count = self._threads


F = TypeVar("F", bound=Callable[..., LayerKernel])


def memoised(factory: F) -> F:
    """One kernel per (arguments, compiler, sanitizer mode, cache directory) in this process."""
    built: dict[tuple, LayerKernel] = {}
    lock = threading.Lock()

    @functools.wraps(factory)
    def cached(*args: Any, **kwargs: Any) -> LayerKernel:
        env = tuple(os.environ.get(v, "") for v in ("CC", "SYMCONV_SANITIZE", "SYMCONV_CACHE_DIR"))
        try:
            key = (_freeze(args), _freeze(sorted(kwargs.items())), env)
            hash(key)
        except TypeError:
            return factory(*args, **kwargs)  # unhashable arguments: let the factory explain them
        with lock:
            found = built.get(key)
        if found is None:
            found = factory(*args, **kwargs)
            with lock:
                found = built.setdefault(key, found)
        return found

    return cached  # type: ignore[return-value]


def _freeze(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return ("bool", bool(value))  # True must not share a key with 1 (one of them is refused)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.dtype):
        return ("dtype", value.name)
    if isinstance(value, type):
        return ("type", value.__module__, value.__qualname__)
    return value


def numel(shape: Sequence[int]) -> int:
    return prod(shape)


__all__ = [
    "LayerKernel", "memoised", "module_name", "check_shape", "pair", "flag", "worth_threads",
    "dtype_name", "dims", "numel",
]
