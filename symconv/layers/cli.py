"""``symconv layer KIND [options] [--format ...] [--verify]``: print or verify a layer's derivation.

    symconv layer sigmoid --shape 1,3
    symconv layer relu --shape 2x2 --verify
    symconv layer maxpool --input 1,1,4,4 --kernel 2 [--values 1,0,3,2,...]
    symconv layer avgpool --input 1,1,3,3 --kernel 2 --stride 1 --padding 1 --no-count-include-pad
    symconv layer linear --in-features 3 --out-features 2 [--batch 2] [--no-bias]
    symconv layer softmax --shape 1,3
    symconv layer cross_entropy --shape 2,3 [--target 0,2] [--reduction sum]
    symconv layer batchnorm --input 1,1,1,3 [--no-affine]
    symconv layer conv_transpose --input 1,1,2,2 --weight 1,1,2,2 --stride 2

``add_layer_command(subparsers)`` adds the subcommand to the ``symconv`` parser; its handler is
``layer_command(args)`` (also set as the parser's default ``handler``). Bad arguments end with one
``symconv: error: …`` line and exit code 2; ``--verify`` exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Callable

from .activation import ActivationSpec
from .batchnorm import BatchNorm2dSpec
from .linear import LinearSpec
from .pool_spec import AvgPool2dSpec, MaxPool2dSpec
from .printing import FORMATS, render
from .registry import derive_layer
from .softmax import CrossEntropySpec, SoftmaxSpec
from .transpose import ConvTranspose2dSpec


class LayerUsageError(ValueError):
    """A command-line argument that cannot be used."""


def ints(text: str | None, what: str) -> tuple[int, ...] | None:
    """``1,3`` or ``1x3`` -> (1, 3); None stays None."""
    if text is None:
        return None
    parts = re.split(r"[,x×]", text.strip())
    if not all(re.fullmatch(r"\s*-?\d+\s*", p) for p in parts):
        raise LayerUsageError(f"{what} must be ints joined by ',' or 'x' such as 1,3, but got {text!r}")
    return tuple(int(p) for p in parts)


def one_or_pair(text: str | None, what: str, default: Any = None) -> Any:
    """``2`` -> 2, ``2,3`` -> (2, 3); ``default`` when the option is absent (never for a given 0,
    which the spec must see and refuse where it is not allowed)."""
    values = ints(text, what)
    if values is None:
        return default
    return values[0] if len(values) == 1 else values


def given(values: tuple[int, ...] | None, default: tuple[int, ...]) -> tuple[int, ...]:
    """``values``, or ``default`` when the option is absent."""
    return default if values is None else values


def numbers(text: str | None) -> list[float | int] | None:
    if text is None:
        return None
    values: list[float | int] = []
    for part in text.split(","):
        try:
            values.append(int(part) if re.fullmatch(r"\s*-?\d+\s*", part) else float(part))
        except ValueError:
            raise LayerUsageError(f"--values must be comma-separated numbers, but got {text!r}") from None
    return values


def need(value: Any, option: str, kind: str) -> Any:
    if value is None:
        raise LayerUsageError(f"{kind} needs {option}")
    return value


def spec_activation(args: argparse.Namespace) -> Any:
    return ActivationSpec(args.kind, given(ints(args.shape, "--shape"), (1, 3)))


def spec_maxpool(args: argparse.Namespace) -> Any:
    return MaxPool2dSpec(
        need(ints(args.input, "--input"), "--input N,C,H,W", "maxpool"),
        kernel_size=one_or_pair(args.kernel, "--kernel", 2),
        stride=one_or_pair(args.stride, "--stride"),
        padding=one_or_pair(args.padding, "--padding", 0),
        dilation=one_or_pair(args.dilation, "--dilation", 1),
        ceil_mode=args.ceil_mode,
    )


def spec_avgpool(args: argparse.Namespace) -> Any:
    return AvgPool2dSpec(
        need(ints(args.input, "--input"), "--input N,C,H,W", "avgpool"),
        kernel_size=one_or_pair(args.kernel, "--kernel", 2),
        stride=one_or_pair(args.stride, "--stride"),
        padding=one_or_pair(args.padding, "--padding", 0),
        ceil_mode=args.ceil_mode,
        count_include_pad=args.count_include_pad,
    )


def spec_linear(args: argparse.Namespace) -> Any:
    return LinearSpec(
        need(args.in_features, "--in-features", "linear"),
        need(args.out_features, "--out-features", "linear"),
        bias=args.bias,
        batch=args.batch,
    )


def spec_softmax(args: argparse.Namespace) -> Any:
    return SoftmaxSpec(given(ints(args.shape, "--shape"), (1, 3)))


def spec_cross_entropy(args: argparse.Namespace) -> Any:
    return CrossEntropySpec(given(ints(args.shape, "--shape"), (1, 3)), ints(args.target, "--target"), args.reduction)


def spec_batchnorm(args: argparse.Namespace) -> Any:
    return BatchNorm2dSpec(given(ints(args.input, "--input"), (1, 1, 1, 3)), affine=args.affine)


def spec_conv_transpose(args: argparse.Namespace) -> Any:
    return ConvTranspose2dSpec(
        need(ints(args.input, "--input"), "--input N,C_in,H,W", "conv_transpose"),
        need(ints(args.weight, "--weight"), "--weight C_in,C_out/groups,KH,KW", "conv_transpose"),
        stride=one_or_pair(args.stride, "--stride", 1),
        padding=one_or_pair(args.padding, "--padding", 0),
        output_padding=one_or_pair(args.output_padding, "--output-padding", 0),
        dilation=one_or_pair(args.dilation, "--dilation", 1),
        groups=args.groups,
        bias=args.bias,
    )


SPECS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "relu": spec_activation,
    "sigmoid": spec_activation,
    "maxpool": spec_maxpool,
    "avgpool": spec_avgpool,
    "linear": spec_linear,
    "softmax": spec_softmax,
    "cross_entropy": spec_cross_entropy,
    "batchnorm": spec_batchnorm,
    "conv_transpose": spec_conv_transpose,
}


def build_derivation(args: argparse.Namespace) -> Any:
    """The derivation of the command line; raises LayerUsageError (spec errors included)."""
    if args.bias is None:  # linear layers have a bias by default, transposed convolutions not
        args.bias = args.kind == "linear"
    try:
        spec = SPECS[args.kind](args)
        values = numbers(args.values)
        if values is not None:
            if args.kind != "maxpool":
                raise LayerUsageError("--values is for maxpool only (the numbers its maxima are resolved at)")
            import numpy as np

            if len(values) != int(np.prod(spec.input)):
                raise LayerUsageError(
                    f"--values must give one number per input entry ({int(np.prod(spec.input))}), but got {len(values)}"
                )
            return derive_layer(spec, values=np.array(values, dtype=object).reshape(spec.input))
        return derive_layer(spec)
    except LayerUsageError:
        raise
    except (ValueError, TypeError) as exc:  # the spec's message names the argument
        raise LayerUsageError(str(exc)) from exc


def layer_command(args: argparse.Namespace) -> int:
    """Print the page (or the ``--verify`` report); 0 ok, 1 a failed check, 2 bad arguments."""
    try:
        derivation = build_derivation(args)
    except LayerUsageError as exc:
        print(f"symconv: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if args.verify:
        result = derivation.verify()
        print(result.report())
        return 0 if result.ok else 1
    page = render(derivation, args.format, index_base=args.index_base)
    if args.format == "latex":  # on the command line LaTeX is meant to be compiled
        from ..render import document

        page = document(page)
    sys.stdout.write(page)
    return 0


def add_layer_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``layer`` to a ``symconv`` subparsers object; returns the new parser."""
    p = subparsers.add_parser(
        "layer",
        help="print (or --verify) the derivation of a non-convolution layer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add("kind", choices=tuple(SPECS), help="the layer")
    add("--shape", help="relu/sigmoid: any shape; softmax/cross_entropy: N,C (default 1,3)")
    add("--input", help="maxpool/avgpool/batchnorm/conv_transpose: N,C,H,W")
    add("--weight", help="conv_transpose: C_in,C_out/groups,KH,KW")
    add("--kernel", help="pooling kernel: int or KH,KW (default 2)")
    add("--stride", help="int or SH,SW (pooling default: the kernel; conv_transpose: 1)")
    add("--padding", help="int or PH,PW (default 0)")
    add("--dilation", help="maxpool/conv_transpose: int or DH,DW (default 1)")
    add("--output-padding", help="conv_transpose: int or pair (default 0)")
    add("--groups", type=int, default=1, help="conv_transpose groups (default 1)")
    add("--ceil-mode", action="store_true", help="pooling: ceil instead of floor for the output size")
    add("--count-include-pad", action=argparse.BooleanOptionalAction, default=True, help="avgpool divisor (default: include padding)")
    add("--values", help="maxpool: the input numbers, row-major, at which the maxima are resolved")
    add("--in-features", type=int, help="linear: input size")
    add("--out-features", type=int, help="linear: output size")
    add("--batch", type=int, default=1, help="linear: batch size (default 1)")
    add("--bias", action=argparse.BooleanOptionalAction, default=None, help="linear (default yes) / conv_transpose (default no)")
    add("--target", help="cross_entropy: class indices N values, e.g. 0,2 (default: symbolic targets)")
    add("--reduction", choices=("mean", "sum"), default="mean", help="cross_entropy reduction (default mean)")
    add("--affine", action=argparse.BooleanOptionalAction, default=True, help="batchnorm γ and β (default yes)")
    add("--format", choices=tuple(FORMATS), default="text", help="output format (default text; latex: a full document)")
    add("--verify", action="store_true", help="print the verification report instead (exit 1 if a check fails)")
    add("--index-base", type=int, choices=(0, 1), default=1, help="1: textbook subscripts (default); 0: array indices")
    p.set_defaults(handler=layer_command)
    return p

