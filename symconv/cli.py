"""The ``symconv`` command."""

from __future__ import annotations

import argparse
import sys

from .derive import derive
from .spec import ConvSpec


def demo(args: argparse.Namespace) -> int:
    spec = ConvSpec(input=(1, 1, 3, 3), weight=(1, 1, 2, 2))
    d = derive(spec)
    print(d.verify().report())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="symconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="derive, verify, generate, compile and run the lecture example")
    args = parser.parse_args(argv)
    return {"demo": demo}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
