"""The fully connected layer ``y = x Wᵀ + b`` as its own C kernels (three matrix products).

The formulas are those :mod:`symconv.layers.linear` derives with SymPy (and checks against the
convolution's derivation of the same layer)::

    y = x Wᵀ + b,    dL/dx = G W,    dL/dW = Gᵀ x,    dL/db = Σ_n G[n,:]

Each product is written so that its innermost loop runs over a contiguous axis: the columns are
packed a strip at a time into a small zero-padded panel and a register tile of rows accumulates
rank-1 updates of that strip (see ``templates/layers/linear.c.j2``). Every output entry is summed
by one thread in order of the summed index, so the results do not depend on the tiling, the
memory layout of the arguments or the number of threads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.layers import Function, Param, macros, render_layer

from .base import C_TYPES, MAX_ELEMENTS, LayerKernel, dtype_name, flag, memoised, module_name, worth_threads

#: Rows of a register tile (rank-1 updates per packed row of the panel).
TILE_ROWS = 4
#: Bytes of a tile's row: two 256-bit vectors (16 floats, 8 doubles).
TILE_BYTES = 64
#: Most rows of a packed panel (a panel holds at most 16 KiB).
PANEL_DEPTH = 256


def render_linear(batch: int, in_features: int, out_features: int, bias: bool, dtype: str):
    T = C_TYPES[dtype]
    arr = lambda name, doc, out=False: Param(name, T, doc, output=out)  # noqa: E731
    forward_params = [arr("x", "input (N x IN)"), arr("w", "weight (OUT x IN)")]
    if bias:
        forward_params.append(arr("b", "bias (OUT)"))
    forward_params.append(arr("y", "output (N x OUT)", True))
    functions = [
        Function("forward", "y = x W^T" + (" + b" if bias else ""), tuple(forward_params),
                 formula=("y[n][j] = " + ("b[j] + " if bias else "") + "sum_i x[n][i] w[j][i]   (in order of i)",)),
        Function("grad_input", "dL/dx = G W",
                 (arr("dy", "dL/dy (N x OUT)"), arr("w", "weight (OUT x IN)"), arr("dx", "dL/dx (N x IN)", True)),
                 formula=("dx[n][i] = sum_j dy[n][j] w[j][i]   (in order of j)",)),
        Function("grad_weight", "dL/dW = G^T x",
                 (arr("x", "the forward input (N x IN)"), arr("dy", "dL/dy (N x OUT)"),
                  arr("dw", "dL/dW (OUT x IN)", True)),
                 formula=("dw[j][i] = sum_n dy[n][j] x[n][i]   (in order of n; +0 for N = 0)",)),
    ]
    if bias:
        functions.append(Function("grad_bias", "dL/db = sum_n G[n,:]",
                                  (arr("dy", "dL/dy (N x OUT)"), arr("db", "dL/db (OUT)", True)),
                                  formula=("db[j] = sum_n dy[n][j]   (in order of n; +0 for N = 0)",)))
    itemsize = np.dtype(dtype).itemsize
    sizes = {
        "N": (batch, "batch size (rows of x)"),
        "IN": (in_features, "in_features"),
        "OUT": (out_features, "out_features"),
        "TILE_ROWS": (TILE_ROWS, "rows of a register tile"),
        "TILE_COLS": (TILE_BYTES // itemsize, "columns of a register tile and of a packed strip"),
        "PANEL_DEPTH": (min(PANEL_DEPTH, max(batch, in_features, out_features, 1)), "most rows of a packed panel"),
    }
    parts = [batch, in_features, out_features, "bias" if bias else "nobias"]
    return render_layer(
        "linear", name=module_name("linear", parts, dtype), ctype=T,
        layer=f"fully connected layer, {batch} x {in_features} -> {batch} x {out_features}"
              + (", with bias" if bias else ", no bias"),
        arrays=[f"x, dx   [n][i]  {batch} x {in_features}", f"y, dy   [n][j]  {batch} x {out_features}",
                f"w, dw   [j][i]  {out_features} x {in_features}"]
               + ([f"b, db   [j]     {out_features}"] if bias else []),
        formula=["y = x W^T" + (" + b" if bias else ""),
                 "dL/dx = G W,  dL/dW = G^T x" + (",  dL/db = sum_n G[n,:]" if bias else ""),
                 "(G = dL/dy; the derivation and its proof: symconv.layers.linear)"],
        macros=macros(sizes), functions=functions, bias=bias,
        # Counted in vector operations: each does TILE_COLS multiply-adds of the tiled products,
        # so a layer needs that many times the convolution's work before threads pay.
        threaded=worth_threads(batch * in_features * out_features // (TILE_BYTES // itemsize)),
    )


class LinearKernel(LayerKernel):
    """``forward(x, w, b)``, ``grad_input(grad_out, w)``, ``grad_weight(x, grad_out)``,
    ``grad_bias(grad_out)`` and ``backward(x, w, grad_out) -> (dx, dw, db)`` of one linear layer."""

    def __init__(self, batch: int, in_features: int, out_features: int, bias: bool, dtype: str) -> None:
        super().__init__(render_linear(batch, in_features, out_features, bias, dtype), dtype, (batch, out_features))
        self.batch, self.in_features, self.out_features, self.bias = batch, in_features, out_features, bias
        self.input_shape = (batch, in_features)
        self.weight_shape = (out_features, in_features)
        self._x, self._w = self._ptr("x", self.input_shape), self._ptr("weight", self.weight_shape)
        self._b = self._ptr("bias", (out_features,))
        self._g = self._ptr("grad_out", self.output_shape)
        self._forward, self._grad_input = self._c["forward"], self._c["grad_input"]
        self._grad_weight = self._c["grad_weight"]
        self._grad_bias = self._c.get("grad_bias")

    def describe(self) -> str:
        text = f"linear {self.batch}x{self.in_features} · W {self.out_features}x{self.in_features}"
        return text + (" + b" if self.bias else "")

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """``x Wᵀ (+ b)``; ``b`` is required exactly when the kernel was built with a bias."""
        px, pw = self._x(x), self._w(w)
        if self.bias:
            if b is None:
                raise ValueError("bias must be given: this kernel was built with bias=True")
            pb = self._b(b)
        elif b is not None:
            raise ValueError("bias must be None: this kernel was built with bias=False")
        y, py = self._out(self.output_shape)
        self._ready()
        if self.bias:
            self._forward(px, pw, pb, py)
        else:
            self._forward(px, pw, py)
        return y

    def grad_input(self, grad_out: np.ndarray, w: np.ndarray) -> np.ndarray:
        """dL/dx = grad_out · W."""
        return self._into_new(self._grad_input, self.input_shape, self._g(grad_out), self._w(w))

    def grad_weight(self, x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
        """dL/dW = grad_outᵀ · x."""
        return self._into_new(self._grad_weight, self.weight_shape, self._x(x), self._g(grad_out))

    def grad_bias(self, grad_out: np.ndarray) -> np.ndarray:
        """dL/db = the column sums of grad_out (only for a kernel built with a bias)."""
        if self._grad_bias is None:
            raise ValueError("grad_bias needs a kernel built with bias=True")
        return self._into_new(self._grad_bias, (self.out_features,), self._g(grad_out))

    def backward(
        self, x: np.ndarray, w: np.ndarray, grad_out: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(dx, dw, db)``; ``db`` is None without a bias."""
        px, pw, pg = self._x(x), self._w(w), self._g(grad_out)
        dx, pdx = self._out(self.input_shape)
        dw, pdw = self._out(self.weight_shape)
        self._ready()
        self._grad_input(pg, pw, pdx)
        self._grad_weight(px, pg, pdw)
        if self._grad_bias is None:
            return dx, dw, None
        db, pdb = self._out((self.out_features,))
        self._grad_bias(pg, pdb)
        return dx, dw, db


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive int" if minimum > 0 else "a non-negative int"
        raise ValueError(f"{name} must be {kind}, but got {value!r}")
    return int(value)


@memoised
def linear(
    batch: int, in_features: int, out_features: int, bias: bool = True, dtype: object = "float32"
) -> LinearKernel:
    """The kernels of ``Linear(in_features, out_features, bias)`` on ``batch`` rows (``batch`` may be 0)."""
    n = _count("batch", batch, 0)
    i, o = _count("in_features", in_features, 1), _count("out_features", out_features, 1)
    flag("bias", bias)
    for what, count in (("x", n * i), ("weight", o * i), ("the output", n * o)):
        if count > MAX_ELEMENTS:
            raise ValueError(
                f"batch, in_features and out_features must give at most 2^62 = {MAX_ELEMENTS} elements per array "
                f"so that 64-bit index arithmetic cannot overflow, but {what} would have {count}"
            )
    return LinearKernel(n, i, o, bool(bias), dtype_name(dtype))
