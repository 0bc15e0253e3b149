"""The convolution suite: symconv next to PyTorch (and numpy im2col) on real layer shapes.

    python benchmarks/suite.py                          # whole suite, 1 and 2 threads
    python benchmarks/suite.py --quick                  # fewer repetitions (a few minutes)
    python benchmarks/suite.py --shapes lenet_c1,cifar_3x3 --threads 1 --repeat 5
    python benchmarks/suite.py --quick --update-readme  # also refresh the block in README.md

For every shape, pass (forward; backward-data; backward-weight+bias) and thread count, in one
process: symconv, PyTorch (``conv2d`` forward, ``aten.convolution_backward`` with an output mask
for the two backward passes) and, for forward, numpy im2col + matmul. Each time is the median of
repeated calls after warm-up; the number of calls adapts to the call's length. Speed is reported as
ms, GFLOP/s (2·N·K·C·OH·OW·KH·KW/groups per pass), the fraction of this machine's FMA peak
(measured by ``peak.c`` in the same run, before and after the suite) and the ratio of symconv's
speed to PyTorch's (> 1: symconv faster). Every result is checked against a float64 reference.

Writes a Markdown table to stdout and ``benchmarks/results/latest.md``, and all numbers with the
machine description to ``benchmarks/results/latest.json``. Exits with 1 if any check fails.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import as_strided  # noqa: E402

import peak as peak_probe  # noqa: E402  (benchmarks/peak.py)
from symconv.api import build  # noqa: E402
from symconv.spec import ConvSpec  # noqa: E402

#: Results are correct when max|result − reference| ≤ TOLERANCE · max|reference|.
TOLERANCE = 1e-4
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
PASSES = ("forward", "backward_data", "backward_weight")
PASS_LABELS = {
    "forward": "forward",
    "backward_data": "backward-data",
    "backward_weight": "backward-weight+bias",
}
LIBRARIES = ("symconv", "torch", "numpy")


# -- the suite -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One float32 NCHW layer of the suite: input N,C,H,W → K filters of KH×KW."""

    name: str
    input: tuple[int, int, int, int]
    out_channels: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    @property
    def weight(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.input[1] // self.groups, *self.kernel)

    def spec(self) -> ConvSpec:
        """The layer as symconv sees it (with bias, since the weight pass also times dL/db)."""
        return ConvSpec(
            input=self.input,
            weight=self.weight,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=True,
        )

    @property
    def output(self) -> tuple[int, ...]:
        return self.spec().output

    def flops(self) -> int:
        """2·N·K·C·OH·OW·KH·KW/groups: the multiply-adds of one pass, counted as two flops."""
        return 2 * self.spec().macs()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input": list(self.input),
            "weight": list(self.weight),
            "output": list(self.output),
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "flops_per_pass": self.flops(),
        }


SUITE = (
    Shape("seed_tiny", (1, 1, 3, 3), 1, (2, 2)),
    Shape("lenet_c1", (64, 1, 28, 28), 6, (5, 5)),
    Shape("lenet_c3", (64, 6, 14, 14), 16, (5, 5)),
    Shape("cifar_3x3", (32, 32, 32, 32), 32, (3, 3), padding=1),
    Shape("resnet_3x3_56", (8, 64, 56, 56), 64, (3, 3), padding=1),
    Shape("resnet_3x3_s2", (8, 128, 56, 56), 128, (3, 3), stride=2, padding=1),
    Shape("resnet_1x1", (8, 256, 56, 56), 64, (1, 1)),
    Shape("alexnet_c1", (4, 3, 227, 227), 96, (11, 11), stride=4),
    Shape("vgg_3x3_28", (4, 256, 28, 28), 256, (3, 3), padding=1),
    Shape("dilated", (8, 64, 56, 56), 64, (3, 3), padding=2, dilation=2),
    Shape("depthwise", (8, 64, 56, 56), 64, (3, 3), padding=1, groups=64),
)
SHAPES = {shape.name: shape for shape in SUITE}


# -- numpy im2col + matmul (the "what plain numpy gets" baseline) --------------------------------


