"""symconv: derive convolution gradients with SymPy and turn them into specialised C kernels.

    spec = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
    d = derive(spec)                 # SymPy: O, dX, dW (, db) and the general index form
    d.verify()                       # proof: they are the lecture's convolutions
    k = build(spec)                  # C kernels, compiled through cffi and cached
    export(spec, "out/")             # the same C, standalone

Printing lives in ``symconv.render`` (``from symconv.render import render``).
"""

from importlib import import_module
from typing import Any

from .derive import Derivation, derive
from .export import export  # after this import, ``symconv.export`` is the function, not the module
from .spec import ConvSpec

__version__ = "0.1.0"

#: Names that pull in the code generator (cffi, jinja2, a compiler) load on first use.
_LAZY = {
    "build": ("symconv.api", "build"),
    "check_claims": ("symconv.check", "check_claims"),
    "nn": ("symconv.nn", None),
}

__all__ = ["ConvSpec", "Derivation", "derive", "export", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'symconv' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
