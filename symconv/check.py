"""Check a learner's derivation: parse claimed gradient entries, compare with SymPy, explain.

A claim is one line ``LHS = RHS``. The left-hand side names one gradient entry, the right-hand
side is the learner's expression for it, written the way the lectures write it::

    dL/dX_12 = dL/dO_11*F_12 + dL/dO_12*F_11          (textbook, 1-based subscripts)
    ∂L/∂X₁₂ = ∂L/∂O₁₁·F₁₂ + ∂L/∂O₁₂·F₁₁                (Unicode)
    dX[0,0,0,1] = G[0,0,0,0]*W[0,0,0,1] + G[0,0,0,1]*W[0,0,0,0]   (0-based arrays)
    dL/dw_5 = a_7*dL/dz_1 + a_9*dL/dz_2 + ...          (flat, row-major names as in lecture 004)

The text is never evaluated: a small tokenizer turns every name into a SymPy symbol of the
derivation (``X[0,0,1,1]`` ...), leaving only numbers, operators and placeholders for
``sympy.parse_expr``. The claim is then compared with ``derive(spec)``'s entry term by term, and the
difference is reported in the learner's own notation ("missing: ∂L/∂O₁₂·F₁₁; extra: ...").

Index readings. Brackets are 0-based and subscripts 1-based unless ``index_base`` says otherwise.
A digit string such as ``X_12`` is either one digit per axis ("multi") or one row-major number
over the axes longer than 1 ("flat", lecture 004's ``a_13``). With ``index_style="auto"`` one
reading is chosen per claim, because a learner does not switch notation inside one line: multi
when every such index fits it, else flat when every index fits that (``dL/dw_9 = a_13·dL/dz_1``
reads flat because ``w_9`` cannot be two axes). Axes of length 1 (N, C, K of a single-channel
layer) may always be left out.
"""

from __future__ import annotations

import math
import re
import tokenize
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import sympy as sp
from sympy.parsing.sympy_parser import parse_expr, standard_transformations

from .derive import Derivation, derive
from .spec import ConvSpec

__all__ = ["CheckResult", "Verdict", "check_claims", "check_one"]

INDEX_STYLES = ("auto", "multi", "flat")
MAX_POWER = 9
#: Longest right-hand side accepted, in tokens (names, numbers, operators, parentheses). A gradient
#: entry of a layer small enough to work by hand has tens of terms (about four tokens each); far
#: beyond that, Python's compiler (which ``parse_expr`` uses) runs out of recursion depth near
#: 3000 chained operators, so the limit is set well below that and stated in the error.
MAX_TOKENS = 2000

# -- names ------------------------------------------------------------------------------------

#: Letter -> role. Input X (lecture 004: a), weight W (lectures: F, w), output O (lecture 004: z),
#: upstream gradient G = ∂L/∂O.
ROLES: dict[str, str] = {
    **dict.fromkeys("XxAa", "input"),
    **dict.fromkeys("WwFf", "weight"),
    "b": "bias",
    **dict.fromkeys("OoZz", "output"),
    **dict.fromkeys("Gg", "upstream"),
}
#: Role -> the derivation's symbol array (the output itself never appears in a gradient).
ARRAY_OF_ROLE = {"input": "X", "weight": "W", "bias": "b", "upstream": "G", "output": "G"}
NOUN_OF_ROLE = {"input": "input", "weight": "filter", "bias": "bias", "upstream": "output", "output": "output"}
GRADIENT_OF_ARRAY = {"X": "dX", "W": "dW", "b": "db"}
KNOWN_NAMES = "X/x/A/a (input), W/w/F/f (filter), b (bias), dL/dO, dL/dz or G (upstream gradient)"

_SUB_DIGITS = "₀₁₂₃₄₅₆₇₈₉"
_FROM_SUB = str.maketrans(_SUB_DIGITS, "0123456789")
_TO_SUB = str.maketrans("0123456789", _SUB_DIGITS)


# -- results ----------------------------------------------------------------------------------


