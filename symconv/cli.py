"""The ``symconv`` command.

    symconv derive 3x3 2x2                      the lecture example, step by step
    symconv derive 5x5 3x3 --stride 2 --wrt weight
    symconv derive --input 1x4x5x5 --weight 4x2x2x2 --groups 2 --padding 1 --format latex
    symconv verify 3x3 2x2                      prove the gradients are the lecture's convolutions
    symconv check 3x3 2x2 --claim 'dL/dX_12 = dL/dO_11*F_12 + dL/dO_12*F_11'
    symconv generate --input 1x6x14x14 --weight 16x6x5x5 --bias --out build/   standalone .c/.h
    symconv demo                                derive → verify → generate → compile → run
    symconv layer maxpool --input 1,1,4,4 --kernel 2    another layer's derivation (relu, linear, …)
    symconv train --epochs 30 --out run/        LeNet on the bundled digits (examples extra)

Shapes are sizes joined by ``x``: two positional shapes are the input's and the kernel's spatial
sizes of a single-channel layer (``5 3``, ``3x3 2x2``, ``3x3x3 2x2x2``); ``--input N×C×…`` and
``--weight K×C/groups×…`` give full shapes. Bad arguments, unreadable files and a broken build
environment (no C compiler, a malformed ``$CC`` or ``$SYMCONV_SANITIZE``) end with one
``symconv: error: …`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, NoReturn, Sequence

from .derive import derive
from .layers.cli import add_layer_command, layer_command
from .render import FORMATS, WRT, document, render
from .spec import ConvSpec
from .target import TARGETS, Target, target_named
from .train.command import add_train_command, train_command


class UsageError(ValueError):
    """A command-line argument that cannot be used; reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but an error is the single line ``symconv: error: …`` (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"symconv: error: {message} (see {self.prog} --help)\n")


# -- reading the arguments -------------------------------------------------------------------------


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0 (a seed; numpy refuses negative ones)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, but got {value}")
    return value


def parse_shape(text: str, what: str) -> tuple[int, ...]:
    """``1x1x3x3`` -> (1, 1, 3, 3)."""
    parts = re.split(r"[x×]", text.strip())
    if not all(re.fullmatch(r"\d+", p) for p in parts):
        raise UsageError(f"{what} must be sizes joined by 'x' such as 3x3 or 1x1x3x3, but got {text!r}")
    return tuple(int(p) for p in parts)


def parse_ints(text: str, what: str) -> int | tuple[int, ...]:
    """``2`` -> 2, ``2,1`` -> (2, 1) (one value per spatial axis)."""
    parts = text.split(",")
    if not all(re.fullmatch(r"\s*-?\d+\s*", p) for p in parts):
        raise UsageError(f"{what} must be an int or comma-separated ints such as 2 or 2,1, but got {text!r}")
    values = tuple(int(p) for p in parts)
    return values[0] if len(values) == 1 else values


def parse_padding(text: str, rank: int) -> Any:
    """``1``, ``1,2``, ``1:0,0:2`` (lo:hi per axis; one pair alone applies to every axis), ``valid``, ``same``."""
    if text in ("valid", "same"):
        return text
    entries: list[int | tuple[int, int]] = []
    for part in text.split(","):
        pieces = part.split(":")
        if len(pieces) > 2 or not all(re.fullmatch(r"\s*-?\d+\s*", p) for p in pieces):
            raise UsageError(
                f"padding must be an int, comma-separated ints, lo:hi pairs such as 1:0,0:2, "
                f"'valid' or 'same', but got {text!r}"
            )
        values = tuple(int(p) for p in pieces)
        entries.append(values[0] if len(values) == 1 else (values[0], values[1]))
    if len(entries) == 1:
        return entries[0] if isinstance(entries[0], int) else (entries[0],) * rank
    return tuple(entries)


