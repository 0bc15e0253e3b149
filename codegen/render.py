"""IR → C: one translation unit, its standalone header, and the declarations cffi needs.

The templates (``templates/module.c.j2``, ``templates/header.h.j2``) hold the layout of the
files; this module only prepares the data they loop over: aligned macro lines, parameter lists,
and the loop nest as indented lines (its depth varies with the layer's rank, which a template
cannot express without logic of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import jinja2

from .ir import (
    ELEMENT_BYTES,
    Blocked,
    BlockedBatch,
    BlockedReduce,
    BlockedWeight,
    BlockRow,
    Kernel,
    Loop,
    Macro,
    Module,
    Plan,
    Pointwise,
    RowVector,
    RowWeight,
)

TEMPLATES = Path(__file__).parent / "templates"
INDENT = "    "
MAX_LINE = 100

#: The functions every module has besides its kernels: (suffix, C declaration after the name).
HELPERS = (("set_num_threads", "void {name}(int n)"), ("has_openmp", "int {name}(void)"))


@dataclass(frozen=True)
class CSource:
    """The rendered C of one module.

    ``source`` is a complete translation unit, ``header`` the matching standalone header,
    ``cdef`` the declarations for ``cffi.FFI.cdef`` (no macros, no ``restrict``), and
    ``functions`` maps each kernel name ("forward", ...) to its C function name.
    """

    name: str
    source: str
    header: str
    cdef: str
    functions: dict[str, str]


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


# -- pieces ----------------------------------------------------------------------------------


def function_name(module: Module, kernel: Kernel) -> str:
    return f"{module.name}_{kernel.name}"


def parameters(module: Module, kernel: Kernel, restrict: bool) -> list[str]:
    """``const float *restrict x`` for every argument (inputs are const)."""
    qualifier = "*restrict " if restrict else "*"
    return [
        f"{'' if arg.output else 'const '}{module.ctype} {qualifier}{arg.name}" for arg in kernel.args
    ]


def declaration(head: str, params: list[str]) -> str:
    """``head(a, b, c)``, wrapped under the opening parenthesis when it gets long."""
    one_line = f"{head}({', '.join(params)})"
    if len(one_line) <= MAX_LINE:
        return one_line
    return f"{head}(" + (",\n" + " " * (len(head) + 1)).join(params) + ")"


def loop_header(loop: Loop, full: bool = False) -> str:
    """``for (...) {`` over the loop's range: the guards' bounds unless ``full`` (all of lo..hi)."""
    var = loop.var
    start = str(loop.lo) if full or not loop.start else loop.start
    if full or not loop.stop:
        stop = f"< {loop.extent}" if loop.extent and loop.lo == 0 else f"<= {loop.hi}"
    else:
        stop = f"<= {loop.stop}"
    step = f"++{var}" if full or loop.step == 1 else f"{var} += {loop.step}"
    return f"for (ptrdiff_t {var} = {start}; {var} {stop}; {step}) {{"


def parallel_pragma(kernel: Kernel) -> list[str]:
    """The OpenMP pragma for the leading independent loops, hidden from non-OpenMP builds
    (where ``-Wall`` would warn about an unknown pragma). A nest with too little work for
    threads gets none: it runs on the calling thread without touching the OpenMP runtime."""
    if kernel.parallel == 0:
        return []
    if not kernel.threaded:
        return [f"{INDENT}/* one thread: {kernel.work} multiply-adds cost less than starting threads */"]
    collapse = f" collapse({kernel.parallel})" if kernel.parallel > 1 else ""
    return ["#ifdef _OPENMP", f"#pragma omp parallel for{collapse}", "#endif"]


SIMD_PRAGMA = ["#ifdef _OPENMP", "#pragma omp simd", "#endif"]


def nested(loops: Sequence[Loop], inner: list[str], depth: int, full: bool = False) -> list[str]:
    """``loops`` nested around ``inner`` at indentation ``depth``; guards become ``continue``.

    The innermost loop of a tile gets ``#pragma omp simd``: its iterations touch different
    accumulator entries and only read the inputs, so running them in vector lanes is exact.
    """
    lines: list[str] = []
    for position, loop in enumerate(loops):
        pad = INDENT * (depth + position)
        lines.append(pad + loop_header(loop, full))
        if loop.guards and not full:
            lines.append(f"{pad}{INDENT}if (!({' && '.join(loop.guards)})) continue;")
    lines += [_indent(line, depth + len(loops)) for line in inner]
    for position in reversed(range(len(loops))):
        lines.append(INDENT * (depth + position) + "}")
    return lines


def _indent(line: str, depth: int) -> str:
    """Indent a line of C, except preprocessor lines, which stay in the first column."""
    return line if line.startswith("#") else INDENT * depth + line


def _number(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None


def _shift(text: str, by: int) -> str:
    """``text + by`` as C, computed when ``text`` is a number."""
    value = _number(text)
    if value is not None:
        return str(value + by)
    return f"{text} {'+' if by > 0 else '-'} {abs(by)}"


def _fold(function: str, a: str, b: str) -> str:
    """``ix_max(a, b)`` / ``ix_min(a, b)``, computed when both are numbers."""
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return str(max(x, y) if function == "ix_max" else min(x, y))
    return f"{function}({a}, {b})"


def row_loop(module: Module, kernel: Kernel) -> list[str]:
    """The innermost tile loop (the row) with what runs inside it, under ``omp simd``.

    Without folded sums the body is one accumulation. With them, each row entry is loaded once,
    the folded sums add into a scalar and the entry is stored once; when the folded loops have
    guards, the row is split into a border (guards tested) and an interior (no tests).
    """
    row = kernel.tile_loops[-1]
    entry = kernel.tile_index
    if not kernel.inner:
        return [*SIMD_PRAGMA, *nested([row], [f"{entry} += {kernel.term};"], 0)]

    def body(tested: bool) -> list[str]:
        inner = kernel.inner_loops if tested else tuple(replace(l, guards=()) for l in kernel.inner_loops)
        add = nested(inner, [f"a += {kernel.term};"], 0)
        return [f"{module.ctype} a = {entry};", *add, f"{entry} = a;"]

    if not row.interior_start:
        return [*SIMD_PRAGMA, *nested([row], body(True), 0)]
    start = row.start or str(row.lo)
    stop = row.stop or (f"{row.extent} - 1" if row.extent and row.lo == 0 else str(row.hi))
    first = _fold("ix_max", start, row.interior_start)
    parts = (
        ("border before the interior: test every term", start,
         _fold("ix_min", stop, _shift(row.interior_start, -1)), True),
        ("interior: every term is in range", first, _fold("ix_min", stop, row.interior_stop), False),
        ("border after the interior", _fold("ix_max", first, _shift(row.interior_stop, 1)), stop, True),
    )
    lines: list[str] = []
    for comment, lo, hi, tested in parts:
        split = replace(row, start=lo, stop=hi, step=1)
        lines += [f"/* {comment} */", *([] if tested else SIMD_PRAGMA), *nested([split], body(tested), 0)]
    return lines


def body(module: Module, kernel: Kernel) -> list[str]:
    """The function body: the parallel outer loops, then one accumulator (scalar or tile)."""
    docs = {arg.name: arg.doc for arg in kernel.args}
    lines = [f"{INDENT}(void){name}; /* {docs[name]} */" for name in kernel.unused]
    outer = kernel.loops[: kernel.reduce_at]
    if outer:
        lines += parallel_pragma(kernel)
    lines += nested(outer, accumulate(module, kernel), 1)
    return lines


def accumulate(module: Module, kernel: Kernel) -> list[str]:
    """Inside the outer free loops: start the accumulator, run the sums, store."""
    T, inner = module.ctype, kernel.loops[kernel.reduce_at :]
    if kernel.tile_kind == "":
        return [f"{T} acc = {kernel.init};", *nested(inner, [f"acc += {kernel.term};"], 0),
                f"{kernel.target} = acc;"]
    tile, entry = kernel.tile_loops, kernel.tile_index
    sizes = "".join(f"[{loop.extent or loop.trips}]" for loop in tile)
    around = inner[: len(inner) - kernel.inner - 1]  # every loop of the reduction outside the row
    sums = nested(around, row_loop(module, kernel), 0)
    if kernel.tile_kind == "outputs":
        return [
            f"{T} acc{sizes}; /* the outputs of this tile, stored once at the end */",
            *nested(tile, [f"{entry} = {kernel.init};"], 0, full=True),
            *sums,
            *nested(tile, [f"{kernel.target} = {entry};"], 0, full=True),
        ]
    add_up = [
        f"{T} total = {kernel.init};",
        *nested(tile[-1:], [f"total += {entry};"], 0, full=True),
        f"{kernel.target} = total;",
    ]
    return [
        f"{T} acc{sizes}; /* one partial sum per lane, added up in order at the end */",
        *nested(tile, [f"{entry} = 0;"], 0, full=True),
        *sums,
        *nested(kernel.store_loops, add_up, 0, full=True),
    ]


def macro_lines(macros: tuple[Macro, ...], prefix: str = "") -> list[str]:
    """``#define NAME value  /* doc */`` lines with aligned columns."""
    names = [prefix + m.name for m in macros]
    width = max((len(n) for n in names), default=0)
    values = [str(m.value) for m in macros]
    value_width = max((len(v) for v in values), default=0)
    return [
        f"#define {n.ljust(width)} {v.ljust(value_width)}  /* {m.doc} */"
        for n, v, m in zip(names, values, macros)
    ]


def tensor_lines(module: Module) -> list[str]:
    """One line per array: layout, shape and element count."""
    rows = [(t.index, " x ".join(map(str, t.shape)), f"= {t.size} elements", t.role) for t in module.tensors]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        f"{index.ljust(widths[0])}  {shape.ljust(widths[1])}  {count.ljust(widths[2])}  ({role})"
        for index, shape, count, role in rows
    ]


