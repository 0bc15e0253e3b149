"""The kernel description that C is rendered from: plain, frozen data (str and int only).

A :class:`Module` is one layer's set of kernels; each :class:`Kernel` is one loop nest that
computes every entry of one output array. In its plainest form (``tile_kind == ""``)

    for <free loops>:                    # one output entry per iteration
        acc = init
        for <reduction loops>:           # with guards: skip iterations that read nothing
            acc += term
        target = acc

With a tile, the innermost ``tile`` loops index a local array ``acc`` instead of a scalar, so
that the innermost loop runs over independent, contiguous entries (which a compiler can turn into
vector instructions without reordering any sum):

    "outputs": the tile loops are the last free loops, moved inside the reduction loops;
        for <outer free loops>:
            acc[...] = init                      for every tile entry
            for <reduction loops>: for <tile loops>: acc[tile] += term
            target = acc[...]                    for every tile entry, once
    "lanes": the last tile loop is the last reduction loop (the lane), the others are the last
        free loops, moved inside the other reduction loops; acc holds one partial sum per lane;
        for <outer free loops>:
            acc[...] = 0
            for <reduction loops>: for <tile loops, the lane innermost>: acc[tile] += term
            for <free tile loops>:
                target = init + acc[...][0] + acc[...][1] + ...   (a fixed order: deterministic)

Either way every output entry is written exactly once, and entries that no term reaches get
``init``.
Index expressions and guards are already C text here (printed by SymPy in ``symconv.lower``);
nothing in this package knows about SymPy or about convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass


#: Bytes per element of each C element type.
ELEMENT_BYTES = {"float": 4, "double": 8}


@dataclass(frozen=True)
class Macro:
    """A compile-time size: ``#define name value`` with a comment saying what it is."""

    name: str
    value: int
    doc: str


@dataclass(frozen=True)
class Tensor:
    """One array layout: ``index`` names the axes in memory order, last varies fastest."""

    role: str  # "input", "weight", "bias" or "output"
    index: str  # e.g. "X[n][c][y][x]"
    shape: tuple[int, ...]
    size_macro: str  # the macro holding the number of elements

    @property
    def size(self) -> int:
        total = 1
        for extent in self.shape:
            total *= extent
        return total


@dataclass(frozen=True)
class Arg:
    """A pointer argument of a kernel: which tensor it holds, and whether it is written."""

    name: str
    tensor: str  # a Tensor.role
    output: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Loop:
    """``for var in lo..hi`` (inclusive), skipping iterations where not all ``guards`` hold.

    ``extent`` optionally names the macro equal to ``hi - lo + 1``, so the C can say
    ``i < OUT_H`` instead of a bare number. Guards are C boolean expressions whose variables
    are bound at this loop or outside it.
    """

    var: str
    lo: int
    hi: int
    extent: str = ""
    guards: tuple[str, ...] = ()
    start: str = ""  # C expression of the first index the guards allow ("" → lo)
    stop: str = ""  # C expression of the last index the guards allow, inclusive ("" → hi)
    step: int = 1  # > 1 when a divisibility guard keeps one residue class only
    # Where the loops inside pass all their guards ("" when not split): iterations in
    # interior_start..interior_stop skip the inner guards, the others (the border) test them.
    interior_start: str = ""
    interior_stop: str = ""

    @property
    def trips(self) -> int:
        return self.hi - self.lo + 1

    @property
    def bounded(self) -> bool:
        """Whether the guards narrowed the range (start/stop/step differ from lo..hi by 1)."""
        return bool(self.start or self.stop) or self.step != 1