def build_spec(args: argparse.Namespace) -> ConvSpec:
    """The layer of the command line; raises UsageError, or ConvSpec's ValueError/TypeError."""
    if args.shapes and (args.input or args.weight):
        raise UsageError("give the shapes either as two positional arguments or with --input/--weight, not both")
    if args.shapes:
        if len(args.shapes) != 2:
            raise UsageError(
                f"expected two positional shapes (input and kernel, e.g. 3x3 2x2), but got {len(args.shapes)}"
            )
        spatial, kernel = (parse_shape(s, what) for s, what in zip(args.shapes, ("input", "kernel")))
        x_shape, w_shape = (1, 1, *spatial), (1, 1, *kernel)
    elif args.input and args.weight:
        x_shape, w_shape = parse_shape(args.input, "--input"), parse_shape(args.weight, "--weight")
    else:
        raise UsageError("the layer is missing: give two shapes (e.g. 3x3 2x2) or both --input and --weight")
    rank = len(x_shape) - 2
    try:
        return ConvSpec(
            input=x_shape,
            weight=w_shape,
            stride=parse_ints(args.stride, "--stride"),
            padding=parse_padding(args.padding, rank),
            dilation=parse_ints(args.dilation, "--dilation"),
            groups=args.groups,
            bias=args.bias,
        )
    except UsageError:
        raise
    except (ValueError, TypeError) as exc:  # ConvSpec's message names the argument
        raise UsageError(str(exc)) from exc


# -- the subcommands -----------------------------------------------------------------------------


def demo(args: argparse.Namespace) -> int:
    """The main job, end to end; the lecture example unless a layer is given."""
    from .demo import LECTURE_EXAMPLE, run_demo

    spec = build_spec(args) if (args.shapes or args.input or args.weight) else LECTURE_EXAMPLE
    if not derive(spec).is_small:
        raise UsageError("the demo evaluates every entry symbolically: give a small layer")
    return run_demo(spec, dtype=args.dtype, seed=args.seed)


def chosen_target(name: str) -> Target:
    """The tile sizes ``--target`` asks for: this CPU's ("native") or a named target's."""
    from .pipeline import native_target  # the build toolchain loads here, not at start-up

    return native_target() if name == "native" else target_named(name)


def generate_command(args: argparse.Namespace) -> int:
    """Write the layer's kernels as a standalone ``.c``/``.h`` pair (or refresh the golden files)."""
    from .export import GOLDEN_DIR, export, in_source_checkout, update_golden

    if args.update_golden:
        if args.shapes or args.input or args.weight:
            raise UsageError("--update-golden regenerates the committed examples: give no layer with it")
        if not in_source_checkout():
            raise UsageError(f"--update-golden works in a source checkout; {GOLDEN_DIR} is not its generated/ folder")
        paths = update_golden()
    else:
        if not (args.shapes or args.input or args.weight):
            raise UsageError("give a layer (e.g. 3x3 2x2, or --input/--weight), or --update-golden")
        try:
            paths = list(export(build_spec(args), args.out, args.dtype, args.name, chosen_target(args.target)))
        except (ValueError, TypeError, OSError) as exc:
            raise UsageError(str(exc)) from exc
    for path in paths:
        print(path)
    return 0


def derive_command(args: argparse.Namespace) -> int:
    spec = build_spec(args)
    if args.wrt == "bias" and not spec.bias:
        raise UsageError("--wrt bias needs a layer with a bias (add --bias)")
    page = render(
        derive(spec), args.format, wrt=args.wrt, index_base=args.index_base, general_only=args.general
    )
    # On the command line LaTeX is meant to be compiled: a complete document.
    sys.stdout.write(document(page) if args.format == "latex" else page)
    return 0


def verify_command(args: argparse.Namespace) -> int:
    d = derive(build_spec(args))
    if not d.is_small:
        raise UsageError(
            f"layer too large for an element-wise proof: {d.n_terms:,} multiply terms "
            f"(at most {d.max_terms:,}); 'symconv derive --general' prints its general form"
        )
    result = d.verify()
    print(result.report())
    return 0 if result.ok else 1


def read_claims(args: argparse.Namespace) -> list[str]:
    claims = list(args.claim or [])
    if args.claims_file:
        try:
            with open(args.claims_file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read --claims-file {args.claims_file!r}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"--claims-file must be UTF-8 text, but {args.claims_file!r} has a byte 0x{exc.object[exc.start]:02x} "
                f"that is not UTF-8 at offset {exc.start}"
            ) from None
        claims += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not claims:
        raise UsageError("no claims: give --claim 'LHS = RHS' (repeatable) or --claims-file FILE")
    return claims


def check_command(args: argparse.Namespace) -> int:
    from .check import check_claims

    spec = build_spec(args)
    claims = read_claims(args)
    try:
        result = check_claims(spec, claims, index_base=args.index_base, index_style=args.index_style)
    except ValueError as exc:  # a claim that cannot be read, or a bad --index-style
        raise UsageError(str(exc)) from exc
    print(result.report(summary=True))
    return 0 if result.ok else 1