def argument_lines(kernel: Kernel) -> list[str]:
    width = max(len(arg.name) for arg in kernel.args)
    return [f"{arg.name.ljust(width)}  {'out' if arg.output else 'in '}  {arg.doc}" for arg in kernel.args]


def helper_declarations(module: Module) -> dict[str, str]:
    return {suffix: decl.format(name=f"{module.name}_{suffix}") for suffix, decl in HELPERS}


# -- register-tiled kernels ------------------------------------------------------------------

#: What the lanes of a tiled kernel hold, for its comment.
LANE_WORDS = {"forward": "output", "grad_input": "input"}


#: Independent accumulators a tile needs to keep the multiply-add units busy (latency x units).
MIN_CHAINS = 8


def row_lines(rows: Sequence[BlockRow]) -> list[str]:
    """A plan's row table as C initialiser lines: {row, read row, first tap, taps}."""
    return [f"{{{r.out}, {r.read}, {r.tap}, {r.taps}}}," for r in rows]


def unread(kernel: Kernel, used: set[str]) -> list[str]:
    """The arguments of ``kernel`` that a fast version does not read (cast to void in C)."""
    return [arg.name for arg in kernel.args if arg.name not in used]


def by_element(width: int, taps: int, tap_col: int, pixel: int,
               spans: Sequence[tuple[int, int]] = ()) -> tuple[int, list[tuple[int, list[tuple[int, int]]]]]:
    """The terms of a tile's filter row grouped by the read element they broadcast.

    Pixel ``px`` at filter column ``c`` reads ``c * tap_col + px * pixel`` elements from where
    pixel 0 reads at column 0 (with ``spans``, each pixel takes only its own columns). Returns
    the smallest such offset (the tile is given a pointer to that element) and, in the order of
    the filter columns, the groups (offset from there, [(pixel, column), ...]).

    Every accumulator still takes its filter columns in ascending order, so the sums are the same,
    bit for bit, as column by column. Why group: taken column by column, the compiler keeps each
    element for the next column's terms anyway, and with those extra live registers it shuffles
    accumulators between registers (the 3x3 forward tile of resnet_3x3_56 run alone on one
    thread: 21 register copies per 54 multiply-adds and 176 GFLOP/s; grouped: 1 copy and
    187-196 GFLOP/s, the same sums)."""
    groups: dict[int, list[tuple[int, int]]] = {}
    for c in range(taps):
        for px in range(width):
            first, count = spans[px] if spans else (0, taps)
            if first <= c < first + count:
                groups.setdefault(c * tap_col + px * pixel, []).append((px, c))
    shift = min(groups, default=0)  # no terms: a tile no filter column reaches
    order = sorted(groups, key=lambda offset: offset if tap_col >= 0 else -offset)
    return shift, [(offset - shift, groups[offset]) for offset in order]


