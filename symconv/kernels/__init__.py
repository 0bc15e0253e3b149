"""Generated C kernels of the CNN layers besides the convolution.

    k = maxpool2d((64, 6, 24, 24), 2, 2, 0, 1, False, "float32")
    y, indices = k.forward(x);  dx = k.backward(grad_out, indices)

    k = linear(32, 128, 120, True, "float32")
    y = k.forward(x, w, b);  dx, dw, db = k.backward(x, w, grad_out)

Every factory returns a kernel for one layer instance (every shape and hyper-parameter fixed,
N included) and one dtype, memoised in the process and compiled once into the on-disk cache.
The element-wise C expressions are printed by SymPy from ``symconv.layers.formulas``
(see :mod:`symconv.kernels.expressions`). Kernels have ``.source`` (the C), ``.output_shape``,
``.dtype``, ``.cache_path`` and ``set_num_threads(n)``.
"""

from .activation import ActivationKernel, activation
from .batchnorm import BatchNorm2dKernel, batchnorm2d
from .linear import LinearKernel, linear
from .pooling import AvgPool2dKernel, MaxPool2dKernel, avgpool2d, maxpool2d, pooled_size
from .softmax import CrossEntropyKernel, SoftmaxKernel, cross_entropy, softmax

__all__ = [
    "activation", "maxpool2d", "avgpool2d", "softmax", "cross_entropy", "batchnorm2d", "linear", "pooled_size",
    "ActivationKernel", "MaxPool2dKernel", "AvgPool2dKernel", "SoftmaxKernel", "CrossEntropyKernel",
    "BatchNorm2dKernel", "LinearKernel",
]
