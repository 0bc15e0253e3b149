"""The CPU a layer's C is tuned for: how wide its vectors are and how many registers it has.

The generated C is plain GNU C vector code, the same for every CPU; what differs is how big its
register tiles may be. A tile keeps its sums in vector registers for the whole reduction, so it
must fit in the register file with the few vectors it loads: 32 registers of 64 bytes with
AVX-512, 16 of 32 bytes with AVX2. A tile sized for one CPU is ruinous on the other: AVX-512's
tiles on an AVX2 CPU (each 64-byte vector two registers there) spill every sum and run at 5 % of
that CPU's peak (measured on an AMD EPYC with AVX2: ResNet's 3x3 layer forward, 2 threads,
203 ms against PyTorch's 15.6).

The numbers are kept per target, with the measurements that chose them; ``target_for`` reads
which one applies from the compiler's description of ``-march=native``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """Tile sizes of the register-tiled plans for one kind of CPU."""

    #: Name used in the CLI and in reports ("avx512", "avx2").
    name: str
    #: Bytes in one vector register.
    vector_bytes: int
    #: Vector registers: a tile's sums, the broadcast element and one loaded vector must fit
    #: (weight vectors beyond that are read from the L1 cache by the multiply-adds themselves).
    registers: int
    #: Accumulator vectors per forward/input-gradient tile: enough to hide the multiply-add
    #: latency, few enough to stay in the registers with the weight vectors.
    tile_vectors: int
    #: Filter rows longer than this get one vector of lane channels per tile, not two (``math.inf``:
    #: none do).
    long_row: float
    #: Accumulator vectors of a tile whose filter row stays a loop (see ``unrolled_weights``): one
    #: weight vector is live besides them.
    long_row_tile_vectors: int
    #: Weight vectors (filter columns × vectors of channels) of a filter row a tile may keep in
    #: registers, the row unrolled; longer rows stay a loop over their columns.
    unrolled_weights: int
    #: Vectors per tile for 1x1 filters (where a broadcast element has no other use).
    one_tap_pair: int
    #: Accumulator vectors of a weight-gradient tile at most (input channels × filter columns ×
    #: pair of output-channel vectors).
    weight_tile_vectors: int
    #: Accumulator vectors per row tile (layers with output columns in the lanes).
    row_tile_vectors: int
    #: Accumulator vectors of a weight-gradient row tile (output channels × filter columns).
    row_weight_vectors: int
    #: Bytes of read rows and packed weights that the tiles of an output row take turns on, a chunk
    #: of the summed channels at a time, for filters larger than 1x1 (0: no turns, each tile
    #: sums every channel; see ``symconv.lower_blocked.reduce_chunk``).
    chunk_bytes: int
    #: Channels × vectors of pixels per pointwise (1x1) tile.
    pointwise_rows: int
    pointwise_vectors: int

    def lanes(self, element_bytes: int) -> int:
        """Elements in one vector."""
        return self.vector_bytes // element_bytes


#: 32 registers of 64 bytes. Measured on an Intel Xeon with AVX-512 (2 cores):
#: ``tile_vectors`` 20; ``long_row`` 4 (AlexNet's 11x11 filters as a column loop with one vector
#: of channels: 98 GFLOP/s against 75 with two); ``long_row_tile_vectors`` 28 (AlexNet's first
#: layer, 55 columns as 28 + 27 instead of 19 + 18 + 18: 2.71 -> 2.64 ms on two threads);
#: ``weight_tile_vectors`` 22 (3 × 3 × 2 on 3x3 filters: 3 % faster than 4 channels on VGG's
#: 256-channel 28x28 layer; 1 × 11 × 2 on AlexNet's 11x11: 4.7 against 5.1 ms); pointwise 6 × 4
#: (8x256x56x56 -> 64, one thread: 5.7 ms against 7.0 for 4 × 4, 6.7 for 8 × 3, 8.0 for 12 × 2).
AVX512 = Target(
    name="avx512",
    vector_bytes=64,
    registers=32,
    tile_vectors=20,
    long_row=4,
    long_row_tile_vectors=28,
    unrolled_weights=8,
    one_tap_pair=4,
    weight_tile_vectors=22,
    row_tile_vectors=24,
    row_weight_vectors=20,
    chunk_bytes=0,
    pointwise_rows=6,
    pointwise_vectors=4,
)

#: 16 registers of 32 bytes: every tile has at most 12 sums, so that the broadcast element and a
#: loaded vector fit beside them (the weight vectors of an unrolled filter row, up to 6, are read
#: by the multiply-adds straight from the L1 cache: benchmarks/asm_check.py finds no spills).
#: Two vectors of channels for every filter row, however long (``long_row`` never applies):
#: measured on an AMD EPYC (Zen 3, 2 cores), AlexNet's first layer forward on 2 threads, best of
#: 4 interleaved rounds, 6.3 ms with two against 8.9 with one; on ResNet's and VGG's 3x3 layers
#: two vectors × 6 pixels and one × 12 were within the machine's noise (14.2 / 15.3 ms, 28.8 /
#: 31.9 ms forward). Its L1 cache (32 KB) does not hold a tile's packed weights and read rows
#: of 64 channels: the tiles of a row take turns on 24 KB of them (ResNet's 3x3 layer forward,
#: best of 5 interleaved rounds, 12.7 -> 11.5 ms; the dilated one 14.5 -> 12.0; VGG's 28x28
#: layer unchanged, 22.0 / 22.7). Pointwise tiles of 6 channels × 2 vectors: a strip of
#: pixels over all summed channels then fits the L1 cache (ResNet's 1x1 layer, 256 channels:
#: 16 KB, against 32 KB with 4 vectors); forward on 2 threads, median of 5 interleaved rounds,
#: 3 × 4 12.1 ms, 4 × 3 12.1, 2 × 6 12.8, 12 × 1 10.1, 5 × 2 9.3, 6 × 2 8.4-8.7; input gradient
#: 3 × 4 11.1, 6 × 2 8.3-9.6.
AVX2 = Target(
    name="avx2",
    vector_bytes=32,
    registers=16,
    tile_vectors=12,
    long_row=math.inf,
    long_row_tile_vectors=12,
    unrolled_weights=6,
    one_tap_pair=2,
    weight_tile_vectors=12,
    row_tile_vectors=12,
    row_weight_vectors=12,
    chunk_bytes=24 * 1024,
    pointwise_rows=6,
    pointwise_vectors=2,
)

TARGETS = {target.name: target for target in (AVX512, AVX2)}
#: What the generated files in ``generated/`` and ``symconv generate`` use unless told otherwise.
DEFAULT = AVX512


def enabled_options(description: str) -> set[str]:
    """The options a compiler's ``-Q --help=target`` listing marks ``[enabled]``."""
    return set(re.findall(r"^\s*(-m[\w-]+)\s+\[enabled\]", description, flags=re.MULTILINE))


def target_for(description: str) -> Target:
    """The target of the CPU a compiler's ``-march=native -Q --help=target`` listing describes:
    AVX-512 where it has AVX-512, AVX2's tiles on any other x86 CPU with AVX (16 vector
    registers), and ``DEFAULT`` for a listing that says neither (another architecture, or a
    compiler without ``-march=native``, whose portable code is slow either way)."""
    enabled = enabled_options(description)
    if "-mavx512f" in enabled:
        return AVX512
    if enabled & {"-mavx", "-mavx2"}:
        return AVX2
    return DEFAULT


def target_named(name: str) -> Target:
    """The target called ``name``, with a clear error for any other."""
    if name not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, but got {name!r}")
    return TARGETS[name]
