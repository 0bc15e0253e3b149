"""What the compiler made of the register tiles: vector FMAs and stack spills in the hot loops.

    python benchmarks/asm_check.py                              # every suite shape
    python benchmarks/asm_check.py --shapes resnet_3x3_56,vgg_3x3_28
    python benchmarks/asm_check.py --target avx2                # another CPU's tiles (default: this one's)

For each suite shape the layer's C is rendered, compiled to assembly with the kernels' own flags
(``codegen.build.toolchain()``) and every tile function (``*_tile_*``) is inspected: its hot loop
is the innermost loop (a label and the backward jump to it) that holds multiply-adds; so are the
row-vectorised passes (the kernel function itself, and the weight gradient's ``*_task_*``). Printed per
function: the multiply-adds on full-width vector registers in that loop (zmm on AVX-512, else ymm
or xmm), and the vector loads/stores between registers and the stack inside it (spills: each one
is memory traffic the register tile was meant to avoid) and the copies from one vector register
to another (the compiler shuffling accumulators: each takes an execution port the multiply-adds
need). A diagnostic, not a test: it asserts
nothing and its output depends on the compiler and the CPU.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codegen import ir  # noqa: E402
from codegen.build import toolchain  # noqa: E402
from codegen.render import render_module  # noqa: E402
from symconv.lower import lower  # noqa: E402
from symconv.pipeline import native_target  # noqa: E402
from symconv.target import TARGETS, Target  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import SHAPES, SUITE  # noqa: E402

FUNCTION = re.compile(r"^([A-Za-z_][\w.]*):\s*$")
LABEL = re.compile(r"^(\.L\w+):\s*$")
JUMP = re.compile(r"^\s+j\w+\s+(\.L\w+)\s*$")
FMA = re.compile(r"\bvf(n)?m(add|sub)\w*\s")
STACK = re.compile(r"\((%rsp|%rbp)(,[^)]*)?\)")
COPY = re.compile(r"^\s+vmov\w*\s+%([xyz]mm)\d+, %\1\d+\s*$")


@dataclass(frozen=True)
class LoopReport:
    function: str
    register: str  # the widest vector register the loop's multiply-adds use
    fmas: int  # multiply-adds in the hot loop
    spills: int  # vector register <-> stack moves in the hot loop
    moves: int  # vector register -> register copies in the hot loop
    lines: int  # instructions in the hot loop


def functions(assembly: str) -> dict[str, list[str]]:
    """Assembly lines per function (from its label to the next function label)."""
    found: dict[str, list[str]] = {}
    current = None
    for line in assembly.splitlines():
        match = FUNCTION.match(line)
        if match and not line.startswith("."):
            current = match.group(1)
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


def hot_loop(lines: Sequence[str]) -> list[str]:
    """The busiest innermost loop with multiply-adds on the widest vectors the function uses.

    Candidates are label..back-jump ranges holding such multiply-adds (scalar border loops do
    not count); innermost ones contain no other candidate; of those, the one with the most
    multiply-adds is the hot loop (a tile's small edge loops hold fewer)."""
    fmas = [line for line in lines if FMA.search(line)]
    widest = next((r for r in ("zmm", "ymm", "xmm") if any(f"%{r}" in line for line in fmas)), "")
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := LABEL.match(line))}

    def wide_fmas(start: int, end: int) -> int:
        return sum(
            1 for b in lines[start : end + 1]
            if FMA.search(b) and f"%{widest}" in b and not b.rstrip().endswith("ss")
        )

    loops = []
    for end, line in enumerate(lines):
        jump = JUMP.match(line)
        if jump and jump.group(1) in labels and labels[jump.group(1)] <= end:
            start = labels[jump.group(1)]
            if wide_fmas(start, end):
                loops.append((start, end))
    innermost = [
        (a, b) for a, b in loops
        if not any((c, d) != (a, b) and a <= c and d <= b for c, d in loops)
    ]
    if not innermost:
        return []
    start, end = max(innermost, key=lambda loop: (wide_fmas(*loop), -(loop[1] - loop[0])))
    return list(lines[start : end + 1])


def inspect(name: str, lines: Sequence[str]) -> LoopReport:
    loop = hot_loop(lines)
    fmas = [line for line in loop if FMA.search(line)]
    register = next((r for r in ("zmm", "ymm", "xmm") if any(f"%{r}" in line for line in fmas)), "-")
    wide = [line for line in fmas if f"%{register}" in line]
    spills = [line for line in loop if f"%{register}" in line and STACK.search(line) and not FMA.search(line)]
    spills += [line for line in wide if STACK.search(line)]  # a multiply-add reading a spilled sum
    copies = [line for line in loop if COPY.match(line) and f"%{register}" in line]
    instructions = [line for line in loop if line.startswith("\t") and not line.lstrip().startswith(".")]
    return LoopReport(name, register, len(wide), len(spills), len(copies), len(instructions))


def compile_to_assembly(source: str) -> str:
    tools = toolchain()
    flags = [f for f in tools.flags if f not in ("-shared", "-fPIC") and not f.startswith("-fsanitize")]
    with tempfile.TemporaryDirectory(prefix="symconv-asm-") as tmp:
        c_path, s_path = Path(tmp) / "layer.c", Path(tmp) / "layer.s"
        c_path.write_text(source)
        done = subprocess.run([*tools.compiler, *flags, "-S", str(c_path), "-o", str(s_path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"compiler failed:\n{done.stderr}")
        return s_path.read_text()


def report_shape(shape_name: str, dtype: str, target: Target) -> list[LoopReport]:
    module = lower(SHAPES[shape_name].spec(), dtype, target=target)
    source = render_module(module).source
    assembly = compile_to_assembly(source)
    # register tiles are functions of their own; a row-vectorised pass is the kernel function
    rows = {f"{module.name}_{plan.kernel}" for plan in module.blocked if isinstance(plan, ir.RowVector)}
    found = []
    for name, lines in functions(assembly).items():
        if "_tile_" in name or "_task_" in name:
            found.append(inspect(name, lines))
        elif name.split("._omp_fn")[0] in rows and any(FMA.search(line) for line in lines):
            found.append(inspect(name, lines))  # the body (outlined by OpenMP when threaded)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(s.name for s in SUITE), help="comma-separated names")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--target", default="native", choices=("native", *TARGETS),
                        help="whose register tiles (default: this CPU's)")
    args = parser.parse_args(argv)
    target = native_target() if args.target == "native" else TARGETS[args.target]
    names = [n for n in args.shapes.split(",") if n]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        parser.error(f"--shapes must be among {sorted(SHAPES)}, but got {unknown}")
    print(f"flags: {' '.join(toolchain().flags)}; tiles for {target.name}\n")
    print("| shape | tile function | vector | FMAs in hot loop | spills | register copies | instructions |")
    print("|:--|:--|:--|--:|--:|--:|--:|")
    for name in names:
        reports = report_shape(name, args.dtype, target)
        if not reports:
            print(f"| {name} | (no tiled pass) | | | | | |")
        for r in reports:
            short = r.function.split("_f32_")[-1].split("_f64_")[-1]
            print(f"| {name} | {short} | {r.register} | {r.fmas} | {r.spills} | {r.moves} | {r.lines} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
