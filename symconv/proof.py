"""The proof: the derived gradients are the convolutions the lectures say they are.

The reference convolutions here are built from the lecture statements alone, with numpy object
arrays of SymPy symbols, and share no code with the derivation:

* ∂L/∂W = valid cross-correlation of the zero-padded input with the stride-dilated upstream
  gradient ("upsampling the derivative map"), sampled at the dilation;
* ∂L/∂X = full convolution of the 180°-rotated (dilated) filter with the stride-dilated upstream
  gradient, then the padding cropped away (rows no window touches get zero);
* ∂L/∂b = the sum of the upstream gradient.

``verify`` compares them with the derivation entry by entry, by exact symbolic expansion.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

if TYPE_CHECKING:
    from .derive import Derivation

ZERO = sp.Integer(0)


# -- the lecture's building blocks (spatial axes only: arrays of shape (*spatial)) -------------


def zero_pad(a: np.ndarray, pads) -> np.ndarray:
    """Surround ``a`` with ``(lo, hi)`` zeros per axis."""
    return np.pad(a, pads, mode="constant", constant_values=ZERO)


def dilate(a: np.ndarray, factors) -> np.ndarray:
    """Insert ``factor − 1`` zeros between neighbouring entries along each axis."""
    shape = tuple((n - 1) * f + 1 for n, f in zip(a.shape, factors))
    out = np.full(shape, ZERO, dtype=object)
    out[tuple(slice(None, None, f) for f in factors)] = a
    return out


def rot180(a: np.ndarray) -> np.ndarray:
    """Rotate by 180° (flip every axis)."""
    return a[tuple(slice(None, None, -1) for _ in a.shape)]


def valid_xcorr(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid cross-correlation: ``out[u] = Σ_v image[u + v] · kernel[v]``."""
    out_shape = tuple(i - k + 1 for i, k in zip(image.shape, kernel.shape))
    out = np.full(out_shape, ZERO, dtype=object)
    for u in np.ndindex(*out_shape):
        terms = [
            image[tuple(a + b for a, b in zip(u, v))] * kernel[v]
            for v in np.ndindex(*kernel.shape)
        ]
        out[u] = sp.Add(*terms)
    return out


def full_conv(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Full convolution = valid cross-correlation of the zero-padded image with the rotated kernel."""
    pads = [(k - 1, k - 1) for k in kernel.shape]
    return valid_xcorr(zero_pad(image, pads), rot180(kernel))


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda x, y: x + y, otypes=[object])(a, b) if a.size else a


# -- the reference gradients --------------------------------------------------------------------


def reference_gradients(d: "Derivation") -> dict[str, np.ndarray]:
    """∂L/∂W, ∂L/∂X, ∂L/∂b as the lectures build them, for the symbols of derivation ``d``."""
    spec = d.spec
    X, W, G = d.X, d.W, d.G
    Cg, Kg = spec.in_per_group, spec.out_per_group
    padded_shape = tuple(n + lo + hi for n, (lo, hi) in zip(spec.spatial, spec.padding))
    dW = np.full(spec.weight, ZERO, dtype=object)
    dX = np.full(spec.input, ZERO, dtype=object)
    for n, k in itertools.product(range(spec.batch), range(spec.out_channels)):
        g_up = dilate(G[n, k], spec.stride)  # the "upsampled derivative map"
        group = k // Kg
        for c in range(Cg):
            channel = group * Cg + c
            # filter gradient: valid cross-correlation, sampled at the dilation
            corr = valid_xcorr(zero_pad(X[n, channel], spec.padding), g_up)
            sample = tuple(slice(0, (kk - 1) * dd + 1, dd) for kk, dd in zip(spec.kernel, spec.dilation))
            dW[k, c] = _add(dW[k, c], corr[sample])
            # input gradient: full convolution with the rotated, dilated filter ...
            full = full_conv(g_up, dilate(W[k, c], spec.dilation))
            # ... which covers the padded input except rows no window reaches (they stay zero)
            on_padded = np.full(padded_shape, ZERO, dtype=object)
            on_padded[tuple(slice(0, m) for m in full.shape)] = full
            crop = tuple(slice(lo, lo + size) for (lo, _), size in zip(spec.padding, spec.spatial))
            dX[n, channel] = _add(dX[n, channel], on_padded[crop])
    out = {"dW": dW, "dX": dX}
    if spec.bias:
        out["db"] = np.array(
            [sp.Add(*G[:, k].ravel()) for k in range(spec.out_channels)], dtype=object
        )
    return out


# -- the verdict --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """The first entry where the derivation and the reference differ."""

    array: str
    index: tuple[int, ...]
    derived: sp.Expr
    expected: sp.Expr

    def __str__(self) -> str:
        return (
            f"{self.array}[{', '.join(map(str, self.index))}] differs:\n"
            f"    derived:  {self.derived}\n    expected: {self.expected}"
        )


@dataclass(frozen=True)
class Check:
    name: str
    statement: str
    entries: int
    mismatch: Mismatch | None = None

    @property
    def ok(self) -> bool:
        return self.mismatch is None


@dataclass(frozen=True)
class VerifyResult:
    """``ok`` is True when every check holds; ``str(result)`` is a readable report."""

    spec_line: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __bool__(self) -> bool:
        return self.ok

    def report(self) -> str:
        lines = [f"Layer   {self.spec_line}"]
        for c in self.checks:
            mark = "✓ proven" if c.ok else "✗ FAILED"
            lines.append(f"  {mark}  {c.name}: {c.statement}  ({c.entries} entries compared exactly)")
            if c.mismatch is not None:
                lines.extend("      " + line for line in str(c.mismatch).splitlines())
        lines.append("All identities hold." if self.ok else "Some identities do NOT hold.")
        return "\n".join(lines)

    __str__ = report


def first_mismatch(name: str, derived: np.ndarray, expected: np.ndarray) -> Mismatch | None:
    for index in np.ndindex(*derived.shape):
        # Identical canonical forms are equal; only a structural difference needs expanding.
        if derived[index] != expected[index] and sp.expand(derived[index] - expected[index]) != 0:
            return Mismatch(name, index, derived[index], expected[index])
    return None


STATEMENTS = {
    "dW": "∂L/∂W = valid cross-correlation of the zero-padded X with the stride-dilated ∂L/∂O, sampled at the dilation",
    "dX": "∂L/∂X = full convolution of rot180(dilated W) with the stride-dilated ∂L/∂O, padding cropped",
    "db": "∂L/∂b = Σ ∂L/∂O over batch and positions",
    "general": "the general index form gives the same expression at every index",
}


def verify(d: "Derivation", include_general: bool = True) -> VerifyResult:
    """Compare the derivation of ``d`` with the lecture identities (and the general form)."""
    d._require_small()
    reference = reference_gradients(d)
    checks = []
    for name in ("dW", "dX", "db"):
        if name in reference:
            derived = getattr(d, name)
            checks.append(Check(name, STATEMENTS[name], derived.size, first_mismatch(name, derived, reference[name])))
    if include_general:
        expanded = d.general().to_arrays({"X": d.X, "W": d.W, "b": d.b, "G": d.G})
        mismatch, entries = None, 0
        for name, array in expanded.items():
            entries += array.size
            mismatch = mismatch or first_mismatch(f"general {name}", getattr(d, name), array)
        checks.append(Check("general", STATEMENTS["general"], entries, mismatch))
    return VerifyResult(d.spec.describe(), tuple(checks))
