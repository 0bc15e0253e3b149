"""The main job on one layer, end to end, as a short report.

derive → verify → generate → compile → run: SymPy derives the gradients and proves them, the
general form becomes C, the C is compiled (or found in the cache) and run on random numbers, and
its results are compared with the SymPy expressions evaluated at the same numbers (and with
PyTorch, where installed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TextIO

import numpy as np
import sympy as sp

from .derive import Derivation
from .render.model import EquationSection, build_page
from .render.text import TextPage
from .spec import ConvSpec

LECTURE_EXAMPLE = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))

#: float32 kernels against exact SymPy values: relative tolerance per dtype.
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


@dataclass
class Step:
    """One stage of the report: its name, how long it took, and what it has to say."""

    name: str
    seconds: float
    lines: list[str]


def timed(name: str, work: Callable[[], list[str]]) -> Step:
    start = time.perf_counter()
    lines = work()
    return Step(name, time.perf_counter() - start, lines)


def page_lines(d: Derivation) -> tuple[list[str], list[str]]:
    """From the derivation page: the forward equations, and the identity line of each gradient."""
    page = build_page(d, wrt="all")
    text = TextPage(page)
    forward, identities = [page.layer], []
    for section in page.sections:
        if not isinstance(section, EquationSection):
            continue
        if section.key == "forward":
            for row in section.rows:
                for equation in row:
                    forward += [line.strip() for line in text.equation_lines(equation.equation)]
        if section.identity is not None:
            identities.append(text.identity(section.identity)[0].strip())
    return forward, identities


def evaluate(exprs: np.ndarray, values: dict[sp.Symbol, float]) -> np.ndarray:
    """A SymPy expression array evaluated exactly at ``values``, as float64."""
    flat = [float(sp.sympify(e).xreplace(values)) for e in exprs.ravel()]
    return np.array(flat, dtype=np.float64).reshape(exprs.shape)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1.0)
    return float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0)) / scale


def random_inputs(d: Derivation, dtype: str, seed: int) -> dict[str, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray | None] = {}
    for name in ("X", "W", "b", "G"):
        symbols = getattr(d, name)
        arrays[name] = None if symbols is None else rng.standard_normal(symbols.shape).astype(dtype)
    return arrays


def run_kernels(kernel, arrays) -> dict[str, np.ndarray | None]:
    x, w, b, g = (arrays[k] for k in ("X", "W", "b", "G"))
    dx, dw, db = kernel.backward(x, w, g)
    return {"O": kernel.forward(x, w, b), "dX": dx, "dW": dw, "db": db}


def torch_results(spec: ConvSpec, arrays) -> dict[str, np.ndarray | None] | None:
    """The same layer in PyTorch (float64), or None if PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[spec.rank]
    t = {k: None if v is None else torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in arrays.items()}
    # PyTorch's conv pads symmetrically only: pad explicitly, (lo, hi) per axis, last axis first
    pads = [p for lo_hi in reversed(spec.padding) for p in lo_hi]
    padded = torch.nn.functional.pad(t["X"], pads)
    out = conv(padded, t["W"], t["b"], stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    out.backward(t["G"])
    return {
        "O": out.detach().numpy(),
        "dX": t["X"].grad.numpy(),
        "dW": t["W"].grad.numpy(),
        "db": None if t["b"] is None else t["b"].grad.numpy(),
    }


def compare(results, reference, dtype: str) -> tuple[bool, list[str]]:
    tolerance = TOLERANCE[dtype]
    ok, parts = True, []
    for name in ("O", "dX", "dW", "db"):
        if reference.get(name) is None:
            continue
        error = relative_error(results[name], reference[name])
        ok &= error <= tolerance
        parts.append(f"{name} {error:.1e}")
    return ok, parts


def run_demo(spec: ConvSpec = LECTURE_EXAMPLE, dtype: str = "float32", seed: int = 0,
             out: TextIO | None = None) -> int:
    """Print the report; 0 if every stage succeeded and every comparison agreed, else 1."""
    import sys

    from . import pipeline

    out = out or sys.stdout
    d = pipeline.derive_stage(spec)
    state: dict = {}

    def derive() -> list[str]:
        arrays = [d.O, d.dX, d.dW] + ([d.db] if spec.bias else [])
        pipeline.general_stage(d)
        return [f"{sum(a.size for a in arrays)} equations derived element-wise, and the general index form"]

    def verify() -> list[str]:
        result = d.verify()
        state["proven"] = result.ok
        forward, identities = page_lines(d)
        derive_step.lines[1:1] = forward  # shown under "derive", computed once proven
        general = [c for c in result.checks if c.name == "general"]
        return identities + [("✓ " if c.ok else "✗ ") + c.statement for c in general]

    def generate() -> list[str]:
        state["csource"] = csource = pipeline.render_stage(pipeline.lower_stage(spec, dtype))
        kernels = ", ".join(csource.functions)
        return [f"{len(csource.source.splitlines())} lines of C, kernels: {kernels}"]

    def compile_() -> list[str]:
        state["extension"] = extension = pipeline.build_stage(state["csource"])
        state["kernel"] = pipeline.kernel_stage(spec, dtype, state["csource"], extension)
        return [f"module {extension.path}"]

    def run() -> list[str]:
        arrays = random_inputs(d, dtype, seed)
        results = run_kernels(state["kernel"], arrays)
        values = {}
        for name in ("X", "W", "b", "G"):
            if arrays[name] is not None:
                values.update(zip(getattr(d, name).ravel(), arrays[name].astype(np.float64).ravel()))
        exact = {name: None if getattr(d, name) is None else evaluate(getattr(d, name), values)
                 for name in ("O", "dX", "dW", "db")}
        ok, parts = compare(results, exact, dtype)
        lines = [f"{'✓' if ok else '✗'} C kernels ({dtype}) vs the SymPy expressions, max relative error: "
                 + ", ".join(parts)]
        torch_ref = torch_results(spec, arrays)
        if torch_ref is None:
            lines.append("  PyTorch not installed: second reference skipped")
        else:
            torch_ok, parts = compare(results, torch_ref, dtype)
            ok &= torch_ok
            lines.append(f"{'✓' if torch_ok else '✗'} C kernels vs PyTorch (float64): " + ", ".join(parts))
        state["agree"] = ok
        return lines

    derive_step = timed("derive", derive)
    steps = [derive_step, timed("verify", verify), timed("generate", generate), timed("compile", compile_),
             timed("run", run)]
    print("symconv demo: derive → verify → generate → compile → run", file=out)
    for step in steps:
        head = f"{step.name:<9} ({step.seconds:5.2f} s)"
        for i, line in enumerate(step.lines):
            print(f"{head if i == 0 else ' ' * len(head)}  {line}", file=out)
    ok = state.get("proven", False) and state.get("agree", False)
    print("All stages passed." if ok else "Something did NOT agree: see the ✗ lines above.", file=out)
    return 0 if ok else 1