@dataclass(frozen=True)
class Kernel:
    """One loop nest: ``loops[:reduce_at]`` pick the output entry, the rest sum into it.

    ``parallel`` leading loops are independent (each iteration writes its own outputs) and may
    run in parallel; ``threaded`` says whether they should (``work``, the multiply-adds of the
    whole nest, is worth waking threads for). ``unused`` lists arguments the body does not read
    (kept for a uniform signature). ``tile`` innermost loops index the local array ``acc`` (see
    the module docstring for ``tile_kind`` "outputs" and "lanes"); the innermost of them has
    independent iterations.
    """

    name: str  # "forward", "grad_input", "grad_weight" or "grad_bias"
    title: str  # one line: what the kernel computes
    formula: tuple[str, ...]  # the general index form, for the comment above the function
    args: tuple[Arg, ...]
    loops: tuple[Loop, ...]
    reduce_at: int
    parallel: int
    init: str  # C expression the accumulator starts from
    term: str  # C expression added once per reduction iteration
    target: str  # C lvalue the accumulator is stored to
    unused: tuple[str, ...] = ()
    tile: int = 0
    tile_kind: str = ""  # "", "outputs" or "lanes"
    inner: int = 0  # trailing sum loops that run inside the innermost tile loop
    work: int = 0
    threaded: bool = True

    @property
    def tile_loops(self) -> tuple[Loop, ...]:
        end = len(self.loops) - self.inner
        return self.loops[end - self.tile : end]

    @property
    def inner_loops(self) -> tuple[Loop, ...]:
        """Sum loops folded inside the innermost tile loop."""
        return self.loops[len(self.loops) - self.inner :]

    @property
    def store_loops(self) -> tuple[Loop, ...]:
        """The tile loops that pick an output entry: all of an output tile, all but the lane."""
        return self.tile_loops if self.tile_kind == "outputs" else self.tile_loops[:-1]

    @property
    def free_loops(self) -> tuple[Loop, ...]:
        return self.loops[: self.reduce_at] + self.store_loops

    @property
    def sum_loops(self) -> tuple[Loop, ...]:
        lane = self.tile_loops[-1:] if self.tile_kind == "lanes" else ()
        return self.loops[self.reduce_at : len(self.loops) - self.inner - self.tile] + lane + self.inner_loops

    @property
    def tile_index(self) -> str:
        """``acc[i][j]``: the accumulator entry of the current tile position."""
        return "acc" + "".join(f"[{loop.var}]" for loop in self.tile_loops)

    def pretty(self) -> str:
        """The loop nest as indented pseudo-code (what the C will do, without the C syntax)."""
        lines = [f"kernel {self.name}({', '.join(a.name for a in self.args)})  # {self.title}"]
        tile = [loop.var for loop in self.tile_loops]
        every = f" for every {', '.join(tile)}" if tile else ""
        depth = 1
        for position, loop in enumerate(self.loops):
            if position == self.reduce_at:
                start = "0" if self.tile_kind == "lanes" else self.init
                lines.append("  " * depth + f"{self.tile_index if tile else 'acc'} = {start}{every}")
            mark = "parallel for" if position < self.parallel and self.threaded else "for"
            if position == len(self.loops) - self.inner - 1 and self.tile:
                mark = "simd for"

            lo = loop.start or str(loop.lo)
            hi = loop.stop or str(loop.hi)
            step = f" step {loop.step}" if loop.step != 1 else ""
            guard = f"  if {' and '.join(loop.guards)}" if loop.guards else ""
            if loop.interior_start:
                guard += f"  (inner tests only outside {loop.interior_start}..{loop.interior_stop})"
            lines.append("  " * depth + f"{mark} {loop.var} in {lo}..{hi}{step}{guard}")
            depth += 1
        if self.reduce_at == len(self.loops):
            lines.append("  " * depth + f"acc = {self.init}")
        lines.append("  " * depth + f"{self.tile_index if tile else 'acc'} += {self.term}")
        if self.tile_kind == "lanes":
            lane, stored = self.tile_loops[-1].var, [loop.var for loop in self.store_loops]
            each = f" for every {', '.join(stored)}" if stored else ""
            total = f"{self.target} = ({self.init}) + Σ_{lane} {self.tile_index}{each}"
            lines.append("  " * (self.reduce_at + 1) + total)
        elif tile:
            lines.append("  " * (self.reduce_at + 1) + f"{self.target} = {self.tile_index}{every}")
        else:
            lines.append("  " * (self.reduce_at + 1) + f"{self.target} = acc")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.pretty()


@dataclass(frozen=True)
class BlockRow:
    """One output row of a register-tiled kernel: ``taps`` filter rows from ``tap`` on (``0``:
    nothing reaches the row), the first of them reading row ``read``."""

    out: int
    read: int
    tap: int
    taps: int


