"""Element-wise activations (ReLU, sigmoid): one flat loop over any shape.

The C expressions are SymPy's: ``formulas.ACTIVATIONS[kind]`` for the forward pass and its
derivative for the backward pass (ReLU's subgradient in terms of ``x``, 0 at ``x == 0``; the
sigmoid's derivative rewritten by SymPy in terms of ``y``), see :mod:`.expressions`.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from codegen.layers import Function, Param, macros, render_layer

from . import expressions as ex
from .base import C_TYPES, LayerKernel, check_shape, dims, dtype_name, memoised, module_name, numel, worth_threads


def render(kind: str, shape: tuple[int, ...], dtype: str):
    """The C module of one activation layer (plain data in, source text out)."""
    forms = ex.activation(kind)
    T = C_TYPES[dtype]
    names = {ex.X: "xi", ex.Y: "yi", ex.G: "gi"}
    forward = ex.c_code(forms.forward, dtype, names)
    backward = ex.c_code(forms.backward, dtype, names)
    needed = {ex.X: "x", ex.Y: "y", ex.G: "dy"}
    reads = [(names[s], needed[s]) for s in (ex.X, ex.Y, ex.G) if forms.backward.has(s)]
    unused = [a for a in ("x", "y") if a not in {array for _, array in reads}]
    size = numel(shape)
    arg = lambda name, doc, out=False: Param(name, T, doc, output=out)  # noqa: E731
    functions = (
        Function("forward", f"{kind}, element by element", (arg("x", "input"), arg("y", "output", True)),
                 formula=(f"y[i] = {forward}",)),
        Function("backward", f"dL/dx of {kind} from dL/dy",
                 (arg("x", "the forward input"), arg("y", "the forward output"),
                  arg("dy", "dL/dy, the upstream gradient"), arg("dx", "dL/dx", True)),
                 formula=(f"dx[i] = {backward}    (dy/dx in terms of {forms.uses}, from SymPy)",)),
    )
    return render_layer(
        "activation",
        name=module_name(kind, [dims(shape)], dtype),
        ctype=T,
        layer=f"{kind} activation over {dims(shape)} = {size} elements",
        arrays=[f"x, y, dy, dx  flat, {size} elements (any layout: the layer is element-wise)"],
        formula=[f"{kind}(x) = {forms.forward}",
                 f"d{kind}/dx = {sp.simplify(forms.backward / ex.G)}   (SymPy, in terms of {forms.uses})"],
        macros=macros({"SIZE": (size, "number of elements")}),
        functions=functions,
        threaded=worth_threads(size),
        forward=forward,
        backward=backward,
        reads=reads,
        unused=unused,
    )


class ActivationKernel(LayerKernel):
    """``forward(x) -> y`` and ``backward(x, y, grad_out) -> dx`` of one activation layer."""

    def __init__(self, kind: str, shape: tuple[int, ...], dtype: str) -> None:
        super().__init__(render(kind, shape, dtype), dtype, shape)
        self.kind = kind
        self.shape = shape
        self._x = self._ptr("x", shape)
        self._y = self._ptr("y", shape)
        self._g = self._ptr("grad_out", shape)
        self._forward, self._backward = self._c["forward"], self._c["backward"]

    def describe(self) -> str:
        return f"{self.kind} {dims(self.shape)}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._into_new(self._forward, self.shape, self._x(x))

    def backward(self, x: np.ndarray, y: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
        """``dL/dx``; ReLU reads ``x`` (gradient 0 at ``x == 0``), the sigmoid reads ``y``."""
        return self._into_new(self._backward, self.shape, self._x(x), self._y(y), self._g(grad_out))


@memoised
def activation(kind: str, shape: tuple[int, ...], dtype: object = "float32") -> ActivationKernel:
    """The kernels of the element-wise activation ``kind`` ("relu" or "sigmoid") over ``shape``."""
    if not isinstance(kind, str) or kind not in ex.formulas.ACTIVATIONS:
        raise ValueError(f"kind must be one of {sorted(ex.formulas.ACTIVATIONS)}, but got {kind!r}")
    return ActivationKernel(kind, check_shape("shape", shape), dtype_name(dtype))
