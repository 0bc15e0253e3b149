"""Benchmarks of the generated kernels: build, cache, call overhead, and speed next to PyTorch.

    python benchmarks/bench_codegen.py            # everything (about a minute on 2 cores)
    python benchmarks/bench_codegen.py --quick    # fewer repetitions
    python benchmarks/bench_codegen.py --threads 1   # both libraries on one thread

Prints Markdown tables. Build and cache figures come from fresh processes with a fresh cache
directory, as a user meets them; layer timings are the best of several repetitions, both
libraries on the same number of threads, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from codegen.build import toolchain  # noqa: E402
from codegen.kernel import default_num_threads  # noqa: E402
from symconv.api import build  # noqa: E402
from symconv.spec import ConvSpec  # noqa: E402

#: The layers timed, by name: (spec, dtype).
LAYERS = {
    "lecture 3×3 ⋆ 2×2": ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)),
    "LeNet C1 64×1×28×28 → 6×5×5": ConvSpec(input=(64, 1, 28, 28), weight=(6, 1, 5, 5), bias=True),
    "LeNet C3 64×6×14×14 → 16×5×5": ConvSpec(input=(64, 6, 14, 14), weight=(16, 6, 5, 5), bias=True),
    "3×3 32×32×32×32 → 32, pad 1": ConvSpec(input=(32, 32, 32, 32), weight=(32, 32, 3, 3), padding=1, bias=True),
}

# A process that builds layers and reports how long each stage took.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    from symconv import pipeline
    from symconv.api import build
    from symconv.spec import ConvSpec
    t1 = time.perf_counter()
    report = {"import_s": t1 - t0, "layers": []}
    for spec_dict in json.loads(sys.argv[1]):
        spec = ConvSpec(**spec_dict)
        if sys.argv[2] == "stages":
            a = time.perf_counter(); module = pipeline.lower_stage(spec, "float32")
            b = time.perf_counter(); csource = pipeline.render_stage(module)
            c = time.perf_counter(); ext = pipeline.build_stage(csource)
            d = time.perf_counter()
            report["layers"].append({"lower_s": b - a, "render_s": c - b, "compile_s": d - c,
                                     "from_cache": ext.from_cache})
        else:
            a = time.perf_counter(); kernel = build(spec)
            b = time.perf_counter()
            report["layers"].append({"build_s": b - a})
    print(json.dumps(report))
    """
)


