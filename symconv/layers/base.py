"""What every layer derivation shares: symbol arrays, the loss ``L = Σ G·Y``, SymPy's local
derivatives, the chain rule, and a verification against a separately built closed form.

A layer supplies its symbol arrays, its forward equations and its closed-form gradients (built
from the lecture's rule by a separate, simple code path); this module differentiates and compares:

1. forward   Y[o]          one SymPy expression per output entry
2. local     ∂Y[o]/∂s      ``sympy.diff`` for every differentiated symbol s in Y[o]
3. chain     ∂L/∂s = Σ_o G[o]·∂Y[o]/∂s   with L = Σ_o G[o]·Y[o]
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, ClassVar

import numpy as np
import sympy as sp

ZERO = sp.Integer(0)


def entry_symbol(name: str, index: tuple[int, ...]) -> sp.Symbol:
    """``X[0,1]`` (0-based, full index); a 0-d array's single entry is just ``Y``. Real-valued."""
    label = name if not index else f"{name}[{','.join(map(str, index))}]"
    return sp.Symbol(label, real=True)


def symbol_array(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A numpy object array of real SymPy symbols named like ``X[0,1,2,0]``."""
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = entry_symbol(name, index)
    return out


def object_array(shape: tuple[int, ...], fill: Callable[[tuple[int, ...]], Any]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = sp.sympify(fill(index))
    return out


def expand_zero(difference: sp.Expr) -> bool:
    """Exact test for polynomial-like differences (sums of products, rational coefficients)."""
    return difference == 0 or sp.expand(difference) == 0


@dataclass(frozen=True)
class Check:
    """One exact comparison; ``detail`` says where it failed (or what was special)."""

    name: str
    statement: str
    ok: bool
    entries: int = 0
    detail: str | None = None


@dataclass(frozen=True)
class LayerVerifyResult:
    """``ok`` is True when every check holds; ``report()`` (also ``str``) is readable."""

    layer: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __bool__(self) -> bool:
        return self.ok

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks are {', '.join(c.name for c in self.checks)}")

    def report(self) -> str:
        lines = [f"Layer   {self.layer}"]
        for c in self.checks:
            mark = "✓ holds " if c.ok else "✗ FAILED"
            count = f"  ({c.entries} entries compared exactly)" if c.entries else ""
            lines.append(f"  {mark}  {c.name}: {c.statement}{count}")
            if c.detail:
                lines.extend("      " + line for line in c.detail.splitlines())
        lines.append("All checks hold." if self.ok else "Some checks do NOT hold.")
        return "\n".join(lines)

    __str__ = report


def compare(
    name: str,
    statement: str,
    derived: np.ndarray,
    expected: np.ndarray,
    is_zero: Callable[[sp.Expr], bool] = expand_zero,
) -> Check:
    """Entry-by-entry exact comparison; reports the first entry that differs."""
    if derived.shape != expected.shape:
        return Check(name, statement, False, 0, f"shapes differ: {derived.shape} and {expected.shape}")
    for index in np.ndindex(*derived.shape):
        a, b = sp.sympify(derived[index]), sp.sympify(expected[index])
        if a != b and not is_zero(a - b):
            return Check(name, statement, False, int(derived.size), f"first difference at {index}:\n  {a}\n  vs {b}")
    return Check(name, statement, True, int(derived.size))


class LayerDerivation:
    """The derivation of one layer (not the convolution). Arrays are numpy object arrays, 0-based.

    Symbol arrays (``X``, ``W``, ``b``, ``gamma``, ``beta``, ``T``...) and ``G`` (the upstream
    gradient ∂L/∂Y) are attributes; so are ``Y`` (forward expressions) and one gradient array per
    differentiated array: ``dX``, ``dW``, ``db``, ``dgamma``, ``dbeta``. ``local[o]`` maps each
    differentiated symbol of ``Y[o]`` to ``∂Y[o]/∂symbol`` as SymPy computes it.
    """

    #: The layer's name on the command line and in JSON ("maxpool2d", "sigmoid", ...).
    kind: ClassVar[str] = ""  # overridden per instance where one class serves several kinds
    #: The symbol arrays the loss is differentiated with respect to, in page order.
    wrt: ClassVar[tuple[str, ...]] = ("X",)

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self._verified: LayerVerifyResult | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.describe()}>"

    # -- what a layer supplies ------------------------------------------------------------------
    def _symbols(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _forward(self) -> np.ndarray:
        raise NotImplementedError

    def closed_form(self) -> dict[str, np.ndarray]:
        """The lecture's closed-form gradients ("dX": array, ...), built without differentiating."""
        raise NotImplementedError

    def _extra_checks(self) -> list[Check]:
        """The layer's own rules (the sigmoid's s(1 − s), the softmax Jacobian...)."""
        return []

    def local_derivative(self, o: tuple[int, ...], symbol: sp.Symbol) -> sp.Expr:
        """∂Y[o]/∂symbol by SymPy; a layer with a non-smooth point states its convention here."""
        return sp.diff(self.Y[o], symbol)

    def gradient_is_zero(self, difference: sp.Expr) -> bool:
        """Exact zero test used when comparing gradients with the closed form."""
        return expand_zero(difference)

    # -- the arrays -----------------------------------------------------------------------------
    @cached_property
    def inputs(self) -> dict[str, np.ndarray]:
        """The layer's own symbol arrays (inputs, parameters, targets), without G."""
        return dict(self._symbols())

    @cached_property
    def G(self) -> np.ndarray:
        """The upstream gradient ∂L/∂Y, one symbol per output entry."""
        return symbol_array("G", self.Y.shape)

    @property
    def symbols(self) -> dict[str, np.ndarray]:
        return {**self.inputs, "G": self.G}

    @cached_property
    def Y(self) -> np.ndarray:
        return self._forward()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not regular attributes: the symbol and gradient arrays.
        if name.startswith("_") or name in ("spec", "inputs", "gradients", "Y", "G"):
            raise AttributeError(name)
        if name in self.inputs:
            return self.inputs[name]
        if name.startswith("d") and name[1:] in self.wrt:
            return self.gradients[name]
        raise AttributeError(f"{type(self).__name__} has no array {name!r}")

    @cached_property
    def loss(self) -> sp.Expr:
        """L = Σ_o G[o]·Y[o]: any loss whose upstream gradient is G."""
        return sp.Add(*(g * y for g, y in zip(self.G.ravel(), self.Y.ravel())))

    @cached_property
    def _wrt_symbols(self) -> set[sp.Symbol]:
        return {s for name in self.wrt for s in self.inputs[name].ravel()}

    @cached_property
    def local(self) -> dict[tuple[int, ...], dict[sp.Symbol, sp.Expr]]:
        """``local[o][s] = ∂Y[o]/∂s`` for every differentiated symbol s that Y[o] depends on."""
        result = {}
        for o in np.ndindex(*self.Y.shape):
            expr = self.Y[o]
            used = sorted(expr.free_symbols & self._wrt_symbols, key=sp.default_sort_key)
            result[o] = {s: self.local_derivative(o, s) for s in used}
        return result

    @cached_property
    def gradients(self) -> dict[str, np.ndarray]:
        """``∂L/∂s = Σ_o G[o]·∂Y[o]/∂s`` for every differentiated array ("dX", "dW", ...)."""
        terms: dict[sp.Symbol, list[sp.Expr]] = defaultdict(list)
        for o, grads in self.local.items():
            for symbol, value in grads.items():
                terms[symbol].append(self.G[o] * value)
        out = {}
        for name in self.wrt:
            symbols = self.inputs[name]
            # An entry no output depends on (outside every window) has gradient exactly zero.
            out["d" + name] = object_array(symbols.shape, lambda i: sp.Add(*terms.get(symbols[i], [ZERO])))
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Every symbol and expression array by name."""
        return {**self.symbols, "Y": self.Y, **self.gradients}

    # -- verification ---------------------------------------------------------------------------
    def verify(self) -> LayerVerifyResult:
        """Compare the differentiated gradients with the closed form, exactly; plus the layer's
        own rules. The result is kept (the arrays never change)."""
        if self._verified is None:
            checks = self._extra_checks()
            expected = self.closed_form()
            for name in self.wrt:
                key = "d" + name
                statement = self.rule_statement(key)
                checks.append(compare(key, statement, self.gradients[key], expected[key], self.gradient_is_zero))
            self._verified = LayerVerifyResult(self.spec.describe(), tuple(checks))
        return self._verified

    def rule_statement(self, gradient: str) -> str:
        """The closed-form rule for ``gradient`` in words (used in reports and on the page)."""
        return f"∂L/∂{gradient[1:]} by the chain rule equals the closed form"

    # -- notebook display -----------------------------------------------------------------------
    def _repr_markdown_(self) -> str:
        from .printing import render

        return render(self, "markdown")
