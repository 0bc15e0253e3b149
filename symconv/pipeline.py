"""One layer from SymPy to machine code, as named stages in one place.

    spec ─derive─▶ Derivation ─general─▶ GeneralForm ─lower─▶ codegen.ir.Module
         ─render─▶ codegen.render.CSource ─build─▶ codegen.build.Extension ─kernel─▶ ConvKernel

Each stage is a plain function of the previous stage's result, so any of them can be run and
inspected on its own (print the IR, read the C, look at the cache entry and its build command).
:func:`run` chains them; :func:`trace` also keeps every intermediate result.

Lowering runs SymPy and takes a good fraction of a second, so :func:`run` also keeps the rendered
C of each layer in the cache directory ("layers" records), keyed by the spec, the dtype, the
target CPU's tile sizes (``symconv.target``) and a fingerprint of this package's code and templates: a layer seen before, in any process, goes
straight to the (cached) build, unless the code that renders it has changed since.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from codegen import ir
from codegen.build import CompilerError, Extension, build_extension, toolchain
from codegen.cache import default_cache
from codegen.kernel import ConvKernel
from codegen.render import CSource, render_module

from .derive import Derivation, derive
from .general import GeneralForm
from .lower import lower
from .spec import ConvSpec
from .target import DEFAULT, Target, target_for

#: Prefix of the Python extension module, so it never shadows a C function name.
MODULE_PREFIX = "_symconv_"


def dtype_name(dtype: object) -> str:
    """``"float32"`` or ``"float64"`` (from a string or numpy dtype); anything else is refused."""
    try:
        name = np.dtype(dtype).name  # type: ignore[call-overload]
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', but got {dtype!r}")
    return name


# -- the stages --------------------------------------------------------------------------------


def derive_stage(spec: ConvSpec) -> Derivation:
    """SymPy writes the layer's equations and differentiates them (lazily)."""
    return derive(spec)


def general_stage(derivation: Derivation) -> GeneralForm:
    """The size-independent index form of O, dX, dW (and db), with its guards."""
    return derivation.general(symbolic=True)


def native_target() -> Target:
    """The tile sizes for the CPU this process runs on, as the compiler describes it."""
    try:
        return target_for(toolchain().target)
    except CompilerError:
        # No usable compiler: render for the default target anyway, so that the build stage
        # reports the error with the generated C kept beside it for the reader.
        return DEFAULT


def lower_stage(spec: ConvSpec, dtype: str) -> ir.Module:
    """The general form, specialised to this layer, as loop nests (C text from SymPy's printer),
    with register tiles sized for this CPU.

    ``symconv.lower`` runs the two stages above itself (specialised and symbolic forms).
    """
    return lower(spec, dtype, target=native_target())


def render_stage(module: ir.Module) -> CSource:
    """The loop nests as one C translation unit, its header and the cffi declarations."""
    return render_module(module)


def build_stage(csource: CSource) -> Extension:
    """Compile (or fetch from the cache) and load the C as a Python extension module."""
    from . import __version__

    return build_extension(MODULE_PREFIX + csource.name, csource.source, csource.cdef, project=__version__)


def kernel_stage(spec: ConvSpec, dtype: str, csource: CSource, extension: Extension) -> ConvKernel:
    """Wrap the C functions with argument checks for this layer's shapes and dtype."""
    threads = f"{csource.name}_set_num_threads"
    return ConvKernel(
        lib=extension.lib,
        ffi=extension.ffi,
        functions=csource.functions,
        input_shape=spec.input,
        weight_shape=spec.weight,
        output_shape=spec.output,
        bias=spec.bias,
        dtype=dtype,
        threads_function=threads if hasattr(extension.lib, threads) else None,
        source=csource.source,
        header=csource.header,
        cache_path=extension.path,
        spec=spec,
    )


# -- chained -----------------------------------------------------------------------------------


def run(spec: ConvSpec, dtype: object = "float32") -> ConvKernel:
    """spec → kernel, through every stage (rendered C and compiled module are cached on disk)."""
    _check_spec(spec)
    name = dtype_name(dtype)
    csource = rendered(spec, name)
    return kernel_stage(spec, name, csource, build_stage(csource))


def rendered(spec: ConvSpec, dtype: str) -> CSource:
    """The rendered C of a layer: from its cache record if the code is unchanged, else lowered."""
    cache, key = default_cache(), _layer_key(spec, dtype)
    csource = _from_record(cache.read_json("layers", key))
    if csource is None:
        csource = render_stage(lower_stage(spec, dtype))
        record = asdict(csource)
        record["source_sha256"] = hashlib.sha256(csource.source.encode()).hexdigest()
        cache.write_json("layers", key, record)
    return csource


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over the Python sources and templates of symconv and codegen (what renders C)."""
    import codegen

    digest = hashlib.sha256()
    roots = [Path(__file__).parent, Path(next(iter(codegen.__path__)))]
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".j2") and p.is_file()):
            digest.update(path.relative_to(root.parent).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _layer_key(spec: ConvSpec, dtype: str) -> str:
    from . import __version__

    text = json.dumps(
        {
            "spec": spec.to_dict(),
            "dtype": dtype,
            "version": __version__,
            "code": code_fingerprint(),
            "target": native_target().name,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _from_record(record: Any) -> CSource | None:
    """A CSource from a layer record, or None if the record is absent or damaged."""
    fields = ("name", "source", "header", "cdef")
    if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in fields):
        return None
    functions = record.get("functions")
    if not isinstance(functions, dict) or not all(isinstance(v, str) for v in functions.values()):
        return None
    if record.get("source_sha256") != hashlib.sha256(record["source"].encode()).hexdigest():
        return None
    return CSource(**{f: record[f] for f in fields}, functions=dict(functions))


@dataclass(frozen=True)
class Trace:
    """Every intermediate result of one layer's trip through the pipeline."""

    spec: ConvSpec
    dtype: str
    derivation: Derivation
    general: GeneralForm
    module: ir.Module
    csource: CSource
    extension: Extension
    kernel: ConvKernel


def trace(spec: ConvSpec, dtype: object = "float32") -> Trace:
    """Like :func:`run`, keeping what each stage produced (for reading and teaching)."""
    _check_spec(spec)
    name = dtype_name(dtype)
    derivation = derive_stage(spec)
    general = general_stage(derivation)
    module = lower_stage(spec, name)
    csource = render_stage(module)
    extension = build_stage(csource)
    return Trace(spec, name, derivation, general, module, csource, extension,
                 kernel_stage(spec, name, csource, extension))


def _check_spec(spec: object) -> None:
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, but got {type(spec).__name__}")
