"""One entry point for every layer: ``derive_layer(spec)`` picks the derivation for the spec."""

from __future__ import annotations

from typing import Any

from .activation import ActivationDerivation, ActivationSpec
from .base import LayerDerivation
from .batchnorm import BatchNorm2dDerivation, BatchNorm2dSpec
from .linear import LinearDerivation, LinearSpec
from .pool_spec import AvgPool2dSpec, MaxPool2dSpec
from .pooling import AvgPool2dDerivation, MaxPool2dDerivation
from .softmax import CrossEntropyDerivation, CrossEntropySpec, SoftmaxDerivation, SoftmaxSpec
from .transpose import ConvTranspose2dDerivation, ConvTranspose2dSpec

DERIVATIONS: dict[type, type[LayerDerivation]] = {
    ActivationSpec: ActivationDerivation,
    MaxPool2dSpec: MaxPool2dDerivation,
    AvgPool2dSpec: AvgPool2dDerivation,
    LinearSpec: LinearDerivation,
    SoftmaxSpec: SoftmaxDerivation,
    CrossEntropySpec: CrossEntropyDerivation,
    BatchNorm2dSpec: BatchNorm2dDerivation,
    ConvTranspose2dSpec: ConvTranspose2dDerivation,
}


def derive_layer(spec: Any, **options: Any) -> LayerDerivation:
    """The derivation of a layer spec (lazy: SymPy runs when an array or ``verify()`` is asked for).

    ``options`` go to the derivation: ``values=`` (an array of the input's shape) for max pooling,
    the numbers at which its maxima are resolved.
    """
    derivation = DERIVATIONS.get(type(spec))
    if derivation is None:
        names = ", ".join(t.__name__ for t in DERIVATIONS)
        raise TypeError(f"spec must be one of {names}, but got {type(spec).__name__}")
    if options and derivation is not MaxPool2dDerivation:
        raise TypeError(f"{derivation.__name__} takes no options, but got {', '.join(options)}")
    return derivation(spec, **options)