def by_column(width: int, taps: int, tap_col: int, pixel: int,
              spans: Sequence[tuple[int, int]] = ()) -> tuple[int, list[tuple[int, list[tuple[int, int]]]]]:
    """The terms of a tile's filter row by filter column: the offset of the first element the
    row reads (as ``by_element``) and, per column taken by any pixel, [(pixel, offset of its
    read from there), ...]. For tiles that broadcast one weight per column and channel and load
    the read element as a vector: each column's weights are loaded once, for all its pixels."""
    shift, groups = by_element(width, taps, tap_col, pixel, spans)
    columns: dict[int, list[tuple[int, int]]] = {}
    for offset, terms in groups:
        for px, c in terms:
            columns.setdefault(c, []).append((px, offset))
    return shift, [(c, sorted(columns[c])) for c in sorted(columns)]


#: How many reduced channels ahead an unrolled tile asks for its reads. The rows of consecutive
#: channels lie a whole plane apart, a pattern the hardware prefetchers do not follow, so without
#: it every channel's first loads wait for the L2 cache (resnet_3x3_56 forward, one thread:
#: 152-166 -> 160-170 GFLOP/s with 2 channels ahead, the same with 4; resnet_3x3_s2: 117-119 ->
#: 137-149).
PREFETCH_CHANNELS = 2