@dataclass
class Verdict:
    """The verdict on one claim.

    ``missing`` and ``extra`` are SymPy terms (with coefficients) such that
    ``given - expected == sum(extra) - sum(missing)``; a wrong coefficient ``c·t`` where ``e·t``
    is expected shows up as ``(c-e)·t`` in ``extra`` (or ``(e-c)·t`` in ``missing``) and is also
    listed in ``wrong`` as ``(t, c, e)``.
    """

    claim: str
    target: str
    ok: bool
    missing: list[sp.Expr]
    extra: list[sp.Expr]
    expected: sp.Expr
    given: sp.Expr
    message: str
    lhs: str = ""
    wrong: list[tuple[sp.Expr, sp.Expr, sp.Expr]] = field(default_factory=list)

    def line(self) -> str:
        """One report line: ✓ or ✗, the claim's left-hand side, the array entry, the message."""
        mark = "✓" if self.ok else "✗"
        return f"{mark} {self.lhs} ({self.target}): {self.message}"


@dataclass
class CheckResult:
    """Verdicts for a list of claims; ``ok`` when every claim is correct."""

    verdicts: list[Verdict]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def wrong(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]

    def report(self, summary: bool = False) -> str:
        """One line per claim; with ``summary`` a last line counting the correct ones."""
        lines = [v.line() for v in self.verdicts]
        if summary:
            good = sum(v.ok for v in self.verdicts)
            lines.append(f"{good} of {len(self.verdicts)} claims correct")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


# -- step 1: normalise the text (LaTeX and Unicode spellings -> plain text) --------------------

_BRACED = r"[^{}]*(?:\{[^{}]*\}[^{}]*)*"
_LATEX_FRAC = re.compile(
    rf"\\frac\s*\{{\s*\\partial\s*({_BRACED})\}}\s*\{{\s*\\partial\s*({_BRACED})\}}"
)
_PLAIN_SUBSTITUTIONS = (
    (re.compile(r"\\(?:cdot|times|ast)\b"), "*"),
    (re.compile(r"\\(?:left|right)\b"), ""),
    (re.compile(r"\\partial\b"), "∂"),
    (re.compile(r"\\[,;!]|\\quad\b|\\qquad\b"), " "),
    (re.compile(r"[$&]"), ""),
    (re.compile(r"[·⋅∙×∗]"), "*"),
    (re.compile(r"[−–]"), "-"),
)


def _normalise(text: str) -> str:
    """LaTeX fractions of partials become ``dA/dB``; Unicode operators become ASCII ones."""
    text = _LATEX_FRAC.sub(lambda m: f"d{m[1].replace(' ', '')}/d{m[2].replace(' ', '')}", text)
    for pattern, replacement in _PLAIN_SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return text.strip()


# -- step 2: tokens ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RawIndex:
    """An index as written. ``split``: parts are explicit axes (brackets, commas); otherwise
    ``parts`` is one digit string, read per digit or as one flat number."""

    kind: str  # "none" | "bracket" | "sub"
    parts: tuple[str, ...] = ()
    split: bool = True


@dataclass(frozen=True)
class Ref:
    """A reference to one array entry as written, e.g. ``dL/dO_11`` or ``F[0,1]``."""

    text: str
    letter: str
    role: str
    gradient: bool  # written dL/d<letter> (or d<letter>)
    index: RawIndex


@dataclass(frozen=True)
class Token:
    kind: str  # "ref" | "local" | "num" | "op" | "(" | ")"
    text: str
    refs: tuple[Ref, ...] = ()


_IDX = r"(?:\[[^\[\]]*\]|_\{[^{}]*\}|_[0-9]+(?:,[0-9]+)*|[₀-₉]+|[0-9]+)?"
_D = r"(?:d|∂)"
_LOCAL_RE = re.compile(rf"{_D}\s*([OoZz])({_IDX})\s*/\s*{_D}\s*([A-Za-z])({_IDX})")
_GRAD_RE = re.compile(rf"{_D}L\s*/\s*{_D}\s*([A-Za-z])({_IDX})")
_SHORT_RE = re.compile(rf"{_D}([A-Za-z])({_IDX})")
_WORD_RE = re.compile(rf"([A-Za-z]+)({_IDX})")
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+")
_OP_RE = re.compile(r"\*\*|\^|[-+*/]")