@dataclass(frozen=True)
class BlockTile:
    """``width`` output columns from ``out`` on (``out_pixel`` apart) that share their filter
    columns: ``taps`` of them from ``tap`` on; pixel 0 reads column ``read`` at the first.

    With ``spans``, pixel p takes ``spans[p][1]`` of those filter columns from the
    ``spans[p][0]``-th on: the borders of a padded layer or of a full correlation, where each
    column is reached by a different number of filter columns. ``read`` may then lie outside
    the read row: it is where pixel 0 would read at the tile's first tap.
    """

    out: int
    read: int
    tap: int
    taps: int
    width: int
    spans: tuple[tuple[int, int], ...] = ()


#: What makes two tiles the same C function: (width, column taps, spans).
TileShape = tuple[int, int, tuple[tuple[int, int], ...]]


def tile_shapes(tiles: tuple[BlockTile, ...]) -> tuple[TileShape, ...]:
    """The distinct (width, column taps, spans) of ``tiles``, sorted: one C function each."""
    return tuple(sorted({(tile.width, tile.taps, tile.spans) for tile in tiles}))


@dataclass(frozen=True)
class Blocked:
    """A kernel as register tiles with ``lanes`` channels per vector (see the template
    ``blocked.c.j2``): ``out[n, lane, Y, X] = init + Σ_{m, r, t} read[...] · W[...]``.

    Lane channels come in ``blocks`` vectors (the last one padded when ``lane_count`` is not a
    multiple of ``lanes``), ``pair`` of them per register tile; ``reduce`` channels are summed
    (per group of ``per_group`` lane channels when ``grouped``). Offsets are C expressions in
    ``n``, ``g``, ``l`` (lane channel in its group), ``m`` (reduced channel), ``r``, ``t`` (taps),
    ``ry`` (read row) and ``oy`` (output row); steps are numbers of elements.
    """

    kernel: str  # "forward" or "grad_input"
    lanes: int
    pair: int
    blocks: int
    lane_count: int
    per_group: int
    grouped: bool
    reduce: int
    batch: int
    taps_h: int
    taps_w: int
    tap_step_h: int  # between consecutive valid filter rows (a stride's residue class: > 1)
    tap_step_w: int
    read_arg: str  # the array broadcast element by element ("x" or "grad_out")
    out_arg: str  # the array written ("out" or "grad_x")
    read_base: str  # offset of read[n, group's first channel, ry, 0]
    read_chan: int  # per reduced channel
    read_tap_row: int  # per valid filter row
    read_tap_col: int  # per valid filter column
    read_pixel: int  # per pixel of a tile
    out_base: str  # offset of out[n, lane channel l of group g, oy, 0]
    out_chan: int  # per lane channel
    out_pixel: int  # per pixel of a tile
    weight_index: str  # offset of W for lane channel l (group g), reduced channel m, taps r, t
    bias_index: str  # offset of b for lane channel l of group g ("" without bias)
    rows: tuple[BlockRow, ...]
    tiles: tuple[BlockTile, ...]
    work: int = 0
    threaded: bool = True
    #: Reduced channels per pass over an output row's tiles (0: each tile sums all ``reduce`` at
    #: once). With a chunk, the tiles of a row take turns: each adds ``chunk`` channels to its
    #: sums, kept in a buffer between turns, so the row's reads and packed weights of one chunk
    #: stay in the L1 cache for all its tiles; every sum still runs over the channels in order.
    chunk: int = 0
    #: Elements per row of the read array and of the output (0: no prefetching). With them, each
    #: turn first asks the cache for the next output row's reads of its chunk (and the first turn
    #: for the next row's outputs): the read rows of consecutive reduced channels lie a whole
    #: plane apart, a pattern the hardware prefetchers do not follow, and a 1x1 filter does too
    #: little arithmetic per element to hide the wait (measured on 8x256x56x56 -> 64 filters, one
    #: thread: forward 16.8 -> 6.3 ms, input gradient 16.8 -> 10 ms; without the outputs asked
    #: for, the input gradient, which writes 25 MB, stayed at 16 ms).
    read_row: int = 0
    out_row: int = 0
    #: Weight vectors of one filter row (filter columns × ``pair``) a tile may keep in registers,
    #: the row unrolled; a longer row stays a loop over its columns with one column's live.
    unrolled_weights: int = 8

    @property
    def shapes(self) -> tuple[TileShape, ...]:
        return tile_shapes(self.tiles)


