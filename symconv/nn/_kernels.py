"""Access to the generated kernels of the non-convolution layers (:mod:`symconv.kernels`).

Imported on first use rather than with :mod:`symconv.nn`, so the convolution layers (which only
need :func:`symconv.build`) load without the layer kernels' templates being read.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def layer_kernels() -> ModuleType:
    """The :mod:`symconv.kernels` package (factories such as ``maxpool2d`` and ``batchnorm2d``)."""
    return importlib.import_module("symconv.kernels")