def _raw_index(claim: str, written: str, idx: str) -> RawIndex:
    """Classify the index text ``idx`` of the reference ``written``."""
    if not idx:
        return RawIndex("none")
    if idx.startswith("["):
        inner = idx[1:-1].strip()
        parts = tuple(p.strip() for p in inner.split(",")) if inner else ()
        if not all(p.isdigit() for p in parts):
            raise _error(claim, f"{written}: index entries must be non-negative integers like [0,1]")
        return RawIndex("bracket", parts) if parts else RawIndex("none")
    body = idx.translate(_FROM_SUB).lstrip("_").strip("{}").strip()
    if body.isdigit():
        return RawIndex("sub", (body,), split=False)
    parts = tuple(p for p in re.split(r"[\s,]+", body) if p)
    if not parts or not all(p.isdigit() for p in parts):
        raise _error(claim, f"{written}: a subscript must be digits like _12 or _{{1,2}}")
    return RawIndex("sub", parts, split=True)


def _ref(claim: str, written: str, letter: str, idx: str, gradient: bool) -> Ref:
    role = ROLES.get(letter)
    if role is None:
        raise _error(claim, f"unknown name {letter!r} in {written!r}; known names: {KNOWN_NAMES}")
    return Ref(written, letter, role, gradient, _raw_index(claim, written, idx))


def _letter_follows(text: str, m: re.Match) -> bool:
    """A name without an index glued to more letters (``dog``) is a word, not a reference."""
    return not m[2] and m.end() < len(text) and text[m.end()].isalpha()


def _tokenize(claim: str, text: str) -> list[Token]:
    """Split one side of a claim into tokens; anything unrecognised raises ValueError."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        token, pos = _next_token(claim, text, pos)
        tokens.append(token)
    return tokens


def _next_token(claim: str, text: str, pos: int) -> tuple[Token, int]:
    if m := _LOCAL_RE.match(text, pos):
        num = _ref(claim, f"{m[1]}{m[2]}", m[1], m[2], gradient=False)
        den = _ref(claim, f"{m[3]}{m[4]}", m[3], m[4], gradient=False)
        return Token("local", m[0], (num, den)), m.end()
    if m := _GRAD_RE.match(text, pos):
        return Token("ref", m[0], (_ref(claim, m[0], m[1], m[2], gradient=True),)), m.end()
    if (m := _SHORT_RE.match(text, pos)) and not _letter_follows(text, m):
        return Token("ref", m[0], (_ref(claim, m[0], m[1], m[2], gradient=True),)), m.end()
    if m := _WORD_RE.match(text, pos):
        if len(m[1]) > 1:
            raise _error(claim, f"unknown name {m[1]!r}; known names: {KNOWN_NAMES}")
        return Token("ref", m[0], (_ref(claim, m[0], m[1], m[2], gradient=False),)), m.end()
    if m := _NUMBER_RE.match(text, pos):
        return Token("num", m[0]), m.end()
    if m := _OP_RE.match(text, pos):
        return Token("op", "**" if m[0] == "^" else m[0]), m.end()
    if text[pos] in "()":
        return Token(text[pos], text[pos]), pos + 1
    raise _error(claim, f"unexpected {text[pos:pos + 12]!r} at position {pos} of {text!r}")


# -- step 3: indices --------------------------------------------------------------------------


def _axis_sets(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Ways to write an index: every axis, only the spatial ones (when N and C are 1), or only
    the axes longer than 1."""
    full = tuple(range(len(shape)))
    sets = [full]
    if len(shape) > 2 and shape[0] == shape[1] == 1:
        sets.append(full[2:])
    sets.append(tuple(i for i in full if shape[i] > 1))
    return list(dict.fromkeys(sets))