@dataclass(frozen=True)
class BlockedWeight:
    """The weight gradient as register tiles (template ``blocked_weight.c.j2``):
    ``dW[lane, c, r, t] = Σ_{n, i, j} G[n, lane, i, j] · X[n, c, ...]`` with ``lanes`` output
    channels per vector, ``pair`` vectors per tile (G packed with them innermost, once per call).

    ``rows[r]`` gives, per filter row, the first output row whose guards hold, how many, and the
    input row it reads (``read_row`` elements further per output row); each tile of ``tiles``
    is ``width`` filter columns from ``out`` on that share the output columns ``tap`` ..
    ``tap + taps - 1``, the first reading input column ``read`` (``read_col`` further per output
    column, ``read_tap`` per filter column). ``chan_blocks`` are (first, count) input channels
    of a tile. Offsets are C expressions in ``n``, ``g``, ``l``, ``c``, ``r``, ``t``, ``i``, ``ry``.
    ``edges[t]`` (empty: none anywhere) is, per filter column, how many of its output columns lie
    before and after the range its tile shares: added one column at a time after the tile's sum.
    With ``parts`` > 1 the batch is cut into that many parts, each summed on its own (into
    grad_w, or a static copy of ``target_size`` elements), then added up in order.
    """

    lanes: int
    pair: int  # vector blocks of output channels per tile
    blocks: int
    lane_count: int
    per_group: int
    grouped: bool
    channels: int  # input channels per group
    batch: int
    out_h: int
    out_w: int
    taps_h: int
    read_base: str  # offset of X[0, channel c of group g, ry, 0]
    read_batch: int
    read_chan: int
    read_row: int
    read_col: int
    read_tap: int
    grad_index: str  # offset of G[n, lane channel l of group g, i, 0]
    target_index: str  # offset of dW[lane channel l of group g, c, r, t]
    target_lane: int
    target_chan: int
    target_tap: int
    rows: tuple[BlockRow, ...]
    tiles: tuple[BlockTile, ...]
    chan_blocks: tuple[tuple[int, int], ...]
    work: int = 0
    threaded: bool = True
    kernel: str = "grad_weight"
    edges: tuple[tuple[int, int], ...] = ()
    parts: int = 1
    target_size: int = 0

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """The distinct (input channels, filter columns) of the tiles: one C function each."""
        return tuple(sorted({(count, tile.width) for _, count in self.chan_blocks for tile in self.tiles}))


@dataclass(frozen=True)
class BlockedReduce:
    """The input gradient with the summed output channels in the vector lanes (template
    ``blocked_reduce.c.j2``), for few input channels: G and W are packed with ``lanes`` output
    channels innermost, each tile keeps ``width`` pixels × ``channels`` vectors of partial sums.

    ``rows`` and ``tiles`` are as in :class:`Blocked` (``read`` is a row/column of G); steps
    are in rows/columns of G. Offsets are C expressions in ``n``, ``l`` (output channel),
    ``c``, ``r``, ``t``, ``i`` (row of G) and ``oy`` (row of dX).
    """

    lanes: int
    blocks: int
    summed: int  # output channels (summed over)
    channels: int  # input channels (one vector of partial sums each, per pixel)
    batch: int
    grad_h: int
    grad_w: int
    taps_h: int
    taps_w: int
    tap_step_h: int
    tap_step_w: int
    grad_tap_row: int
    grad_tap_col: int
    grad_pixel: int
    grad_index: str  # offset of G[n, l, i, 0]
    weight_index: str  # offset of W[l, c, r, t]
    out_base: str  # offset of dX[n, 0, oy, 0]
    out_chan: int
    out_pixel: int
    rows: tuple[BlockRow, ...]
    tiles: tuple[BlockTile, ...]
    work: int = 0
    threaded: bool = True
    kernel: str = "grad_input"

    @property
    def shapes(self) -> tuple[TileShape, ...]:
        return tile_shapes(self.tiles)


