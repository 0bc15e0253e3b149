"""``Sequential``: layers applied one after another, and their gradients in reverse order."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

from .module import Module


class Sequential(Module):
    """``Sequential(m0, m1, ...)`` (children named ``"0"``, ``"1"``, ... as in PyTorch) or
    ``Sequential(mapping)`` with names of your own.

    ``forward(x)`` feeds each module's output to the next; ``backward(grad_out)`` runs each
    module's ``backward`` from the last to the first and returns dL/dx of the first.
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            named = list(modules[0].items())
        else:
            named = [(str(index), module) for index, module in enumerate(modules)]
        for name, module in named:
            self._add(name, module)

    def _add(self, name: str, module: Any) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential takes Modules, but got {type(module).__name__} for {name!r}")
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"module names must be non-empty strings without '.', but got {name!r}")
        setattr(self, name, module)

    def append(self, module: Module) -> "Sequential":
        self._add(str(len(self)), module)
        return self

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        for module in reversed(list(self._modules.values())):
            grad_out = module.backward(grad_out)
        return grad_out

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __getitem__(self, index: int | slice) -> Any:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(dict(items[index]))
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int or a slice, but got {type(index).__name__}")
        if not -len(items) <= index < len(items):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(items)} modules")
        return items[index][1]
