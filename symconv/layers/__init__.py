"""The layers of a small CNN besides the convolution: their formulas and derivations."""

from .activation import ActivationDerivation, ActivationSpec
from .base import Check, LayerDerivation, LayerVerifyResult
from .batchnorm import BatchNorm2dDerivation, BatchNorm2dSpec
from .linear import LinearDerivation, LinearSpec
from .pool_spec import AvgPool2dSpec, MaxPool2dSpec
from .pooling import AvgPool2dDerivation, MaxPool2dDerivation
from .printing import render
from .registry import derive_layer
from .softmax import CrossEntropyDerivation, CrossEntropySpec, SoftmaxDerivation, SoftmaxSpec
from .transpose import ConvTranspose2dDerivation, ConvTranspose2dSpec
