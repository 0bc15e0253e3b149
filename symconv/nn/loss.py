"""``CrossEntropyLoss``: softmax and negative log-likelihood fused, mean over the batch.

The fused gradient ``(softmax(z) - onehot(t)) / N`` is derived in the layer's derivation, not
assumed; the generated kernel computes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._args import float_array, real
from ._kernels import layer_kernels
from .module import Module, need_forward


def _target(target: Any, batch: int, classes: int) -> np.ndarray:
    """Class indices as int64 ``(N,)`` (integer arrays of any width are accepted).

    The range is checked before the cast, in the array's own type: a uint64 index beyond int64
    would otherwise wrap to a negative number and be reported as one."""
    if not isinstance(target, np.ndarray):
        raise TypeError(f"target must be a numpy.ndarray of class indices, but got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices, but got dtype {target.dtype}")
    if target.shape != (batch,):
        raise ValueError(f"target must have shape ({batch},), one class index per row of logits, but got {target.shape}")
    bad = (target < 0) | (target >= classes)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"target must hold class indices in [0, {classes}), but got {int(target[where])} at index {where}"
        )
    return target.astype(np.int64, copy=True)


class CrossEntropyLoss(Module):
    """``mean_n -log softmax(logits_n)[target_n]``.

    ``forward(logits, target)`` takes ``(N, C)`` logits and ``(N,)`` integer targets and returns
    the loss as a Python float; ``backward(grad_loss=1.0)`` returns dL/dlogits. Only PyTorch's
    defaults are supported (``reduction="mean"``, no class weights, no label smoothing).
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction != "mean":
            raise ValueError(f"reduction must be 'mean' (the only one supported), but got {reduction!r}")
        self.reduction = reduction
        self._saved: tuple[Any, np.ndarray, np.ndarray] | None = None

    def forward(self, logits: np.ndarray, target: np.ndarray) -> float:
        float_array("logits", logits)
        if logits.ndim != 2 or min(logits.shape) < 1:
            raise ValueError(f"logits must have shape (N, C) with N >= 1 and C >= 1, but got {logits.shape}")
        labels = _target(target, *logits.shape)
        kernel = layer_kernels().cross_entropy(logits.shape, logits.dtype.name)
        loss, probs = kernel.forward(logits, labels)
        self._saved = (kernel, probs, labels)
        return float(loss)

    def backward(self, grad_loss: float = 1.0) -> np.ndarray:
        kernel, probs, labels = need_forward(self._saved)
        return kernel.backward(probs, labels, real("grad_loss", grad_loss))

    def extra_repr(self) -> str:
        return ""