def child(cache_dir: Path, specs: list[ConvSpec], mode: str) -> dict:
    env = {**os.environ, "SYMCONV_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([s.to_dict() for s in specs]), mode],
        env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_time(fn, min_time: float, repeats: int) -> float:
    """Best-of-``repeats`` seconds per call, each repeat running at least ``min_time`` seconds."""
    fn()  # warm up (first touch of memory, thread pool start)
    number, elapsed = 1, 0.0
    while True:
        elapsed = timeit.timeit(fn, number=number)
        if elapsed >= min_time / 4:
            break
        number *= 4
    number = max(1, int(number * min_time / max(elapsed, 1e-9)))
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- the measurements ------------------------------------------------------------------------------


def build_and_cache(quick: bool) -> str:
    specs = [LAYERS["LeNet C3 64×6×14×14 → 16×5×5"], LAYERS["3×3 32×32×32×32 → 32, pad 1"]]
    rows = []
    with tempfile.TemporaryDirectory(prefix="symconv-bench-") as tmp:
        cold = child(Path(tmp), specs, "stages")  # first layer also probes the compiler
        for spec, stage in zip(specs, cold["layers"]):
            rows.append([
                "cold (empty cache dir)" + (", incl. compiler probes" if stage is cold["layers"][0] else ""),
                spec.describe(), f"{stage['lower_s'] * 1e3:.0f}", f"{stage['render_s'] * 1e3:.0f}",
                f"{stage['compile_s'] * 1e3:.0f}",
                f"{(stage['lower_s'] + stage['render_s'] + stage['compile_s']) * 1e3:.0f}",
            ])
        hits = [child(Path(tmp), specs[:1], "build") for _ in range(2 if quick else 5)]
        best = min(h["layers"][0]["build_s"] for h in hits)
        imports = min(h["import_s"] for h in hits)
        rows.append([
            "cache hit, fresh process (best of %d)" % len(hits), specs[0].describe(),
            "–", "–", "–", f"{best * 1e3:.1f}",
        ])
    text = table(["build", "layer", "lower ms", "render ms", "compile+load ms", "total ms"], rows)
    return text + f"\n\n(import of symconv in that process: {imports * 1e3:.0f} ms, not included)"


def call_overhead(quick: bool, threads: int) -> str:
    spec = LAYERS["lecture 3×3 ⋆ 2×2"]
    kernel = build(spec)
    x = np.ones(spec.input, np.float32)
    w = np.ones(spec.weight, np.float32)
    g = np.ones(spec.output, np.float32)
    out = np.empty(spec.output, np.float32)
    ffi, c_forward = kernel._ffi, kernel._c["forward"]  # the bare C call, for comparison
    px, pw, pout = (ffi.from_buffer("float[]", a) for a in (x, w, out))
    min_time = 0.1 if quick else 0.3
    rows = []
    kernel.set_num_threads(1)
    kernel.forward(x, w)  # applies the thread count to the OpenMP runtime
    bare = best_time(lambda: c_forward(px, pw, ffi.NULL, pout), min_time, 5)
    rows.append(["bare cffi call, pointers prepared", "1", f"{bare * 1e6:.2f}"])
    for n in sorted({1, threads}):
        kernel.set_num_threads(n)
        fwd = best_time(lambda: kernel.forward(x, w), min_time, 5)
        bwd = best_time(lambda: kernel.backward(x, w, g), min_time, 5)
        rows.append(["kernel.forward(x, w) (checks + fresh output)", str(n), f"{fwd * 1e6:.2f}"])
        rows.append(["kernel.backward(x, w, g) (2 C calls)", str(n), f"{bwd * 1e6:.2f}"])
    kernel.set_num_threads(threads)
    return table(["call on the lecture layer (1×1×3×3 ⋆ 1×1×2×2)", "threads", "µs per call"], rows)


def layer_speed(quick: bool, threads: int) -> str:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(threads)
    min_time = 0.1 if quick else 0.4
    rows = []
    for name, spec in LAYERS.items():
        kernel = build(spec)
        kernel.set_num_threads(threads)
        rng = np.random.default_rng(0)
        x = rng.standard_normal(spec.input, dtype=np.float32)
        w = rng.standard_normal(spec.weight, dtype=np.float32)
        b = rng.standard_normal(spec.bias_shape, dtype=np.float32) if spec.bias else None
        g = rng.standard_normal(spec.output, dtype=np.float32)
        flops = 2 * spec.macs()
        ours_f = best_time(lambda: kernel.forward(x, w, b), min_time, 5)
        ours_b = best_time(lambda: kernel.backward(x, w, g), min_time, 5)
        row = [name, f"{ours_f * 1e3:.3f}", f"{flops / ours_f / 1e9:.2f}"]
        if torch is not None:
            tx, tw, tg = (torch.from_numpy(a) for a in (x, w, g))
            tb = torch.from_numpy(b) if b is not None else None
            pad = [p for p, _ in spec.padding]
            args = dict(stride=spec.stride, padding=pad, dilation=spec.dilation, groups=spec.groups)
            with torch.no_grad():
                theirs_f = best_time(lambda: F.conv2d(tx, tw, tb, **args), min_time, 5)
                bias_sizes = list(spec.bias_shape) if spec.bias else None
                theirs_b = best_time(
                    lambda: torch.ops.aten.convolution_backward(
                        tg, tx, tw, bias_sizes, list(spec.stride), pad, list(spec.dilation), False,
                        [0, 0], spec.groups, [True, True, spec.bias]),
                    min_time, 5)
            row += [f"{theirs_f * 1e3:.3f}", f"{theirs_f / ours_f:.2f}"]
        else:
            row += ["–", "–"]
        row += [f"{ours_b * 1e3:.3f}", f"{2 * flops / ours_b / 1e9:.2f}"]
        row += [f"{theirs_b * 1e3:.3f}", f"{theirs_b / ours_b:.2f}"] if torch is not None else ["–", "–"]
        rows.append(row)
    headers = ["layer (float32)", "fwd ms", "fwd GFLOP/s", "torch fwd ms", "speed vs torch",
               "bwd ms", "bwd GFLOP/s", "torch bwd ms", "speed vs torch"]
    note = (f"\n\nThreads: {threads} for both; bwd = grad_input + grad_weight (+ grad_bias); "
            "GFLOP/s = 2·N·K·C·OH·OW·KH·KW/groups per pass; 'speed vs torch' = torch time / ours "
            "(> 1: ours faster).")
    return table(headers, rows) + note


def machine(threads: int) -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    tools = toolchain()
    lines = [
        f"- CPU: {model}, {os.cpu_count()} logical cores; threads used: {threads}",
        f"- compiler: {tools.version.splitlines()[0]}; flags: {' '.join(tools.flags)}",
        f"- Python {platform.python_version()}, numpy {np.__version__}",
    ]
    try:
        import torch

        lines.append(f"- PyTorch {torch.__version__}")
    except ImportError:
        lines.append("- PyTorch not installed: no comparison")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=default_num_threads(),
                        help="threads for both libraries (default: $OMP_NUM_THREADS, else all cores)")
    args = parser.parse_args()
    print("# symconv codegen benchmarks\n")
    print(machine(args.threads) + "\n")
    print("## Build and cache\n")
    print(build_and_cache(args.quick) + "\n")
    print("## Call overhead\n")
    print(call_overhead(args.quick, args.threads) + "\n")
    print("## Forward and backward, next to PyTorch\n")
    print(layer_speed(args.quick, args.threads))


if __name__ == "__main__":
    main()
