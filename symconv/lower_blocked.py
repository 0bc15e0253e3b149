"""Lowering, fast path: a 2-D pass as register tiles with channels in the vector lanes.

The forward pass and the input gradient have the same shape of sum,

    out[n, lane, Y, X] = init + Σ_{red, r, t} read[n, red, RY(Y, r), RX(X, t)] · W[.., r, t]

(forward: lanes are output channels k, the sum runs over input channels c and reads X; input
gradient: lanes are input channels c, the sum runs over output channels k and reads G). Putting
``LANES`` consecutive lane channels in one vector turns every term into one vector multiply-add:
a weight vector (the filter tap of those channels, packed once per call) times one broadcast
element of ``read``. Stride, dilation and padding then only change *which* element is broadcast,
never the vector loads, so every layer gets dense vector arithmetic.

What the general form decides, evaluated here on this layer's numbers (nothing retyped):

* per output row ``Y`` (and column ``X``), the taps whose guards hold, as a first tap and a
  count (stride residue classes of the input gradient keep one tap in ``s``: never a term that
  is a multiplied inserted zero), and the read row (column) of the first tap;
* the memory steps: per tap, per reduced channel, per pixel of a tile (flat coefficients of the
  read access);
* the flat offsets of the read, weight and output accesses, printed by SymPy's C printer.

Columns with the same tap range are cut into tiles of up to ``max_width`` pixels: each tile is
``width × pair`` accumulator vectors held in registers for the whole sum, so the hot loop tests
nothing. The plan is plain data (``codegen.ir.Blocked``); the template writes the C.

Two more plans follow the same recipe: ``plan_weight`` (the weight gradient: output channels in
the lanes, input channels × filter columns in a tile, the batch and positions summed in
registers) and ``plan_reduce`` (the input gradient of layers with too few input channels for
the lanes: the summed output channels go there instead; with six or more input channels and a
batch that fills the lanes, ``symconv.lower_batch`` puts batch items there).

Layers with too few channels on both sides (LeNet's C1, depthwise layers) put output *columns*
in the lanes instead: ``plan_rows`` (forward pass, input gradient) and ``plan_rows_weight``
(weight gradient), from the same analysis of the guards (per-row tap ranges; the columns where
every filter column is in range go in vectors, the border columns are added up one at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil, prod
from typing import Mapping, Sequence

import sympy as sp

from codegen import ir

from .general import IndexForm
from .lower import (
    ARRAYS,
    PARALLEL_MIN_WORK,
    c_code,
    exact_division,
    flat_coefficient,
    flat_offset,
    prune_guards,
)
from .target import DEFAULT, Target

ELEMENT_BYTES = ir.ELEMENT_BYTES
#: Vectors of lane channels per register tile, by preference: each broadcast element then
#: feeds that many multiply-adds.
PAIRS = (2, 1)
#: Vector blocks of output channels per weight-gradient tile, by preference: with two, each
#: broadcast input element feeds two multiply-adds (measured: twice as fast on 32 channels).
WEIGHT_PAIRS = (2, 1)
#: Parts of the batch a threaded weight gradient sums on their own, added up at the end (always
#: in the same order, so results do not depend on the thread count). Each thread then reads
#: only its part of the packed G, which it packed itself, instead of all of it.
WEIGHT_PARTS = 2
#: Filter columns share a weight-gradient tile if the output columns all of them reach are at
#: least this share of each one's own (the rest, their edges, run one column at a time). Filter
#: columns before input channels: the broadcasts of one channel's neighbouring columns come from
#: one cache line, while every channel of a tile is a read stream of its own. Measured on 3×3
#: layers with padding, 3 channels × 3 columns against 10 channels × 1 column: 6-10 % faster.
MIN_SHARED = 0.75
#: Below this share of real lanes (lane channels / padded lane channels) the lanes waste more
#: than the tile gains: such passes keep the general loop nest.
MIN_LANE_USE = 0.75
#: The largest packed copy (weights or G) a tiled kernel may keep as a static array; beyond it
#: the loop nest runs (a static array of gigabytes may not even link).
MAX_PACK_BYTES = 1 << 28
#: Bytes of the read rows and packed weights that one chunk of reduced channels of a 1x1 filter
#: may touch while the tiles of an output row take turns on it (see ``reduce_chunk``).
CHUNK_BYTES = 32 * 1024
#: Fewer reduced channels per turn would cost more in reloaded sums than the cache saves.
MIN_CHUNK = 8
#: The forms this path handles, and the kernel each one is.
FORMS = {"O": "forward", "dX": "grad_input"}


def even_pieces(total: int, most: int) -> list[tuple[int, int]]:
    """``total`` items cut into the fewest nearly equal pieces of at most ``most`` each, as
    (first item, count), the longer pieces first."""
    if total <= 0:
        return []
    pieces = ceil(total / most)
    size, extra = divmod(total, pieces)
    cut, at = [], 0
    for piece in range(pieces):
        count = size + (piece < extra)
        cut.append((at, count))
        at += count
    return cut


def nest_work(loops: Sequence, extents: Mapping) -> int:
    """Iterations of the whole loop nest (what decides whether threads are worth waking)."""
    return int(prod(extents[loop.var] for loop in loops))


def element_step(access: sp.Indexed, var: sp.Symbol | None, shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """Elements the flat offset of ``access`` moves when ``var`` grows by one: 0 for no
    variable, None when the step is not a constant integer (the plan then does not apply)."""
    if var is None:
        return 0
    value = flat_coefficient(access, var, shapes)
    return int(value) if value is not None and value.is_integer else None


@dataclass(frozen=True)
class Axis:
    """One spatial axis of the pass, as evaluated from the general form.

    ``taps[Y]`` is ``(first tap, count, read coordinate of the first tap)`` for output
    coordinate ``Y``; consecutive valid taps are ``tap_step`` apart and move the read coordinate
    by ``read_step``; output coordinates ``pixel_step`` apart move it by ``pixel_read``.
    """

    taps: tuple[tuple[int, int, int], ...]
    tap_step: int
    read_step: int
    pixel_step: int
    pixel_read: int


def _evaluator(expr: sp.Basic, variables: Sequence[sp.Symbol]):
    """``expr`` as a Python function of integers, in exact integer arithmetic (a ``Quotient``
    is ``//``: right wherever its divisibility guard holds, and the guards are tested together)."""
    return sp.lambdify(variables, expr, modules="math")


def separable(guards: Sequence[sp.Basic], *axes: set[sp.Symbol]) -> bool:
    """Whether every guard involves the indices of one axis only (then the axes are analysed
    one at a time, and a tile's range along one never depends on the other)."""
    return all(any(guard.free_symbols <= axis for axis in axes) for guard in guards)


def analyse_axis(pixel: sp.Symbol, extent: int, tap: sp.Symbol, taps: int, index: sp.Expr,
                 guards: Sequence[sp.Basic]) -> Axis | None:
    """Valid taps and read coordinates along one axis, or None if they are not regular.

    Only guards on this axis's pixel and tap take part (the general form's guards are per axis).
    """
    mine = [g for g in guards if g.free_symbols <= {pixel, tap} and g.free_symbols & {pixel, tap}]
    holds = _evaluator(sp.And(*mine) if mine else sp.true, (pixel, tap))
    where = _evaluator(index, (pixel, tap))
    coefficient = sp.Rational(sp.expand(exact_division(index)).coeff(pixel))
    if coefficient == 0:
        return None
    pixel_step = int(coefficient.q)
    pixel_read = int(coefficient * pixel_step)
    rows, tap_step, read_step = [], 0, None
    for y in range(extent):
        valid = [t for t in range(taps) if bool(holds(y, t))]
        if not valid:
            rows.append((0, 0, 0))
            continue
        reads = [where(y, t) for t in valid]
        if any(not isinstance(v, int) for v in reads):
            return None
        steps = {b - a for a, b in zip(valid, valid[1:])}
        moves = {b - a for a, b in zip(reads, reads[1:])}
        if len(steps) > 1 or len(moves) > 1:
            return None
        if steps:
            step, move = steps.pop(), moves.pop()
            if (tap_step and step != tap_step) or (read_step is not None and move != read_step):
                return None
            tap_step, read_step = step, move
        rows.append((valid[0], len(valid), reads[0]))
    return Axis(tuple(rows), tap_step or 1, read_step or 0, pixel_step, pixel_read)


def block_rows(axis: Axis) -> tuple[ir.BlockRow, ...]:
    """The axis's taps as a row table: per output row (or filter row), where its first valid tap
    reads, that tap and how many."""
    return tuple(ir.BlockRow(y, read, tap, count) for y, (tap, count, read) in enumerate(axis.taps))


def column_tiles(axis: Axis, max_width: int) -> tuple[ir.BlockTile, ...]:
    """Output columns cut into tiles: runs of columns ``pixel_step`` apart with the same taps,
    split into nearly equal pieces of at most ``max_width``."""
    tiles = []
    for residue in range(axis.pixel_step):
        columns = list(range(residue, len(axis.taps), axis.pixel_step))
        run: list[int] = []
        for x in columns + [None]:
            same = (
                x is not None and run
                and axis.taps[x][:2] == axis.taps[run[0]][:2]
                and axis.taps[x][2] == axis.taps[run[-1]][2] + axis.pixel_read
            )
            if run and not same:
                for at, width in even_pieces(len(run), max_width):
                    tap, count, read = axis.taps[run[at]]
                    tiles.append(ir.BlockTile(run[at], read, tap, count, width))
                run = []
            if x is not None:
                run.append(x)
    return tuple(tiles)


def bordered_tiles(tiles: tuple[ir.BlockTile, ...], axis: Axis, max_width: int) -> tuple[ir.BlockTile, ...]:
    """Neighbouring tiles whose reads line up recut as one run of columns into nearly equal
    tiles of up to ``max_width``, every pixel keeping its own run of taps (``BlockTile.spans``)
    where they differ.

    The border columns of a padded layer, and those of a full correlation (the input gradient),
    are reached by fewer filter columns than the inside ones; as tiles of their own they have
    few accumulators in flight and load every weight vector for one or two pixels (resnet_3x3_56
    forward, one thread: the two one-column border tiles took 8.5 % of the time for 2.4 % of the
    multiply-adds; lenet_c3's input gradient: 0.285 -> 0.261 ms once merged). A tile's ``read``
    is where its pixel 0 would read at the tile's first tap, outside the row when that pixel's
    own taps start later: the tile reads only at its pixels' own taps.
    """

    def origin(tile: ir.BlockTile) -> tuple[int, int]:
        """The tap residue and where pixel 0 reads at the first tap of that residue."""
        return tile.tap % axis.tap_step, tile.read - tile.tap // axis.tap_step * axis.read_step

    def columns(tile: ir.BlockTile) -> list[tuple[int, int, int]]:
        """The tile's pixels as (column, first tap, taps)."""
        return [(tile.out + p * axis.pixel_step, tile.tap, tile.taps) for p in range(tile.width)]

    def lines_up(run: list[tuple[int, int, int]], run_origin: tuple[int, int], tile: ir.BlockTile) -> bool:
        residue, read = origin(tile)
        return (
            tile.taps > 0 and tile.out == run[-1][0] + axis.pixel_step and residue == run_origin[0]
            and read == run_origin[1] + len(run) * axis.pixel_read
        )

    def cut(run: list[tuple[int, int, int]], run_origin: tuple[int, int]) -> list[ir.BlockTile]:
        pieces = []
        for at, width in even_pieces(len(run), max_width):
            members = run[at : at + width]
            tap = min(first for _, first, _ in members)
            end = max(first + (count - 1) * axis.tap_step for _, first, count in members)
            taps = (end - tap) // axis.tap_step + 1
            spans = tuple(((first - tap) // axis.tap_step, count) for _, first, count in members)
            read = run_origin[1] + at * axis.pixel_read + tap // axis.tap_step * axis.read_step
            uniform = all(span == (0, taps) for span in spans)
            pieces.append(ir.BlockTile(members[0][0], read, tap, taps, width, () if uniform else spans))
        return pieces

    out: list[ir.BlockTile] = []
    run: list[tuple[int, int, int]] = []
    run_origin = (0, 0)
    for tile in tiles:
        if run and lines_up(run, run_origin, tile):
            run += columns(tile)
            continue
        out += cut(run, run_origin) if run else []
        run = []
        if tile.taps > 0:
            run, run_origin = columns(tile), origin(tile)
        else:
            out.append(tile)
    out += cut(run, run_origin) if run else []
    return tuple(out)


def _lane_and_reduce(form: IndexForm) -> tuple[sp.Symbol, sp.Symbol, sp.Symbol | None]:
    """The lane channel (last free channel index), the reduced channel and the group index."""
    free = [loop.var for loop in form.free]
    group = next((v for v in free if v.name == "g"), None)
    lane = free[-3]
    reduce = form.sums[0].var
    return lane, reduce, group


def plan(
    form: IndexForm, shapes: Mapping[str, tuple[int, ...]], ctype: str, has_bias: bool, target: Target = DEFAULT
) -> ir.Blocked | None:
    """The register-tile plan of one 2-D form ("O" or "dX"), or None where it does not pay."""
    if form.name not in FORMS or len(form.free) < 4 or len(form.sums) != 3:
        return None
    lanes = target.lanes(ELEMENT_BYTES[ctype])
    lane, reduce, group = _lane_and_reduce(form)
    extents = {loop.var: int(loop.hi) - int(loop.lo) + 1 for loop in form.free + form.sums}
    groups = extents.get(group, 1) if group is not None else 1
    per_group, reduced = extents[lane], extents[reduce]
    if groups > 1 and per_group % lanes:
        return None  # a vector would straddle two groups
    total = groups * per_group
    blocks = ceil(total / lanes)
    if total / (blocks * lanes) < MIN_LANE_USE:
        return None
    pair = next(
        size for size in PAIRS if blocks % size == 0 and (groups == 1 or per_group % (size * lanes) == 0)
    )
    if blocks * lanes * reduced * shapes["W"][-2] * shapes["W"][-1] * ELEMENT_BYTES[ctype] > MAX_PACK_BYTES:
        return None

    weight = next(a for a in form.term.atoms(sp.Indexed) if a.base.name == "W")
    read = next(a for a in form.term.atoms(sp.Indexed) if a.base.name != "W")
    (y, x), (r, t) = [loop.var for loop in form.free[-2:]], [loop.var for loop in form.sums[1:]]
    taps_h, taps_w = shapes["W"][-2], shapes["W"][-1]
    if not separable(form.guards, {y, r}, {x, t}):
        return None
    rows = analyse_axis(y, extents[y], r, taps_h, read.indices[-2], form.guards)
    cols = analyse_axis(x, extents[x], t, taps_w, read.indices[-1], form.guards)
    if rows is None or cols is None:
        return None

    read_shape, out_shape = shapes[read.base.name], shapes[form.target.base.name]
    read_row = read_shape[-1]
    names = {s: sp.Symbol(s) for s in ("n", "g", "l", "m", "r", "t", "ry", "oy")}
    at_group = {group: names["g"]} if group is not None else {}
    read_base = flat_offset(
        [sp.sympify(i).xreplace({**at_group, reduce: 0}) for i in read.indices[:2]] + [names["ry"], 0], read_shape
    )
    out_base = flat_offset(
        [sp.sympify(i).xreplace({**at_group, lane: names["l"]}) for i in form.target.indices[:2]]
        + [names["oy"], 0],
        out_shape,
    )
    weight_index = flat_offset(
        [sp.sympify(i).xreplace({**at_group, lane: names["l"], reduce: names["m"]}) for i in weight.indices],
        shapes["W"],
    )
    bias = ""
    if has_bias and form.plus != 0:
        access = next(iter(sp.sympify(form.plus).atoms(sp.Indexed)))
        bias = c_code(flat_offset([sp.sympify(access.indices[0]).xreplace({**at_group, lane: names["l"]})],
                                  shapes[access.base.name]))
    if taps_w > target.long_row:
        pair = 1  # the column loop stays rolled: one weight vector feeds a row of broadcast FMAs
    wide = target.one_tap_pair
    if taps_h * taps_w == 1 and blocks % wide == 0 and (groups == 1 or per_group % (wide * lanes) == 0):
        pair = wide  # one tap: no reuse of the broadcast along taps, so feed it to more vectors
    unrolled = taps_w * pair <= target.unrolled_weights  # the weights of a filter row stay in registers
    width = max(1, (target.tile_vectors if unrolled else target.long_row_tile_vectors) // pair)
    tiles = column_tiles(cols, width)
    if unrolled:  # a rolled column loop gives every pixel all taps: border columns need tiles of their own
        tiles = bordered_tiles(tiles, cols, width)
    work = nest_work(form.free + form.sums, extents)
    one_tap = taps_h * taps_w == 1
    chunk = reduce_chunk(reduced, taps_h, taps_w, read_row * ELEMENT_BYTES[ctype],
                         pair * lanes * ELEMENT_BYTES[ctype], target) or (reduced if one_tap else 0)
    return ir.Blocked(
        kernel=FORMS[form.name],
        lanes=lanes,
        pair=pair,
        blocks=blocks,
        lane_count=total,
        per_group=per_group,
        grouped=group is not None,
        reduce=reduced,
        batch=extents[form.free[0].var],
        taps_h=taps_h,
        taps_w=taps_w,
        tap_step_h=rows.tap_step,
        tap_step_w=cols.tap_step,
        read_arg=ARRAYS[read.base.name][0],
        out_arg=ARRAYS[form.target.base.name][0],
        read_base=c_code(read_base),
        read_chan=int(flat_coefficient(read, reduce, shapes)),
        read_tap_row=rows.read_step * read_row,
        read_tap_col=cols.read_step,
        read_pixel=cols.pixel_read,
        out_base=c_code(out_base),
        out_chan=int(flat_coefficient(form.target, lane, shapes)),
        out_pixel=cols.pixel_step,
        weight_index=c_code(weight_index),
        bias_index=bias,
        rows=block_rows(rows),
        tiles=tiles,
        work=work,
        threaded=work >= PARALLEL_MIN_WORK,
        chunk=chunk,
        read_row=read_row if one_tap else 0,
        out_row=out_shape[-1] if one_tap else 0,
        unrolled_weights=target.unrolled_weights,
    )


def reduce_chunk(
    reduced: int, taps_h: int, taps_w: int, row_bytes: int, weight_bytes: int, target: Target = DEFAULT
) -> int:
    """Reduced channels per turn of a row's tiles (0: no turns, each tile sums them all).

    Every tile of a row reads ``taps_h`` rows of each of the ``reduced`` read planes and all of
    its packed weights (``taps_h · taps_w`` vectors per channel): when those exceed the L1 cache,
    each tile fetches them again from further out (the rows lie a whole image plane apart, so
    they also crowd a few cache sets). Turns over a chunk of them keep its fetches in the L1
    cache for all tiles of the row; the chunk divides ``reduced``. With a 1x1 filter the budget
    is ``CHUNK_BYTES`` (measured, the turns gain little on their own; what they mainly give is a
    place to ask for the next row ahead of time: see ``codegen.ir.Blocked.read_row``); with
    larger filters it is the target's ``chunk_bytes`` (0: no turns).
    """
    budget = CHUNK_BYTES if taps_h * taps_w == 1 else target.chunk_bytes
    per_channel = taps_h * row_bytes + taps_h * taps_w * weight_bytes
    if not budget or reduced * per_channel <= budget:
        return 0
    fits = max(1, budget // per_channel)
    chunk = max(d for d in range(1, fits + 1) if reduced % d == 0)
    return chunk if chunk >= MIN_CHUNK else 0


# -- the weight gradient ------------------------------------------------------------------------


def tap_runs(axis: Axis) -> list[list[int]]:
    """Consecutive filter columns that can share one tile: each reads where the first one does,
    ``pixel_read`` further per column, and the output columns all of them reach (the shared range)
    keep at least ``MIN_SHARED`` of every member's own; columns reaching none stand alone."""
    runs: list[list[int]] = []

    def origin(t: int) -> int:  # the input column output column 0 would read for filter column t
        return axis.taps[t][2] - axis.taps[t][0] * axis.read_step

    for t, (first, count, _) in enumerate(axis.taps):
        run = runs[-1] if runs else []
        if run and count and axis.taps[run[0]][1] and origin(t) == origin(run[-1]) + axis.pixel_read:
            members = [axis.taps[m] for m in run] + [axis.taps[t]]
            lo = max(f for f, _, _ in members)
            hi = min(f + c for f, c, _ in members)
            if hi - lo >= MIN_SHARED * max(c for _, c, _ in members):
                run.append(t)
                continue
        runs.append([t])
    return runs


def tap_tiles(
    axis: Axis, runs: list[list[int]], max_width: int
) -> tuple[tuple[ir.BlockTile, ...], tuple[tuple[int, int], ...]]:
    """The runs cut into tiles of up to ``max_width`` filter columns: ``out`` is the first filter
    column, ``tap``/``taps`` the first output column all of the tile's columns reach and how many,
    ``read`` the input column the first filter column reads there. Also, per filter column, how
    many of its output columns lie before and after that shared range (its edges)."""
    tiles, edges = [], [(0, 0)] * len(axis.taps)
    for run in runs:
        for at, width in even_pieces(len(run), max_width):
            members = run[at : at + width]
            lo = max(axis.taps[t][0] for t in members)
            hi = max(lo, min(axis.taps[t][0] + axis.taps[t][1] for t in members))
            first, count, read = axis.taps[members[0]]
            read += (lo - first) * axis.read_step if count else 0
            tiles.append(ir.BlockTile(members[0], read, lo, hi - lo, width))
            for t in members:
                f, c, _ = axis.taps[t]
                edges[t] = (lo - f, f + c - hi) if c else (0, 0)
    return tuple(tiles), tuple(edges)


def plan_weight(
    form: IndexForm, shapes: Mapping[str, tuple[int, ...]], ctype: str, target: Target = DEFAULT
) -> ir.BlockedWeight | None:
    """The register-tile plan of the 2-D weight gradient, or None where it does not pay.

    ``dW[k, c, r, t] = Σ_{n, i, j} G[n, k, i, j] · X[n, c, RY(i, r), RX(j, t)]``: the output
    channels ``k`` go in the lanes (G is packed once per call with them innermost), a tile holds
    a block of input channels × filter columns, and the sum over the batch and the output rows
    and columns (where the guards hold, as ranges per filter row and column) runs in registers.
    """
    if form.name != "dW" or len(form.free) < 4 or len(form.sums) != 3:
        return None
    lanes = target.lanes(ELEMENT_BYTES[ctype])
    free = [loop.var for loop in form.free]
    group = next((v for v in free if v.name == "g"), None)
    lane, chan, r, t = free[-4:]
    n, i, j = (loop.var for loop in form.sums)
    extents = {loop.var: int(loop.hi) - int(loop.lo) + 1 for loop in form.free + form.sums}
    groups = extents[group] if group is not None else 1
    per_group, channels = extents[lane], extents[chan]
    if groups > 1 and per_group % lanes:
        return None
    total = groups * per_group
    blocks = ceil(total / lanes)
    if total / (blocks * lanes) < MIN_LANE_USE:
        return None
    if extents[n] * blocks * lanes * extents[i] * extents[j] * ELEMENT_BYTES[ctype] > MAX_PACK_BYTES:
        return None
    if extents[n] == 0:
        return None  # an empty batch: the tiles would write nothing, the loop nest writes the zeros
    grad = next(a for a in form.term.atoms(sp.Indexed) if a.base.name == "G")
    read = next(a for a in form.term.atoms(sp.Indexed) if a.base.name == "X")
    if not separable(form.guards, {r, i}, {t, j}):
        return None
    rows = analyse_axis(r, extents[r], i, extents[i], read.indices[-2], form.guards)
    cols = analyse_axis(t, extents[t], j, extents[j], read.indices[-1], form.guards)
    if rows is None or cols is None or rows.tap_step != 1 or cols.tap_step != 1:
        return None
    pair = next(
        size for size in WEIGHT_PAIRS if blocks % size == 0 and (groups == 1 or per_group % (size * lanes) == 0)
    )
    runs = tap_runs(cols)
    most = max(1, target.weight_tile_vectors // pair)  # filter columns × input channels per tile
    widest = max(len(run) for run in runs)
    width = ceil(widest / ceil(widest / most))
    chan_block = min(channels, max(1, most // width))
    tiles, edges = tap_tiles(cols, runs, max(1, most // chan_block))
    chan_blocks = even_pieces(channels, chan_block)

    names = {s: sp.Symbol(s) for s in ("n", "g", "l", "c", "r", "t", "i", "ry")}
    at_group = {group: names["g"]} if group is not None else {}
    read_shape = shapes["X"]
    read_base = flat_offset(
        [0, sp.sympify(read.indices[1]).xreplace({**at_group, chan: names["c"]}), names["ry"], 0],
        read_shape,
    )
    grad_index = flat_offset(
        [names["n"], sp.sympify(grad.indices[1]).xreplace({**at_group, lane: names["l"]}), names["i"], 0],
        shapes["G"],
    )
    target_index = flat_offset(
        [sp.sympify(v).xreplace({**at_group, lane: names["l"], chan: names["c"]}) for v in form.target.indices[:2]]
        + [names["r"], names["t"]],
        shapes["dW"],
    )
    work = nest_work(form.free + form.sums, extents)
    threaded = work >= PARALLEL_MIN_WORK
    target_size = prod(shapes["dW"])
    parts = WEIGHT_PARTS if threaded and extents[n] >= WEIGHT_PARTS else 1
    if target_size * (parts - 1) * ELEMENT_BYTES[ctype] > MAX_PACK_BYTES:
        parts = 1
    return ir.BlockedWeight(
        lanes=lanes,
        pair=pair,
        blocks=blocks,
        lane_count=total,
        per_group=per_group,
        grouped=group is not None,
        channels=channels,
        batch=extents[n],
        out_h=extents[i],
        out_w=extents[j],
        taps_h=extents[r],
        read_base=c_code(read_base),
        read_batch=int(flat_coefficient(read, n, shapes)),
        read_chan=int(flat_coefficient(read, chan, shapes)),
        read_row=rows.read_step * read_shape[-1],
        read_col=cols.read_step,
        read_tap=cols.pixel_read,
        grad_index=c_code(grad_index),
        target_index=c_code(target_index),
        target_lane=int(flat_coefficient(form.target, lane, shapes)),
        target_chan=int(flat_coefficient(form.target, chan, shapes)),
        target_tap=int(flat_coefficient(form.target, t, shapes)),
        rows=block_rows(rows),
        tiles=tiles,
        chan_blocks=tuple(chan_blocks),
        work=work,
        threaded=threaded,
        edges=edges if any(any(edge) for edge in edges) else (),
        parts=parts,
        target_size=target_size,
    )


# -- the input gradient of layers with few input channels ----------------------------------------


def input_gradient_axes(form: IndexForm, shapes: Mapping[str, tuple[int, ...]]) -> tuple[Axis, Axis] | None:
    """The rows and columns of a one-group input gradient (how G is read at each filter tap),
    or None where they are not regular."""
    _, _, y, x = (loop.var for loop in form.free)
    _, r, t = (loop.var for loop in form.sums)
    extents = {loop.var: int(loop.hi) - int(loop.lo) + 1 for loop in form.free}
    grad = next(a for a in form.term.atoms(sp.Indexed) if a.base.name == "G")
    if not separable(form.guards, {y, r}, {x, t}):
        return None
    rows = analyse_axis(y, extents[y], r, shapes["W"][-2], grad.indices[-2], form.guards)
    cols = analyse_axis(x, extents[x], t, shapes["W"][-1], grad.indices[-1], form.guards)
    return None if rows is None or cols is None else (rows, cols)


def plan_reduce(
    form: IndexForm, shapes: Mapping[str, tuple[int, ...]], ctype: str, target: Target = DEFAULT
) -> ir.BlockedReduce | None:
    """The input gradient with the *summed* channels in the lanes, for layers whose input
    channels are too few to fill a vector (an RGB image layer, LeNet's C3).

    ``dX[n, c, Y, X] = Σ_{r, t} Σ_k G[n, k, ...] · W[k, c, r, t]``: G and W are packed with
    ``LANES`` output channels ``k`` innermost, a tile of pixels × every input channel keeps one
    vector of partial sums each, added up across the lanes once at the end.
    """
    if form.name != "dX" or len(form.free) != 4 or len(form.sums) != 3:
        return None  # one group only
    lanes = target.lanes(ELEMENT_BYTES[ctype])
    n, chan, y, x = (loop.var for loop in form.free)
    k, r, t = (loop.var for loop in form.sums)
    extents = {loop.var: int(loop.hi) - int(loop.lo) + 1 for loop in form.free + form.sums}
    channels, summed = extents[chan], extents[k]
    blocks = ceil(summed / lanes)
    if channels < 2 or channels > target.tile_vectors // 2 or summed / (blocks * lanes) < MIN_LANE_USE:
        return None
    if extents[n] * blocks * lanes * shapes["G"][-2] * shapes["G"][-1] * ELEMENT_BYTES[ctype] > MAX_PACK_BYTES:
        return None
    axes = input_gradient_axes(form, shapes)
    if axes is None:
        return None
    rows, cols = axes
    names = {s: sp.Symbol(s) for s in ("n", "l", "c", "r", "t", "i", "oy")}
    grad_index = flat_offset([names["n"], names["l"], names["i"], 0], shapes["G"])
    weight_index = flat_offset(
        [sp.sympify(v).xreplace({k: names["l"], chan: names["c"], r: names["r"], t: names["t"]})
         for v in next(a for a in form.term.atoms(sp.Indexed) if a.base.name == "W").indices],
        shapes["W"],
    )
    out_base = flat_offset([names["n"], 0, names["oy"], 0], shapes["dX"])
    width = max(1, target.tile_vectors // channels)  # pixels per tile: one accumulator per input channel
    work = nest_work(form.free + form.sums, extents)
    return ir.BlockedReduce(
        lanes=lanes,
        blocks=blocks,
        summed=summed,
        channels=channels,
        batch=extents[n],
        grad_h=shapes["G"][-2],
        grad_w=shapes["G"][-1],
        taps_h=shapes["W"][-2],
        taps_w=shapes["W"][-1],
        tap_step_h=rows.tap_step,
        tap_step_w=cols.tap_step,
        grad_tap_row=rows.read_step,
        grad_tap_col=cols.read_step,
        grad_pixel=cols.pixel_read,
        grad_index=c_code(grad_index),
        weight_index=c_code(weight_index),
        out_base=c_code(out_base),
        out_chan=int(flat_coefficient(form.target, chan, shapes)),
        out_pixel=cols.pixel_step,
        rows=block_rows(rows),
        tiles=bordered_tiles(column_tiles(cols, width), cols, width),
        work=work,
        threaded=work >= PARALLEL_MIN_WORK,
    )


# -- layers with too few channels for the lanes: output columns in the lanes --------------------

#: Rows (interiors) narrower than this keep the loop nest: a layer that small costs its call,
#: not its arithmetic, and its loop nest stays the readable one (the lecture example).
MIN_ROW_LANES = 4


def plan_rows(
    form: IndexForm, shapes: Mapping[str, tuple[int, ...]], ctype: str, target: Target = DEFAULT
) -> ir.RowVector | None:
    """The forward pass or input gradient with output columns in the vector lanes, or None
    where it does not apply.

    For layers whose channels are too few for channel lanes (LeNet's C1: 6 output channels,
    one input channel; a depthwise layer: one per group): a vector holds consecutive output
    columns of one channel, so every term is one unaligned load of a row of the read array
    times one broadcast weight. That needs a dense read along the row (stride 1) and enough
    columns whose every filter column is in range (the interior) for a vector of four; the
    guards of the rows become per-row tap ranges, those of the columns the border columns.
    """
    if form.name not in FORMS or len(form.sums) != 3 or len(form.free) not in (4, 5):
        return None
    loops = form.free + form.sums
    if any(int(loop.lo) != 0 for loop in loops):
        return None
    lane, reduce, group = _lane_and_reduce(form)
    n = form.free[0].var
    y, x = (loop.var for loop in form.free[-2:])
    r, t = (loop.var for loop in form.sums[1:])
    extents = {loop.var: int(loop.hi) - int(loop.lo) + 1 for loop in loops}
    weight = next((a for a in form.term.atoms(sp.Indexed) if a.base.name == "W"), None)
    read = next((a for a in form.term.atoms(sp.Indexed) if a.base.name != "W"), None)
    if weight is None or read is None:
        return None
    guards = prune_guards(form.guards, loops)
    if not separable(guards, {y, r}, {x, t}):
        return None
    taps_h, taps_w = shapes["W"][-2], shapes["W"][-1]
    rows = analyse_axis(y, extents[y], r, taps_h, read.indices[-2], guards)
    cols = analyse_axis(x, extents[x], t, taps_w, read.indices[-1], guards)
    if rows is None or cols is None or cols.pixel_step != 1 or cols.pixel_read != 1:
        return None

    def step(access: sp.Indexed, var: sp.Symbol | None) -> int | None:
        return element_step(access, var, shapes)

    found = {
        "read": [step(read, v) for v in (n, group, reduce, lane)],
        "weight": [step(weight, v) for v in (group, lane, reduce, r, t, n)],
        "out": [step(form.target, v) for v in (n, group, lane, y, x)],
    }
    if any(v is None for values in found.values() for v in values):
        return None
    read_batch, read_group, read_chan, read_lane = found["read"]
    weight_group, weight_lane, weight_chan, weight_r, weight_t, weight_n = found["weight"]
    out_batch, out_group, out_lane, out_row, out_col = found["out"]
    if read_lane != 0 or weight_n != 0 or out_col != 1 or step(read, x) != 1:
        return None
    bias_lane = bias_group = 0
    if form.plus != 0:
        bias = next(iter(sp.sympify(form.plus).atoms(sp.Indexed)))
        bias_lane, bias_group = step(bias, lane), step(bias, group)
        if not bias_lane:
            return None

    interior = [j for j, (first, count, _) in enumerate(cols.taps) if first == 0 and count == taps_w]
    if not interior or interior != list(range(interior[0], interior[-1] + 1)):
        return None
    vectors = _row_vectors(len(interior), ctype, target)
    if vectors is None:
        return None
    lanes, starts, _ = vectors  # a last vector that overlaps the one before stores the same values
    if len(cols.taps) - len(interior) > len(starts):
        return None  # border columns, one dependent sum each, would cost more than the vectors save
    starts = [interior[0] + s for s in starts]
    col_base = cols.taps[interior[0]][2] - interior[0]
    read_tap_col = cols.read_step if taps_w > 1 else 0
    borders = tuple(
        ir.BlockTile(j, read_col, first, count, 1)
        for j, (first, count, read_col) in enumerate(cols.taps)
        if j not in interior
    )
    channels = extents[lane]
    most = target.row_tile_vectors
    per_tile = max(1, most // len(starts)) if len(starts) <= most else 1
    column_groups = [tuple(starts[i : i + most]) for i in range(0, len(starts), most)]
    tiles = [
        ir.RowTile(at, count, group, group is column_groups[-1])
        for at, count in even_pieces(channels, per_tile)
        for group in column_groups
    ]
    work = nest_work(loops, extents)
    return ir.RowVector(
        kernel=FORMS[form.name],
        lanes=lanes,
        batch=extents[n],
        groups=extents[group] if group is not None else 1,
        reduce=extents[reduce],
        taps_w=taps_w,
        read_arg=ARRAYS[read.base.name][0],
        out_arg=ARRAYS[form.target.base.name][0],
        read_batch=read_batch,
        read_group=read_group,
        read_chan=read_chan,
        read_row=shapes[read.base.name][-1],
        read_tap_row=rows.read_step * shapes[read.base.name][-1],
        read_tap_col=read_tap_col,
        col_base=col_base,
        weight_group=weight_group,
        weight_lane=weight_lane,
        weight_chan=weight_chan,
        weight_filter_row=weight_r,
        weight_tap_row=rows.tap_step * weight_r,
        weight_tap_col=weight_t,
        border_tap_col=cols.tap_step * weight_t,
        border_read_col=cols.read_step,
        out_batch=out_batch,
        out_group=out_group,
        out_lane=out_lane,
        out_row=out_row,
        bias_lane=bias_lane,
        bias_group=bias_group,
        rows=block_rows(rows),
        borders=borders,
        tiles=tuple(tiles),
        work=work,
        threaded=work >= PARALLEL_MIN_WORK,
    )


#: The most bytes of partial sums a weight-gradient row task keeps on its thread's stack.
ROW_WEIGHT_PARTIAL_BYTES = 1 << 16
#: Bytes of X and G rows a weight-gradient row task reads per block of the batch: it passes
#: over them once per filter row and vector of the row, so they should stay in the L1 cache.
ROW_WEIGHT_CACHE_BYTES = 24 * 1024


def _row_vectors(width: int, ctype: str, target: Target) -> tuple[int, list[int], list[int]] | None:
    """Lanes per vector for rows of ``width`` entries, the first entry of each vector and how
    many of its leading lanes the vector before already covers (the last one may overlap)."""
    lanes = target.lanes(ELEMENT_BYTES[ctype])
    while lanes > 1 and lanes > width:
        lanes //= 2
    if lanes < MIN_ROW_LANES:
        return None
    starts = list(range(0, width - lanes + 1, lanes))
    skips = [0] * len(starts)
    if starts[-1] + lanes < width:
        skips.append(starts[-1] + lanes - (width - lanes))
        starts.append(width - lanes)
    return lanes, starts, skips


def plan_rows_weight(
    form: IndexForm, shapes: Mapping[str, tuple[int, ...]], ctype: str, target: Target = DEFAULT
) -> ir.RowWeight | None:
    """The weight gradient with output columns in the vector lanes, or None where it does not
    apply (as for ``plan_rows``: a dense read along the row, an interior of at least four
    columns and no more border columns than vectors).

    Per filter row the guards give the range of output rows, per output column the filter
    columns that reach it: columns reached by all of them (the interior) go in vectors, the
    others (padding) are added up one at a time.
    """
    if form.name != "dW" or len(form.free) not in (4, 5) or len(form.sums) != 3:
        return None
    loops = form.free + form.sums
    if any(int(loop.lo) != 0 for loop in loops):
        return None
    free = [loop.var for loop in form.free]
    group = free[0] if len(free) == 5 else None
    k, c, r, t = free[-4:]
    n, i, j = (loop.var for loop in form.sums)
    extents = {loop.var: int(loop.hi) - int(loop.lo) + 1 for loop in loops}
    read = next((a for a in form.term.atoms(sp.Indexed) if a.base.name == "X"), None)
    grad = next((a for a in form.term.atoms(sp.Indexed) if a.base.name == "G"), None)
    if read is None or grad is None or form.plus != 0:
        return None
    guards = prune_guards(form.guards, loops)
    if not separable(guards, {r, i}, {t, j}):
        return None
    rows = analyse_axis(r, extents[r], i, extents[i], read.indices[-2], guards)
    cols = analyse_axis(j, extents[j], t, extents[t], read.indices[-1], guards)
    if rows is None or cols is None or rows.tap_step != 1 or cols.pixel_step != 1 or cols.pixel_read != 1:
        return None

    def step(access: sp.Indexed, var: sp.Symbol | None) -> int | None:
        return element_step(access, var, shapes)

    found = {
        "read": [step(read, v) for v in (n, group, c, k, j)],
        "grad": [step(grad, v) for v in (n, group, k, i, j, c, r, t)],
        "target": [step(form.target, v) for v in (group, k, c, r, t)],
    }
    if any(v is None for values in found.values() for v in values):
        return None
    read_batch, read_group, read_chan, read_k, read_j = found["read"]
    grad_batch, grad_group, grad_chan, grad_row, grad_j, *grad_rest = found["grad"]
    target_group, target_out, target_chan, target_tap_row, target_tap_col = found["target"]
    if read_j != 1 or grad_j != 1 or read_k != 0 or any(grad_rest):
        return None
    interior = [x for x, (first, count, _) in enumerate(cols.taps) if first == 0 and count == extents[t]]
    if not interior or interior != list(range(interior[0], interior[-1] + 1)):
        return None
    vectors = _row_vectors(len(interior), ctype, target)
    if vectors is None:
        return None
    lanes, starts, skips = vectors
    borders = tuple(
        ir.BlockTile(x, read_col, first, count, 1)
        for x, (first, count, read_col) in enumerate(cols.taps)
        if x not in interior and count > 0
    )
    if len(cols.taps) - len(interior) > len(starts):
        return None  # border columns, added up one at a time, would cost more than the vectors save
    taps_w, channels = extents[t], extents[k]
    per_tile = max(1, target.row_weight_vectors // taps_w)
    k_tiles = even_pieces(channels, per_tile)
    element = ELEMENT_BYTES[ctype]
    widest = max(count for _, count in k_tiles)
    if extents[r] * len(starts) * widest * taps_w * lanes * element > ROW_WEIGHT_PARTIAL_BYTES:
        return None
    # vectors of the row that share one pass over the rows: enough sums to hide the latency
    together = max(1, min(len(starts), target.row_weight_vectors // (widest * taps_w)))
    groups = [tuple(range(at, min(at + together, len(starts)))) for at in range(0, len(starts), together)]
    image = (widest * grad_chan + read_chan) * element
    batch_block = max(1, min(extents[n], ROW_WEIGHT_CACHE_BYTES // image))
    interior_start = interior[0]
    work = nest_work(loops, extents)
    return ir.RowWeight(
        lanes=lanes,
        batch=extents[n],
        groups=extents[group] if group is not None else 1,
        channels=extents[c],
        taps_h=extents[r],
        taps_w=taps_w,
        starts=tuple(interior_start + s for s in starts),
        skips=tuple(skips),
        start_groups=tuple(groups),
        k_tiles=tuple(k_tiles),
        batch_block=batch_block,
        read_batch=read_batch,
        read_group=read_group,
        read_chan=read_chan,
        read_row=rows.read_step * shapes["X"][-1],
        read_line=shapes["X"][-1],
        read_tap_col=cols.read_step,
        col_base=cols.taps[interior_start][2] - interior_start,
        grad_batch=grad_batch,
        grad_group=grad_group,
        grad_chan=grad_chan,
        grad_row=grad_row,
        target_group=target_group,
        target_out=target_out,
        target_chan=target_chan,
        target_tap_row=target_tap_row,
        target_tap_col=target_tap_col,
        rows=block_rows(rows),
        borders=borders,
        work=work,
        threaded=work >= PARALLEL_MIN_WORK,
    )
