"""``symconv train``: the command line of the digits example (:mod:`symconv.train.digits`).

Only argparse lives here, so that building the ``symconv`` parser does not load the network,
the kernels or the code generator; the training code is imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Sequence

#: The most OpenMP threads ``--threads`` may ask for (the layers are small: more is never useful,
#: and a huge count would not fit the C int the runtime takes).
MAX_THREADS = 1024


# -- the command -----------------------------------------------------------------------------------


def add_train_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` to an argparse sub-command set; its handler is ``train_command(args)``."""
    parser = subparsers.add_parser(
        "train", help="train a LeNet-5-style network on the bundled 8×8 digits (needs the examples extra)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training set (default 30)")
    parser.add_argument("--batch-size", type=int, default=32, help="mini-batch size (default 32)")
    parser.add_argument("--lr", type=float, default=0.05, help="initial learning rate (default 0.05)")
    parser.add_argument(
        "--schedule", choices=("cosine", "constant"), default="cosine",
        help="learning rate per epoch: cosine annealing to 0 (default) or constant",
    )
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay (default 5e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the shuffles")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--out", default="digits-run", help="directory for curves.png, lenet_digits.npz, history.json")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="OpenMP threads per kernel (default 1: the layers are so small that waking a second "
             "thread costs more than it saves); 0 keeps $OMP_NUM_THREADS or all cores",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=train_command)
    return parser


def _check(args: argparse.Namespace) -> str | None:
    """The first unusable argument, as a message (None if all are fine)."""
    if args.epochs < 1:
        return f"--epochs must be >= 1, but got {args.epochs}"
    if args.batch_size < 1:
        return f"--batch-size must be >= 1, but got {args.batch_size}"
    for option, value in (("--lr", args.lr), ("--momentum", args.momentum), ("--weight-decay", args.weight_decay)):
        if not math.isfinite(value):
            return f"{option} must be finite, but got {value}"
    if not args.lr > 0:
        return f"--lr must be > 0, but got {args.lr}"
    if args.momentum < 0:
        return f"--momentum must be >= 0, but got {args.momentum}"
    if args.weight_decay < 0:
        return f"--weight-decay must be >= 0, but got {args.weight_decay}"
    if not 0 <= args.seed < 2**32:  # scikit-learn's random_state takes 32-bit seeds
        return f"--seed must be between 0 and 2^32 - 1 = {2**32 - 1}, but got {args.seed}"
    if not 0 <= args.threads <= MAX_THREADS:
        return f"--threads must be between 0 and {MAX_THREADS}, but got {args.threads}"
    return None


@contextmanager
def thread_count(threads: int) -> Iterator[None]:
    """Kernels loaded inside use ``threads`` OpenMP threads (they read $OMP_NUM_THREADS when
    loaded; kernels this process loaded before keep theirs). 0 leaves the environment alone."""
    before = os.environ.get("OMP_NUM_THREADS")
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def train_command(args: argparse.Namespace) -> int:
    """Run the training, write the outputs, print a summary. Exit code 0, or 2 for bad arguments."""
    problem = _check(args)
    if problem:
        print(f"symconv: error: {problem}", file=sys.stderr)
        return 2
    import numpy as np

    from .digits import fit, plot

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with thread_count(args.threads):
            model, history = fit(
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                weight_decay=args.weight_decay, seed=args.seed, dtype=args.dtype, show_progress=not args.quiet,
                schedule=args.schedule,
            )
        elapsed = time.perf_counter() - start
        curves = plot(history, out / "curves.png")
    except (RuntimeError, ValueError, TypeError, OSError) as exc:
        print(f"symconv: error: {exc}", file=sys.stderr)
        return 2
    weights = model.save(out / "lenet_digits.npz")
    (out / "history.json").write_text(json.dumps({**asdict(history), "total_seconds": elapsed}, indent=2) + "\n")
    print(
        f"test accuracy {100 * history.test_accuracy[-1]:.2f}% (best {100 * max(history.test_accuracy):.2f}%), "
        f"test loss {history.test_loss[-1]:.4f}, {args.epochs} epochs in {elapsed:.1f} s "
        f"({np.median(history.epoch_seconds):.3f} s per epoch, median)"
    )
    print(f"wrote {curves}, {weights}, {out / 'history.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symconv.train.digits")
    add_train_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)