@dataclass(frozen=True)
class BlockedBatch:
    """The input gradient with ``lanes`` batch items in the vector lanes (template
    ``blocked_batch.c.j2``), for few input channels and a batch that fills the lanes: G is
    packed as [batch block][k][i][j][lane], each tile keeps ``width`` pixels × ``channels``
    vectors of sums (no sum across the lanes) and every term is one G vector times one weight.

    ``rows`` and ``tiles`` are those of :class:`BlockedReduce`. Steps are in elements of the
    arrays as given (``weight_*`` of W, ``out_*`` of dX); ``grad_index`` is the offset of
    ``G[n, k, i, 0]``, ``out_base`` that of ``dX[n, 0, oy, 0]``.
    """

    lanes: int
    blocks: int  # vectors of batch items (the last one padded with zeros past the batch)
    batch: int
    summed: int  # output channels (summed over, one at a time)
    channels: int  # input channels (one vector of sums each, per pixel)
    grad_h: int
    grad_w: int
    tap_step_h: int
    tap_step_w: int
    grad_tap_row: int
    grad_tap_col: int
    grad_pixel: int
    grad_index: str
    weight_summed: int
    weight_chan: int
    weight_row: int
    weight_col: int
    out_base: str
    out_batch: int
    out_chan: int
    out_pixel: int
    rows: tuple[BlockRow, ...]
    tiles: tuple[BlockTile, ...]
    work: int = 0
    threaded: bool = True
    kernel: str = "grad_input"

    @property
    def shapes(self) -> tuple[TileShape, ...]:
        return tile_shapes(self.tiles)


@dataclass(frozen=True)
class RowTile:
    """``count`` lane channels from ``first`` on, and the first output column of each vector
    of a row (the last vector may overlap the one before it: it ends where the interior ends);
    ``borders``: this tile also computes the border columns of those channels."""

    first: int
    count: int
    starts: tuple[int, ...]
    borders: bool = True


@dataclass(frozen=True)
class RowVector:
    """The forward pass or the input gradient with output *columns* in the vector lanes
    (template ``rows.c.j2``), for layers with too few channels for channel lanes:

        out[n, l, oy, ox..ox+lanes) = init + Σ_{m, r, t} W[.., r, t] · read[n, m, .., ox+t..)

    (forward: ``l`` output channels, ``m`` input channels, ``read`` = X; input gradient: ``l``
    input channels, ``m`` output channels, ``read`` = G). Each term is one unaligned vector
    load of a row of ``read`` (shared by the tile's channels) times one broadcast weight.

    ``rows`` gives per output row its valid filter rows (first, count, ``tap_step_h`` apart)
    and the read row of the first; the columns whose filter columns are all valid (the
    interior) go in vectors, with the filter columns unrolled, and the ``borders`` (columns
    where guards cut taps: padding) are added up one at a time with their own taps. Offsets are
    numbers of elements; the read column of filter column t at output column j of the interior
    is ``col_base + j + t · read_tap_col``.
    """

    kernel: str  # "forward" or "grad_input"
    lanes: int
    batch: int
    groups: int
    reduce: int  # summed channels per group
    taps_w: int
    read_arg: str
    out_arg: str
    read_batch: int
    read_group: int
    read_chan: int
    read_row: int  # elements per row of the read array
    read_tap_row: int  # per valid filter row
    read_tap_col: int  # per filter column
    col_base: int
    weight_group: int
    weight_lane: int
    weight_chan: int
    weight_filter_row: int  # per filter row
    weight_tap_row: int  # per valid filter row
    weight_tap_col: int  # per filter column
    border_tap_col: int  # filter columns between valid ones of a border column
    border_read_col: int  # read columns between them
    out_batch: int
    out_group: int
    out_lane: int
    out_row: int
    bias_lane: int  # 0 without a bias
    bias_group: int
    rows: tuple[BlockRow, ...]
    borders: tuple[BlockTile, ...]  # out: column, read: read column of its first tap, tap/taps
    tiles: tuple[RowTile, ...]
    work: int = 0
    threaded: bool = True


