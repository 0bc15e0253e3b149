"""A plain numpy convolution written from the formulas in DESIGN.md: the independent oracle.

Nothing here is shared with symconv: loops over kernel taps, slicing of a zero-padded input.
Works for any spatial rank, stride, (asymmetric) padding, dilation and groups.
"""

from __future__ import annotations

import itertools

import numpy as np


def _taps(weight_shape):
    return itertools.product(*(range(k) for k in weight_shape[2:]))


def _window(tap, out_spatial, stride, dilation):
    """Slices of the padded input that tap ``tap`` reads for every output position."""
    return tuple(
        slice(t * d, t * d + (o - 1) * s + 1, s) for t, o, s, d in zip(tap, out_spatial, stride, dilation)
    )


def out_size(spatial, kernel, stride, padding, dilation):
    return tuple(
        (n + lo + hi - d * (k - 1) - 1) // s + 1
        for n, k, s, (lo, hi), d in zip(spatial, kernel, stride, padding, dilation)
    )


def conv_forward(x, w, b, stride, padding, dilation, groups):
    """O[n,k,i] = b[k] + Σ_{c,t} Xp[n, g0(k)+c, i·s + t·d] · W[k,c,t]."""
    N, C = x.shape[:2]
    K, Cg = w.shape[:2]
    Kg = K // groups
    out_sp = out_size(x.shape[2:], w.shape[2:], stride, padding, dilation)
    xp = np.pad(x, [(0, 0), (0, 0), *padding])
    out = np.zeros((N, K, *out_sp), dtype=np.result_type(x, w))
    for g in range(groups):
        xs = xp[:, g * Cg:(g + 1) * Cg]
        ws = w[g * Kg:(g + 1) * Kg]
        for tap in _taps(w.shape):
            patch = xs[(slice(None), slice(None), *_window(tap, out_sp, stride, dilation))]
            out[:, g * Kg:(g + 1) * Kg] += np.einsum("nc...,kc->nk...", patch, ws[(..., *tap)])
    if b is not None:
        out += b.reshape((1, K) + (1,) * len(out_sp))
    return out


def conv_grad_input(gout, w, input_shape, stride, padding, dilation, groups):
    """dX: scatter every output gradient back through the window it came from, then crop."""
    K, Cg = w.shape[:2]
    Kg = K // groups
    out_sp = gout.shape[2:]
    padded = [n + lo + hi for n, (lo, hi) in zip(input_shape[2:], padding)]
    dxp = np.zeros((input_shape[0], input_shape[1], *padded), dtype=np.result_type(gout, w))
    for g in range(groups):
        gs = gout[:, g * Kg:(g + 1) * Kg]
        ws = w[g * Kg:(g + 1) * Kg]
        for tap in _taps(w.shape):
            region = (slice(None), slice(g * Cg, (g + 1) * Cg), *_window(tap, out_sp, stride, dilation))
            dxp[region] += np.einsum("nk...,kc->nc...", gs, ws[(..., *tap)])
    crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(padding, input_shape[2:]))
    return dxp[(slice(None), slice(None), *crop)]


def conv_grad_weight(x, gout, weight_shape, stride, padding, dilation, groups):
    """dW[k,c,t] = Σ_{n,i} G[n,k,i] · Xp[n, g0(k)+c, i·s + t·d]."""
    K, Cg = weight_shape[:2]
    Kg = K // groups
    out_sp = gout.shape[2:]
    positions = int(np.prod(out_sp, dtype=np.int64))
    xp = np.pad(x, [(0, 0), (0, 0), *padding])
    dw = np.zeros(weight_shape, dtype=np.result_type(x, gout))
    for g in range(groups):
        xs = xp[:, g * Cg:(g + 1) * Cg]
        gs = gout[:, g * Kg:(g + 1) * Kg]
        for tap in _taps(weight_shape):
            patch = xs[(slice(None), slice(None), *_window(tap, out_sp, stride, dilation))]
            # explicit sizes, not -1: numpy cannot infer -1 when the batch (and so the array) is empty
            flat_patch = patch.reshape(patch.shape[0], Cg, positions)
            flat_grad = gs.reshape(gs.shape[0], Kg, positions)
            dw[(slice(g * Kg, (g + 1) * Kg), slice(None), *tap)] = np.einsum("ncs,nks->kc", flat_patch, flat_grad)
    return dw


def conv_grad_bias(gout):
    return gout.sum(axis=tuple(i for i in range(gout.ndim) if i != 1))
