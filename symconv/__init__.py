"""symconv: derive convolution gradients with SymPy and turn them into specialised C kernels."""

from .derive import Derivation, derive
from .spec import ConvSpec

__version__ = "0.1.0"

__all__ = ["ConvSpec", "Derivation", "derive", "__version__"]
