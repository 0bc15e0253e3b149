"""``BatchNorm2d``: batch statistics while training, running statistics in evaluation, as PyTorch.

Training (or ``track_running_stats=False``): normalise each channel with the batch mean and the
biased batch variance; the backward goes through the mean and the variance (generated kernel).
The running statistics are updated with the *unbiased* variance, by exponential averaging with
``momentum`` or, with ``momentum=None``, by the cumulative average over ``num_batches_tracked``.

Evaluation with running statistics: ``y = γ (x - running_mean) / sqrt(running_var + ε) + β`` is
affine in ``x`` with constant coefficients, so its backward is the per-channel scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..pipeline import dtype_name
from ._args import fits, flag, grad_array, positive, real
from ._kernels import layer_kernels
from .module import Module, Parameter, need_forward, saved_copy


class BatchNorm2d(Module):
    """Batch normalisation over ``(N, H, W)`` for each of ``num_features`` channels."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: object = "float32",
    ) -> None:
        super().__init__()
        self.num_features = positive("num_features", num_features)
        fits("num_features", (self.num_features,))
        self.eps = real("eps", eps, minimum=0.0, strict=True)
        self.momentum = None if momentum is None else real("momentum", momentum, minimum=0.0)
        self.affine = flag("affine", affine)
        self.track_running_stats = flag("track_running_stats", track_running_stats)
        self.dtype = dtype_name(dtype)
        channels = (self.num_features,)
        self.register_parameter("weight", Parameter(np.ones(channels, self.dtype)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(channels, self.dtype)) if affine else None)
        tracked = self.track_running_stats
        self.register_buffer("running_mean", np.zeros(channels, self.dtype) if tracked else None)
        self.register_buffer("running_var", np.ones(channels, self.dtype) if tracked else None)
        self.register_buffer("num_batches_tracked", np.array(0, np.int64) if tracked else None)
        self._saved: tuple[Any, ...] | None = None

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean = np.zeros(self.num_features, self.dtype)
            self.running_var = np.ones(self.num_features, self.dtype)
            self.num_batches_tracked = np.array(0, np.int64)

    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        """γ and β (ones and zeros without ``affine``: the kernels always take both)."""
        if self.affine:
            return self.weight.data, self.bias.data
        return np.ones(self.num_features, self.dtype), np.zeros(self.num_features, self.dtype)

    def _check(self, x: Any) -> None:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, but got {type(x).__name__}")
        if x.dtype != np.dtype(self.dtype):
            raise TypeError(f"x must be {self.dtype}, but got {x.dtype}")
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"x must have shape (N, {self.num_features}, H, W), but got {x.shape}")

    def _update_running(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        self.num_batches_tracked = self.num_batches_tracked + 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (count / (count - 1))
        self.running_mean = ((1 - factor) * self.running_mean + factor * mean).astype(self.dtype)
        self.running_var = ((1 - factor) * self.running_var + factor * unbiased).astype(self.dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        gamma, beta = self._affine()
        count = x.shape[0] * x.shape[2] * x.shape[3]
        kept = saved_copy(x)
        if count == 0:
            # An empty batch (or empty planes): an empty result, zero gradients, the running
            # statistics unchanged. As PyTorch, a training step still counts the batch in
            # num_batches_tracked.
            if self.training and self.track_running_stats:
                self.num_batches_tracked = self.num_batches_tracked + 1
            self._saved = ("empty", None, kept, gamma, None, None)
            return np.empty(x.shape, x.dtype)
        if self.training or not self.track_running_stats:
            if self.training and count <= 1:
                raise ValueError(f"x must have more than 1 value per channel when training, but got shape {x.shape}")
            kernel = layer_kernels().batchnorm2d(x.shape, self.dtype)
            y, mean, var = kernel.forward_train(kept, gamma, beta, self.eps)
            if self.training and self.track_running_stats:
                self._update_running(mean, var, count)
            self._saved = ("batch", kernel, kept, gamma, mean, var)
        else:
            mean, var = self.running_mean.copy(), self.running_var.copy()
            kernel = layer_kernels().batchnorm2d(x.shape, self.dtype)
            y = kernel.forward_eval(kept, gamma, beta, mean, var, self.eps)
            self._saved = ("running", kernel, kept, gamma, mean, var)
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        mode, kernel, x, gamma, mean, var = need_forward(self._saved)
        grad_array(grad_out, x.shape, x.dtype)
        if mode == "empty":
            dx = np.zeros(x.shape, x.dtype)
            dgamma, dbeta = np.zeros(self.num_features, x.dtype), np.zeros(self.num_features, x.dtype)
        elif mode == "batch":
            dx, dgamma, dbeta = kernel.backward(grad_out, x, gamma, mean, var, self.eps)
        else:
            # C order whatever the caller's layout: numpy's sums below follow the memory order,
            # and the result must not change with it (not one bit)
            grad_out = np.ascontiguousarray(grad_out)
            scale = (1.0 / np.sqrt(var + self.eps)).astype(self.dtype)[:, None, None]
            dx = grad_out * (gamma[:, None, None] * scale)
            dgamma = (grad_out * ((x - mean[:, None, None]) * scale)).sum(axis=(0, 2, 3))
            dbeta = grad_out.sum(axis=(0, 2, 3))
        if self.affine:
            self.weight.accumulate(dgamma)
            self.bias.accumulate(dbeta)
        return dx

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )
