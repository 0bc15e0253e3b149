"""Memory safety of the generated C: the kernel tests again, with AddressSanitizer and UBSan.

``SYMCONV_SANITIZE=1`` builds every module with ``-fsanitize=address,undefined
-fno-sanitize-recover=all`` (see codegen/build.py): the first out-of-bounds access, use of freed
memory or undefined behaviour (signed overflow, misaligned access...) aborts the process with a
report. An ordinary ``python`` has no ASan runtime, so the child runs with it preloaded:

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 SYMCONV_SANITIZE=1 \\
        python -m pytest tests/test_kernel.py tests/test_fuzz.py ...

which is what ``test_kernel_tests_run_clean_under_the_sanitizers`` does (a subset of layers, both
dtypes, every pass, hostile memory layouts), asserting a clean exit and no report. The negative
controls prove the set-up can fail: deliberately broken modules, built through the same
``build_extension``, must be caught.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codegen import build as build_mod
from codegen.build import SANITIZE_ENV, build_extension, sanitizer_runtime_loaded, toolchain
from codegen.cache import Cache
from tests.conftest import ROOT, child_env

GCC = shutil.which("gcc")
INSIDE = os.environ.get(SANITIZE_ENV) == "1"  # this process is the sanitised child


def asan_runtime() -> str | None:
    """The ASan runtime library gcc links against, if it is installed."""
    if GCC is None:
        return None
    found = subprocess.run([GCC, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return found if os.path.isabs(found) and os.path.exists(found) else None


needs_asan = pytest.mark.skipif(asan_runtime() is None, reason="gcc with the AddressSanitizer runtime is needed")
outside_only = pytest.mark.skipif(INSIDE, reason="runs the sanitised child; not again inside it")

#: What a sanitizer prints when it finds something.
REPORT = re.compile(r"ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer")


def sanitized_env(cache_dir: Path | None = None) -> dict[str, str]:
    extra = {
        "LD_PRELOAD": asan_runtime() or "",
        "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        SANITIZE_ENV: "1",
        "PYTHONFAULTHANDLER": "1",
    }
    if cache_dir is not None:
        extra["SYMCONV_CACHE_DIR"] = str(cache_dir)
    return child_env(**extra)


# -- the kernel tests, sanitised -------------------------------------------------------------------

#: What runs under the sanitizers: every pass of every kernel on fixed layers (compiled once and
#: cached), the tiled fast path, the pooling/activation/softmax/batch-norm kernels, the value
#: fuzzing on fixed layers, and the hostile memory layouts. Random layers are left out: each would
#: be a new (slower, sanitised) compile on every run.
SANITIZED_SELECTION = [
    "tests/test_sanitize.py::test_this_process_runs_sanitised_kernels",
    "tests/test_kernel.py::test_named_layers_match_oracle",
    "tests/test_kernel.py::test_named_layers_float32",
    "tests/test_kernel.py::test_empty_batch",
    "tests/test_kernel.py::test_non_contiguous_misaligned_and_readonly_inputs_are_handled",
    "tests/test_kernel.py::test_adjoint_identity",
    "tests/test_kernel.py::test_threads",
    "tests/test_fuzz.py::test_fixed_layers_and_values",
    "tests/test_hostile_kernel.py::test_odd_memory_layouts",
    "tests/test_hostile_kernel.py::test_overlapping_inputs",
    "tests/test_hostile_kernel.py::test_zero_batch",
    "tests/test_hostile_kernel.py::test_concurrent_calls",
    "tests/test_hostile_kernel.py::test_nan_and_inf_propagate",
    "tests/test_hostile_kernel.py::test_array_lying_about_its_buffer",
    # the fast path for large layers (packing buffers, register tiles, residue classes)
    "tests/test_blocked.py::test_fixed_layers_take_the_tiled_path",
    "tests/test_blocked.py::test_few_channels_change_the_lanes",
    "tests/test_blocked.py::test_weights_changed_in_place_are_seen",
    "tests/test_blocked.py::test_concurrent_calls_agree",
    "tests/test_blocked.py::test_border_columns_of_a_full_correlation_share_tiles",
    "tests/test_blocked.py::test_border_columns_of_a_padded_layer_share_tiles",
    "tests/test_blocked.py::test_weight_gradient_sums_parts_of_the_batch",
    "tests/test_lower_batch.py::test_batch_lanes_match_the_oracle",
    "tests/test_lower_batch.py::test_concurrent_calls_agree",
    # the pointwise path for 1x1 layers (every head and tail length, streamed stores, threads)
    "tests/test_lower_pointwise.py::test_fixed_layers_take_the_pointwise_path",
    "tests/test_lower_pointwise.py::test_large_outputs_are_streamed_and_right_at_any_offset",
    "tests/test_lower_pointwise.py::test_results_do_not_depend_on_threads_or_offsets",
    "tests/test_lower_pointwise.py::test_concurrent_calls_agree",
    # the other layers of a CNN: their examples come from fixed lists, so they compile once
    "tests/test_layers_kernels.py",
    # the linear layer's kernels: checks, odd memory, overlapping inputs, threads (fixed shapes)
    "tests/test_layers_kernels_checks.py::test_linear_refuses_bad_arguments_naming_them",
    "tests/test_layers_kernels_checks.py::test_linear_on_odd_memory_is_bitwise_a_contiguous_copy",
    "tests/test_layers_kernels_checks.py::test_linear_overlapping_inputs",
    "tests/test_layers_kernels_checks.py::test_linear_results_do_not_depend_on_the_thread_count",
    # the hostile-input battery of those layers: odd memory, empty batches, NaN/Inf, bad indices
    "tests/test_hostile_layers.py::test_layers_on_odd_memory",
    "tests/test_hostile_layers.py::test_layer_kernels_on_odd_memory",
    "tests/test_hostile_layers.py::test_layers_on_an_empty_batch",
    "tests/test_hostile_layers.py::test_maxpool_indices_on_odd_memory",
    "tests/test_hostile_layers.py::test_nan_and_inf_propagate_as_in_torch",
    "tests/test_hostile_layers.py::test_cross_entropy_nan_and_inf_logits_as_in_torch",
    "tests/test_hostile_layers.py::test_cross_entropy_targets",
    "tests/test_hostile_layers.py::test_cross_entropy_grad_loss",
    "tests/test_hostile_layers.py::test_kernel_arguments_are_checked",
    "tests/test_hostile_layers.py::test_maxpool_kernel_refuses_indices_outside_the_plane",
    "tests/test_hostile_layers.py::test_cross_entropy_kernel_targets",
    "tests/test_hostile_layers.py::test_index_arrays_lying_about_their_buffer",
    "tests/test_hostile_layers.py::test_activations_on_scalars_and_empty_arrays_as_torch",
    "tests/test_hostile_layers.py::test_extreme_finite_values_as_in_torch",
]


@outside_only
@needs_asan
def test_kernel_tests_run_clean_under_the_sanitizers() -> None:
    done = subprocess.run(
        # one process (-n 0): the parent suite's other workers already keep the cores busy
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-x", *SANITIZED_SELECTION],
        # about 9 minutes alone on a 2-core machine from an empty cache, more while the suite's
        # other workers share the cores: the limit only has to catch a hang
        capture_output=True, text=True, cwd=ROOT, env=sanitized_env(), timeout=1200,
    )
    output = done.stdout + done.stderr
    reports = REPORT.findall(output)
    assert not reports, output[-6000:]
    assert done.returncode == 0, output[-6000:]
    passed = re.search(r"\b(\d+) passed\b", done.stdout)
    assert passed and int(passed.group(1)) >= 100, done.stdout[-2000:]  # the selection really ran
    assert "skipped" not in done.stdout, done.stdout[-2000:]  # including the check that it is sanitised


@pytest.mark.skipif(not INSIDE, reason="only meaningful in the sanitised child")
def test_this_process_runs_sanitised_kernels(tmp_path: Path) -> None:
    """Inside the child: the runtime is loaded and kernels really are built with the sanitizers."""
    assert sanitizer_runtime_loaded()
    tools = toolchain()
    assert tools.sanitize and "-fsanitize=address,undefined" in tools.flags
    assert "-fno-sanitize-recover=all" in tools.flags
    from symconv import ConvSpec
    from symconv.api import build

    kernel = build(ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)), "float32")
    so = next(p for p in kernel.cache_path.iterdir() if p.suffix == ".so")
    maps = Path("/proc/self/maps").read_text()
    assert str(so) in maps and "libubsan" in maps and "libasan" in maps


# -- negative controls: the set-up catches real bugs ------------------------------------------------

BROKEN_C = r"""
#include <stdlib.h>
/* writes one element past a buffer it allocated itself */
int heap_overflow(int n) {
    int *p = malloc((size_t)n * sizeof *p);
    for (int i = 0; i <= n; i++) p[i] = i;
    int last = p[n - 1];
    free(p);
    return last;
}
/* writes one element past the caller's array, as a kernel with a wrong bound would */
void past_the_end(float *x, long n) { x[n] = 1.0f; }
/* signed integer overflow: undefined behaviour */
int overflow(int x) { return x + 1; }
"""
BROKEN_CDEF = "int heap_overflow(int n);\nvoid past_the_end(float *x, long n);\nint overflow(int x);\n"

CONTROL = textwrap.dedent(
    """
    import sys
    import numpy as np
    from codegen.build import build_extension
    ext = build_extension("_symconv_broken", {source!r}, {cdef!r})
    which = sys.argv[1]
    print("built", flush=True)
    if which == "heap_overflow":
        ext.lib.heap_overflow(8)
    elif which == "numpy_buffer":
        x = np.zeros(1000, np.float32)
        ext.lib.past_the_end(ext.ffi.from_buffer("float[]", x), x.size)
    elif which == "signed_overflow":
        ext.lib.overflow(2**31 - 1)
    print("survived", flush=True)
    """
).format(source=BROKEN_C, cdef=BROKEN_CDEF)

CONTROLS = {
    "heap_overflow": "AddressSanitizer: heap-buffer-overflow",
    "numpy_buffer": "AddressSanitizer: heap-buffer-overflow",
    "signed_overflow": "runtime error: signed integer overflow",
}


@outside_only
@needs_asan
@pytest.mark.parametrize("which", CONTROLS)
def test_sanitizers_catch_a_real_bug(which: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CONTROL, which], capture_output=True, text=True, cwd=ROOT,
        env=sanitized_env(tmp_path / "cache"), timeout=300,
    )
    assert "built" in done.stdout, done.stderr[-3000:]  # it got as far as the bad call
    assert "survived" not in done.stdout
    assert done.returncode != 0
    assert CONTROLS[which] in done.stderr, done.stderr[-3000:]


@outside_only
@needs_asan
def test_the_same_module_is_harmless_without_the_bug(tmp_path: Path) -> None:
    """The control module's other functions run clean: the reports above come from the bugs."""
    control = CONTROL.replace('print("survived", flush=True)', 'ext.lib.overflow(1); print("survived", flush=True)')
    done = subprocess.run(
        [sys.executable, "-c", control, "none"], capture_output=True, text=True, cwd=ROOT,
        env=sanitized_env(tmp_path / "cache"), timeout=300,
    )
    assert done.returncode == 0 and "survived" in done.stdout, done.stderr[-3000:]
    assert not REPORT.search(done.stderr)


# -- the switch itself ------------------------------------------------------------------------------


def test_sanitize_flags_are_part_of_the_cache_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    monkeypatch.setenv(SANITIZE_ENV, "0")
    plain = toolchain(cache)
    monkeypatch.setenv(SANITIZE_ENV, "1")
    sanitized = toolchain(cache)
    assert not plain.sanitize and sanitized.sanitize
    assert not any("sanitize" in f for f in plain.flags)
    for flag in build_mod.SANITIZE_FLAGS:
        assert flag in sanitized.flags
    assert sanitized.flags[-1] == "-fno-wrapv"
    assert Cache.key(plain.key_inputs()) != Cache.key(sanitized.key_inputs())


@pytest.mark.skipif(INSIDE or sanitizer_runtime_loaded(), reason="needs a process without the ASan runtime")
def test_sanitized_build_without_the_runtime_is_refused_before_loading(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Loading an ASan module here would abort the interpreter; a clear error comes first."""
    monkeypatch.setenv(SANITIZE_ENV, "1")
    with pytest.raises(RuntimeError, match=r"LD_PRELOAD=.*libasan.*ASAN_OPTIONS=detect_leaks=0") as info:
        build_extension("_symconv_needs_asan", "int one(void) { return 1; }\n", "int one(void);",
                        cache=Cache(tmp_path / "c"))
    assert SANITIZE_ENV in str(info.value)