def prefetch_offsets(terms: Sequence[tuple[int, Any]], element: int) -> list[int]:
    """Elements, from the first one a tile's filter row reads, that together lie on every cache
    line the row's reads touch (wherever the first falls in its line): one per line length, and
    the last."""
    if not terms:
        return []  # a tile no filter column reaches reads nothing
    last = max(offset for offset, _ in terms)
    per_line = 64 // element
    return sorted(set(range(0, last + 1, per_line)) | {last})


def rolled(plan: Blocked, taps: int) -> bool:
    """Whether a tile's filter row stays a loop over its columns (too many weight vectors: with
    all of them live at once, the compiler would spill accumulators)."""
    return taps * plan.pair > plan.unrolled_weights


def tiled_context(plan: Blocked | BlockedReduce | BlockedBatch, ctype: str) -> dict[str, Any]:
    """What every register-tiled template gets: the plan's fields, its tile shapes and their C
    names, the vector size, the widest tile, the row table."""
    return {
        **{field: getattr(plan, field) for field in plan.__dataclass_fields__},
        "shapes": plan.shapes,
        "tile_names": {shape: tile_name(*shape) for shape in plan.shapes},
        "vector_bytes": plan.lanes * ELEMENT_BYTES[ctype],
        "max_width": max(tile.width for tile in plan.tiles) if plan.tiles else 0,
        "row_lines": row_lines(plan.rows),
    }


