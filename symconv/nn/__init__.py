"""Layers on numpy arrays, with forward and backward passes running in generated C kernels.

Constructor arguments, shapes, initialisation and ``state_dict`` key names follow PyTorch, so a
model can be checked against (or loaded from) its PyTorch twin. There is no autograd: every
layer's ``backward(grad_out)`` returns dL/dinput and accumulates its parameters' ``.grad``;
``Sequential`` chains them.
"""

from .activation import ReLU, Sigmoid, Softmax
from .batchnorm import BatchNorm2d
from .container import Sequential
from .conv import Conv2d
from .conv_transpose import ConvTranspose2d
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss
from .module import Module, Parameter
from .pooling import AvgPool2d, MaxPool2d

__all__ = [
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Flatten",
    "Linear",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
]
