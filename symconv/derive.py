"""The element-wise derivation: SymPy writes every output equation and differentiates it.

For a small layer this is what the lectures do by hand:

1. forward   O[n,k,i,j] = b[k] + Σ X·W          (one SymPy expression per output entry)
2. local     ∂O[o]/∂s for every symbol s in O[o] (``sympy.diff``)
3. chain     ∂L/∂s = Σ_o G[o] · ∂O[o]/∂s         with L = Σ_o G[o]·O[o]

Everything is lazy: a ``Derivation`` of a large layer costs nothing until an element-wise array is
asked for, and ``general()`` (the size-independent index form) never expands them.
"""

from __future__ import annotations

import itertools
import numbers
from collections import defaultdict
from functools import cached_property
from typing import TYPE_CHECKING, Iterator

import numpy as np
import sympy as sp

from .spec import ConvSpec

if TYPE_CHECKING:
    from .general import GeneralForm
    from .proof import VerifyResult

#: Above this many multiply terms the element-wise arrays are refused (use ``general()``).
DEFAULT_MAX_TERMS = 200_000

ARRAY_NAMES = ("X", "W", "b", "G")


def symbol_array(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A numpy object array of SymPy symbols named like ``X[0,1,2,0]`` (0-based, full index)."""
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = sp.Symbol(f"{name}[{','.join(map(str, index))}]")
    return out


def window(spec: ConvSpec, out_index: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The (input index, weight index) pairs that meet in output entry ``out_index``.

    Positions that fall into the zero padding are skipped: they contribute nothing.
    """
    n, k, *out_pos = out_index
    group = k // spec.out_per_group
    for c in range(spec.in_per_group):
        channel = group * spec.in_per_group + c
        for taps in itertools.product(*(range(kk) for kk in spec.kernel)):
            pos = tuple(
                o * s + t * d - lo
                for o, t, s, d, lo in zip(out_pos, taps, spec.stride, spec.dilation, spec.pad_lo)
            )
            if all(0 <= p < size for p, size in zip(pos, spec.spatial)):
                yield (n, channel, *pos), (k, c, *taps)


class Derivation:
    """The derivation of one layer. Arrays are numpy object arrays, 0-based, NCHW layout.

    Symbols: ``X, W, b, G``.  Expressions: ``O, dX, dW, db`` (``b``/``db`` are ``None`` without
    bias).  ``local[o]`` maps each symbol of ``O[o]`` to ``∂O[o]/∂symbol``.
    """

    def __init__(self, spec: ConvSpec, max_terms: int = DEFAULT_MAX_TERMS) -> None:
        self.spec = spec
        self.max_terms = max_terms
        self._verified: "VerifyResult | None" = None

    def __repr__(self) -> str:
        return f"<Derivation {self.spec.describe()}>"

    # -- size ----------------------------------------------------------------------------------
    @property
    def n_terms(self) -> int:
        """Multiply terms in all output equations (an upper bound, padding not subtracted)."""
        return self.spec.macs()

    @property
    def is_small(self) -> bool:
        """Whether the element-wise arrays may be expanded."""
        return self.n_terms <= self.max_terms

    def _require_small(self) -> None:
        if not self.is_small:
            raise ValueError(
                f"layer too large for an element-wise derivation: {self.n_terms} multiply terms, "
                f"max_terms is {self.max_terms}; use .general() for the size-independent form, "
                f"or derive(spec, max_terms=...) to raise the limit"
            )

    # -- symbols -------------------------------------------------------------------------------
    @cached_property
    def X(self) -> np.ndarray:
        self._require_small()
        return symbol_array("X", self.spec.input)

    @cached_property
    def W(self) -> np.ndarray:
        self._require_small()
        return symbol_array("W", self.spec.weight)

    @cached_property
    def b(self) -> np.ndarray | None:
        return symbol_array("b", self.spec.bias_shape) if self.spec.bias else None

    @cached_property
    def G(self) -> np.ndarray:
        self._require_small()
        return symbol_array("G", self.spec.output)

    # -- step 1: forward equations -------------------------------------------------------------
    @cached_property
    def O(self) -> np.ndarray:  # noqa: E743 - the lectures' name
        X, W, b = self.X, self.W, self.b
        out = np.empty(self.spec.output, dtype=object)
        for o in np.ndindex(*self.spec.output):
            terms = [X[xi] * W[wi] for xi, wi in window(self.spec, o)]
            if b is not None:
                terms.insert(0, b[o[1]])
            out[o] = sp.Add(*terms)
        return out

    # -- step 2: local gradients ---------------------------------------------------------------
    @cached_property
    def local(self) -> dict[tuple[int, ...], dict[sp.Symbol, sp.Expr]]:
        """``local[o][s] = ∂O[o]/∂s``, differentiated by SymPy, for every symbol s in ``O[o]``.

        The derivative of the sum is taken term by term (it is linear), which is what makes it
        fast: each term is a product of two symbols, and SymPy's own product rule
        (``_eval_derivative``) is called directly, which halves the cost of going through
        ``diff`` and its ``Derivative`` dispatch.
        """
        result = {}
        for o in np.ndindex(*self.spec.output):
            grads: dict[sp.Symbol, list[sp.Expr]] = defaultdict(list)
            for term in sp.Add.make_args(self.O[o]):
                for symbol in term.free_symbols:
                    grads[symbol].append(term._eval_derivative(symbol))
            ordered = sorted(grads, key=sp.default_sort_key)
            result[o] = {s: sp.Add(*grads[s]) for s in ordered}
        return result

    # -- step 3: chain rule --------------------------------------------------------------------
    @cached_property
    def _chain(self) -> dict[sp.Symbol, sp.Expr]:
        """∂L/∂s = Σ_o G[o]·∂O[o]/∂s, for every symbol s, with L = Σ_o G[o]·O[o]."""
        terms: dict[sp.Symbol, list[sp.Expr]] = defaultdict(list)
        for o, grads in self.local.items():
            for symbol, local_grad in grads.items():
                terms[symbol].append(self.G[o] * local_grad)
        return {symbol: sp.Add(*ts) for symbol, ts in terms.items()}

    def _gradient_of(self, symbols: np.ndarray) -> np.ndarray:
        out = np.empty(symbols.shape, dtype=object)
        for index in np.ndindex(*symbols.shape):
            # An entry that no output uses (a row the stride skips) has gradient exactly zero.
            out[index] = self._chain.get(symbols[index], sp.Integer(0))
        return out

    @cached_property
    def dX(self) -> np.ndarray:
        return self._gradient_of(self.X)

    @cached_property
    def dW(self) -> np.ndarray:
        return self._gradient_of(self.W)

    @cached_property
    def db(self) -> np.ndarray | None:
        return None if self.b is None else self._gradient_of(self.b)

    def arrays(self) -> dict[str, np.ndarray | None]:
        """All symbol and expression arrays by name."""
        return {name: getattr(self, name) for name in ("X", "W", "b", "G", "O", "dX", "dW", "db")}

    # -- the other views -----------------------------------------------------------------------
    def general(self, symbolic: bool = False) -> "GeneralForm":
        """The closed-form index expressions (independent of the layer's size).

        ``symbolic=True`` keeps stride, padding, dilation and sizes as symbols (s_h, p_h, ...);
        otherwise they are this layer's numbers.
        """
        from .general import general_form

        return general_form(self.spec, symbolic=symbolic)

    def verify(self) -> "VerifyResult":
        """Prove, by exact symbolic comparison, that the gradients are the lecture's convolutions.

        The result is kept: the arrays it compares never change.
        """
        if self._verified is None:
            from .proof import verify

            self._verified = verify(self)
        return self._verified

    # -- notebook display ----------------------------------------------------------------------
    def _repr_latex_(self) -> str:
        from .render import render

        return render(self, "latex")

    def _repr_markdown_(self) -> str:
        from .render import render

        return render(self, "markdown")


def derive(spec: ConvSpec, max_terms: int = DEFAULT_MAX_TERMS) -> Derivation:
    """Derive the gradients of a convolution layer with SymPy (lazily; see ``Derivation``)."""
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"derive expects a ConvSpec, but got {type(spec).__name__}")
    if not isinstance(max_terms, numbers.Integral) or isinstance(max_terms, bool):
        raise TypeError(f"max_terms must be an int, but got {max_terms!r}")
    max_terms = int(max_terms)  # numpy integers are welcome, but the derivation keeps a plain int
    if max_terms < 0:
        raise ValueError(f"max_terms must be >= 0, but got {max_terms}")
    return Derivation(spec, max_terms=max_terms)
