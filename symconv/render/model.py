"""The page model: one derivation as sections of SymPy equations, ready for any printer.

Everything on a page comes out of the ``Derivation``: the forward equations are ``O``, the local
gradients ``local``, the chain-rule sums ``dW``/``dX``/``db``, the ticks ``verify()``, the general
part ``general(symbolic=True)``. The model only decides what to show and in which order; the
printers (text, LaTeX, Markdown, JSON) only decide how it looks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Union

import numpy as np
import sympy as sp

from ..derive import symbol_array
from ..general import OUTPUT_COORDS, Loop, parameter_values
from ..proof import dilate, rot180, zero_pad
from ..spec import ConvSpec
from .naming import Name, Naming, parse_entry
from .notation import Between, Crop, Dilate, Pad, Rot180, Sample, Total, XCorr, amounts, pairs

if TYPE_CHECKING:
    from ..derive import Derivation
    from ..proof import VerifyResult

#: ``wrt`` -> the gradients shown, in page order.
GRADIENTS = {"all": ("dW", "dX", "db"), "weight": ("dW",), "input": ("dX",), "bias": ("db",)}

#: Most equations an element-wise section may hold; above it only the general form is printed.
ELEMENTWISE_LIMIT = 200

#: Largest matrix side drawn next to an identity.
GRID_LIMIT = 12

#: Gradient -> (section key, title, the array it differentiates, description of the identity).
GRADIENT_SECTIONS = {
    "dW": ("filter", "Filter gradient", "W", "valid cross-correlation"),
    "dX": ("input", "Input gradient", "X", "full convolution"),
    "db": ("bias", "Bias gradient", "b", "sum over the batch and all positions"),
}

#: Local gradients are listed per output entry, one row per array, in this order.
LOCAL_ORDER = {"dW": "W", "dX": "X", "db": "b"}

LOSS = sp.Symbol("L")


# -- the nodes of a page -------------------------------------------------------------------------


@dataclass(frozen=True)
class Equation:
    """One element-wise equation; ``index`` is the 0-based index of its target entry, ``wrt`` the
    array and index a local gradient is taken with respect to."""

    equation: sp.Eq
    index: tuple[int, ...]
    wrt: tuple[str, tuple[int, ...]] | None = None


@dataclass(frozen=True)
class Grid:
    """A matrix drawn next to an identity (``cells`` is a 2-D object array of SymPy expressions)."""

    label: str
    cells: np.ndarray


@dataclass(frozen=True)
class Identity:
    """The convolution a gradient was proven to be, "⇒ ∂L/∂F = X ⋆ ∂L/∂O" (``proven`` from verify)."""

    equation: sp.Eq
    description: str
    proven: bool
    operands: tuple[Grid, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EquationSection:
    """Rows of element-wise equations (several equations may share a row), then an identity."""

    key: str
    title: str
    rows: tuple[tuple[Equation, ...], ...]
    identity: Identity | None = None
    notes: tuple[str, ...] = ()

    def equations(self) -> Iterator[Equation]:
        for row in self.rows:
            yield from row


@dataclass(frozen=True)
class GeneralEntry:
    """One general index form: ``equation`` is ``IndexForm.equation()`` (guards in a Piecewise),
    ``display`` the same sum without them, ``ranges`` the free indices' ranges and ``conditions``
    the guards, as they are printed."""

    name: str
    equation: sp.Eq
    display: sp.Eq
    ranges: tuple[sp.Basic, ...]
    conditions: tuple[sp.Basic, ...]


@dataclass(frozen=True)
class GeneralSection:
    key: str
    title: str
    entries: tuple[GeneralEntry, ...]
    sizes: tuple[sp.Eq, ...]
    values: tuple[sp.Eq, ...]
    notes: tuple[str, ...] = ()


Section = Union[EquationSection, GeneralSection]


@dataclass(frozen=True)
class Page:
    """A whole derivation page; ``notes`` explain what was left out and why."""

    naming: Naming
    wrt: str
    layer: str
    legend: str
    sections: tuple[Section, ...]
    elementwise: bool
    notes: tuple[str, ...] = ()

    @property
    def spec(self) -> ConvSpec:
        return self.naming.spec

    def expressions(self) -> Iterator[sp.Basic]:
        """Every SymPy object on the page."""
        for section in self.sections:
            if isinstance(section, GeneralSection):
                for entry in section.entries:
                    yield entry.display
                    yield from entry.ranges
                    yield from entry.conditions
                yield from section.sizes
                yield from section.values
                continue
            for equation in section.equations():
                yield equation.equation
            if section.identity is not None:
                yield section.identity.equation
                for grid in section.identity.operands:
                    yield from grid.cells.ravel()

    @cached_property
    def names(self) -> dict[sp.Symbol, Name]:
        """The printed name of every array symbol on the page."""
        names: dict[sp.Symbol, Name] = {}
        for expr in self.expressions():
            for symbol in sp.sympify(expr).atoms(sp.Symbol):
                if symbol not in names:
                    name = self.naming.resolve(symbol)
                    if name is not None:
                        names[symbol] = name
        return names


# -- building a page -----------------------------------------------------------------------------


def build_page(
    derivation: "Derivation", wrt: str = "all", index_base: int = 1, general_only: bool = False
) -> Page:
    """The page of ``derivation``: element-wise sections when the layer is small, then the general form."""
    if wrt not in GRADIENTS:
        raise ValueError(f"wrt must be one of {', '.join(map(repr, GRADIENTS))}, but got {wrt!r}")
    spec = derivation.spec
    if wrt == "bias" and not spec.bias:
        raise ValueError("wrt='bias' needs a layer with a bias, but this layer has bias=False")
    naming = Naming(spec, index_base)
    gradients = tuple(g for g in GRADIENTS[wrt] if g != "db" or spec.bias)
    reason = None if general_only else _why_not_elementwise(derivation, gradients)
    elementwise = not general_only and reason is None
    sections = _elementwise_sections(derivation, gradients, naming) if elementwise else []
    sections.append(_general_section(derivation, gradients))
    return Page(
        naming=naming,
        wrt=wrt,
        layer=spec.describe(),
        legend=_legend(naming, elementwise),
        sections=tuple(sections),
        elementwise=elementwise,
        notes=() if reason is None else (reason,),
    )


def _why_not_elementwise(derivation: "Derivation", gradients: tuple[str, ...]) -> str | None:
    """Why the element-wise sections cannot be printed, or None when they can."""
    spec = derivation.spec
    omitted = "The element-wise sections (forward, local gradients, chain-rule sums) are omitted"
    if spec.batch == 0:
        return f"{omitted}: the batch is empty (N = 0), so there are no equations to write out."
    if not derivation.is_small:
        return (
            f"{omitted}: this layer has {derivation.n_terms:,} multiply terms, more than the "
            f"{derivation.max_terms:,} an element-wise derivation allows. The general form below "
            f"gives every entry."
        )
    counts = {"forward": int(np.prod(spec.output))}
    sizes = {"dW": spec.weight, "dX": spec.input, "db": spec.bias_shape}
    for gradient in gradients:
        counts[GRADIENT_SECTIONS[gradient][0]] = int(np.prod(sizes[gradient]))
    section, count = max(counts.items(), key=lambda kv: kv[1])
    if count > ELEMENTWISE_LIMIT:
        return (
            f"{omitted}: the {section} section alone would need {count:,} equations "
            f"(a page shows at most {ELEMENTWISE_LIMIT}). The general form below gives every entry."
        )
    return None


def _legend(naming: Naming, elementwise: bool) -> str:
    """What the names mean; the subscript rules only when there are element-wise equations."""
    if naming.textbook:
        text = "F is the weight W, ∂L/∂O the upstream gradient G"
        if elementwise:
            text += "; subscripts are 1-based"
            if naming.dropped():
                text += "; axes of size 1 are not written: " + ", ".join(naming.dropped())
        return text
    text = "∂L/∂O is the upstream gradient G"
    return text + ("; indices are 0-based and full, as in the arrays" if elementwise else "")


def _elementwise_sections(derivation: "Derivation", gradients: tuple[str, ...], naming: Naming) -> list[Section]:
    verified = derivation.verify()
    sections: list[Section] = [_forward_section(derivation), _local_section(derivation, gradients)]
    for gradient in gradients:
        sections.append(_gradient_section(derivation, gradient, verified, naming))
    return sections


def _forward_section(derivation: "Derivation") -> EquationSection:
    targets = symbol_array("O", derivation.spec.output)
    rows = tuple(
        (Equation(sp.Eq(targets[o], derivation.O[o], evaluate=False), o),)
        for o in np.ndindex(*derivation.spec.output)
    )
    return EquationSection("forward", "Forward (⋆ = cross-correlation, as in every framework)", rows)


def _local_section(derivation: "Derivation", gradients: tuple[str, ...]) -> EquationSection:
    """∂O/∂s for each output entry: one row per output entry and array, until the page limit."""
    targets = symbol_array("O", derivation.spec.output)
    wanted = [LOCAL_ORDER[g] for g in gradients]
    rows: list[tuple[Equation, ...]] = []
    shown = listed = total = 0
    full = False
    outputs = list(np.ndindex(*derivation.spec.output))
    for o in outputs:
        by_array: dict[str, list[Equation]] = {array: [] for array in wanted}
        for symbol, local in derivation.local[o].items():
            array, index = parse_entry(symbol)
            if array in by_array:
                equation = sp.Eq(sp.Derivative(targets[o], symbol, evaluate=False), local, evaluate=False)
                by_array[array].append(Equation(equation, o, (array, index)))
        count = sum(map(len, by_array.values()))
        total += count
        # The first output is always shown (as in the lecture), the next ones while the page has
        # room; once one is left out, so are all after it, so "the first k outputs" stays true.
        if shown and (full or listed + count > ELEMENTWISE_LIMIT):
            full = True
            continue
        shown += 1
        listed += count
        rows += [tuple(sorted(eqs, key=lambda e: e.wrt[1])) for eqs in by_array.values() if eqs]
    notes = ()
    if shown < len(outputs):
        notes = (
            f"Shown for the first {shown} of {len(outputs)} outputs; the others follow the same "
            f"pattern ({total:,} local gradients in all).",
        )
    return EquationSection("local", "Local gradients", tuple(rows), notes=notes)


def _gradient_section(
    derivation: "Derivation", gradient: str, verified: "VerifyResult", naming: Naming
) -> EquationSection:
    key, title, array, description = GRADIENT_SECTIONS[gradient]
    symbols, values = getattr(derivation, array), getattr(derivation, gradient)
    rows = tuple(
        (Equation(sp.Eq(sp.Derivative(LOSS, symbols[i], evaluate=False), values[i], evaluate=False), i),)
        for i in np.ndindex(*symbols.shape)
    )
    proven = {check.name: check.ok for check in verified.checks}
    if gradient not in proven:
        raise KeyError(f"verify() has no check for {gradient}")
    identity = IDENTITIES[gradient](derivation, naming, description, proven[gradient])
    return EquationSection(key, title, rows, identity)


# -- the identities ------------------------------------------------------------------------------


def _whole(array: str) -> sp.Symbol:
    return sp.Symbol(array)


def _label(what: str, dilated: bool = False, padded: bool = False, rotated: bool = False) -> str:
    """A matrix caption that says what was done to the array ("stride-dilated, zero-padded ...")."""
    steps = [word for word, done in (("dilated", dilated), ("zero-padded", padded)) if done]
    label = (", ".join(steps) + " " if steps else "") + what
    return label + (", rotated by 180 degrees" if rotated else "")


def _slice_note(derivation: "Derivation", naming: Naming) -> tuple[str, ...]:
    spec = derivation.spec
    if spec.batch == 1 and spec.in_channels == 1 and spec.out_channels == 1:
        return ()
    first = naming.index_base
    return (f"The matrices show one slice: n = {first}, k = {first}, c = {first}.",)


def _grids(
    derivation: "Derivation", naming: Naming, *grids: tuple[str, np.ndarray]
) -> tuple[tuple[Grid, ...], tuple[str, ...]]:
    """The matrices next to an identity, or a note why they are not drawn."""
    if derivation.spec.rank > 2:
        return (), ("Matrices are drawn for 1-D and 2-D layers only.",)
    cells = [(label, np.atleast_2d(a)) for label, a in grids]
    if max(max(c.shape) for _, c in cells) > GRID_LIMIT:
        return (), (f"Matrices larger than {GRID_LIMIT}×{GRID_LIMIT} are not drawn.",)
    return tuple(Grid(label, c) for label, c in cells), _slice_note(derivation, naming)


def _filter_identity(derivation: "Derivation", naming: Naming, description: str, proven: bool) -> Identity:
    """∂L/∂F = [sample_d](pad(X) ⋆ dilate_s(∂L/∂O))."""
    spec = derivation.spec
    image, upstream = _whole("X"), _whole("G")
    if any(lo or hi for lo, hi in spec.padding):
        image = Pad(image, pairs(spec.padding))
    if any(s > 1 for s in spec.stride):
        upstream = Dilate(upstream, amounts(spec.stride))
    rhs = XCorr(image, upstream)
    if any(d > 1 for d in spec.dilation):
        rhs = Sample(rhs, amounts(spec.dilation))
    grids, notes = _grids(
        derivation,
        naming,
        (_label("input", padded=image != _whole("X")), zero_pad(derivation.X[0, 0], spec.padding)),
        (_label("upstream gradient", dilated=upstream != _whole("G")), dilate(derivation.G[0, 0], spec.stride)),
    )
    if spec.batch > 1 or spec.in_channels > 1 or spec.out_channels > 1:
        notes += ("Per output channel k and channel c of its group, summed over the batch.",)
    equation = sp.Eq(sp.Derivative(LOSS, _whole("W"), evaluate=False), rhs, evaluate=False)
    return Identity(equation, description, proven, grids, notes)


def _input_identity(derivation: "Derivation", naming: Naming, description: str, proven: bool) -> Identity:
    """∂L/∂X = [crop_p](pad_{k−1}(dilate_s(∂L/∂O)) ⋆ rot180(dilate_d(F)))."""
    spec = derivation.spec
    upstream, weight = _whole("G"), _whole("W")
    if any(s > 1 for s in spec.stride):
        upstream = Dilate(upstream, amounts(spec.stride))
    reach = [d * (k - 1) for k, d in zip(spec.kernel, spec.dilation)]
    if any(reach):
        upstream = Pad(upstream, pairs([(r, r) for r in reach]))
    if any(d > 1 for d in spec.dilation):
        weight = Dilate(weight, amounts(spec.dilation))
    rhs = XCorr(upstream, Rot180(weight))
    if any(spec.pad_lo):
        rhs = Crop(rhs, amounts(spec.pad_lo))
    up = zero_pad(dilate(derivation.G[0, 0], spec.stride), [(r, r) for r in reach])
    rotated = rot180(dilate(derivation.W[0, 0], spec.dilation))
    grids, notes = _grids(
        derivation,
        naming,
        (_label("upstream gradient", dilated=any(s > 1 for s in spec.stride), padded=any(reach)), up),
        (_label("filter", dilated=weight != _whole("W"), rotated=True), rotated),
    )
    if any(spec.pad_lo) or any(spec.pad_hi):
        notes += ("The rows and columns of the padding are cropped away.",)
    if any(value == 0 for value in derivation.dX.ravel()):
        notes += ("Input entries that no window reaches get gradient 0.",)
    if spec.batch > 1 or spec.in_channels > 1 or spec.out_channels > 1:
        notes += ("Per batch item and input channel c, summed over the output channels k of its group.",)
    equation = sp.Eq(sp.Derivative(LOSS, _whole("X"), evaluate=False), rhs, evaluate=False)
    return Identity(equation, description, proven, grids, notes)


def _bias_identity(derivation: "Derivation", naming: Naming, description: str, proven: bool) -> Identity:
    """∂L/∂b = Σ_{n,i,j} ∂L/∂O."""
    spec = derivation.spec
    indices = sp.Tuple(sp.Symbol("n"), *(sp.Symbol(v) for v in OUTPUT_COORDS[spec.rank]))
    equation = sp.Eq(sp.Derivative(LOSS, _whole("b"), evaluate=False), Total(_whole("G"), indices), evaluate=False)
    return Identity(equation, description, proven)


IDENTITIES = {"dW": _filter_identity, "dX": _input_identity, "db": _bias_identity}


# -- the general form ----------------------------------------------------------------------------


def merge_ranges(guards: tuple[sp.Basic, ...]) -> tuple[sp.Basic, ...]:
    """``0 ≤ e`` and ``e ≤ hi`` become one ``Between(0, e, hi)``; other guards stay as they are."""
    out: list[sp.Basic] = []
    used: set[int] = set()
    for i, guard in enumerate(guards):
        if i in used:
            continue
        partner = None
        if isinstance(guard, sp.LessThan):
            for j in range(i + 1, len(guards)):
                other = guards[j]
                if j in used or not isinstance(other, sp.LessThan):
                    continue
                if other.lhs == guard.rhs:  # guard: lo <= e, other: e <= hi
                    partner, lo, e, hi = j, guard.lhs, guard.rhs, other.rhs
                elif other.rhs == guard.lhs:  # guard: e <= hi, other: lo <= e
                    partner, lo, e, hi = j, other.lhs, guard.lhs, guard.rhs
                if partner is not None:
                    break
        if partner is None:
            out.append(guard)
        else:
            used.add(partner)
            out.append(Between(lo, e, hi))
    return tuple(out)


def _range(loop: Loop) -> sp.Basic:
    """``n < N`` for a loop from 0, ``lo ≤ v ≤ hi`` otherwise."""
    if loop.lo == 0:
        return sp.StrictLessThan(loop.var, loop.hi + 1)
    return Between(loop.lo, loop.var, loop.hi)


#: General forms in page order, and which gradients bring them.
GENERAL_ORDER = ("O", "dW", "dX", "db")


def _general_section(derivation: "Derivation", gradients: tuple[str, ...]) -> GeneralSection:
    general = derivation.general(symbolic=True)
    entries = []
    for name in GENERAL_ORDER:
        if name in general.forms and (name == "O" or name in gradients):
            form = general.forms[name]
            display = sp.Eq(form.target, replace(form, guards=()).rhs(), evaluate=False)
            ranges = tuple(_range(loop) for loop in form.free)
            entries.append(GeneralEntry(name, form.equation(), display, ranges, merge_ranges(form.guards)))
    used = set().union(
        *(e.equation.free_symbols for e in entries),
        *(r.free_symbols for e in entries for r in e.ranges),
        *(s.free_symbols for s in general.sizes),
    )
    values = tuple(
        sp.Eq(symbol, sp.Integer(value), evaluate=False)
        for symbol, value in parameter_values(derivation.spec).items()
        if symbol in used
    )
    notes = (
        "Indices are 0-based array indices; a term counts only where every condition holds.",
    )
    return GeneralSection("general", "General index form (any size)", tuple(entries), general.sizes, values, notes)
