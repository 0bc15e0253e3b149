"""Softmax over dim 1 of an (N, C) array, and the fused log-softmax + negative log-likelihood loss.

Both subtract each row's maximum before exponentiating (SymPy checks that the formulas are
unchanged by that shift). The C expressions are SymPy's: the terms ``exp(d)`` of the row sums,
the softmax backward ``y_i (g_i - Σ_j g_j y_j)``, the row loss ``log(s) - d_t`` and the fused
gradient ``p - t`` (see :mod:`.expressions`).
"""

from __future__ import annotations

import numpy as np

from codegen.layers import INDEX_CTYPE, Function, Param, macros, render_layer

from . import expressions as ex
from .base import C_TYPES, LayerKernel, check_shape, dims, dtype_name, memoised, module_name, numel, worth_threads


def _sizes(shape: tuple[int, int]) -> dict[str, tuple[int, str]]:
    return {"N": (shape[0], "rows (batch size)"), "C": (shape[1], "classes per row")}


# -- softmax -----------------------------------------------------------------------------------


def render_softmax(shape: tuple[int, int], dtype: str):
    forms, T = ex.softmax_forms(), C_TYPES[dtype]
    numerator = ex.c_code(forms.numerator, dtype)
    backward = ex.c_code(forms.softmax_backward, dtype, {ex.Y: "yi", ex.G: "gi"})
    functions = (
        Function("forward", "softmax of each row",
                 (Param("x", T, "input"), Param("y", T, "output", output=True)),
                 formula=("d = x[n][j] - max_j x[n][j]", f"y[n][j] = {numerator} / sum_j {numerator}")),
        Function("backward", "dL/dx of the softmax from dL/dy",
                 (Param("y", T, "the forward output"), Param("dy", T, "dL/dy"),
                  Param("dx", T, "dL/dx", output=True)),
                 formula=("dot = sum_j dy[n][j] y[n][j]", f"dx[n][j] = {backward}",
                          "(yi = y[n][j], gi = dy[n][j]; the Jacobian y_i (delta_ij - y_j) from SymPy)")),
    )
    return render_layer(
        "softmax", name=module_name("softmax", [dims(shape)], dtype), ctype=T,
        layer=f"softmax over dim 1 of {dims(shape)}",
        arrays=[f"x, y, dy, dx  [n][j]  {shape[0]} x {shape[1]}"],
        formula=[f"y_i = {ex.formulas.softmax.__doc__.strip('`. ')}",
                 f"dL/dx_j = {forms.softmax_backward}   (g = dL/dy, dot = sum_i g_i y_i)"],
        macros=macros(_sizes(shape)), functions=functions, threaded=worth_threads(4 * numel(shape)),
        numerator=numerator, backward=backward,
    )


