"""Standalone export: a layer's kernels as ``<name>.c`` + ``<name>.h``, for any C project.

The files need nothing but a C compiler and libc: no Python, no allocation, sizes as macros,
layout documented in the header. Files are written atomically (temporary file + rename), so a
reader never sees half a file.

The golden examples in ``generated/`` are exports too; regenerate them after a change to the
code generator with

    symconv generate --update-golden

and review the diff: it is exactly what changed in the generated C.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .spec import ConvSpec
from .target import DEFAULT, Target

#: The committed examples: file name → (layer, dtype).
GOLDEN: dict[str, tuple[ConvSpec, str]] = {
    # The lecture's worked example: 3×3 input, 2×2 filter.
    "lecture": (ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2)), "float32"),
    # LeNet-5's C3: 6 feature maps of 14×14 to 16 of 10×10 through 5×5 filters, with bias.
    "lenet_c3": (ConvSpec(input=(1, 6, 14, 14), weight=(16, 6, 5, 5), bias=True), "float32"),
}

#: Where the golden files live in a source checkout.
GOLDEN_DIR = Path(__file__).resolve().parent.parent / "generated"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file in the same directory + rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 is right for secrets, not for source files
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export(
    spec: ConvSpec,
    out_dir: str | os.PathLike[str],
    dtype: str = "float32",
    name: str | None = None,
    target: Target = DEFAULT,
) -> tuple[Path, Path]:
    """Write ``<name>.c`` and ``<name>.h`` for ``spec`` into ``out_dir`` (created if missing).

    ``name`` (a C identifier) prefixes every function and macro; by default it is derived from
    the layer (see ``symconv.lower.module_name``). ``target`` sizes the register tiles for a
    kind of CPU (``symconv.target``; the C is correct on any). Returns the two paths.
    """
    # The code generator (SymPy lowering, Jinja2) loads here, not when symconv is imported.
    from codegen.render import render_module

    from .lower import lower

    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path, but got {type(out_dir).__name__}")
    directory = Path(out_dir)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"out_dir must be a directory, but {str(directory)!r} is a file")
    rendered = render_module(lower(spec, dtype, name, target=target))
    directory.mkdir(parents=True, exist_ok=True)
    c_path, h_path = directory / f"{rendered.name}.c", directory / f"{rendered.name}.h"
    write_atomic(c_path, rendered.source)
    write_atomic(h_path, rendered.header)
    return c_path, h_path


def in_source_checkout(directory: Path = GOLDEN_DIR) -> bool:
    """Whether ``directory`` is the ``generated/`` folder of a source checkout (not site-packages)."""
    return directory.is_dir() and (directory.parent / "pyproject.toml").is_file()


def update_golden(directory: Path = GOLDEN_DIR) -> list[Path]:
    """Regenerate every golden example in ``directory``; returns the files written."""
    written: list[Path] = []
    for name, (spec, dtype) in GOLDEN.items():
        written.extend(export(spec, directory, dtype, name))
    return written