def _long_axes(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(i for i, n in enumerate(shape) if n > 1)


def _dims(shape: tuple[int, ...], axes: Iterable[int]) -> str:
    return "×".join(str(shape[i]) for i in axes) or "1"


@dataclass(frozen=True)
class Reading:
    """How one reference was read: full 0-based index, and the notation, for printing back."""

    index: tuple[int, ...]
    flat: bool
    axes: tuple[int, ...]


class IndexProblem(ValueError):
    """An index that does not fit its array (the message names the reference)."""


def _read_multi(ref: Ref, shape: tuple[int, ...], parts: Sequence[str], base: int) -> Reading:
    noun = NOUN_OF_ROLE[ref.role]
    sets = {len(s): s for s in _axis_sets(shape)}
    if len(parts) not in sets:
        lengths = " or ".join(str(n) for n in sorted(sets) if n)
        raise IndexProblem(
            f"{ref.text} has {len(parts)} index entries, but the {_dims(shape, range(len(shape)))} "
            f"{noun} needs {lengths}"
        )
    axes = sets[len(parts)]
    index = [0] * len(shape)
    for axis, part in zip(axes, parts):
        value = int(part) - base
        if not 0 <= value < shape[axis]:
            raise IndexProblem(
                f"{ref.text} is outside the {_dims(shape, axes)} {noun} "
                f"(indices are {base}-based, axis length {shape[axis]})"
            )
        index[axis] = value
    return Reading(tuple(index), flat=False, axes=axes)


def _read_flat(ref: Ref, shape: tuple[int, ...], number: str, base: int) -> Reading:
    axes = _long_axes(shape)
    size = math.prod(shape[i] for i in axes)
    value = int(number) - base
    if not 0 <= value < size:
        raise IndexProblem(
            f"{ref.text} is outside the {_dims(shape, axes)} {NOUN_OF_ROLE[ref.role]} "
            f"(read as flat entry {number}; entries are {base}..{base + size - 1})"
        )
    index = [0] * len(shape)
    for axis in reversed(axes):
        value, index[axis] = divmod(value, shape[axis])
    return Reading(tuple(index), flat=True, axes=axes)


def _read(ref: Ref, shape: tuple[int, ...], style: str, base: int) -> Reading:
    """Read ``ref`` with digit strings taken per digit (style "multi") or whole ("flat")."""
    raw = ref.index
    if raw.kind == "none":
        if math.prod(shape) != 1:
            raise IndexProblem(
                f"{ref.text} needs an index, e.g. {ref.text}_12 or {ref.text}[0,1] "
                f"(the {NOUN_OF_ROLE[ref.role]} is {_dims(shape, range(len(shape)))}); "
                f"use * or · for multiplication"
            )
        return Reading((0,) * len(shape), flat=False, axes=())
    if raw.split:
        lengths = {len(s) for s in _axis_sets(shape)}
        if len(raw.parts) == 1 and len(raw.parts) not in lengths and style != "multi":
            return _read_flat(ref, shape, raw.parts[0], base)
        return _read_multi(ref, shape, raw.parts, base)
    if style == "multi":
        return _read_multi(ref, shape, tuple(raw.parts[0]), base)
    return _read_flat(ref, shape, raw.parts[0], base)


def _choose_style(refs: Sequence[Ref], shapes: Sequence[tuple[int, ...]], base_of) -> str:
    """The claim-wide reading of digit strings under ``index_style="auto"``.

    Only digit strings on arrays with two or more long axes are ambiguous. Multi wins when it
    reads all of them, then flat; when neither does, the one whose error is most telling is used
    (multi when the digit count matches the array, as a lecture reader would assume).
    """
    ambiguous = [
        (r, s) for r, s in zip(refs, shapes) if r.index.kind == "sub" and not r.index.split and len(_long_axes(s)) >= 2
    ]
    for style in ("multi", "flat"):
        try:
            for ref, shape in ambiguous:
                _read(ref, shape, style, base_of(ref))
        except IndexProblem:
            continue
        return style
    return "mixed"


def _auto_style_for(ref: Ref, shape: tuple[int, ...], claim_style: str) -> str:
    if len(_long_axes(shape)) < 2:
        return "flat"  # one long axis: the number is that axis, whatever its digit count
    if claim_style != "mixed":
        return claim_style
    lengths = {len(s) for s in _axis_sets(shape)}
    return "multi" if len(ref.index.parts[0]) in lengths else "flat"


# -- step 4: one claim --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Style:
    """How the learner writes one array: name, brackets or subscripts, flat or per axis, base."""

    head: str
    kind: str  # "bracket" | "sub"
    flat: bool
    base: int
    axes: tuple[int, ...] | str  # the axes written, or "full" / "long" (all axes / those > 1)


@dataclass
class _Notation:
    """The learner's notation per array ("X", "W", "b", "G"), to print terms back the same way;
    arrays the claim does not mention follow its left-hand side."""

    default: _Style
    arrays: dict[str, _Style] = field(default_factory=dict)

    def style(self, array: str) -> _Style:
        if array in self.arrays:
            return self.arrays[array]
        d = self.default
        if array == "G":
            head = "∂L/∂O" if d.kind == "sub" else "G"
        elif array == "W":
            head = "F" if d.kind == "sub" else "W"
        else:
            head = array
        return _Style(head, d.kind, d.flat, d.base, "full" if d.axes == "full" else "long")


class _Claim:
    """One claim parsed against one derivation."""

    def __init__(self, deriv: Derivation, claim: str, index_base: int | None, index_style: str) -> None:
        self.deriv, self.claim = deriv, claim
        self.index_base, self.index_style = index_base, index_style
        lhs_text, rhs_text = self._split(claim)
        self.lhs_tokens = _tokenize(claim, lhs_text)
        self.rhs_tokens = _tokenize(claim, rhs_text)
        self.lhs_text = lhs_text
        self.rhs_text = rhs_text
        if not self.rhs_tokens:
            raise _error(claim, "the right-hand side is empty (write 0 for a zero gradient)")
        if len(self.rhs_tokens) > MAX_TOKENS:
            raise _error(
                claim, f"the right-hand side is too long: {len(self.rhs_tokens)} tokens (names, numbers, "
                f"operators, parentheses), at most {MAX_TOKENS} are accepted"
            )
        self.target_ref = self._target_ref()
        self.readings = self._read_all()
        self.notation = self._notation()

    # -- splitting and the left-hand side --------------------------------------------------
    @staticmethod
    def _split(claim: str) -> tuple[str, str]:
        text = _normalise(claim)
        sides = text.split("=")
        if len(sides) != 2:
            raise _error(claim, f"a claim must be one equation 'LHS = RHS', but found {len(sides) - 1} '=' signs")
        return sides[0].strip(), sides[1].strip()

    def _target_ref(self) -> Ref:
        tokens = self.lhs_tokens
        if len(tokens) != 1 or tokens[0].kind != "ref" or not tokens[0].refs[0].gradient:
            raise _error(
                self.claim,
                f"the left-hand side must name one gradient entry such as dL/dX_12, dL/dF[0,1] or "
                f"dX[0,0,1,1], but got {self.lhs_text!r}",
            )
        ref = tokens[0].refs[0]
        if ref.role in ("output", "upstream"):
            raise _error(
                self.claim, f"{ref.text} is the upstream gradient (an input to backpropagation), not an entry to check"
            )
        return ref

    # -- indices ---------------------------------------------------------------------------
    def _all_refs(self) -> list[Ref]:
        refs = [self.target_ref]
        for token in self.rhs_tokens:
            refs.extend(token.refs)
        return refs

    def _shape(self, ref: Ref) -> tuple[int, ...]:
        spec = self.deriv.spec
        if ref.role == "bias":
            if not spec.bias:
                raise _error(self.claim, f"{ref.text}: the layer has no bias (ConvSpec(bias=False))")
            return spec.bias_shape
        return {"input": spec.input, "weight": spec.weight}.get(ref.role, spec.output)

    def _base(self, ref: Ref) -> int:
        if self.index_base is not None:
            return self.index_base
        return 0 if ref.index.kind == "bracket" else 1

    def _read_all(self) -> dict[Ref, Reading]:
        refs = self._all_refs()
        shapes = [self._shape(r) for r in refs]
        claim_style = self.index_style
        if claim_style == "auto":
            claim_style = _choose_style(refs, shapes, self._base)
        self.claim_style = claim_style
        readings: dict[Ref, Reading] = {}
        for ref, shape in zip(refs, shapes):
            style = self.index_style  # explicit axes: only a lone number may still read flat
            if style == "auto" and ref.index.kind == "sub" and not ref.index.split:
                style = _auto_style_for(ref, shape, claim_style)
            try:
                readings[ref] = _read(ref, shape, style, self._base(ref))
            except IndexProblem as problem:
                raise _error(self.claim, str(problem)) from None
        return readings

    # -- symbols and expressions -----------------------------------------------------------
    def _symbol(self, ref: Ref) -> sp.Symbol:
        if ref.role == "output" and not ref.gradient:
            raise _error(
                self.claim,
                f"{ref.text} is the layer's output, which its gradients do not contain; "
                f"write dL/d{ref.text} for the upstream gradient",
            )
        if ref.gradient and ref.role == "upstream":
            raise _error(
                self.claim, f"{ref.text}: {ref.letter} already is the upstream gradient dL/dO; write {ref.letter} alone"
            )
        if ref.gradient and ref.role != "output":
            raise _error(
                self.claim,
                f"{ref.text} may only appear on the left-hand side; the right-hand side is made of "
                f"the upstream gradient dL/dO and the layer's inputs and weights",
            )
        array = getattr(self.deriv, ARRAY_OF_ROLE[ref.role])
        return array[self.readings[ref].index]

    def _local(self, num: Ref, den: Ref) -> sp.Expr:
        if den.role not in ("input", "weight", "bias"):
            raise _error(self.claim, f"∂{num.text}/∂{den.text}: differentiate by an input, weight or bias entry")
        out = self.readings[num].index
        array = getattr(self.deriv, ARRAY_OF_ROLE[den.role])
        return self.deriv.local[out].get(array[self.readings[den].index], sp.Integer(0))

    def expected(self) -> sp.Expr:
        name = GRADIENT_OF_ARRAY[ARRAY_OF_ROLE[self.target_ref.role]]
        return sp.sympify(getattr(self.deriv, name)[self.readings[self.target_ref].index])

    def target(self) -> str:
        name = GRADIENT_OF_ARRAY[ARRAY_OF_ROLE[self.target_ref.role]]
        return f"{name}[{','.join(map(str, self.readings[self.target_ref].index))}]"

    def given(self) -> sp.Expr:
        """The right-hand side as a SymPy expression: placeholders for names, '*' for
        juxtaposition, then ``parse_expr`` on text that holds nothing the learner typed but
        numbers and operators."""
        values: dict[str, sp.Expr] = {}
        pieces: list[str] = []
        previous = None
        for token in self.rhs_tokens:
            if previous in ("ref", "local", "num", ")") and token.kind in ("ref", "local", "num", "("):
                pieces.append("*")
            if token.kind == "ref":
                values[f"v{len(values)}"] = self._symbol(token.refs[0])
                pieces.append(f"v{len(values) - 1}")
            elif token.kind == "local":
                values[f"v{len(values)}"] = self._local(*token.refs)
                pieces.append(f"v{len(values) - 1}")
            else:
                pieces.append(token.text)
            previous = token.kind
        self._check_powers()
        try:
            expr = parse_expr(
                " ".join(pieces), local_dict=values, global_dict=_PARSE_GLOBALS,
                transformations=standard_transformations,
            )
        except (SyntaxError, TypeError, tokenize.TokenError) as exc:
            raise _error(
                self.claim, f"the right-hand side {self.rhs_text!r} is not a valid expression ({type(exc).__name__})"
            ) from None
        except (RecursionError, MemoryError):  # nesting deeper than the token limit alone prevents
            raise _error(self.claim, "the right-hand side is nested too deeply to be read") from None
        expr = sp.sympify(expr)
        if expr.has(sp.zoo, sp.oo, sp.nan):
            raise _error(self.claim, f"the right-hand side {self.rhs_text!r} divides by zero")
        return expr

    def _check_powers(self) -> None:
        """Exponents must be small integers: gradients of a convolution have no powers, and a
        large one would make the expansion explode."""
        tokens = self.rhs_tokens

        def is_power(index: int) -> bool:
            return index < len(tokens) and tokens[index].kind == "op" and tokens[index].text in ("**", "^")

        for i, token in enumerate(tokens):
            if is_power(i):
                after = tokens[i + 1] if i + 1 < len(tokens) else None
                chained = is_power(i + 2)  # a**9**9 is a**(9**9): a tower, refused
                if (
                    after is None or after.kind != "num" or not after.text.isdigit()
                    or int(after.text) > MAX_POWER or chained
                ):
                    raise _error(
                        self.claim, f"exponents must be whole numbers up to {MAX_POWER}, in {self.rhs_text!r}"
                    )

    # -- the learner's notation --------------------------------------------------------------
    def _notation(self) -> _Notation:
        target = self.readings[self.target_ref]
        full = self.target_ref.index.kind == "bracket" and len(target.axes) == len(target.index)
        default = _Style(
            head="",
            kind="bracket" if self.target_ref.index.kind == "bracket" else "sub",
            flat=self.claim_style == "flat",
            base=self._base(self.target_ref),
            axes="full" if full else "long",
        )
        notation = _Notation(default)
        for ref, reading in self.readings.items():
            array = ARRAY_OF_ROLE[ref.role]
            if array in notation.arrays or ref.index.kind == "none":
                continue
            kind = "bracket" if ref.index.kind == "bracket" else "sub"
            head = ref.letter
            if ref.gradient and ref is not self.target_ref:
                head = f"∂L/∂{ref.letter}" if kind == "sub" else ref.text.split("[")[0]
            notation.arrays[array] = _Style(head, kind, reading.flat, self._base(ref), reading.axes)
        return notation


_PARSE_GLOBALS = {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol}


# -- step 5: compare and explain -----------------------------------------------------------------


def _coefficients(expr: sp.Expr) -> dict[sp.Expr, sp.Expr]:
    """Monomial -> coefficient of the expanded expression."""
    out: dict[sp.Expr, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        if term == 0:
            continue
        coeff, monomial = term.as_coeff_Mul()
        out[monomial] = out.get(monomial, sp.Integer(0)) + coeff
    return out


def compare(expected: sp.Expr, given: sp.Expr) -> tuple[list[sp.Expr], list[sp.Expr], list[tuple]]:
    """Missing terms, extra terms and wrong coefficients of ``given`` against ``expected``."""
    want, have = _coefficients(expected), _coefficients(given)
    missing, extra, wrong = [], [], []
    for monomial in sorted(set(want) | set(have), key=sp.default_sort_key):
        e, g = want.get(monomial, sp.Integer(0)), have.get(monomial, sp.Integer(0))
        difference = g - e
        if difference == 0:
            continue
        if e != 0 and g != 0:
            wrong.append((monomial, g, e))
        (extra if difference > 0 else missing).append(abs(difference) * monomial)
    return missing, extra, wrong


_SYMBOL_NAME = re.compile(r"([A-Za-z]+)\[([0-9,]*)\]")
_FACTOR_ORDER = {"G": 0, "W": 1, "X": 2, "b": 3}


def _format_index(style: _Style, index: tuple[int, ...], shape: tuple[int, ...]) -> str:
    if style.flat:
        number = 0
        for axis in _long_axes(shape):
            number = number * shape[axis] + index[axis]
        values = [number + style.base]
    else:
        axes = {"full": tuple(range(len(shape))), "long": _long_axes(shape)}.get(style.axes, style.axes)
        values = [index[a] + style.base for a in axes]
    if not values:
        return ""
    if style.kind == "bracket":
        return "[" + ",".join(map(str, values)) + "]"
    joiner = "" if max(values) < 10 or len(values) == 1 else ","
    return joiner.join(str(v) for v in values).translate(_TO_SUB)


def render_term(term: sp.Expr, notation: _Notation, shapes: Mapping[str, tuple[int, ...]]) -> str:
    """A term such as ``G[0,0,0,1]*W[0,0,1,0]`` written the learner's way: ``∂L/∂O₁₂·F₂₁``."""
    coeff, monomial = term.as_coeff_Mul()
    if monomial == 1:
        return str(coeff).replace("-", "−")
    factors = []
    for base, power in sorted(
        monomial.as_powers_dict().items(), key=lambda bp: (_FACTOR_ORDER.get(str(bp[0])[:1], 9), str(bp[0]))
    ):
        m = _SYMBOL_NAME.fullmatch(str(base))
        if m is None or m[1] not in shapes:
            text = str(base)
        else:
            index = tuple(int(v) for v in m[2].split(",")) if m[2] else ()
            style = notation.style(m[1])
            text = style.head + _format_index(style, index, shapes[m[1]])
        factors.append(text if power == 1 else f"({text})^{power}")
    body = "·".join(factors)
    if coeff == 1:
        return body
    if coeff == -1:
        return "−" + body
    return f"{coeff}·{body}".replace("-", "−")


def _message(missing, extra, wrong, notation: _Notation, shapes) -> str:
    if not (missing or extra):
        return "correct"
    wrong_monomials = {m for m, _, _ in wrong}

    def plain(terms):
        return [render_term(t, notation, shapes) for t in terms if t.as_coeff_Mul()[1] not in wrong_monomials]

    parts = []
    if names := plain(missing):
        parts.append("missing: " + " + ".join(names))
    if names := plain(extra):
        parts.append("extra: " + " + ".join(names))
    for monomial, g, e in wrong:
        parts.append(
            f"wrong coefficient: {render_term(g * monomial, notation, shapes)} "
            f"(should be {render_term(e * monomial, notation, shapes)})"
        )
    return "; ".join(parts)


# -- the entry point ------------------------------------------------------------------------------


#: How much of a claim an error message quotes (a refused claim can be arbitrarily long).
QUOTE_CHARS = 200


def _error(claim: str, problem: str) -> ValueError:
    shown = repr(claim) if len(claim) <= QUOTE_CHARS else f"{claim[:QUOTE_CHARS]!r}… ({len(claim)} characters)"
    return ValueError(f"claim {shown}: {problem}")


def _claim_list(claims: Sequence[str] | Mapping[str, str] | str) -> list[str]:
    """Claims from a string (one per line; a LaTeX ``aligned`` block also splits at ``\\\\``), a
    sequence of strings, or a mapping ``{lhs: rhs}``."""
    if isinstance(claims, Mapping):
        items = [f"{lhs} = {rhs}" for lhs, rhs in claims.items()]
    elif isinstance(claims, str):
        text = re.sub(r"\\(?:begin|end)\{[a-z*]+\}|\$\$", "\n", claims)
        items = re.split(r"\n|\\\\", text)
    elif isinstance(claims, Sequence) and all(isinstance(c, str) for c in claims):
        items = list(claims)
    else:
        raise TypeError(f"claims must be a string, a sequence of strings or a mapping, but got {type(claims).__name__}")
    out = [c.strip() for c in items if c.strip() and not c.strip().startswith("#")]
    if not out:
        raise ValueError("claims must contain at least one 'LHS = RHS' line, but got none")
    return out


def _shapes(spec: ConvSpec) -> dict[str, tuple[int, ...]]:
    shapes = {"X": spec.input, "W": spec.weight, "G": spec.output}
    if spec.bias:
        shapes["b"] = spec.bias_shape
    return shapes


def _check_options(index_base: int | None, index_style: str) -> None:
    if index_style not in INDEX_STYLES:
        raise ValueError(f"index_style must be one of {', '.join(map(repr, INDEX_STYLES))}, but got {index_style!r}")
    if index_base not in (None, 0, 1):
        raise ValueError(f"index_base must be 0, 1 or None (0 for brackets, 1 for subscripts), but got {index_base!r}")


def check_one(deriv: Derivation, claim: str, *, index_base: int | None = None, index_style: str = "auto") -> Verdict:
    """The verdict on one claim ``LHS = RHS`` (see the module docstring for the notation)."""
    _check_options(index_base, index_style)
    parsed = _Claim(deriv, claim, index_base, index_style)
    expected, given = parsed.expected(), parsed.given()
    missing, extra, wrong = compare(expected, given)
    shapes = _shapes(deriv.spec)
    return Verdict(
        claim=claim,
        target=parsed.target(),
        ok=not (missing or extra),
        missing=missing,
        extra=extra,
        expected=expected,
        given=given,
        message=_message(missing, extra, wrong, parsed.notation, shapes),
        lhs=parsed.lhs_text,
        wrong=wrong,
    )


def check_claims(
    spec: ConvSpec | Derivation,
    claims: Sequence[str] | Mapping[str, str] | str,
    *,
    index_base: int | None = None,
    index_style: str = "auto",
) -> CheckResult:
    """Check claimed gradient entries against the derivation of ``spec``.

    ``claims``: one claim, several (a sequence, or one string with one claim per line), or a
    mapping ``{lhs: rhs}``. ``index_base``: 0 or 1 for every index (default: 0 in brackets, 1 in
    subscripts). ``index_style``: "multi", "flat" or "auto" (see the module docstring).

    >>> r = check_claims(ConvSpec((1, 1, 3, 3), (1, 1, 2, 2)), "dL/dX_11 = dL/dO_11*F_11")
    >>> r.ok, r.verdicts[0].target
    (True, 'dX[0,0,0,0]')
    """
    if isinstance(spec, Derivation):
        deriv = spec
    elif isinstance(spec, ConvSpec):
        deriv = derive(spec)
    else:
        raise TypeError(f"spec must be a ConvSpec or a Derivation, but got {type(spec).__name__}")
    _check_options(index_base, index_style)
    return CheckResult(
        [check_one(deriv, c, index_base=index_base, index_style=index_style) for c in _claim_list(claims)]
    )
