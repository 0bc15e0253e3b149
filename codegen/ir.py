"""The kernel description that C is rendered from: plain, frozen data (str and int only).

A :class:`Module` is one layer's set of kernels; each :class:`Kernel` is one loop nest that
computes every entry of one output array as

    for <free loops>:                    # one output entry per iteration
        acc = init
        for <reduction loops>:           # with guards: skip iterations that read nothing
            acc += term
        target = acc

so every output entry is written exactly once, and entries that no term reaches get ``init``.
Index expressions and guards are already C text here (printed by SymPy in ``symconv.lower``);
nothing in this package knows about SymPy or about convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Macro:
    """A compile-time size: ``#define name value`` with a comment saying what it is."""

    name: str
    value: int
    doc: str


@dataclass(frozen=True)
class Tensor:
    """One array layout: ``index`` names the axes in memory order, last varies fastest."""

    role: str  # "input", "weight", "bias" or "output"
    index: str  # e.g. "X[n][c][y][x]"
    shape: tuple[int, ...]
    size_macro: str  # the macro holding the number of elements

    @property
    def size(self) -> int:
        total = 1
        for extent in self.shape:
            total *= extent
        return total


@dataclass(frozen=True)
class Arg:
    """A pointer argument of a kernel: which tensor it holds, and whether it is written."""

    name: str
    tensor: str  # a Tensor.role
    output: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Loop:
    """``for var in lo..hi`` (inclusive), skipping iterations where not all ``guards`` hold.

    ``extent`` optionally names the macro equal to ``hi - lo + 1``, so the C can say
    ``i < OUT_H`` instead of a bare number. Guards are C boolean expressions whose variables
    are bound at this loop or outside it.
    """

    var: str
    lo: int
    hi: int
    extent: str = ""
    guards: tuple[str, ...] = ()

    @property
    def trips(self) -> int:
        return self.hi - self.lo + 1


@dataclass(frozen=True)
class Kernel:
    """One loop nest: ``loops[:reduce_at]`` pick the output entry, the rest sum into it.

    ``parallel`` leading loops are independent (each iteration writes its own outputs) and may
    run in parallel. ``unused`` lists arguments the body does not read (kept for a uniform
    signature).
    """

    name: str  # "forward", "grad_input", "grad_weight" or "grad_bias"
    title: str  # one line: what the kernel computes
    formula: tuple[str, ...]  # the general index form, for the comment above the function
    args: tuple[Arg, ...]
    loops: tuple[Loop, ...]
    reduce_at: int
    parallel: int
    init: str  # C expression the accumulator starts from
    term: str  # C expression added once per reduction iteration
    target: str  # C lvalue the accumulator is stored to
    unused: tuple[str, ...] = ()

    @property
    def free_loops(self) -> tuple[Loop, ...]:
        return self.loops[: self.reduce_at]

    @property
    def sum_loops(self) -> tuple[Loop, ...]:
        return self.loops[self.reduce_at :]

    def pretty(self) -> str:
        """The loop nest as indented pseudo-code (what the C will do, without the C syntax)."""
        lines = [f"kernel {self.name}({', '.join(a.name for a in self.args)})  # {self.title}"]
        depth = 1
        for position, loop in enumerate(self.loops):
            if position == self.reduce_at:
                lines.append("  " * depth + f"acc = {self.init}")
            mark = "parallel for" if position < self.parallel else "for"
            guard = f"  if {' and '.join(loop.guards)}" if loop.guards else ""
            lines.append("  " * depth + f"{mark} {loop.var} in {loop.lo}..{loop.hi}{guard}")
            depth += 1
        if self.reduce_at == len(self.loops):
            lines.append("  " * depth + f"acc = {self.init}")
        lines.append("  " * depth + f"acc += {self.term}")
        lines.append("  " * (self.reduce_at + 1) + f"{self.target} = acc")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.pretty()


@dataclass(frozen=True)
class Module:
    """All kernels of one layer, for one element type (``ctype`` is "float" or "double")."""

    name: str  # C identifier, prefix of every function
    ctype: str
    layer: str  # one line describing the layer
    macros: tuple[Macro, ...]
    tensors: tuple[Tensor, ...]
    kernels: tuple[Kernel, ...]

    def kernel(self, name: str) -> Kernel:
        for kernel in self.kernels:
            if kernel.name == name:
                return kernel
        raise KeyError(f"module {self.name} has no kernel {name!r}; it has {[k.name for k in self.kernels]}")

    def tensor(self, role: str) -> Tensor:
        for tensor in self.tensors:
            if tensor.role == role:
                return tensor
        raise KeyError(f"module {self.name} has no tensor {role!r}")

    def pretty(self) -> str:
        sizes = ", ".join(f"{m.name}={m.value}" for m in self.macros)
        head = [f"module {self.name} ({self.ctype}): {self.layer}", f"  sizes: {sizes}"]
        return "\n\n".join(["\n".join(head), *(k.pretty() for k in self.kernels)])

    def __str__(self) -> str:
        return self.pretty()
