"""Build and run ``peak.c``, the FMA-peak probe: what this machine can do now, per thread count.

    python benchmarks/peak.py --threads 1,2          # prints one JSON object per thread count

The probe is compiled with the same compiler as the kernels (``$CC``, else ``cc``/``gcc``) and
``-O2 -march=native -fopenmp`` (each flag dropped if the compiler refuses it), into a temporary
directory: it takes a fraction of a second, so nothing is cached.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

SOURCE = Path(__file__).resolve().with_name("peak.c")


class ProbeError(RuntimeError):
    """The probe could not be built or run (the message carries the command and its output)."""


@dataclass(frozen=True)
class Peak:
    """One probe run: FMA throughput of ``threads`` threads over several trials."""

    threads: int
    isa: str  # the vector instructions the probe was compiled for, e.g. "avx512f"
    gflops: tuple[float, ...]  # one value per trial
    clock_ghz: tuple[float, ...]  # per-trial clock estimate (dependent FMA chain, one thread)
    fma_latency: int  # the latency the clock estimate assumes
    flags: tuple[str, ...] = field(default=())

    @property
    def best(self) -> float:
        """The highest trial: what the hardware did when nothing else got in the way."""
        return max(self.gflops)

    @property
    def median(self) -> float:
        return statistics.median(self.gflops)

    @property
    def clock_median(self) -> float:
        return statistics.median(self.clock_ghz)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.update(best_gflops=self.best, median_gflops=self.median, clock_median_ghz=self.clock_median)
        return data


def compiler() -> list[str]:
    """``$CC`` split like a shell would, else ``cc``, else ``gcc``."""
    configured = os.environ.get("CC", "").strip()
    if configured:
        return shlex.split(configured)
    for name in ("cc", "gcc"):
        if shutil.which(name):
            return [name]
    raise ProbeError("no C compiler found: install gcc or set $CC")


def _run(command: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ProbeError(f"cannot run {shlex.join(command)}: {exc}") from exc


def build_probe(workdir: Path) -> tuple[Path, tuple[str, ...]]:
    """Compile the probe in ``workdir``; returns the executable and the flags that were used.

    Tries the full flag set first, then without OpenMP, then without -march=native, so that an
    odd compiler still gives a (lower, clearly labelled) number rather than none.
    """
    cc = compiler()
    exe = workdir / "peak"
    attempts = (
        ("-O2", "-march=native", "-fopenmp"),
        ("-O2", "-march=native"),
        ("-O2", "-fopenmp"),
        ("-O2",),
    )
    errors = []
    for flags in attempts:
        command = [*cc, *flags, str(SOURCE), "-o", str(exe)]
        done = _run(command, cwd=workdir)
        if done.returncode == 0 and exe.is_file():
            return exe, flags
        errors.append(f"$ {shlex.join(command)}\n{done.stderr.strip()}")
    raise ProbeError("the FMA-peak probe did not compile:\n" + "\n".join(errors))


def run_probe(exe: Path, threads: int, trials: int, trial_ms: float, flags: tuple[str, ...] = ()) -> Peak:
    """Run the compiled probe once for ``threads`` threads and parse its JSON line."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, but got {threads}")
    command = [str(exe), str(threads), str(trials), f"{trial_ms:g}"]
    done = _run(command)
    if done.returncode != 0:
        raise ProbeError(f"$ {shlex.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    try:
        data = json.loads(done.stdout)
    except ValueError as exc:
        raise ProbeError(f"$ {shlex.join(command)} printed no JSON: {done.stdout!r}") from exc
    return Peak(
        threads=int(data["threads"]),
        isa=str(data["isa"]),
        gflops=tuple(float(v) for v in data["gflops"]),
        clock_ghz=tuple(float(v) for v in data["clock_ghz"]),
        fma_latency=int(data["fma_latency"]),
        flags=tuple(flags),
    )


def measure(thread_counts: Sequence[int], trials: int = 9, trial_ms: float = 50.0) -> dict[int, Peak]:
    """Build the probe and measure each thread count (about trials × trial_ms × 1.3 each)."""
    with tempfile.TemporaryDirectory(prefix="symconv-peak-") as tmp:
        exe, flags = build_probe(Path(tmp))
        return {n: run_probe(exe, n, trials, trial_ms, flags) for n in thread_counts}


def _threads(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--threads must be positive integers like 1,2, but got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=_threads, default=[1, 2], help="thread counts, e.g. 1,2")
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--trial-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    for peak in measure(args.threads, args.trials, args.trial_ms).values():
        print(json.dumps(peak.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
