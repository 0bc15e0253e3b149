"""A loaded convolution kernel: argument checks in Python, the arithmetic in C.

The C functions of one specialised layer (see the codegen contract: ``NAME_forward``,
``NAME_grad_input``, ``NAME_grad_weight``, ``NAME_grad_bias``, ``NAME_set_num_threads``) know
every size at compile time and trust their pointers. This wrapper is what makes that safe: before
each call it checks every array's type, dtype and shape against the layer, so C never sees a buffer
of the wrong size, and it allocates every output fresh.

This module takes plain data (shapes, dtype, the loaded ``lib``/``ffi``, function names) and does
not know about specs or derivations; ``spec`` is carried along untouched for the caller.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

#: numpy dtype name -> C element type.
C_TYPES = {"float32": "float", "float64": "double"}
KERNEL_NAMES = ("forward", "grad_input", "grad_weight", "grad_bias")


def default_num_threads() -> int:
    """``$OMP_NUM_THREADS`` (its first entry) if set, else the cores this process may run on."""
    configured = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_count(n: object) -> int:
    """``n`` as a thread count for ``set_num_threads``: a positive int, else a ValueError."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, but got {n!r}")
    return int(n)


class _AppliedThreads(threading.local):
    """The OpenMP thread count last set from this Python thread (the runtime keeps one per thread)."""

    count = 0


applied_threads = _AppliedThreads()
_empty = np.empty  # bound once: the hot path allocates every output with it
#: Bytes in a cache line, and the output size from which outputs share the read array's offset in one.
LINE_BYTES = 64
LINE_MATCH_MIN_BYTES = 1 << 20


def empty_at_line_offset(shape: tuple[int, ...], dtype: np.dtype, offset: int) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts ``offset`` bytes (mod 64) past a
    cache-line boundary (a view of a slightly larger byte buffer).

    The vector kernels start their vectors where the rows of the array they read start a cache
    line; an output at the same offset then has its vectors start lines too: no store is split
    across two lines, and large outputs can be stored past the caches.
    """
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + LINE_BYTES, np.uint8)
    at = (offset - raw.ctypes.data) % LINE_BYTES
    return raw[at : at + nbytes].view(dtype).reshape(shape)


def pointer_checker(name: str, shape: tuple[int, ...], dtype: np.dtype, ffi: Any) -> Callable[[Any], Any]:
    """A function that checks one argument and returns a C pointer to its data.

    A closure rather than a method: everything it compares against is bound once, which keeps
    the per-call cost of the checks low. The common case (a plain, C-contiguous, aligned
    ndarray of exactly the right dtype and shape) takes one short test; everything else goes
    through the full checks, which raise with a message or copy into a contiguous array.

    Only an object whose type is exactly ``numpy.ndarray`` is trusted as it is: a subclass can
    override ``shape``, ``dtype``, ``flags`` and even ``__class__`` in Python, so anything else is
    first viewed as a base-class array (``np.asarray``), whose attributes describe its real buffer.
    """
    ndarray, from_buffer, ctype, exact_type = np.ndarray, ffi.from_buffer, C_TYPES[dtype.name] + "[]", type
    size = 1
    for extent in shape:
        size *= extent

    def checked(array: Any) -> Any:
        if not isinstance(array, ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, but got {type(array).__name__}")
        if type(array) is not ndarray:
            array = np.asarray(array)  # the base class: its attributes cannot lie
        if array.dtype != dtype:
            raise TypeError(f"{name} must be {dtype.name}, but got {array.dtype}")
        if array.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, but got {array.shape}")
        flags = array.flags
        if not (flags.c_contiguous and flags.aligned):
            array = np.array(array, order="C", copy=True)  # fresh allocations are aligned
        buffer = from_buffer(ctype, array)
        if len(buffer) != size:  # the last word: exactly the elements C will touch
            raise ValueError(f"{name} must hold {size} elements of {dtype.name}, but its buffer holds {len(buffer)}")
        return buffer

    def pointer(array: Any) -> Any:
        # Same checks as ``checked``, in the order that costs least when they all pass
        # (``dtype is``: numpy keeps one dtype object per builtin type and byte order).
        if exact_type(array) is ndarray and array.dtype is dtype and array.shape == shape:
            flags = array.flags
            if flags.c_contiguous and flags.aligned:
                return from_buffer(ctype, array)
        return checked(array)

    return pointer


def _shape_tuple(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(v) for v in shape)
    if any(v < 0 for v in shape):
        raise ValueError(f"{name} must have non-negative dimensions, but got {shape}")
    return shape


class ConvKernel:
    """Forward and backward passes of one convolution layer, compiled for fixed shapes and dtype.

    Every method checks its arguments and raises, naming the argument, for anything but a
    ``numpy.ndarray`` of exactly the kernel's dtype (never cast: a silent float64→float32 would
    lose precision, TypeError) and exactly the expected shape (ValueError). Arrays that are not
    C-contiguous or not aligned are copied before the call (correct, but costs a copy: pass
    C-contiguous arrays in a hot loop). Outputs are always freshly allocated arrays.

    Calls release the GIL and run on ``num_threads`` OpenMP threads (``set_num_threads``).
    """

    def __init__(
        self,
        *,
        lib: Any,
        ffi: Any,
        functions: Mapping[str, str],
        input_shape: Sequence[int],
        weight_shape: Sequence[int],
        output_shape: Sequence[int],
        bias: bool,
        dtype: str | np.dtype,
        threads_function: str | None = None,
        source: str = "",
        header: str = "",
        cache_path: Path | None = None,
        spec: Any = None,
    ) -> None:
        self._dtype = np.dtype(dtype)
        if self._dtype.name not in C_TYPES:
            raise ValueError(f"dtype must be one of {sorted(C_TYPES)}, but got {self._dtype.name!r}")
        unknown = set(functions) - set(KERNEL_NAMES)
        if unknown:
            raise ValueError(f"functions must be among {KERNEL_NAMES}, but got {sorted(unknown)}")
        missing = {"forward", "grad_input", "grad_weight"} - set(functions)
        if bias:
            missing |= {"grad_bias"} - set(functions)
        if missing:
            raise ValueError(f"functions must include {sorted(missing)} for this layer")
        self._x_shape = _shape_tuple("input_shape", input_shape)
        self._w_shape = _shape_tuple("weight_shape", weight_shape)
        self._out_shape = _shape_tuple("output_shape", output_shape)
        self._b_shape = (self._w_shape[0],)
        self._bias = bool(bias)
        self._ffi = ffi
        self._from_buffer = ffi.from_buffer
        self._ctype = C_TYPES[self._dtype.name] + "[]"
        self._null = ffi.NULL
        self._x_ptr = pointer_checker("x", self._x_shape, self._dtype, ffi)
        self._w_ptr = pointer_checker("w", self._w_shape, self._dtype, ffi)
        self._b_ptr = pointer_checker("b", self._b_shape, self._dtype, ffi)
        self._g_ptr = pointer_checker("grad_out", self._out_shape, self._dtype, ffi)
        self._c = {kind: getattr(lib, fname) for kind, fname in functions.items()}
        # The hot path reads these directly: one attribute lookup each, no dictionary.
        self._c_forward = self._c["forward"]
        self._c_grad_input = self._c["grad_input"]
        self._c_grad_weight = self._c["grad_weight"]
        self._c_grad_bias = self._c.get("grad_bias")
        self._function_names = dict(functions)
        self._set_threads_c = getattr(lib, threads_function) if threads_function else None
        size = self._dtype.itemsize
        self._match_out = int(np.prod(self._out_shape, dtype=np.int64)) * size >= LINE_MATCH_MIN_BYTES
        self._match_dx = int(np.prod(self._x_shape, dtype=np.int64)) * size >= LINE_MATCH_MIN_BYTES
        self._threads = default_num_threads()
        self.source = source
        self.header = header
        self.cache_path = cache_path
        self.spec = spec

    # -- description ---------------------------------------------------------------------------
    @property
    def dtype(self) -> str:
        return self._dtype.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._x_shape

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return self._w_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._out_shape

    @property
    def bias(self) -> bool:
        """Whether the layer has a bias (then ``forward`` accepts ``b`` and ``grad_bias`` exists)."""
        return self._bias

    @property
    def functions(self) -> dict[str, str]:
        """Kernel name -> C function name."""
        return dict(self._function_names)

    @property
    def num_threads(self) -> int:
        return self._threads

    def set_num_threads(self, n: int) -> None:
        """Run this kernel's calls on ``n`` OpenMP threads (default: $OMP_NUM_THREADS, else all cores)."""
        self._threads = thread_count(n)

    def __repr__(self) -> str:
        dims = lambda shape: "×".join(map(str, shape))  # noqa: E731
        return (
            f"<ConvKernel {self.dtype} X {dims(self._x_shape)} ⋆ W {dims(self._w_shape)}"
            f"{' + b' if self._bias else ''} → O {dims(self._out_shape)}>"
        )

    # -- the hot path: keep it short ------------------------------------------------------------
    def _out(self, shape: tuple[int, ...]) -> tuple[np.ndarray, Any]:
        array = _empty(shape, self._dtype)
        return array, self._from_buffer(self._ctype, array)

    def _out_like(self, shape: tuple[int, ...], read: Any) -> tuple[np.ndarray, Any]:
        """A large output placed at the offset in a cache line of the array the pass reads."""
        offset = int(self._ffi.cast("uintptr_t", read)) % LINE_BYTES
        array = empty_at_line_offset(shape, self._dtype, offset)
        return array, self._from_buffer(self._ctype, array)

    def _apply_threads(self) -> None:
        """Set this kernel's thread count in the OpenMP runtime (called only when it differs)."""
        if self._set_threads_c is not None:
            self._set_threads_c(self._threads)
        applied_threads.count = self._threads

    # -- the passes ----------------------------------------------------------------------------
    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """``O = X ⋆ W (+ b)``: ``x`` of ``input_shape``, ``w`` of ``weight_shape``, ``b`` of ``(K,)``.

        ``b`` may be omitted (no bias added) and must be omitted for a layer built without bias.
        """
        px = self._x_ptr(x)
        pw = self._w_ptr(w)
        if b is None:
            pb = self._null
        elif self._bias:
            pb = self._b_ptr(b)
        else:
            raise ValueError("b must be None for a layer built without bias (bias=False), but got an array")
        out, pout = self._out_like(self._out_shape, px) if self._match_out else self._out(self._out_shape)
        if applied_threads.count != self._threads:
            self._apply_threads()
        self._c_forward(px, pw, pb, pout)
        return out

    def grad_input(self, grad_out: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``dL/dX`` from the upstream gradient ``grad_out`` (shape ``output_shape``) and ``w``."""
        pg = self._g_ptr(grad_out)
        pw = self._w_ptr(w)
        dx, pdx = self._out_like(self._x_shape, pg) if self._match_dx else self._out(self._x_shape)
        if applied_threads.count != self._threads:
            self._apply_threads()
        self._c_grad_input(pg, pw, pdx)
        return dx

    def grad_weight(self, x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
        """``dL/dW`` from the layer input ``x`` and the upstream gradient ``grad_out``."""
        px = self._x_ptr(x)
        pg = self._g_ptr(grad_out)
        dw = _empty(self._w_shape, self._dtype)
        if applied_threads.count != self._threads:
            self._apply_threads()
        self._c_grad_weight(px, pg, self._from_buffer(self._ctype, dw))
        return dw

    def grad_bias(self, grad_out: np.ndarray) -> np.ndarray:
        """``dL/db``: ``grad_out`` summed over batch and space (only for a layer with bias)."""
        if not self._bias:
            raise ValueError("grad_bias needs a layer built with bias=True, but this one has no bias")
        pg = self._g_ptr(grad_out)
        db = _empty(self._b_shape, self._dtype)
        if applied_threads.count != self._threads:
            self._apply_threads()
        self._c_grad_bias(pg, self._from_buffer(self._ctype, db))
        return db

    def backward(
        self, x: np.ndarray, w: np.ndarray, grad_out: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(dL/dX, dL/dW, dL/db)`` in one call; ``dL/db`` is None for a layer without bias."""
        px = self._x_ptr(x)
        pw = self._w_ptr(w)
        pg = self._g_ptr(grad_out)
        dx, pdx = self._out_like(self._x_shape, pg) if self._match_dx else self._out(self._x_shape)
        dw, pdw = self._out(self._w_shape)
        if applied_threads.count != self._threads:
            self._apply_threads()
        self._c_grad_input(pg, pw, pdx)
        self._c_grad_weight(px, pg, pdw)
        db = None
        if self._bias:
            db, pdb = self._out(self._b_shape)
            self._c_grad_bias(pg, pdb)
        return dx, dw, db

    __call__ = forward