def blocked_context(plan: Blocked, ctype: str) -> dict[str, Any]:
    """The numbers ``blocked.c.j2`` needs besides the plan: packed-weight strides and rows."""
    ragged = [tile for tile in plan.tiles if tile.spans and rolled(plan, tile.taps)]
    if ragged:
        raise ValueError(f"tiles with their own filter columns per pixel must be unrolled, but got {ragged[0]}")
    by_elements = {
        shape: by_element(*shape[:2], plan.read_tap_col, plan.read_pixel, shape[2])
        for shape in plan.shapes if not rolled(plan, shape[1])
    }
    row = plan.taps_w * plan.lanes  # one filter row of one reduced channel in the packed weights
    chan = plan.taps_h * row
    element = ELEMENT_BYTES[ctype]
    return {
        **tiled_context(plan, ctype),
        "lane_word": LANE_WORDS.get(plan.kernel, "lane"),
        "pack_row": row,
        "pack_chan": chan,
        "pack_block": plan.reduce * chan,
        "pack_size": plan.blocks * plan.reduce * chan,
        "pack_tap_row": plan.tap_step_h * row,
        "pack_tap_col": plan.tap_step_w * plan.lanes,
        # unrolled filter rows: (first element read, terms by element); rolled ones are loops
        "by_element": by_elements,
        # per unrolled tile shape, the elements whose cache lines it asks for ahead
        "prefetch_at": {
            shape: prefetch_offsets(terms, element) for shape, (_, terms) in by_elements.items()
        },
        "prefetch_chans": PREFETCH_CHANNELS,
        # where each tile's pointer into the read array points: the first element it reads
        "tile_reads": [
            tile.read + by_elements.get((tile.width, tile.taps, tile.spans), (0, []))[0] for tile in plan.tiles
        ],
        "min_chains": MIN_CHAINS,
        "element_bytes": element,
        # a row may start anywhere in a cache line: one line more than its length
        "prefetch_read_bytes": plan.read_row * element + 64,
        "prefetch_out_bytes": plan.out_row * element + 64,
    }


#: Vector multiply-adds a weight-gradient tile should do per pass over the batch (a pass ends by
#: adding the tile to grad_w), and the accumulators of a typical tile. Longer passes measured
#: better on two threads (3 passes instead of 8 on resnet_3x3_56: 5.5 -> 5.1 ms; one pass
#: instead of four on lenet_c3: 0.124 -> 0.118 ms) and the same on one.
WEIGHT_PASS_WORK = 131072
TILE_WORK = 20


