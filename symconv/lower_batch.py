"""Lowering, fast path: the input gradient with batch items in the vector lanes.

A layer with few input channels (LeNet's C3: 6) leaves the channel lanes of
``lower_blocked.plan`` mostly empty. ``lower_blocked.plan_reduce`` puts the *summed* output
channels there instead, which costs a sum across the lanes for every output: about three
shuffles and adds per pixel and channel, on the port that also does half the multiply-adds (on
LeNet's C3 the tiles then run at 58-61 % of the FMA peak). A batch of at least a vector's worth
of items fills the lanes with no sum across them:

    dX[n .. n+LANES, c, Y, X] = Σ_{k, r, t} G[n .. n+LANES, k, RY(Y, r), RX(X, t)] · W[k, c, r, t]

Every term is one vector of G (packed once per call with the batch innermost) times one weight,
broadcast from W as given. Rows, tiles and the border columns' spans are those of
``plan_reduce``: the same guards read the same G elements, only the lanes differ. (Measured on
LeNet's C3, batch 64, called from Python: 0.245 -> 0.22 ms on one thread, 0.146 -> 0.115 ms
on two; where it loses, see ``MIN_CHANNELS``.)

Where both apply, this plan comes before the channel lanes of ``lower_blocked.plan``: that
happens with 6 or 7 input channels in vectors of 8 (AVX2's float32, AVX-512's float64) or 6 in
two vectors of 4 (AVX2's float64), where up to a quarter of the channel lanes would be empty.
Measured on an AMD EPYC with AVX2, input gradient, two threads, median of 5 interleaved rounds,
channel lanes against batch lanes: LeNet's C3 0.63 / 0.30 ms; 16x6x14x14 with 16 5x5 filters at
stride 2 0.077 / 0.038; 64x6x28x28 with 16 3x3 filters 0.95 / 1.00; 8x6x32x32 with 32 3x3
filters, padded, 0.29 / 0.31.
"""

from __future__ import annotations

from math import ceil
from typing import Mapping

import sympy as sp

from codegen import ir

from .general import IndexForm
from .lower import PARALLEL_MIN_WORK, c_code, flat_coefficient, flat_offset
from .lower_blocked import (
    ELEMENT_BYTES,
    MAX_PACK_BYTES,
    MIN_LANE_USE,
    block_rows,
    bordered_tiles,
    column_tiles,
    input_gradient_axes,
    nest_work,
)
from .target import DEFAULT, Target


#: Fewer input channels than this keep ``plan_reduce``. Measured (input gradient, ms on two
#: threads, batch lanes against summed lanes): with 6 or 8 channels the batch lanes won on every
#: layer tried (LeNet's C3 0.115 / 0.146; 64x6x28x28 with 16 3x3 filters 0.55 / 0.73; 32x8x20x20
#: with 16 5x5 filters 0.19 / 0.23; C3 with 32 filters 0.21 / 0.24), with 3 or 4 they won on a
#: 14x14 image (0.064 / 0.080) but lost on wider ones (64x3x32x32 with 32 3x3 filters 0.95 /
#: 0.85; AlexNet's first layer, batch 16, 14.4 / 13.0; 32x4x28x28 with 64 5x5 filters 1.44 /
#: 1.32). Why is open: both tiles load as many vectors per multiply-add.
MIN_CHANNELS = 6


def plan_batch(
    form: IndexForm, shapes: Mapping[str, tuple[int, ...]], ctype: str, target: Target = DEFAULT
) -> ir.BlockedBatch | None:
    """The input gradient with batch items in the lanes, or None where it does not apply: one
    group, ``MIN_CHANNELS`` to ``target.tile_vectors // 2`` input channels (a tile keeps a vector per
    channel and pixel) and a batch that fills at least ``MIN_LANE_USE`` of its vectors."""
    if form.name != "dX" or len(form.free) != 4 or len(form.sums) != 3:
        return None
    lanes = target.lanes(ELEMENT_BYTES[ctype])
    n, chan, _, _ = (loop.var for loop in form.free)
    k, r, t = (loop.var for loop in form.sums)
    extents = {loop.var: int(loop.hi) - int(loop.lo) + 1 for loop in form.free + form.sums}
    batch, channels, summed = extents[n], extents[chan], extents[k]
    blocks = ceil(batch / lanes)
    if channels < MIN_CHANNELS or channels > target.tile_vectors // 2 or batch / (blocks * lanes) < MIN_LANE_USE:
        return None
    grad_h, grad_w = shapes["G"][-2], shapes["G"][-1]
    if blocks * lanes * summed * grad_h * grad_w * ELEMENT_BYTES[ctype] > MAX_PACK_BYTES:
        return None
    axes = input_gradient_axes(form, shapes)
    if axes is None:
        return None
    rows, cols = axes
    weight = next(a for a in form.term.atoms(sp.Indexed) if a.base.name == "W")
    steps = [flat_coefficient(weight, v, shapes) for v in (k, chan, r, t)]
    if any(step is None or not step.is_integer for step in steps):
        return None
    weight_summed, weight_chan, weight_r, weight_t = (int(step) for step in steps)
    names = {s: sp.Symbol(s) for s in ("n", "k", "i", "oy")}
    width = max(1, target.tile_vectors // channels)  # pixels per tile: one vector of sums per input channel
    work = nest_work(form.free + form.sums, extents)
    return ir.BlockedBatch(
        lanes=lanes,
        blocks=blocks,
        batch=batch,
        summed=summed,
        channels=channels,
        grad_h=grad_h,
        grad_w=grad_w,
        tap_step_h=rows.tap_step,
        tap_step_w=cols.tap_step,
        grad_tap_row=rows.read_step,
        grad_tap_col=cols.read_step,
        grad_pixel=cols.pixel_read,
        grad_index=c_code(flat_offset([names["n"], names["k"], names["i"], 0], shapes["G"])),
        weight_summed=weight_summed,
        weight_chan=weight_chan,
        weight_row=weight_r,
        weight_col=weight_t,
        out_base=c_code(flat_offset([names["n"], 0, names["oy"], 0], shapes["dX"])),
        out_batch=int(flat_coefficient(form.target, n, shapes)),
        out_chan=int(flat_coefficient(form.target, chan, shapes)),
        out_pixel=cols.pixel_step,
        rows=block_rows(rows),
        tiles=bordered_tiles(column_tiles(cols, width), cols, width),
        work=work,
        threaded=work >= PARALLEL_MIN_WORK,
    )
