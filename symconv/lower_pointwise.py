"""Lowering, fast path for 1x1 filters: the pass as a matrix product with pixels in the lanes.

With a 1x1 filter, stride 1 and no padding, the forward pass and the input gradient are both

    out[n, m, p] = init[m] + Σ_r A[m, r] · read[n, r, p]

over the flattened pixels ``p`` of an image plane (forward: ``m`` output channels, ``r`` input
channels, ``A = W``, ``read = X``; input gradient: ``m`` input channels, ``r`` output channels,
``A = Wᵀ``, ``read = G``). The pixels of one channel lie next to each other in both ``read`` and
``out``, so a vector of consecutive pixels is one plain load and one plain store: a register
tile of a few channels × a few vectors of pixels sums over ``r`` with one vector load per row of
``read`` shared by the tile's channels and one broadcast weight per channel. Nothing is
packed and nothing is transposed: the channel-lane tiles of ``symconv.lower_blocked`` have to
gather their broadcasts from rows a whole plane apart and turn every tile around on the way
out, which is most of their cost when the filter has a single tap.

What the general form decides, evaluated on this layer's numbers: that the filter has one tap
and no guard survives (no padding, nothing out of range), that ``read`` and ``out`` walk the
plane the same way (stride 1), and the memory steps of every access.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping

import sympy as sp

from codegen import ir

from .general import IndexForm
from .lower import ARRAYS, PARALLEL_MIN_WORK, prune_guards
from .lower_blocked import ELEMENT_BYTES, FORMS, element_step, even_pieces, nest_work
from .target import DEFAULT, Target

#: Outputs at least this large are written past the caches (streaming stores) when their rows
#: allow it: the data would be evicted before anyone reads it, and a plain store first reads
#: every line it writes (measured, input gradient of the layer above, one thread: 10 → 5.3 ms).
STREAM_MIN_BYTES = 4 << 20


def plan_pointwise(
    form: IndexForm, shapes: Mapping[str, tuple[int, ...]], ctype: str, target: Target = DEFAULT
) -> ir.Pointwise | None:
    """The pixel-lane plan of a 1x1, stride-1, unpadded, ungrouped 2-D pass ("O" or "dX"),
    or None where it does not apply."""
    if form.name not in FORMS or len(form.free) != 4 or len(form.sums) != 3:
        return None  # grouped layers (a fifth free index) keep the channel-lane tiles
    loops = form.free + form.sums
    if any(int(loop.lo) != 0 for loop in loops):
        return None
    n, lane, y, x = (loop.var for loop in form.free)
    reduce, r, t = (loop.var for loop in form.sums)
    extents = {loop.var: int(loop.hi) + 1 for loop in loops}
    if extents[r] != 1 or extents[t] != 1 or prune_guards(form.guards, loops):
        return None
    weight = next((a for a in form.term.atoms(sp.Indexed) if a.base.name == "W"), None)
    read = next((a for a in form.term.atoms(sp.Indexed) if a.base.name != "W"), None)
    if weight is None or read is None:
        return None
    lanes = target.lanes(ELEMENT_BYTES[ctype])
    pixels = extents[y] * extents[x]
    if pixels < lanes:
        return None  # not one whole vector per plane: the other paths do better

    def steps(access: sp.Indexed, *variables: sp.Symbol) -> list[int | None]:
        return [element_step(access, v, shapes) for v in variables]

    read_batch, read_chan, read_row, read_col = steps(read, n, reduce, y, x)
    out_batch, out_lane, out_row, out_col = steps(form.target, n, lane, y, x)
    a_row, a_red, a_n = steps(weight, lane, reduce, n)
    found = (read_batch, read_chan, read_row, read_col, out_batch, out_lane, out_row, out_col, a_row, a_red)
    if any(v is None for v in found) or a_n != 0:
        return None
    if (read_col, out_col, read_row, out_row) != (1, 1, extents[x], extents[x]):
        return None  # a plane of read and out must be the same run of memory: stride 1
    if read.indices[-2].xreplace({r: 0}) != y or read.indices[-1].xreplace({t: 0}) != x:
        return None  # no offset either (padding would shift it)
    bias_lane = 0
    if form.plus != 0:
        bias = next(iter(sp.sympify(form.plus).atoms(sp.Indexed)))
        bias_lane = element_step(bias, lane, shapes) or 0
        if bias_lane != 1 or bias.indices[0] != lane:
            return None
    channels, summed = extents[lane], extents[reduce]
    sizes = Counter(count for _, count in even_pieces(channels, target.pointwise_rows))  # the longer first
    out_bytes = extents[n] * channels * pixels * ELEMENT_BYTES[ctype]
    work = nest_work(loops, extents)
    return ir.Pointwise(
        kernel=FORMS[form.name],
        lanes=lanes,
        batch=extents[n],
        channels=channels,
        reduce=summed,
        pixels=pixels,
        read_arg=ARRAYS[read.base.name][0],
        out_arg=ARRAYS[form.target.base.name][0],
        read_batch=read_batch,
        read_chan=read_chan,
        out_batch=out_batch,
        out_chan=out_lane,
        weight_lane=a_row,
        weight_chan=a_red,
        bias=bias_lane == 1,
        row_tiles=tuple(sizes.items()),
        vectors=target.pointwise_vectors,
        stream=out_bytes >= STREAM_MIN_BYTES and (pixels * ELEMENT_BYTES[ctype]) % target.vector_bytes == 0,
        work=work,
        threaded=work >= PARALLEL_MIN_WORK,
    )
