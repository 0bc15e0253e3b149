"""``Module`` and ``Parameter``: the bookkeeping every layer shares.

A module owns parameters (trainable arrays with a gradient), buffers (state that is saved but not
trained, such as batch norm's running statistics) and child modules, each registered by the name
it is assigned to, in assignment order. From that registry come ``parameters()``,
``state_dict()`` with PyTorch's key names (``"0.weight"``, ``"3.running_mean"``), ``train()`` /
``eval()`` and ``zero_grad()`` for the whole tree.

There is no autograd: a layer's ``forward`` keeps what its ``backward`` needs, and
``backward(grad_out)`` adds the parameter gradients into ``.grad`` (accumulating, as PyTorch does,
until ``zero_grad()`` sets them to None) and returns the gradient with respect to the input.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple

import numpy as np


class Parameter:
    """A trainable array: ``data`` (the values) and ``grad`` (the accumulated gradient, or None)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray, grad: np.ndarray | None = None) -> None:
        if not isinstance(data, np.ndarray):
            raise TypeError(f"data must be a numpy.ndarray, but got {type(data).__name__}")
        if grad is not None and (not isinstance(grad, np.ndarray) or grad.shape != data.shape):
            raise ValueError(f"grad must be None or an array of shape {data.shape}, but got {grad!r}")
        self.data = data
        self.grad = grad

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def accumulate(self, grad: np.ndarray) -> None:
        """Add ``grad`` to ``.grad``, in place as PyTorch does (the first one is stored as given:
        callers pass a fresh array that nothing else holds)."""
        if self.grad is None:
            self.grad = grad
        else:
            self.grad += grad

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class LoadResult(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of the layers: registration of parameters, buffers and children, and the
    whole-tree operations built on it. Subclasses call ``super().__init__()`` first, then assign
    ``Parameter``s and sub-``Module``s as attributes and register buffers with ``register_buffer``.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # -- registration ---------------------------------------------------------------------------
    def _registry(self, name: str) -> dict[str, Any]:
        registry = self.__dict__.get(name)
        if registry is None:
            raise AttributeError(f"{type(self).__name__}.__init__ must call Module.__init__() before assigning")
        return registry

    def _forget(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            self._registry(store).pop(name, None)
        self.__dict__.pop(name, None)

    def __setattr__(self, name: str, value: Any) -> None:
        parameters, buffers = self._registry("_parameters"), self._registry("_buffers")
        if isinstance(value, Parameter):
            self._forget(name)
            parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._registry("_modules")[name] = value
        elif name in parameters:
            if value is not None:
                raise TypeError(f"{name} is a parameter: assign a Parameter or None, but got {type(value).__name__}")
            parameters[name] = None
        elif name in buffers:
            if isinstance(value, np.generic):  # a 0-d result such as ``count + 1``: keep its dtype
                value = np.asarray(value)
            if value is not None and not isinstance(value, np.ndarray):
                raise TypeError(f"{name} is a buffer: assign a numpy.ndarray or None, but got {type(value).__name__}")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when ordinary lookup fails: the registered names live in the registries.
        for store in ("_parameters", "_buffers", "_modules"):
            registry = self.__dict__.get(store)
            if registry is not None and name in registry:
                return registry[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def register_parameter(self, name: str, parameter: Parameter | None) -> None:
        """Register ``parameter`` under ``name``; None keeps the name (as a layer built without bias)."""
        if parameter is not None and not isinstance(parameter, Parameter):
            raise TypeError(f"parameter must be a Parameter or None, but got {type(parameter).__name__}")
        self._forget(name)
        self._registry("_parameters")[name] = parameter

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """Register a saved, untrained array (``state_dict`` includes it; ``parameters`` does not)."""
        if value is not None and not isinstance(value, np.ndarray):
            raise TypeError(f"value must be a numpy.ndarray or None, but got {type(value).__name__}")
        self._forget(name)
        self._registry("_buffers")[name] = value

    # -- the tree -------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        yield from self._modules.items()

    def children(self) -> list["Module"]:
        return [module for _, module in self.named_children()]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module (named ``prefix``) and every descendant, depth first, in registration order."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> list["Module"]:
        return [module for _, module in self.named_modules()]

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``("0.weight", Parameter)``, ... in registration order; each Parameter once."""
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, parameter in module._parameters.items():
                if parameter is not None and id(parameter) not in seen:
                    seen.add(id(parameter))
                    yield (f"{prefix}.{name}" if prefix else name), parameter

    def parameters(self) -> list[Parameter]:
        return [parameter for _, parameter in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, module in self.named_modules():
            for name, value in module._buffers.items():
                if value is not None:
                    yield (f"{prefix}.{name}" if prefix else name), value

    def buffers(self) -> list[np.ndarray]:
        return [value for _, value in self.named_buffers()]

    # -- modes and gradients --------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (``mode=True``) or evaluation mode for this module and all descendants."""
        if not isinstance(mode, bool):
            raise TypeError(f"mode must be True or False, but got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget the accumulated gradients (``.grad = None``, as PyTorch's default)."""
        for parameter in self.parameters():
            parameter.grad = None

    # -- state ----------------------------------------------------------------------------------
    def _state_entries(self) -> Iterator[tuple[str, "Module", str, str]]:
        """(key, owner, registry, local name) in PyTorch's order: per module, parameters then buffers."""
        for prefix, module in self.named_modules():
            for store in ("_parameters", "_buffers"):
                for name, value in module.__dict__[store].items():
                    if value is not None:
                        yield (f"{prefix}.{name}" if prefix else name), module, store, name

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter and buffer, copied, under PyTorch's key names."""
        return {key: np.array(_stored(module, store, name), copy=True) for key, module, store, name in self._state_entries()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy ``state`` (key -> array) into the parameters and buffers.

        Every value is checked before anything is changed: the shape and the dtype must match
        exactly (no silent casts). With ``strict`` (the default) missing and unexpected keys are
        errors too; otherwise they are skipped and returned.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping of names to arrays, but got {type(state).__name__}")
        entries = {key: (module, store, name) for key, module, store, name in self._state_entries()}
        missing = [key for key in entries if key not in state]
        unexpected = [key for key in state if key not in entries]
        if strict and (missing or unexpected):
            raise KeyError(
                f"state does not match {type(self).__name__}'s state_dict: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        updates = []
        for key, (module, store, name) in entries.items():
            if key not in state:
                continue
            current, value = _stored(module, store, name), np.asarray(state[key])
            if value.shape != current.shape:
                raise ValueError(f"state[{key!r}] must have shape {current.shape}, but got {value.shape}")
            if value.dtype != current.dtype:
                raise TypeError(f"state[{key!r}] must be {current.dtype}, but got {value.dtype}")
            updates.append((module, store, name, np.array(value, copy=True)))
        for module, store, name, value in updates:
            if store == "_parameters":
                module.__dict__[store][name].data = value
            else:
                module.__dict__[store][name] = value
        return LoadResult(missing, unexpected)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``state_dict()`` to ``path`` as ``.npz`` (written whole or not at all)."""
        target = Path(path)
        handle, temporary = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent or ".")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **self.state_dict())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def load(self, path: str | os.PathLike[str], strict: bool = True) -> LoadResult:
        """Read an ``.npz`` written by ``save`` (or ``numpy.savez`` of a state dict) into this module."""
        with np.load(Path(path), allow_pickle=False) as archive:
            return self.load_state_dict({key: archive[key] for key in archive.files}, strict=strict)

    # -- running ----------------------------------------------------------------------------------
    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __call__(self, *inputs: Any) -> Any:
        return self.forward(*inputs)

    # -- printing ---------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The constructor arguments shown between the parentheses of ``repr``."""
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + "\n" + "\n".join(lines) + "\n)"


def _stored(module: Module, store: str, name: str) -> np.ndarray:
    """The array behind a state entry (a parameter's ``data``, or the buffer itself)."""
    value = module.__dict__[store][name]
    return value.data if isinstance(value, Parameter) else value


def saved_copy(x: np.ndarray) -> np.ndarray:
    """A private, C-contiguous copy of an input kept for ``backward``: the caller may change ``x``
    after ``forward`` without changing the gradients."""
    return np.array(x, order="C", copy=True)


def need_forward(saved: Any) -> Any:
    """``saved`` (what ``forward`` kept), or the error for a ``backward`` without a ``forward``."""
    if saved is None:
        raise RuntimeError("backward needs a forward pass first: call forward(x) before backward(grad_out)")
    return saved