def im2col_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, padding: int, dilation: int, groups: int
) -> np.ndarray:
    """Forward convolution as one matrix product per image and group, as Caffe did it.

    The padded input is viewed (no copy) as N × G × (C/G·KH·KW) × (OH·OW) windows; the reshape
    copies that view into the im2col matrix, and BLAS multiplies the G × (K/G) × (C/G·KH·KW)
    weight matrices with it.
    """
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    sn, sc, sh, sw = x.strides
    windows = as_strided(
        x,
        shape=(n, groups, cg, kh, kw, oh, ow),
        strides=(sn, cg * sc, sc, dilation * sh, dilation * sw, stride * sh, stride * sw),
        writeable=False,
    )
    cols = windows.reshape(n, groups, cg * kh * kw, oh * ow)
    out = np.matmul(w.reshape(groups, k // groups, cg * kh * kw), cols).reshape(n, k, oh, ow)
    if b is not None:
        out += b[:, None, None]
    return out


class BlasThreads:
    """Sets the thread count of the OpenBLAS that numpy's matmul runs on (no extra dependency).

    numpy wheels bundle OpenBLAS under a prefixed name; its ``*set_num_threads*`` entry point is
    found in the libraries this process has mapped. If none is found, numpy runs on its default
    thread count and ``controlled`` is False (the report says so).
    """

    SYMBOLS = (
        "scipy_openblas_set_num_threads64_",
        "scipy_openblas_set_num_threads",
        "openblas_set_num_threads64_",
        "openblas_set_num_threads",
    )

    def __init__(self) -> None:
        np.ones((2, 2)) @ np.ones((2, 2))  # make sure BLAS is loaded
        self.library = ""
        self._setter: Callable[[int], Any] | None = None
        for path in self._mapped_blas():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for symbol in self.SYMBOLS:
                if hasattr(lib, symbol):
                    self._setter = getattr(lib, symbol)
                    self._setter.argtypes = [ctypes.c_int]
                    self.library = f"{Path(path).name}:{symbol}"
                    return

    @staticmethod
    def _mapped_blas() -> list[str]:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return []
        return sorted({m for m in re.findall(r"(/\S+\.so[\w.\-]*)", maps) if "blas" in Path(m).name.lower()})

    @property
    def controlled(self) -> bool:
        return self._setter is not None

    def set(self, n: int) -> None:
        if self._setter is not None:
            self._setter(n)

    #: After a call, OpenBLAS's worker threads keep spinning for a while, each on a core. Measured
    #: here (cifar_3x3 input gradient on 2 threads, 1.8-1.9 ms alone): the calls in the first
    #: ~0.1 s after a 2-thread matmul took 6-14 ms; after a 0.1 s pause, the usual time.
    SPIN_S = 0.25

    def settle(self) -> None:
        """Wait until the worker threads of the last BLAS call have stopped spinning, so that
        they do not share the cores with whatever is measured next."""
        time.sleep(self.SPIN_S)


# -- timing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepeatPlan:
    """How many calls to time: enough to fill ``target_s``, within [min_samples, max_samples].

    Calls shorter than ``min_sample_s`` are batched (``inner`` calls per sample) so that the
    timer's resolution and Python's loop do not dominate. ``fixed`` overrides the adaptive count.
    """

    target_s: float = 1.0
    min_samples: int = 5
    max_samples: int = 25
    warmup_s: float = 0.05
    min_sample_s: float = 2e-3
    fixed: int | None = None

    def samples_for(self, call_s: float, inner: int) -> int:
        if self.fixed is not None:
            return self.fixed
        wanted = math.ceil(self.target_s / max(call_s * inner, 1e-9))
        return max(self.min_samples, min(self.max_samples, wanted))

    def inner_for(self, call_s: float) -> int:
        return max(1, min(10_000, math.ceil(self.min_sample_s / max(call_s, 1e-9))))


@dataclass
class Timing:
    """The outcome of timing one callable: status "ok", "slow" (one call over budget), "skipped"
    (predicted over budget, never called) or "error"."""

    status: str
    seconds: float | None = None  # the median per-call time (the single call when "slow")
    samples: list[float] = field(default_factory=list)  # per-call seconds of each sample
    inner: int = 1
    warmup_calls: int = 0
    note: str = ""
    result: Any = None  # what the last call returned (for the correctness check)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "seconds": self.seconds,
            "samples": self.samples,
            "inner": self.inner,
            "warmup_calls": self.warmup_calls,
            "note": self.note,
        }


def time_call(fn: Callable[[], Any], plan: RepeatPlan, budget_s: float | None = None) -> Timing:
    """Warm up, then time ``fn`` repeatedly; the median per-call time is the result.

    With a ``budget_s``, a first call slower than the budget is not repeated: the timing is
    marked "slow" and carries that one call's time.
    """
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    if budget_s is not None and first > budget_s:
        note = f"one call took {first:.3g} s > budget {budget_s:g} s"
        return Timing("slow", first, [first], 1, 1, note, result)
    calls, last = 1, first
    while time.perf_counter() - start < plan.warmup_s or calls < 2 and first < plan.warmup_s:
        t0 = time.perf_counter()
        result = fn()
        last = time.perf_counter() - t0
        calls += 1
    inner = plan.inner_for(last)
    samples = []
    for _ in range(plan.samples_for(last, inner)):
        t0 = time.perf_counter()
        for _ in range(inner):
            result = fn()
        samples.append((time.perf_counter() - t0) / inner)
    return Timing("ok", statistics.median(samples), samples, inner, calls, "", result)


# -- correctness -----------------------------------------------------------------------------------


def relative_error(got: Sequence[Any], expected: Sequence[np.ndarray]) -> float:
    """max over outputs of max|got − expected| / max|expected| (normwise, float64)."""
    worst = 0.0
    for g, e in zip(got, expected, strict=True):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != e.shape:
            return math.inf
        scale = float(np.max(np.abs(e))) if e.size else 0.0
        diff = float(np.max(np.abs(g - e))) if e.size else 0.0
        if not math.isfinite(diff):
            return math.inf
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


# -- one shape -------------------------------------------------------------------------------------


@dataclass
class Case:
    """The arrays of one shape (shared by every library) and its float64 reference results."""

    shape: Shape
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    g: np.ndarray
    reference: dict[str, tuple[np.ndarray, ...]]


def make_case(shape: Shape, torch: Any, seed: int = 0) -> Case:
    """Random float32 inputs and the float64 results every pass is checked against."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape.input, dtype=np.float32)
    w = rng.standard_normal(shape.weight, dtype=np.float32)
    b = rng.standard_normal(shape.out_channels, dtype=np.float32)
    g = rng.standard_normal(shape.output, dtype=np.float32)
    x64, w64, b64, g64 = (torch.from_numpy(a.astype(np.float64)) for a in (x, w, b, g))
    conv = torch_ops(torch, shape, x64, w64, b64, g64)
    reference = {name: tuple(t.numpy() for t in fn()) for name, fn in conv.items()}
    return Case(shape, x, w, b, g, reference)


def torch_ops(torch: Any, shape: Shape, x: Any, w: Any, b: Any, g: Any) -> dict[str, Callable[[], tuple]]:
    """PyTorch's three passes on the given tensors, each returning a tuple of tensors."""
    F = torch.nn.functional
    s, p, d, groups = [shape.stride] * 2, [shape.padding] * 2, [shape.dilation] * 2, shape.groups
    bias_sizes = [shape.out_channels]

    def backward(mask: list[bool]) -> tuple:
        return torch.ops.aten.convolution_backward(g, x, w, bias_sizes, s, p, d, False, [0, 0], groups, mask)

    def forward() -> tuple:
        with torch.no_grad():
            return (F.conv2d(x, w, b, s, p, d, groups),)

    return {
        "forward": forward,
        "backward_data": lambda: backward([True, False, False])[:1],
        "backward_weight": lambda: backward([False, True, True])[1:],
    }


def symconv_ops(kernel: Any, case: Case) -> dict[str, Callable[[], tuple]]:
    x, w, b, g = case.x, case.w, case.b, case.g
    return {
        "forward": lambda: (kernel.forward(x, w, b),),
        "backward_data": lambda: (kernel.grad_input(g, w),),
        "backward_weight": lambda: (kernel.grad_weight(x, g), kernel.grad_bias(g)),
    }


def numpy_ops(case: Case) -> dict[str, Callable[[], tuple]]:
    s = case.shape
    x, w, b = case.x, case.w, case.b
    return {"forward": lambda: (im2col_forward(x, w, b, s.stride, s.padding, s.dilation, s.groups),)}


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Settings:
    shapes: list[Shape]
    threads: list[int]
    plan: RepeatPlan
    budget_s: float
    quick: bool
    rounds: int
    peak_trials: int
    peak_trial_ms: float


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Runner:
    """Runs the suite in this process and collects one row per shape × pass × thread count."""

    def __init__(self, settings: Settings, torch: Any) -> None:
        self.settings = settings
        self.torch = torch
        self.blas = BlasThreads()
        self.rows: list[dict[str, Any]] = []
        self.builds: dict[str, dict[str, Any]] = {}

    def run(self) -> list[dict[str, Any]]:
        for shape in self.settings.shapes:
            self.run_shape(shape)
        return self.rows

    def run_shape(self, shape: Shape) -> None:
        log(f"[{shape.name}] {shape.spec().describe()}  ({shape.flops() / 1e9:.3g} GFLOP per pass)")
        case = make_case(shape, self.torch)
        kernel, build_error = self.build_kernel(shape)
        xt, wt, bt, gt = (self.torch.from_numpy(a) for a in (case.x, case.w, case.b, case.g))
        ops = {
            "symconv": symconv_ops(kernel, case) if kernel is not None else {},
            "torch": torch_ops(self.torch, shape, xt, wt, bt, gt),
            "numpy": numpy_ops(case),
        }
        for threads in self.settings.threads:
            self.set_threads(kernel, threads)
            for pass_name in PASSES:
                row = {"shape": shape.name, "pass": pass_name, "threads": threads, "flops": shape.flops()}
                rounds: dict[str, list[dict[str, Any]]] = {library: [] for library in LIBRARIES}
                for _ in range(self.settings.rounds):  # the libraries take turns, round after round
                    for library in LIBRARIES:
                        fn = ops[library].get(pass_name)
                        done = rounds[library][-1:]
                        if library == "symconv" and kernel is None:
                            row[library] = {"status": "error", "note": build_error}
                        elif fn is not None and (not done or done[0]["status"] == "ok"):
                            rounds[library].append(self.measure(library, fn, case, row))
                            if library == "numpy":
                                self.blas.settle()
                for library, measured in rounds.items():
                    if measured:
                        row[library] = combine_rounds(measured)
                self.rows.append(row)
                log(f"  {threads} thr {PASS_LABELS[pass_name]:<21} " + summary_line(row))

    def build_kernel(self, shape: Shape) -> tuple[Any, str]:
        start = time.perf_counter()
        try:
            kernel = build(shape.spec(), "float32")
        except Exception as exc:  # a broken build is a result to report, not a reason to stop
            self.builds[shape.name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"  symconv build FAILED: {type(exc).__name__}: {exc}")
            return None, f"build failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        seconds = time.perf_counter() - start
        self.builds[shape.name] = {"seconds": seconds, "cache_path": str(kernel.cache_path)}
        return kernel, ""

    def set_threads(self, kernel: Any, n: int) -> None:
        if kernel is not None:
            kernel.set_num_threads(n)
        self.torch.set_num_threads(n)
        self.blas.set(n)

    def measure(self, library: str, fn: Callable[[], tuple], case: Case, row: dict[str, Any]) -> dict:
        budget = self.settings.budget_s if library == "symconv" else None
        if budget is not None:
            predicted, why, margin = self.predict_symconv(row)
            if predicted is not None and predicted > budget * margin:
                note = f"predicted {predicted:.3g} s per call ({why}) > {budget * margin:g} s"
                return {"status": "skipped", "note": note}
        try:
            timing = time_call(fn, self.settings.plan, budget)
        except Exception as exc:
            return {"status": "error", "note": f"{type(exc).__name__}: {exc}"}
        data = timing.to_dict()
        error = relative_error(timing.result, case.reference[row["pass"]])
        data["rel_error"] = error
        data["check"] = "ok" if error <= TOLERANCE else "FAIL"
        return data

    def predict_symconv(self, row: dict[str, Any]) -> tuple[float | None, str, float]:
        """A symconv call's expected time, why, and how far over budget it must be to skip it.

        Best evidence: this shape and pass at another thread count (skip if over the budget).
        Else the median speed symconv reached on this pass so far, over calls long enough (10 ms)
        not to be dominated by call overhead; speeds differ between shapes, so that prediction
        only skips a call expected to take three times the budget. None without evidence.
        """
        for other in self.rows:
            if (other["shape"], other["pass"]) == (row["shape"], row["pass"]) and "symconv" in other:
                seconds = other["symconv"].get("seconds")
                if seconds is None and other["symconv"]["status"] == "skipped":
                    seconds = math.inf
                if seconds is not None:
                    return seconds, f"as with {other['threads']} thread(s)", 1.0
        rates = [
            other["flops"] / other["symconv"]["seconds"]
            for other in self.rows
            if other["pass"] == row["pass"]
            and other.get("symconv", {}).get("status") == "ok"
            and other["symconv"]["seconds"] >= 0.01
        ]
        if not rates:
            return None, "", 1.0
        rate = statistics.median(rates)
        return row["flops"] / rate, f"at {rate / 1e9:.2f} GFLOP/s, symconv's median on this pass", 3.0


def combine_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One library's measurements of a row, round after round, as one: the median of the rounds'
    medians (a burst of load from another job spoils one round, not the result), every sample,
    the worst error. A round that was not "ok" (skipped, slow, failed) ended the rounds: it is
    the result."""
    if rounds[-1]["status"] != "ok":
        return rounds[-1]
    combined = dict(rounds[-1])
    combined["rounds"] = [r["seconds"] for r in rounds]
    combined["seconds"] = statistics.median(combined["rounds"])
    combined["samples"] = [sample for r in rounds for sample in r["samples"]]
    combined["rel_error"] = max(r["rel_error"] for r in rounds)
    combined["check"] = "FAIL" if any(r["check"] != "ok" for r in rounds) else "ok"
    return combined


def summary_line(row: dict[str, Any]) -> str:
    parts = []
    for library in LIBRARIES:
        data = row.get(library)
        if data is None:
            continue
        if data.get("seconds") is not None:
            text = f"{library} {format_ms(data['seconds'])} ms"
            if data["status"] != "ok":
                text += f" ({data['status']})"
        else:
            text = f"{library} {data['status']}"
        if data.get("check") == "FAIL":
            text += f" CHECK FAILED (rel. error {data['rel_error']:.2e})"
        parts.append(text)
    return " | ".join(parts)


# -- machine and peak ------------------------------------------------------------------------------


def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            if key.strip() in ("flags", "Features") and not flags:
                flags = value.split()
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")
    simd = [f for f in wanted if f in flags]
    return {"model": model, "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "avx512f": "avx512f" in flags, "simd_flags": simd}


def command_output(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, check=False, cwd=ROOT)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine_info(torch: Any, blas: BlasThreads) -> dict[str, Any]:
    """What the numbers depend on: CPU, compilers, library versions, load."""
    from codegen.build import toolchain

    tools = toolchain()
    return {
        "cpu": cpu_info(),
        "gcc_version": (command_output(["gcc", "--version"]).splitlines() or ["not found"])[0],
        "symconv_compiler": tools.version.splitlines()[0] if tools.version else tools.name,
        "symconv_flags": " ".join(tools.flags),
        "symconv_openmp": tools.openmp,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "numpy_blas": blas.library or "not found",
        "numpy_threads_controlled": blas.controlled,
        "torch": torch.__version__,
        "torch_parallel": torch.__config__.parallel_info().splitlines()[:6],
        "git_commit": command_output(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
    }


def measure_peak(settings: Settings) -> dict[int, dict[str, Any]]:
    try:
        peaks = peak_probe.measure(settings.threads, settings.peak_trials, settings.peak_trial_ms)
    except peak_probe.ProbeError as exc:
        log(f"FMA-peak probe failed, no % of peak in this run: {exc}")
        return {}
    for n, p in peaks.items():
        log(f"  FMA peak {n} thread(s): best {p.best:.1f}, median {p.median:.1f} GFLOP/s "
            f"({p.isa}, ~{p.clock_median:.2f} GHz)")
    return {n: p.to_dict() for n, p in peaks.items()}


def peak_used(start: dict[int, dict], end: dict[int, dict]) -> dict[int, float]:
    """The peak each fraction is relative to: the best trial of either probe (same thread count)."""
    used = {}
    for n in set(start) | set(end):
        used[n] = max(p[n]["best_gflops"] for p in (start, end) if n in p)
    return used


#: Two idle cores give nearly twice one core's peak; much less means another job had a core.
CONTENTION_SCALING = 1.5


def contention_warning(report: dict[str, Any]) -> str | None:
    """A warning when a peak probe saw the second core busy: 2-thread rows are then unreliable
    (every parallel region, of either library, waits for a scheduler slice)."""
    probes = [p for p in (report["peak"].get("start", {}), report["peak"].get("end", {})) if p]
    scalings = []
    for probe in probes:
        one, two = probe.get(1) or probe.get("1"), probe.get(2) or probe.get("2")
        if one and two:
            scalings.append(two["best_gflops"] / one["best_gflops"])
    if not scalings or min(scalings) >= CONTENTION_SCALING:
        return None
    return (f"⚠ The 2-thread FMA peak was only {min(scalings):.2f}× the 1-thread peak in a probe of this "
            "run: another job was using a core, so the 2-thread figures are unreliable. Rerun on a quiet machine.")


# -- report ----------------------------------------------------------------------------------------


def format_ms(seconds: float) -> str:
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 0.1:
        return f"{ms:.2f}"
    return f"{ms:.4f}"


def format_gflops(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def geomean_ratios(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Geometric mean over shapes of (PyTorch time / symconv time), per pass and thread count.

    A "slow" symconv call counts with its single time; "skipped" and failed ones cannot count.
    """
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for pass_name in PASSES:
        for threads in sorted({r["threads"] for r in rows}):
            ratios = [ratio(r) for r in rows if (r["pass"], r["threads"]) == (pass_name, threads)]
            total = len(ratios)
            ratios = [v for v in ratios if v is not None]
            value = math.exp(statistics.fmean(math.log(v) for v in ratios)) if ratios else None
            out.setdefault(pass_name, {})[threads] = {"geomean": value, "shapes": len(ratios), "of": total}
    return out


def ratio(row: dict[str, Any]) -> float | None:
    ours, theirs = row.get("symconv", {}), row.get("torch", {})
    if ours.get("seconds") is None or theirs.get("seconds") is None:
        return None
    if ours.get("check") == "FAIL" or ours["status"] not in ("ok", "slow"):
        return None
    return theirs["seconds"] / ours["seconds"]


def failures(rows: list[dict[str, Any]]) -> list[str]:
    found = []
    for row in rows:
        for library in LIBRARIES:
            data = row.get(library)
            if data is None:
                continue
            where = f"{row['shape']} {PASS_LABELS[row['pass']]} {row['threads']} thread(s) {library}"
            if data.get("check") == "FAIL":
                found.append(f"{where}: relative error {data['rel_error']:.3e} > {TOLERANCE:g}")
            elif data["status"] == "error":
                found.append(f"{where}: error: {data['note']}")
    return found


def table(headers: list[str], rows: list[list[str]], align: str) -> str:
    rule = "|" + "|".join(":--" if a == "l" else "--:" for a in align) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cell_time(data: dict[str, Any] | None, flops: int, peak: float | None) -> list[str]:
    """ms, GFLOP/s and % of peak for one library's timing (or why there is none)."""
    if data is None:
        return ["", "", ""]
    if data.get("seconds") is None:
        label = "slow, skipped" if data["status"] == "skipped" else data["status"].upper()
        return [label, "–", "–"]
    rate = flops / data["seconds"] / 1e9
    ms = format_ms(data["seconds"])
    if data["status"] == "slow":
        ms = f"{ms} (slow, 1 call)"
    if data.get("check") == "FAIL":
        ms = f"**{ms} WRONG**"
    frac = ("<0.1" if 100 * rate / peak < 0.1 else f"{100 * rate / peak:.1f}") if peak else "–"
    return [ms, format_gflops(rate), frac]


def check_cell(row: dict[str, Any]) -> str:
    bad = [lib for lib in LIBRARIES if row.get(lib, {}).get("check") == "FAIL"]
    errors = [lib for lib in LIBRARIES if row.get(lib, {}).get("status") == "error"]
    if bad or errors:
        return "**FAIL: " + ", ".join(bad + [f"{e} error" for e in errors]) + "**"
    worst = max((row[lib]["rel_error"] for lib in LIBRARIES if "rel_error" in row.get(lib, {})), default=None)
    return "ok" if worst is None else f"ok ({worst:.0e})"


def results_table(rows: list[dict[str, Any]], threads: int, peak: float | None) -> str:
    headers = ["shape", "pass", "symconv ms", "GFLOP/s", "% peak", "PyTorch ms", "GFLOP/s", "% peak",
               "numpy ms", "symconv/PyTorch", "check"]
    body = []
    for row in (r for r in rows if r["threads"] == threads):
        value = ratio(row)
        numpy = row.get("numpy")
        body.append([
            row["shape"], PASS_LABELS[row["pass"]],
            *cell_time(row.get("symconv"), row["flops"], peak),
            *cell_time(row.get("torch"), row["flops"], peak),
            cell_time(numpy, row["flops"], peak)[0] if numpy else "",
            f"{value:.3f}" if value is not None else "–",
            check_cell(row),
        ])
    return table(headers, body, "llrrrrrrrrl")


def geomean_table(geo: dict[str, dict[int, dict[str, Any]]], threads: list[int]) -> str:
    body = []
    for pass_name in PASSES:
        cells = [PASS_LABELS[pass_name]]
        for n in threads:
            g = geo.get(pass_name, {}).get(n)
            if not g or g["geomean"] is None:
                cells.append("–")
            else:
                cells.append(f"{g['geomean']:.3f} ({g['shapes']}/{g['of']} shapes)")
        body.append(cells)
    headers = ["pass", *[f"{n} thread{'s' if n > 1 else ''}" for n in threads]]
    return table(headers, body, "l" + "r" * len(threads))


def shapes_table(shapes: list[Shape]) -> str:
    body = []
    for s in shapes:
        n, c, h, w = s.input
        body.append([s.name, f"{n},{c},{h},{w}", f"{s.out_channels},{s.kernel[0]},{s.kernel[1]}",
                     str(s.stride), str(s.padding), str(s.dilation), str(s.groups),
                     ",".join(map(str, s.output)), f"{s.flops() / 1e9:.3g}"])
    headers = ["shape", "N,C,H,W", "K,KH,KW", "stride", "pad", "dilation", "groups", "output", "GFLOP/pass"]
    return table(headers, body, "lllrrrrlr")


def machine_line(info: dict[str, Any]) -> str:
    cpu = info["cpu"]
    return (f"{cpu['model']}, {cpu['usable_cpus']} CPUs, avx512f {'yes' if cpu['avx512f'] else 'no'}; "
            f"{info['gcc_version']}; PyTorch {info['torch']}; numpy {info['numpy']}; "
            f"Python {info['python']}; commit {info['git_commit']}")


def peak_line(report: dict[str, Any]) -> str:
    parts = []
    for n, value in sorted(report["peak"]["used"].items(), key=lambda kv: int(kv[0])):
        start = report["peak"]["start"].get(n, {})
        end = report["peak"]["end"].get(n, {})
        spans = ", ".join(
            f"{label} best {p['best_gflops']:.1f} / median {p['median_gflops']:.1f}"
            for label, p in (("before", start), ("after", end)) if p
        )
        parts.append(f"{n} thread{'s' if int(n) > 1 else ''}: **{value:.1f} GFLOP/s** ({spans})")
    isa = next((p["isa"] for p in report["peak"]["start"].values()), "?")
    if not parts:
        return "FMA peak: not measured"
    return f"FMA peak ({isa} probe `benchmarks/peak.c`, this run): " + "; ".join(parts)


def markdown(report: dict[str, Any]) -> str:
    """The full results page (also what goes to stdout)."""
    rows, threads = report["rows"], report["settings"]["threads"]
    used = {int(k): v for k, v in report["peak"]["used"].items()}
    out = [
        "# Convolution suite: symconv next to PyTorch",
        "",
        f"{report['date']} · `{report['command']}` · {report['elapsed_s']:.0f} s",
        "",
        f"Machine: {machine_line(report['machine'])}.",
        f"Load average before/after: {report['load_before']} / {report['load_after']}.",
        "",
        peak_line(report) + ".",
        "",
    ]
    warning = contention_warning(report)
    if warning:
        out += [f"**{warning}**", ""]
    fails = report["failures"]
    if fails:
        out += ["## ✗ CORRECTNESS FAILURES", "", *[f"- **{f}**" for f in fails], ""]
    out += [
        "## Geometric mean of symconv/PyTorch speed (> 1: symconv faster)",
        "",
        geomean_table(report["geomean"], threads),
        "",
    ]
    for n in threads:
        out += [f"## {n} thread{'s' if n > 1 else ''}", "", results_table(rows, n, used.get(n)), ""]
    shapes = [SHAPES[s["name"]] for s in report["shapes"]]
    out += ["## Shapes (float32, NCHW, with bias)", "", shapes_table(shapes), ""]
    out += notes(report)
    return "\n".join(out).rstrip() + "\n"


def notes(report: dict[str, Any]) -> list[str]:
    s = report["settings"]
    repeat = (f"{s['repeat']} timed calls" if s["repeat"] else
              f"about {s['target_s']:g} s of calls, {s['min_samples']}–{s['max_samples']} samples")
    return [
        "Notes:",
        "",
        f"- Each time is the median of {s.get('rounds', 1)} round(s) in which the libraries take turns; "
        f"in each round, the median per-call time of {repeat} after warm-up (calls shorter than "
        f"{s['min_sample_s'] * 1e3:g} ms are batched per sample). All libraries take the same NCHW arrays "
        "(`torch.from_numpy`, shared memory), so any layout change symconv makes is inside its time.",
        "- GFLOP/s counts 2·N·K·C·OH·OW·KH·KW/groups per pass (the bias adds are not counted); "
        "% peak is relative to the FMA peak above for the same thread count.",
        "- symconv/PyTorch is PyTorch's time divided by symconv's: > 1 means symconv is faster.",
        f"- check: every result (symconv, PyTorch, numpy) is compared with a float64 PyTorch reference "
        f"computed once per shape: max|result − reference| ≤ {TOLERANCE:g} · max|reference| "
        "(the worst error of the row in brackets).",
        f"- \"slow, skipped\": a symconv call predicted to take over {s['budget_s']:g} s was not run; "
        "\"slow, 1 call\": the first call took longer than that and was not repeated.",
        "- numpy: im2col (strided view, one copy) + `np.matmul` on OpenBLAS, forward only; threads "
        + ("set like the others." if report["machine"]["numpy_threads_controlled"] else "NOT controlled."),
        "- The machine is shared: other jobs may run on the same cores, so times are noisy "
        "(see the load average and the spread of the peak probe).",
    ]


def readme_block(report: dict[str, Any]) -> str:
    """The short version for README.md: summary, and the ratio of every shape and pass."""
    threads = report["settings"]["threads"]
    out = [
        f"Measured {report['date'][:10]} with `{report['command']}` on {machine_line(report['machine'])}. "
        "Ratio = symconv speed / PyTorch speed (> 1: symconv faster); full table with ms, GFLOP/s and "
        "% of FMA peak in [benchmarks/results/latest.md](benchmarks/results/latest.md).",
        "",
        geomean_table(report["geomean"], threads),
        "",
    ]
    headers = ["shape", *[f"{PASS_LABELS[p]}, {n} thr" for n in threads for p in PASSES]]
    body = []
    for shape in report["shapes"]:
        cells = [shape["name"]]
        for n in threads:
            for p in PASSES:
                key = (shape["name"], p, n)
                row = next((r for r in report["rows"] if (r["shape"], r["pass"], r["threads"]) == key), None)
                value = ratio(row) if row else None
                skipped = (row or {}).get("symconv", {}).get("status") == "skipped"
                cells.append(f"{value:.3f}" if value is not None else ("skipped" if skipped else "–"))
        body.append(cells)
    out.append(table(headers, body, "l" + "r" * (len(headers) - 1)))
    warning = contention_warning(report)
    if warning:
        out += ["", f"**{warning}**"]
    if report["failures"]:
        out += ["", f"**{len(report['failures'])} correctness failures: see the full table.**"]
    return "\n".join(out)


def replace_block(text: str, block: str) -> str | None:
    """``text`` with the part between the bench markers replaced by ``block``; None if no markers."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return None
    return text[: start + len(README_START)] + "\n" + block.strip() + "\n" + text[end:]


def update_readme(path: Path, block: str) -> bool:
    try:
        text = path.read_text()
    except OSError as exc:
        log(f"--update-readme: cannot read {path}: {exc}; nothing changed")
        return False
    new = replace_block(text, block)
    if new is None:
        log(f"--update-readme: {path} has no {README_START} … {README_END} markers; nothing changed")
        return False
    path.write_text(new)
    log(f"--update-readme: refreshed the benchmark block in {path}")
    return True


# -- command line ----------------------------------------------------------------------------------


def parse_list(text: str, what: str, convert: Callable[[str], Any]) -> list[Any]:
    try:
        values = [convert(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"{what} must be a comma-separated list, but got {text!r}")
    return values


def parse_shapes(text: str) -> list[Shape]:
    names = parse_list(text, "--shapes", str)
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"--shapes must be among {', '.join(SHAPES)}, but got {', '.join(unknown)}"
        )
    return [SHAPES[n] for n in names]


def parse_threads(text: str) -> list[int]:
    values = parse_list(text, "--threads", int)
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"--threads must be positive integers, but got {text!r}")
    return values


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, but got {text!r}")
        return value

    return convert


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", type=parse_shapes, default=list(SUITE),
                   help="comma-separated names (default: all)")
    p.add_argument("--threads", type=parse_threads, default=[1, 2], help="thread counts (default: 1,2)")
    p.add_argument("--repeat", type=positive(int), default=None,
                   help="timed calls per measurement (default: adaptive)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and a shorter peak probe")
    p.add_argument("--rounds", type=positive(int), default=3,
                   help="interleaved rounds per measurement, median taken (default: 3)")
    p.add_argument("--budget", type=positive(float), default=30.0,
                   help="seconds: symconv calls longer than this are not repeated (default: 30)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="directory for latest.md/latest.json")
    p.add_argument("--update-readme", action="store_true", help="refresh the bench block in README.md")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md", help=argparse.SUPPRESS)
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    if args.quick:
        plan = RepeatPlan(target_s=0.25, min_samples=2, max_samples=10, warmup_s=0.02, fixed=args.repeat)
    else:
        plan = RepeatPlan(fixed=args.repeat)
    return Settings(
        shapes=args.shapes, threads=args.threads, plan=plan, budget_s=args.budget, quick=args.quick,
        rounds=args.rounds, peak_trials=5 if args.quick else 11, peak_trial_ms=30.0 if args.quick else 50.0,
    )


def load_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise SystemExit("benchmarks/suite.py needs PyTorch: pip install -e '.[test]' (torch==2.13.0, CPU)")
    return torch


def run(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    """Everything in one process: peak, the suite, peak again; returns the report data."""
    torch = load_torch()
    settings = settings_from(args)
    started, load_before = time.perf_counter(), os.getloadavg()
    log("FMA peak before the suite:")
    peak_start = measure_peak(settings)
    runner = Runner(settings, torch)
    rows = runner.run()
    log("FMA peak after the suite:")
    peak_end = measure_peak(settings)
    plan = settings.plan
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", "benchmarks/suite.py", *argv]),
        "machine": machine_info(torch, runner.blas),
        "settings": {
            "threads": settings.threads, "quick": settings.quick, "rounds": settings.rounds, "repeat": plan.fixed,
            "target_s": plan.target_s, "min_samples": plan.min_samples, "max_samples": plan.max_samples,
            "min_sample_s": plan.min_sample_s, "warmup_s": plan.warmup_s, "budget_s": settings.budget_s,
            "tolerance": TOLERANCE,
        },
        "peak": {"start": peak_start, "end": peak_end, "used": peak_used(peak_start, peak_end)},
        "shapes": [s.describe() for s in settings.shapes],
        "builds": runner.builds,
        "rows": rows,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    report["geomean"] = geomean_ratios(rows)
    report["failures"] = failures(rows)
    report["elapsed_s"] = time.perf_counter() - started
    return report


def write_outputs(report: dict[str, Any], out_dir: Path) -> str:
    page = markdown(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.md").write_text(page)
    (out_dir / "latest.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    return page


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    report = run(args, argv)
    page = write_outputs(report, args.out)
    print(page, end="")
    if args.update_readme:
        update_readme(args.readme, readme_block(report))
    for failure in report["failures"]:
        log(f"FAILED: {failure}")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