@dataclass(frozen=True)
class RowWeight:
    """The weight gradient with output *columns* in the vector lanes (template
    ``rows_weight.c.j2``), for layers with too few output channels for channel lanes:

        dW[k, c, r, t] = Σ_{n, i} Σ_lanes G[n, k, i, j..) · X[n, c, .., j+t..)

    A task is one group × input channel × block of ``k_tiles`` output channels. Per filter row
    (``rows``: its first valid output row ``tap``, how many, and the X row of the first) and
    group of vectors of the row (``start_groups`` index ``starts``; the last vector may overlap
    the one before, and then only its lanes from ``skips`` on are added up) it keeps one vector
    of partial sums per output channel, filter column and vector in registers while it runs
    over ``batch_block`` images. The interior columns (every filter column in range) are the
    vectors; the ``borders`` (``out``: column, ``read``: X column of its first filter column
    ``tap``, ``taps`` of them) are added up one at a time. X column of filter column t at
    interior column j: ``col_base + j + t · read_tap_col``.
    """

    lanes: int
    batch: int
    groups: int
    channels: int
    taps_h: int
    taps_w: int
    starts: tuple[int, ...]
    skips: tuple[int, ...]
    start_groups: tuple[tuple[int, ...], ...]
    k_tiles: tuple[tuple[int, int], ...]  # (first output channel, count)
    batch_block: int  # images whose rows of X and G a task keeps in the first-level cache
    read_batch: int
    read_group: int
    read_chan: int
    read_row: int  # per output row
    read_line: int  # elements per row of X
    read_tap_col: int
    col_base: int
    grad_batch: int
    grad_group: int
    grad_chan: int
    grad_row: int
    target_group: int
    target_out: int
    target_chan: int
    target_tap_row: int
    target_tap_col: int
    rows: tuple[BlockRow, ...]
    borders: tuple[BlockTile, ...]
    work: int = 0
    threaded: bool = True
    kernel: str = "grad_weight"

    @property
    def counts(self) -> tuple[int, ...]:
        """The distinct channel counts of the tiles: one C function each."""
        return tuple(sorted({count for _, count in self.k_tiles}))


@dataclass(frozen=True)
class Pointwise:
    """A 1x1 pass as a matrix product with pixels in the vector lanes (template
    ``pointwise.c.j2``):

        out[n, m, p] = init[m] + Σ_r W[m · weight_lane + r · weight_chan] · read[n, r, p]

    over the ``pixels`` of a plane (forward: ``m`` output channels, init the bias; input
    gradient: ``m`` input channels, init 0). A register tile is up to ``vectors`` vectors of
    ``lanes`` pixels × a few channels: ``row_tiles`` lists (channels per tile, tiles), the
    larger tiles first. With ``stream``, outputs whose vectors start a cache line
    are stored past the caches. Steps are numbers of elements.
    """

    kernel: str  # "forward" or "grad_input"
    lanes: int
    batch: int
    channels: int  # m
    reduce: int  # r
    pixels: int
    read_arg: str
    out_arg: str
    read_batch: int
    read_chan: int
    out_batch: int
    out_chan: int
    weight_lane: int
    weight_chan: int
    bias: bool
    row_tiles: tuple[tuple[int, int], ...]
    vectors: int
    stream: bool
    work: int = 0
    threaded: bool = True


#: The fast versions of a kernel (``Module.blocked``), one template each.
Plan = Blocked | BlockedWeight | BlockedReduce | BlockedBatch | RowVector | RowWeight | Pointwise


@dataclass(frozen=True)
class Module:
    """All kernels of one layer, for one element type (``ctype`` is "float" or "double").

    ``blocked`` holds register-tiled versions of some kernels: the C function of such a kernel
    runs the tiled version, and the loop nest of ``kernels`` stays as its fallback.
    """

    name: str  # C identifier, prefix of every function
    ctype: str
    layer: str  # one line describing the layer
    macros: tuple[Macro, ...]
    tensors: tuple[Tensor, ...]
    kernels: tuple[Kernel, ...]
    blocked: tuple[Plan, ...] = ()

    def kernel(self, name: str) -> Kernel:
        for kernel in self.kernels:
            if kernel.name == name:
                return kernel
        raise KeyError(f"module {self.name} has no kernel {name!r}; it has {[k.name for k in self.kernels]}")

    def tensor(self, role: str) -> Tensor:
        for tensor in self.tensors:
            if tensor.role == role:
                return tensor
        raise KeyError(f"module {self.name} has no tensor {role!r}")

    def pretty(self) -> str:
        sizes = ", ".join(f"{m.name}={m.value}" for m in self.macros)
        head = [f"module {self.name} ({self.ctype}): {self.layer}", f"  sizes: {sizes}"]
        return "\n\n".join(["\n".join(head), *(k.pretty() for k in self.kernels)])

    def __str__(self) -> str:
        return self.pretty()
