"""2-d batch normalisation over (N, H, W) per channel: training forward with batch statistics,
evaluation forward with running statistics, and the training-mode backward through the mean and
the variance.

The per-element C expressions are SymPy's (see :func:`.expressions.batch_norm_forms`): the
normalisation ``γ (x - μ) invstd + β`` from ``formulas.batch_norm``, ``invstd = 1/sqrt(σ² + ε)``,
and the input gradient found by the chain rule through ``μ`` and ``σ²`` (checked exactly against
SymPy's derivative of ``formulas.batch_norm``). ``σ²`` is the biased batch variance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.layers import Function, Param, macros, render_layer

from . import expressions as ex
from .base import C_TYPES, LayerKernel, check_shape, dims, dtype_name, memoised, module_name, numel, worth_threads

#: The C names of the per-channel symbols (the element ones are xi, gi).
_NAMES = {
    ex.X: "xi", ex.G: "gi", ex.MEAN: "mean_c", ex.VAR: "var_c", ex.INVSTD: "invstd_c",
    ex.GAMMA: "gamma_c", ex.BETA: "beta_c", ex.EPS: "eps",
}


def render_batchnorm(shape: tuple[int, int, int, int], dtype: str):
    forms, T = ex.batch_norm_forms(), C_TYPES[dtype]
    # Statistics and per-element arithmetic are in double (the C locals are double), so the
    # expressions are printed for double whatever the array type.
    code = {field: ex.c_code(getattr(forms, field), "float64", _NAMES)
            for field in ("invstd", "output", "grad_input", "grad_gamma", "grad_beta")}
    n, c, h, w = shape
    arr = lambda name, doc, out=False: Param(name, T, doc, output=out)  # noqa: E731
    eps = Param("eps", "double", "added to the variance", scalar=True)
    functions = (
        Function("forward_train", "normalise with the batch statistics",
                 (arr("x", "input"), arr("gamma", "scale (C)"), arr("beta", "shift (C)"), eps,
                  arr("y", "output", True), arr("mean", "batch mean (C)", True),
                  arr("var", "biased batch variance (C)", True)),
                 formula=("mean_c = sum x / COUNT,  var_c = sum (x - mean_c)^2 / COUNT  (two passes, double)",
                          f"invstd_c = {code['invstd']}", f"y = {code['output']}")),
        Function("forward_eval", "normalise with given (running) statistics",
                 (arr("x", "input"), arr("gamma", "scale (C)"), arr("beta", "shift (C)"),
                  arr("running_mean", "mean (C)"), arr("running_var", "variance (C)"), eps,
                  arr("y", "output", True)),
                 formula=(f"invstd_c = {code['invstd']}   (var_c = running_var[c])", f"y = {code['output']}")),
        Function("backward", "dL/dx, dL/dgamma, dL/dbeta of the training-mode forward",
                 (arr("dy", "dL/dy"), arr("x", "the forward input"), arr("gamma", "scale (C)"),
                  arr("mean", "batch mean from forward_train (C)"),
                  arr("var", "batch variance from forward_train (C)"), eps,
                  arr("dx", "dL/dx", True), arr("dgamma", "dL/dgamma (C)", True),
                  arr("dbeta", "dL/dbeta (C)", True)),
                 formula=("sum_g = sum dy,  sum_gxm = sum dy (x - mean_c)   (per channel, double)",
                          f"dx = {code['grad_input']}", f"dgamma = {code['grad_gamma']}",
                          f"dbeta = {code['grad_beta']}")),
    )
    return render_layer(
        "batchnorm2d", name=module_name("batchnorm2d", [dims(shape)], dtype), ctype=T,
        layer=f"2-d batch normalisation of {dims(shape)} (statistics per channel over N, H, W)",
        arrays=[f"x, y, dy, dx  [n][c][h][w]  {n} x {c} x {h} x {w}",
                f"gamma, beta, mean, var, running_mean, running_var, dgamma, dbeta  [c]  {c}"],
        formula=["y = gamma (x - mean) / sqrt(var + eps) + beta   (formulas.batch_norm)",
                 "mean, var: the batch mean and biased variance of the channel (training), or the",
                 "running statistics (evaluation); COUNT = N*H*W values per channel",
                 f"dL/dx = {forms.grad_input}   (SymPy, chain rule through mean and var)"],
        macros=macros({"N": (n, "batch size"), "C": (c, "channels"), "H": (h, "height"),
                       "W": (w, "width"), "COUNT": (n * h * w, "values per channel, N*H*W")}),
        functions=functions, threaded=worth_threads(4 * numel(shape)), **code,
    )


def _check_eps(eps: Any) -> float:
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.floating, np.integer)) or not eps >= 0:
        raise ValueError(f"eps must be a non-negative real number, but got {eps!r}")
    return float(eps)


class BatchNorm2dKernel(LayerKernel):
    """``forward_train``, ``forward_eval`` and ``backward`` of batch normalisation over one shape."""

    def __init__(self, shape: tuple[int, int, int, int], dtype: str) -> None:
        super().__init__(render_batchnorm(shape, dtype), dtype, shape)
        self.shape = shape
        c = (shape[1],)
        self._x, self._g = self._ptr("x", shape), self._ptr("grad_out", shape)
        self._gamma, self._beta = self._ptr("gamma", c), self._ptr("beta", c)
        self._mean, self._var = self._ptr("mean", c), self._ptr("var", c)
        self._rmean, self._rvar = self._ptr("running_mean", c), self._ptr("running_var", c)
        self._train, self._eval, self._backward = self._c["forward_train"], self._c["forward_eval"], self._c["backward"]

    def describe(self) -> str:
        return f"batchnorm2d {dims(self.shape)}"

    def forward_train(self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(y, batch mean, biased batch variance)``."""
        px, pg, pb, e = self._x(x), self._gamma(gamma), self._beta(beta), _check_eps(eps)
        y, py = self._out(self.shape)
        mean, pm = self._out((self.shape[1],))
        var, pv = self._out((self.shape[1],))
        self._ready()
        self._train(px, pg, pb, e, py, pm, pv)
        return y, mean, var

    def forward_eval(self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                     running_var: np.ndarray, eps: float) -> np.ndarray:
        px, pg, pb = self._x(x), self._gamma(gamma), self._beta(beta)
        pm, pv, e = self._rmean(running_mean), self._rvar(running_var), _check_eps(eps)
        return self._into_new(self._eval, self.shape, px, pg, pb, pm, pv, e)

    def backward(self, grad_out: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                 var: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(dx, dgamma, dbeta)`` of the training-mode forward (``mean``, ``var`` from it)."""
        pgo, px, pg = self._g(grad_out), self._x(x), self._gamma(gamma)
        pm, pv, e = self._mean(mean), self._var(var), _check_eps(eps)
        dx, pdx = self._out(self.shape)
        dgamma, pdg = self._out((self.shape[1],))
        dbeta, pdb = self._out((self.shape[1],))
        self._ready()
        self._backward(pgo, px, pg, pm, pv, e, pdx, pdg, pdb)
        return dx, dgamma, dbeta


@memoised
def batchnorm2d(shape: tuple[int, int, int, int], dtype: object = "float32") -> BatchNorm2dKernel:
    """Batch normalisation of an NCHW array of ``shape`` (statistics per channel)."""
    return BatchNorm2dKernel(check_shape("shape", shape, 4), dtype_name(dtype))