class SoftmaxKernel(LayerKernel):
    """``forward(x) -> y`` and ``backward(y, grad_out) -> dx`` of a softmax over dim 1."""

    def __init__(self, shape: tuple[int, int], dtype: str) -> None:
        super().__init__(render_softmax(shape, dtype), dtype, shape)
        self.shape = shape
        self._x, self._y, self._g = self._ptr("x", shape), self._ptr("y", shape), self._ptr("grad_out", shape)
        self._forward, self._backward = self._c["forward"], self._c["backward"]

    def describe(self) -> str:
        return f"softmax {dims(self.shape)}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._into_new(self._forward, self.shape, self._x(x))

    def backward(self, y: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
        return self._into_new(self._backward, self.shape, self._y(y), self._g(grad_out))


@memoised
def softmax(shape: tuple[int, int], dtype: object = "float32") -> SoftmaxKernel:
    """Softmax over dim 1 of an ``(N, C)`` array."""
    return SoftmaxKernel(check_shape("shape", shape, 2), dtype_name(dtype))


# -- cross-entropy -----------------------------------------------------------------------------


def render_cross_entropy(shape: tuple[int, int], dtype: str):
    forms, T = ex.softmax_forms(), C_TYPES[dtype]
    numerator = ex.c_code(forms.numerator, dtype)
    # log(s) of the double sum s, and the loss itself, are computed in double (printed as such).
    loss = ex.c_code(forms.loss, "float64")
    backward = ex.c_code(forms.loss_backward, dtype)
    functions = (
        Function("forward", "softmax probabilities and the mean cross-entropy loss",
                 (Param("logits", T, "input"), Param("target", INDEX_CTYPE, "class of each row"),
                  Param("probs", T, "output: softmax(logits)", output=True),
                  Param("row_loss", "double", "output: each row's loss", output=True),
                  Param("loss", "double", "output: one value, the mean of row_loss", output=True)),
                 returns=INDEX_CTYPE, returns_doc="the number of targets outside [0, C)",
                 formula=("d = logits[n][j] - max_j logits[n][j],  s = sum_j " + numerator,
                          f"probs[n][j] = {numerator} / s", f"row_loss[n] = {loss}   (d of the target class)",
                          "loss = sum_n row_loss[n] / N")),
        Function("backward", "dL/dlogits of the mean cross-entropy",
                 (Param("probs", T, "softmax(logits) from forward"),
                  Param("target", INDEX_CTYPE, "class of each row"),
                  Param("grad_loss", "double", "dL/dloss", scalar=True),
                  Param("dlogits", T, "dL/dlogits", output=True)),
                 returns=INDEX_CTYPE, returns_doc="the number of targets outside [0, C)",
                 formula=("scale = grad_loss / N,  t = 1 for the target class else 0",
                          f"dlogits[n][j] = {backward}   (p = probs[n][j])")),
    )
    return render_layer(
        "cross_entropy", name=module_name("cross_entropy", [dims(shape)], dtype), ctype=T,
        layer=f"softmax cross-entropy (log-softmax + NLL, mean over the batch) of {dims(shape)} logits",
        arrays=[f"logits, probs, dlogits  [n][j]  {shape[0]} x {shape[1]}",
                f"target, row_loss        [n]     {shape[0]}", "loss                    [0]     1"],
        formula=["loss = -(1/N) sum_n log softmax(z_n)[target_n]",
                 f"one row: {forms.loss}   (s = sum_j exp(d_j), d = z - max z, from SymPy)",
                 f"dloss/dz = {forms.loss_backward}   (p = softmax(z), t = one-hot target, scale = 1/N, from SymPy)"],
        macros=macros(_sizes(shape)), functions=functions, threaded=worth_threads(4 * numel(shape)),
        numerator=numerator, loss=loss, backward=backward,
    )


class CrossEntropyKernel(LayerKernel):
    """``forward(logits, target) -> (loss, probs)``, ``backward(probs, target, grad_loss) -> dlogits``."""

    def __init__(self, shape: tuple[int, int], dtype: str) -> None:
        super().__init__(render_cross_entropy(shape, dtype), dtype, ())
        self.shape = shape
        self._z, self._p = self._ptr("logits", shape), self._ptr("probs", shape)
        self._t = self._index_ptr("target", (shape[0],))
        self._forward, self._backward = self._c["forward"], self._c["backward"]

    def describe(self) -> str:
        return f"cross_entropy {dims(self.shape)} (mean)"

    def __repr__(self) -> str:
        return f"<CrossEntropyKernel {self.dtype} logits {dims(self.shape)} → loss (mean over {self.shape[0]})>"

    def _check_target(self, target: np.ndarray) -> None:
        classes = self.shape[1]
        bad = (target < 0) | (target >= classes)
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"target must hold class indices in [0, {classes}), but got {int(target[where])} at index {where}"
            )

    def forward(self, logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        pz, pt = self._z(logits), self._t(target)
        self._check_target(target)
        probs, pp = self._out(self.shape)
        rows, prow = self._out((self.shape[0],), np.dtype(np.float64))
        loss, ploss = self._out((1,), np.dtype(np.float64))
        self._ready()
        if self._forward(pz, pt, pp, prow, ploss):
            self._check_target(target)  # changed under our feet (another thread): say which
            raise ValueError("target must hold class indices in [0, C), but changed during the call")
        return float(loss[0]), probs

    def backward(self, probs: np.ndarray, target: np.ndarray, grad_loss: float = 1.0) -> np.ndarray:
        pp, pt = self._p(probs), self._t(target)
        self._check_target(target)
        if isinstance(grad_loss, (bool, np.bool_)) or not isinstance(grad_loss, (int, float, np.floating, np.integer)):
            raise TypeError(f"grad_loss must be a real number, but got {type(grad_loss).__name__}")
        dz, pdz = self._out(self.shape)
        self._ready()
        if self._backward(pp, pt, float(grad_loss), pdz):
            self._check_target(target)
            raise ValueError("target must hold class indices in [0, C), but changed during the call")
        return dz


@memoised
def cross_entropy(shape: tuple[int, int], dtype: object = "float32") -> CrossEntropyKernel:
    """Mean softmax cross-entropy of ``(N, C)`` logits against int64 class indices ``(N,)``."""
    return CrossEntropyKernel(check_shape("shape", shape, 2), dtype_name(dtype))
