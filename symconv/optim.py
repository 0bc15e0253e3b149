"""``SGD``: stochastic gradient descent with momentum, dampening, weight decay and Nesterov,
with PyTorch's update rule (``torch.optim.SGD``), step for step:

    g = grad + weight_decay · p
    b = g                                   (first step: the buffer starts as the gradient, undampened)
    b = momentum · b + (1 - dampening) · g  (later steps)
    g = g + momentum · b  if nesterov, else  g = b          (when momentum != 0)
    p = p - lr · g

The lecture's "weight increment = η·∂E/∂w + γ·previous increment" is the same recursion with the
learning rate folded into the buffer.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .nn._args import flag, real
from .nn.module import Parameter


class SGD:
    """Update ``params`` (Parameters, e.g. ``model.parameters()``) from their ``.grad``.

    Parameters whose ``grad`` is None are skipped (as PyTorch does), and their momentum buffer is
    left as it was.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if isinstance(params, Parameter) or not isinstance(params, Iterable):
            raise TypeError(f"params must be an iterable of Parameters, but got {type(params).__name__}")
        self.params = list(params)
        if not self.params:
            raise ValueError("params must contain at least one Parameter, but got an empty list")
        for index, param in enumerate(self.params):
            if not isinstance(param, Parameter):
                raise TypeError(f"params[{index}] must be a Parameter, but got {type(param).__name__}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("params must not contain the same Parameter twice")
        self.lr = real("lr", lr, minimum=0.0)
        self.momentum = real("momentum", momentum, minimum=0.0)
        self.dampening = real("dampening", dampening)
        self.weight_decay = real("weight_decay", weight_decay, minimum=0.0)
        self.nesterov = flag("nesterov", nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"nesterov=True needs momentum > 0 and dampening = 0, but got momentum={momentum!r} "
                f"and dampening={dampening!r}"
            )
        self._buffers: dict[int, np.ndarray] = {}

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to None (PyTorch's default ``set_to_none=True``)."""
        for param in self.params:
            param.grad = None

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for index, param in enumerate(self.params):  # every gradient checked before any update
            if param.grad is not None:
                self._check_grad(index, param)
        for param in self.params:
            if param.grad is None:
                continue
            direction = self._direction(param)
            param.data -= param.data.dtype.type(self.lr) * direction

    @staticmethod
    def _check_grad(index: int, param: Parameter) -> None:
        """The gradient is an array of the parameter's shape and dtype (never cast: a float64
        gradient of a float32 parameter is a bug upstream)."""
        data, grad, name = param.data, param.grad, f"params[{index}].grad"
        if data.dtype not in (np.float32, np.float64):  # an integer step would round lr to 0
            raise TypeError(f"params[{index}] must be float32 or float64, but got {data.dtype}")
        if not data.flags.writeable:
            raise ValueError(f"params[{index}] must be a writeable array (it is updated in place), but it is read-only")
        if not isinstance(grad, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, but got {type(grad).__name__}")
        if grad.dtype != param.data.dtype:
            raise TypeError(f"{name} must be {param.data.dtype}, but got {grad.dtype}")
        if grad.shape != param.data.shape:
            raise ValueError(f"{name} must have shape {param.data.shape}, but got {grad.shape}")

    def _direction(self, param: Parameter) -> np.ndarray:
        grad = param.grad
        dtype = param.data.dtype
        if self.weight_decay:
            grad = grad + dtype.type(self.weight_decay) * param.data
        if not self.momentum:
            return grad
        momentum = dtype.type(self.momentum)
        buffer = self._buffers.get(id(param))
        if buffer is None:
            buffer = np.array(grad, dtype=dtype, copy=True)
        else:
            buffer = momentum * buffer + dtype.type(1.0 - self.dampening) * grad
        self._buffers[id(param)] = buffer
        return grad + momentum * buffer if self.nesterov else buffer

    def state_dict(self) -> dict[str, Any]:
        """The hyper-parameters and the momentum buffers (by parameter position)."""
        buffers = {i: self._buffers[id(p)].copy() for i, p in enumerate(self.params) if id(p) in self._buffers}
        hyper = dict(lr=self.lr, momentum=self.momentum, dampening=self.dampening,
                     weight_decay=self.weight_decay, nesterov=self.nesterov)
        return {"hyper": hyper, "momentum_buffer": buffers}

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, dampening={self.dampening}, "
            f"weight_decay={self.weight_decay}, nesterov={self.nesterov})"
        )