COMMANDS = {
    "demo": demo,
    "derive": derive_command,
    "verify": verify_command,
    "check": check_command,
    "generate": generate_command,
    "layer": layer_command,
    "train": train_command,
}


# -- the parser ----------------------------------------------------------------------------------


def layer_options() -> argparse.ArgumentParser:
    """The options that describe a layer, shared by derive, verify and check."""
    layer = Parser(add_help=False)
    group = layer.add_argument_group("layer")
    add = group.add_argument
    add("shapes", nargs="*", metavar="SHAPE", help="input and kernel spatial sizes, e.g. 3x3 2x2 (N = C = K = 1)")
    add("--input", metavar="NxCx...", help="full input shape, e.g. 1x1x3x3")
    add("--weight", metavar="KxCx...", help="full weight shape (K, C/groups, kernel...), e.g. 1x1x2x2")
    add("--stride", default="1", help="int, or one per axis: 2,1 (default 1)")
    add("--padding", default="0", help="int, per axis 1,2, lo:hi pairs 1:0,0:2, valid or same (default 0)")
    add("--dilation", default="1", help="int, or one per axis (default 1)")
    add("--groups", type=int, default=1, help="channel groups (default 1)")
    add("--bias", action=argparse.BooleanOptionalAction, default=False, help="add a bias (default: no)")
    return layer


def make_parser() -> Parser:
    parser = Parser(prog="symconv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    layer = layer_options()
    demo_parser = sub.add_parser(
        "demo", parents=[layer], help="derive, verify, generate, compile and run (default: the lecture example)"
    )
    demo_parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    demo_parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random test arrays (>= 0)")

    d = sub.add_parser("derive", parents=[layer], help="print the derivation of a layer, step by step")
    d.add_argument("--wrt", choices=WRT, default="all", help="which gradients to show (default all)")
    d.add_argument(
        "--format", choices=tuple(FORMATS), default="text", help="output format (default text; latex: a full document)"
    )
    d.add_argument("--general", action="store_true", help="print only the general index form")
    d.add_argument(
        "--index-base", type=int, choices=(0, 1), default=1,
        help="1: textbook subscripts X₁₁ (default); 0: array indices X[0,0,0,0]",
    )

    g = sub.add_parser("generate", parents=[layer], help="write the layer's C kernels as a standalone .c/.h pair")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g.add_argument("--name", help="C identifier prefixing every function and macro (default: from the layer)")
    g.add_argument("--out", default=".", help="directory to write into (default: .)")
    g.add_argument(
        "--target", choices=("native", *TARGETS), default="native",
        help="CPU the register tiles are sized for (default: this one; the golden files use avx512)",
    )
    g.add_argument("--update-golden", action="store_true", help="regenerate the committed examples in generated/")

    sub.add_parser("verify", parents=[layer], help="prove the gradients are the lecture's convolutions (exit 1 if not)")

    c = sub.add_parser("check", parents=[layer], help="check claimed gradient entries (exit 1 if any is wrong)")
    c.add_argument(
        "--claim", action="append", metavar="'LHS = RHS'",
        help="e.g. 'dL/dX_12 = dL/dO_11*F_12 + dL/dO_12*F_11' (repeatable)",
    )
    c.add_argument("--claims-file", metavar="FILE", help="one claim per line (# starts a comment)")
    c.add_argument(
        "--index-base", type=int, choices=(0, 1), default=None,
        help="how to read indices (default: 0 in brackets, 1 in subscripts)",
    )
    c.add_argument("--index-style", default="auto", help="auto, multi (one digit per axis) or flat (row-major number)")

    add_layer_command(sub)
    add_train_command(sub)
    return parser


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that report a problem with the user's input or machine, not a bug.

    Every public entry point raises ValueError or TypeError naming the bad argument, OSError names
    the file, and the code generator's CompilerError / SanitizerRuntimeError name the compiler or
    the sanitizer set-up. The code generator loads lazily: if it was never imported, none of its
    errors can have been raised.
    """
    errors: list[type[BaseException]] = [UsageError, ValueError, TypeError, OSError]
    build = sys.modules.get("codegen.build")
    if build is not None:
        errors += [build.CompilerError, build.SanitizerRuntimeError]
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 ok, 1 a failed proof or claim, 2 bad arguments,
    an unreadable file or a broken build environment)."""
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or an argparse error already printed
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return COMMANDS[args.command](args)
    except expected_errors() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"symconv: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
