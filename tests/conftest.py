"""Shared test set-up: hypothesis profiles, and running risky cases in a separate process.

Hypothesis profiles (they only change tests that do not fix ``max_examples`` themselves, which
are the fuzz tests of ``tests/test_fuzz.py``):

* ``ci`` (the default): short, so the whole suite stays quick;
* ``fuzz``: long (``max_examples`` 50 000, or ``$SYMCONV_FUZZ_EXAMPLES``), chosen with
  ``--hypothesis-profile=fuzz`` or the environment variable ``SYMCONV_FUZZ=1``.

Isolated cases: a case that hands hostile memory to compiled code could crash the interpreter
instead of failing. The ``isolated`` fixture runs a module's cases (zero-argument functions in its
``ISOLATED_CASES`` dict) in a fresh Python process; a segfault or abort then fails that one case,
names the signal and shows the process's last output, and the remaining cases run on in a new
process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]

# -- hypothesis profiles ------------------------------------------------------------------------

_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=20, deadline=None, print_blob=True, suppress_health_check=_RELAXED)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("SYMCONV_FUZZ_EXAMPLES", "") or 50_000),
    deadline=None,
    print_blob=True,
    suppress_health_check=_RELAXED,
)
# --hypothesis-profile (read by hypothesis's own plugin, after this file) wins over the variable.
settings.load_profile("fuzz" if os.environ.get("SYMCONV_FUZZ", "").strip() in ("1", "true", "yes") else "ci")


# -- order ----------------------------------------------------------------------------------------

#: Tests that take minutes on their own: they go first, so that with several worker processes
#: (pytest-xdist) the others share out the rest of the suite meanwhile, instead of waiting at
#: the end for the one still running them.
LONG_FIRST = ("tests/test_sanitize.py::test_kernel_tests_run_clean_under_the_sanitizers",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid not in LONG_FIRST)  # stable: the rest keep their order


# -- isolated cases -----------------------------------------------------------------------------

#: Prefix of the child's protocol lines on stdout (anything else a case prints is ignored).
MARK = "@@isolated@@ "
#: How long one child may run before it is killed (its unfinished case then fails).
CHILD_TIMEOUT_S = 600

CHILD = f"""
import importlib, json, sys, traceback
cases = importlib.import_module(sys.argv[1]).ISOLATED_CASES
for name in sys.argv[2:]:
    print({MARK!r} + json.dumps({{"start": name}}), flush=True)
    try:
        cases[name]()
    except BaseException as exc:
        outcome = {{"name": name, "ok": False, "error": traceback.format_exc()}}
    else:
        outcome = {{"name": name, "ok": True}}
    print({MARK!r} + json.dumps(outcome), flush=True)
"""


@dataclass(frozen=True)
class Outcome:
    """How one isolated case ended: passed, raised (with its traceback), or took its process down."""

    name: str
    ok: bool
    error: str = ""

    def check(self) -> None:
        if not self.ok:
            pytest.fail(f"isolated case {self.name!r} failed:\n{self.error}", pytrace=False)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python: this one, with the repository importable."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _describe_exit(code: int | None) -> str:
    if code is None:
        return f"was killed after {CHILD_TIMEOUT_S} s"
    if code < 0:
        try:
            return f"died of signal {signal.Signals(-code).name}"
        except ValueError:
            return f"died of signal {-code}"
    return f"exited with code {code}"


def _run_child(module: str, names: list[str], env: Mapping[str, str]) -> tuple[dict[str, Outcome], str | None]:
    """Run ``names`` in one child; return the finished outcomes and the case it died in (if any)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, module, *names],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env), cwd=ROOT,
    )
    try:
        out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        code = None
    done: dict[str, Outcome] = {}
    started = None
    for line in out.splitlines():
        if not line.startswith(MARK):
            continue
        record = json.loads(line[len(MARK):])
        if "start" in record:
            started = record["start"]
        else:
            done[record["name"]] = Outcome(record["name"], record["ok"], record.get("error", ""))
            started = None
    if started is None and len(done) < len(names):  # died before its first case (an import error)
        started = next(n for n in names if n not in done)
    if started is not None:
        tail = "\n".join(err.strip().splitlines()[-30:])
        done[started] = Outcome(started, False, f"the process {_describe_exit(code)} during this case:\n{tail}")
    return done, started


class Isolated:
    """Runs (and remembers) the isolated cases of test modules."""

    def __init__(self) -> None:
        self._results: dict[tuple[str, tuple[str, ...]], dict[str, Outcome]] = {}

    def run(self, module: str, names: Iterable[str], env: Mapping[str, str] | None = None) -> dict[str, Outcome]:
        """Outcomes of ``module.ISOLATED_CASES[name]`` for every name, run in fresh processes."""
        names = tuple(names)
        key = (module, names)
        if key not in self._results:
            env = child_env() if env is None else env
            pending, outcomes = list(names), {}
            while pending:
                done, crashed = _run_child(module, pending, env)
                outcomes.update(done)
                pending = [n for n in pending if n not in outcomes]
                if crashed is None and pending:  # it stopped without a crash report: do not loop
                    outcomes.update({n: Outcome(n, False, "the case never ran") for n in pending})
                    pending = []
            self._results[key] = outcomes
        return self._results[key]


@pytest.fixture(scope="session")
def isolated() -> Isolated:
    return Isolated()