def weight_context(plan: BlockedWeight, ctype: str) -> dict[str, Any]:
    """The numbers ``blocked_weight.c.j2`` needs besides the plan: packed-G strides, tables."""
    vector_bytes = plan.lanes * ELEMENT_BYTES[ctype]
    block = plan.out_h * plan.out_w * plan.lanes
    index = {shape: position for position, shape in enumerate(plan.shapes)}
    tasks = [
        (r, tile.out, tile.tap, tile.taps, tile.read, first, index[(count, tile.width)], block)
        for first, count in plan.chan_blocks  # empty ranges too: their entries are zeros
        for r in range(plan.taps_h)
        for tile in plan.tiles
        for block in range(0, plan.blocks, plan.pair)
    ]
    chunk = min(plan.batch, max(1, -(-WEIGHT_PASS_WORK // max(1, plan.out_h * plan.out_w * TILE_WORK))))
    return {
        **{field: getattr(plan, field) for field in plan.__dataclass_fields__},
        "shapes": plan.shapes,
        "vector_bytes": vector_bytes,
        "pack_block": block,
        "pack_batch": plan.blocks * block,
        "pack_size": plan.batch * plan.blocks * block,
        "row_lines": row_lines(plan.rows),
        "tasks": tasks,
        "task_lines": ["{" + ", ".join(map(str, task)) + "}," for task in tasks],
        "batch_chunk": chunk,
    }


@dataclass(frozen=True)
class LaneSums:
    """How to add up the lanes of several vectors at once: each step makes ``name`` from two
    vectors, ``pick(a, b, lo) + pick(a, b, hi)`` (lane indices into a then b), and ``where`` gives,
    per input vector, the result vector and lane that end up holding the sum of its lanes."""

    steps: tuple[tuple[str, str, str, str, str], ...]
    where: dict[str, tuple[str, int]]


def lane_sums(names: Sequence[str], lanes: int) -> LaneSums:
    """Add up the lanes of each vector in ``names`` by halves, vectors two at a time.

    Each step adds the upper half of every segment of two vectors onto the lower half and packs
    both results into one vector (a vector without a partner is paired with itself), so after
    log2(lanes) steps one vector holds up to ``lanes`` sums. Every sum is added in the order of
    halving one vector on its own ((l0 + l8) + (l4 + l12) ...), but a sum costs about three
    instructions instead of eight.
    """
    vectors = [(name, [name]) for name in names]
    steps, size = [], lanes
    while size > 1:
        half, paired = size // 2, []
        for i in range(0, len(vectors), 2):
            (a, held_a), (b, held_b) = vectors[i], vectors[min(i + 1, len(vectors) - 1)]
            lo, hi = [], []
            for offset in (0, lanes):
                for segment in range(lanes // size):
                    start = offset + segment * size
                    lo += range(start, start + half)
                    hi += range(start + half, start + size)
            name = f"s{len(steps)}"
            steps.append((name, a, b, ", ".join(map(str, lo)), ", ".join(map(str, hi))))
            paired.append((name, held_a + held_b))
        vectors, size = paired, half
    where: dict[str, tuple[str, int]] = {}
    for name, held in vectors:
        for lane, source in enumerate(held):
            where.setdefault(source, (name, lane))
    return LaneSums(tuple(steps), where)


def tile_name(width: int, taps: int, spans: Sequence[tuple[int, int]] = ()) -> str:
    """``tile_<pixels>x<filter columns>``, and each pixel's first filter column and count when
    they differ (``tile_2x4_s04_13``: pixel 0 takes columns 0-3, pixel 1 columns 1-3)."""
    return f"tile_{width}x{taps}" + ("_s" + "_".join(f"{first}{count}" for first, count in spans) if spans else "")


def reduce_context(plan: BlockedReduce, ctype: str) -> dict[str, Any]:
    """The numbers ``blocked_reduce.c.j2`` needs besides the plan: packed strides, rows."""
    g_block = plan.grad_h * plan.grad_w * plan.lanes
    w_tap = plan.blocks * plan.lanes  # one filter tap of one input channel in the packed W
    # tiles whose pixels take their own filter columns: their terms by column, each G column
    # counted from the first one the tile reads (where its pointer points)
    ragged = {
        shape: by_column(*shape[:2], plan.grad_tap_col, plan.grad_pixel, shape[2]) for shape in plan.shapes if shape[2]
    }
    return {
        **tiled_context(plan, ctype),
        "g_block": g_block,
        "g_batch": plan.blocks * g_block,
        "gpack_size": plan.batch * plan.blocks * g_block,
        "g_row": plan.grad_tap_row * plan.grad_w * plan.lanes,
        "g_col": plan.grad_tap_col * plan.lanes,
        "g_pixel": plan.grad_pixel * plan.lanes,
        "w_filter_row": plan.taps_w * w_tap,
        "w_row": plan.tap_step_h * plan.taps_w * w_tap,
        "w_col": plan.tap_step_w * w_tap,
        "w_chan": plan.taps_h * plan.taps_w * w_tap,
        "wpack_size": plan.channels * plan.taps_h * plan.taps_w * w_tap,
        # per tile shape, how its accumulators' lanes are added up
        "lane_sums": {
            width: lane_sums([f"a{px}_{c}" for px in range(width) for c in range(plan.channels)], plan.lanes)
            for width, _, _ in plan.shapes
        },
        "terms": ragged,
        "tile_reads": [tile.read + ragged[(tile.width, tile.taps, tile.spans)][0] if tile.spans else tile.read
                       for tile in plan.tiles],
        "mask_type": {4: "int", 8: "long long"}[ELEMENT_BYTES[ctype]],
    }


#: Bytes between addresses that share a set of the L1 cache (32 KB of 8 ways: 4 KB).
CACHE_SET_STRIDE = 4096


def spread_planes(elements: int, element_bytes: int) -> int:
    """Elements between two packed planes that a tile reads side by side: ``elements``, plus
    one cache line if that is a multiple of the cache-set stride. Planes of such sizes (G of a
    32x32 image, 8 batch items: 32 KB) all start in the same L1 set, and the rows a tile reads
    from each of its summed channels would evict one another."""
    if elements * element_bytes % CACHE_SET_STRIDE == 0:
        return elements + 64 // element_bytes
    return elements


def batch_context(plan: BlockedBatch, ctype: str) -> dict[str, Any]:
    """The numbers ``blocked_batch.c.j2`` needs besides the plan: packed-G strides, the terms
    of each tile shape by filter column, where each tile reads."""
    terms = {shape: by_column(*shape[:2], plan.grad_tap_col, plan.grad_pixel, shape[2]) for shape in plan.shapes}
    # one output channel of one batch block
    g_chan = spread_planes(plan.grad_h * plan.grad_w * plan.lanes, ELEMENT_BYTES[ctype])
    return {
        **tiled_context(plan, ctype),
        "g_chan": g_chan,
        "g_block": plan.summed * g_chan,
        "gpack_size": plan.blocks * plan.summed * g_chan,
        "g_line": plan.grad_w * plan.lanes,
        # G as given is one contiguous [n][k][i][j] array: a plane of i, j is one run of memory
        "grad_plane": plan.grad_h * plan.grad_w,
        "grad_batch": plan.summed * plan.grad_h * plan.grad_w,
        "g_row": plan.grad_tap_row * plan.grad_w * plan.lanes,
        "w_row": plan.tap_step_h * plan.weight_row,
        "w_col": plan.tap_step_w * plan.weight_col,
        "terms": terms,
        # where each tile's pointer into the packed G points: the first element it reads
        "tile_reads": [tile.read + terms[(tile.width, tile.taps, tile.spans)][0] for tile in plan.tiles],
    }


def rows_context(plan: RowVector, kernel: Kernel, ctype: str) -> dict[str, Any]:
    """The numbers ``rows.c.j2`` needs besides the plan: the row table, unread arguments."""
    used = {"w", plan.read_arg, plan.out_arg, *(["b"] if plan.bias_lane else [])}
    return {
        **{field: getattr(plan, field) for field in plan.__dataclass_fields__},
        "element_bytes": ELEMENT_BYTES[ctype],
        "max_vectors": max((tile.count * len(tile.starts) for tile in plan.tiles), default=0),
        "row_lines": row_lines(plan.rows),
        "unused": unread(kernel, used),
    }


def rows_weight_context(plan: RowWeight, ctype: str) -> dict[str, Any]:
    """The numbers ``rows_weight.c.j2`` needs besides the plan."""
    return {
        **{field: getattr(plan, field) for field in plan.__dataclass_fields__},
        "counts": plan.counts,
        "element_bytes": ELEMENT_BYTES[ctype],
        "row_lines": row_lines(plan.rows),
    }


#: Streaming (cache-bypassing) vector stores by vector bytes and element type: the macro that says
#: the compiler has them, the intrinsic, its vector type.
STREAM_STORES = {
    (64, "float"): ("__AVX512F__", "_mm512_stream_ps", "__m512"),
    (64, "double"): ("__AVX512F__", "_mm512_stream_pd", "__m512d"),
    (32, "float"): ("__AVX__", "_mm256_stream_ps", "__m256"),
    (32, "double"): ("__AVX__", "_mm256_stream_pd", "__m256d"),
}


def pointwise_context(plan: Pointwise, kernel: Kernel, ctype: str) -> dict[str, Any]:
    """The numbers ``pointwise.c.j2`` needs besides the plan: tile shapes, unread arguments."""
    used = {"w", plan.read_arg, plan.out_arg, *(["b"] if plan.bias else [])}
    element = ELEMENT_BYTES[ctype]
    guard, store, vector_type = STREAM_STORES[plan.lanes * element, ctype]
    return {
        **{field: getattr(plan, field) for field in plan.__dataclass_fields__},
        "element_bytes": element,
        "vector_bytes": plan.lanes * element,
        "shapes": [(rows, vectors) for rows, _ in plan.row_tiles for vectors in range(1, plan.vectors + 1)],
        # a strip's rows may start anywhere in a cache line: one line more than their length
        "strip_bytes": plan.vectors * plan.lanes * element + 64,
        "stream_guard": guard,
        "stream_store": store,
        "stream_type": vector_type,
        "unused": unread(kernel, used),
    }


#: The plans that pack weights or G into static buffers: a call that finds them in use runs the
#: loop nest instead. The others keep nothing between calls and never need it.
PACKING = (Blocked, BlockedWeight, BlockedReduce, BlockedBatch)


def tiled_plan(module: Module, kernel: Kernel) -> Plan | None:
    return next((b for b in module.blocked if b.kernel == kernel.name), None)


# -- the files -------------------------------------------------------------------------------


def _context(module: Module) -> dict[str, Any]:
    kernels = []
    for kernel in module.kernels:
        function = function_name(module, kernel)
        head = f"void {function}"
        plan = tiled_plan(module, kernel)
        # A tiled kernel keeps its loop nest as a static fallback under another name (called
        # only by the plans that pack: see PACKING).
        generic = head
        if plan is not None:
            unused = "" if isinstance(plan, PACKING) else "__attribute__((unused)) "
            generic = f"static {unused}void {function}_fallback"
        kernels.append(
            {
                "name": kernel.name,
                "function": function,
                "title": kernel.title,
                "formula": kernel.formula,
                "arguments": argument_lines(kernel),
                "generic": declaration(generic, parameters(module, kernel, restrict=True)),
                "definition": declaration(head, parameters(module, kernel, restrict=True)),
                "prototype": declaration(head, parameters(module, kernel, restrict=False)) + ";",
                "body": body(module, kernel),
                "blocked": blocked_context(plan, module.ctype) if isinstance(plan, Blocked) else None,
                "blocked_weight": weight_context(plan, module.ctype) if isinstance(plan, BlockedWeight) else None,
                "blocked_reduce": reduce_context(plan, module.ctype) if isinstance(plan, BlockedReduce) else None,
                "blocked_batch": batch_context(plan, module.ctype) if isinstance(plan, BlockedBatch) else None,
                "rows": rows_context(plan, kernel, module.ctype) if isinstance(plan, RowVector) else None,
                "rows_weight": rows_weight_context(plan, module.ctype) if isinstance(plan, RowWeight) else None,
                "pointwise": pointwise_context(plan, kernel, module.ctype) if isinstance(plan, Pointwise) else None,
                "fallback_call": f"{function}_fallback({', '.join(a.name for a in kernel.args)});",
            }
        )
    return {
        "name": module.name,
        "guard": module.name.upper() + "_H",
        "ctype": module.ctype,
        "layer": module.layer,
        "tensors": tensor_lines(module),
        "macros": macro_lines(module.macros),
        "macro_names": [m.name for m in module.macros],
        "header_macros": macro_lines(module.macros, prefix=module.name.upper() + "_"),
        "kernels": kernels,
        "tiled": bool(module.blocked),
        "packed": any(isinstance(plan, PACKING) for plan in module.blocked),
        "row_vectors": any(isinstance(plan, (RowVector, RowWeight)) for plan in module.blocked),
        "pointwise": any(isinstance(plan, Pointwise) for plan in module.blocked),
        "streams": any(isinstance(plan, Pointwise) and plan.stream for plan in module.blocked),
        "helpers": helper_declarations(module),
    }


def render_source(module: Module) -> str:
    return environment().get_template("module.c.j2").render(_context(module))


def render_header(module: Module) -> str:
    return environment().get_template("header.h.j2").render(_context(module))


def render_cdef(module: Module) -> str:
    """Plain declarations, one per line: what ``cffi.FFI.cdef`` accepts."""
    lines = [
        f"void {function_name(module, k)}({', '.join(parameters(module, k, restrict=False))});"
        for k in module.kernels
    ]
    lines += [decl + ";" for decl in helper_declarations(module).values()]
    return "\n".join(lines) + "\n"


def render_module(module: Module) -> CSource:
    """Render one module: C source, header, cffi declarations and the function names."""
    if not isinstance(module, Module):
        raise TypeError(f"render_module expects a codegen.ir.Module, but got {type(module).__name__}")
    return CSource(
        name=module.name,
        source=render_source(module),
        header=render_header(module),
        cdef=render_cdef(module),
        functions={k.name: function_name(module, k) for k in module.kernels},
    )
