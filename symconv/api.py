"""``symconv.build``: a compiled, cached kernel for one layer, ready to call on numpy arrays.

>>> import numpy as np
>>> from symconv.api import build
>>> from symconv.spec import ConvSpec
>>> k = build(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)))
>>> k.forward(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 2, 2), np.float32))[0, 0]
array([[4., 4.],
       [4., 4.]], dtype=float32)
"""

from __future__ import annotations

import os
import threading

from codegen.kernel import ConvKernel

from . import pipeline
from .spec import ConvSpec

_built: dict[tuple, ConvKernel] = {}
_built_lock = threading.Lock()


def build(spec: ConvSpec, dtype: object = "float32") -> ConvKernel:
    """The C kernels of ``spec`` for ``dtype`` ("float32" or "float64"), compiled and loaded.

    Runs the pipeline (lower → render → build, see :mod:`symconv.pipeline`). The compiled module
    is cached on disk (``$SYMCONV_CACHE_DIR`` or the per-user cache directory) and the kernel in
    this process, so asking again for the same layer costs a dictionary lookup.

    The kernel has ``forward(x, w, b=None)``, ``backward(x, w, grad_out) -> (dx, dw, db)``,
    ``grad_input(grad_out, w)``, ``grad_weight(x, grad_out)``, ``grad_bias(grad_out)``,
    ``set_num_threads(n)`` and the properties ``source``, ``cache_path``, ``spec``, ``dtype``.
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, but got {type(spec).__name__}")
    name = pipeline.dtype_name(dtype)
    # The compiler, the sanitizer mode and the cache location decide which module is loaded:
    # they are part of the key (so changing one of them mid-process builds or loads another).
    key = (spec, name, *(os.environ.get(var, "") for var in ("CC", "SYMCONV_SANITIZE", "SYMCONV_CACHE_DIR")))
    with _built_lock:
        kernel = _built.get(key)
    if kernel is None:
        kernel = pipeline.run(spec, name)
        with _built_lock:
            kernel = _built.setdefault(key, kernel)
    return kernel
