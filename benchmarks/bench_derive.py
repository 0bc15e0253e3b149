"""How long the symbolic core takes: element-wise derivation, proof, and the general form.

    python benchmarks/bench_derive.py              # the table (Markdown)
    python benchmarks/bench_derive.py --profile    # plus where verify() of the 1×3×8×8 layer spends its time

Every run starts from a fresh ``Derivation`` (its arrays are cached on the object) and an empty
SymPy expression cache (otherwise a repeated small derivation is answered from it); the "cold"
rows also clear the cache of symbolic general forms, so each of them is what a first call in a
new process would cost (minus imports). Figures are medians over several runs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed

from sympy.core.cache import clear_cache  # noqa: E402

from symconv import ConvSpec, derive  # noqa: E402
from symconv.general import symbolic_forms  # noqa: E402

LECTURE = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
SMALL = ConvSpec(input=(1, 3, 8, 8), weight=(4, 3, 3, 3))
RESNET = ConvSpec(input=(8, 64, 56, 56), weight=(64, 64, 3, 3), padding=1)


@dataclass(frozen=True)
class Case:
    name: str
    spec: ConvSpec
    run: Callable[[ConvSpec], object]
    cold: bool  # clear the symbolic-form cache before every run
    repeats: int


def elementwise(spec: ConvSpec) -> object:
    """derive + every element-wise array (symbols, O, local gradients, dX, dW, db)."""
    d = derive(spec)
    d.arrays()
    return d.local


def verify(spec: ConvSpec) -> object:
    result = derive(spec).verify()
    if not result.ok:
        raise SystemExit(f"verify failed on {spec.describe()}:\n{result.report()}")
    return result


def general(spec: ConvSpec) -> object:
    return derive(spec).general()


CASES = [
    Case("derive + element-wise arrays", LECTURE, elementwise, cold=False, repeats=9),
    Case("derive + element-wise arrays", SMALL, elementwise, cold=False, repeats=5),
    Case("verify(), symbolic forms cached", LECTURE, verify, cold=False, repeats=7),
    Case("verify(), cold", LECTURE, verify, cold=True, repeats=5),
    Case("verify(), symbolic forms cached", SMALL, verify, cold=False, repeats=3),
    Case("verify(), cold", SMALL, verify, cold=True, repeats=3),
    Case("general(), cold", RESNET, general, cold=True, repeats=5),
    Case("general(), symbolic forms cached", RESNET, general, cold=False, repeats=9),
]


def measure(case: Case, repeats: int) -> list[float]:
    case.run(case.spec)  # warm imports and, for the cached rows, the symbolic forms
    times = []
    for _ in range(repeats):
        if case.cold:
            symbolic_forms.cache_clear()
        clear_cache()
        start = time.perf_counter()
        case.run(case.spec)
        times.append(time.perf_counter() - start)
    return times


def shape(spec: ConvSpec) -> str:
    return "×".join(map(str, spec.input)) + " / " + "×".join(map(str, spec.weight))


def seconds(value: float) -> str:
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def table(repeat_override: int | None) -> str:
    lines = ["| what | layer (input / weight) | runs | median | min |", "|---|---|---:|---:|---:|"]
    for case in CASES:
        times = measure(case, repeat_override or case.repeats)
        lines.append(
            f"| {case.name} | {shape(case.spec)} | {len(times)} | "
            f"{seconds(statistics.median(times))} | {seconds(min(times))} |"
        )
    return "\n".join(lines)


def profile(spec: ConvSpec, top: int) -> str:
    """cProfile of one verify() from a fresh derivation (symbolic forms cached)."""
    derive(spec).verify()
    clear_cache()
    profiler = cProfile.Profile()
    profiler.enable()
    derive(spec).verify()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="runs per row (default: per row)")
    parser.add_argument("--profile", action="store_true", help="profile verify() of the 1×3×8×8 layer")
    parser.add_argument("--top", type=int, default=25, help="rows of the profile to print")
    args = parser.parse_args(argv)
    print(table(args.repeats))
    if args.profile:
        print()
        print(f"## verify() of {shape(SMALL)}: profile\n")
        print("```")
        print(profile(SMALL, args.top))
        print("```")


if __name__ == "__main__":
    main()
