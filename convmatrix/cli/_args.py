"""Argument types and parsers shared by the ``convmatrix`` commands.

The parser class refuses repeated options; the value types turn flag text into ints, shapes,
paddings and byte counts with one-line errors; :func:`layer_arguments` is the group of layer
flags every layer command shares.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from convmatrix.adapters.keras.config import SUPPORTED as KERAS_CLASSES
from convmatrix.builder.budget import format_bytes
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.builder.weights import WEIGHT_FILLS
from convmatrix.cli._parser import EXAMPLES, ArgumentParser, Once, OnceFlag, shorten, show_value
from convmatrix.geometry.spec import PADDING_MODES

__all__ = ["EXAMPLES", "LAYER_FLAGS", "STACK_HELP", "ArgumentParser", "Once", "OnceFlag",
           "budget_argument", "layer_arguments", "layer_command", "parse_count", "parse_groups",
           "parse_int", "parse_ints", "parse_max_bytes", "parse_padding", "parse_per_axis",
           "parse_shape", "shorten", "show_value"]

STACK_HELP = """\
stack files (TOML, read with the standard library):
  input = [1, 4, 4]                 one sample, channels first
  weights = "ones"                  kernel fill: ones, arange, random, uniform, icnr
  seed = 0
  [[layers]]
  kind = "ConvTranspose"            Conv, ConvTranspose, or any convmatrix layer kind
  kernel = [1, 1, 3, 3]             the weight's shape (torch layout)
  stride = 2                        the other keys are the layer's keyword arguments
  padding = 1
  output_padding = 1
  [[layers]]
  kind = "Upsample"
  scale_factor = 2
  mode = "nearest"
  [[layers]]
  kind = "Flatten"                  also Reshape (shape), Slice (axis, start, stop, step),
                                    Scale (scale, shift), GlobalAvgPool (keepdims, axes),
                                    AdaptiveAvgPool (output_size)
  [[layers]]
  kind = "Linear"
  out_features = 10                 weight (10 x input size) filled like a kernel; bias = [...]
"""

INT64_MAX = 2**63 - 1
LAYER_FLAGS = frozenset({"input", "kernel", "transpose", "stride", "padding", "dilation",
                         "groups", "padding_mode", "output_padding", "keras", "channels_first",
                         "weight", "weight_file", "seed"})
"""The ``dest`` of every layer flag (``--stack`` refuses them)."""


def parse_int(text: str, name: str) -> int:
    """One integer of a flag value, refusing values no array index can hold."""
    value = int(text.strip())
    if abs(value) > INT64_MAX:
        raise argparse.ArgumentTypeError(
            f"{name} {shorten(text)!r} is out of range: each value must lie below 2**63")
    return value


def parse_ints(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(parse_int(v, name) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name} {shorten(text)!r} must be integers separated by 'x' or ','") from None


def parse_shape(text: str) -> tuple[int, ...]:
    return parse_ints(text, "shape")


def parse_per_axis(text: str) -> int | tuple[int, ...]:
    values = parse_ints(text, "value")
    return values[0] if len(values) == 1 else values


def parse_count(text: str) -> int:
    try:
        value = parse_int(text, "value")
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{shorten(text)!r} must be a non-negative integer")
    return value


def parse_groups(text: str) -> int:
    try:
        return parse_int(text, "groups")
    except ValueError:
        raise argparse.ArgumentTypeError(f"groups {shorten(text)!r} must be an integer") from None


UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20,
          "mib": 2**20, "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40,
          "tib": 2**40}


def parse_max_bytes(text: str) -> int | None:
    """``4294967296``, ``512M``, ``4GiB`` (binary units) or ``none`` (no guard)."""
    if text.strip().lower() == "none":
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).lower() not in UNITS:
        raise argparse.ArgumentTypeError(
            f"max-bytes {shorten(text)!r} must be a byte count like 1000000, 512M or 4GiB "
            f"(binary units K, M, G, T), or 'none'")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


def parse_padding(text: str) -> Any:
    """``1``, ``1,2`` (per axis), ``1:2,0:1`` (before:after per axis), ``same``, ``valid``."""
    if text in ("same", "valid", "causal"):
        return text
    try:
        parts = text.split(",")
        if any(":" in p for p in parts):
            pairs = []
            for p in parts:
                before, _, after = p.partition(":")
                pairs.append((parse_int(before, "padding"), parse_int(after or before, "padding")))
            return tuple(pairs)
        values = tuple(parse_int(p, "padding") for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"padding {shorten(text)!r} must be an int, ints per axis (1,2), before:after pairs "
            f"per axis (1:2,0:1), 'same' or 'valid'") from None
    return values[0] if len(values) == 1 else values


def layer_arguments() -> ArgumentParser:
    parent = ArgumentParser(add_help=False)
    group = parent.add_argument_group("layer (torch layouts, one sample, channels first)")
    group.add_argument("--input", type=parse_shape, metavar="CxHxW", action=Once,
                       help="input shape of one sample, e.g. 1x3x3 (default: the seed example)")
    group.add_argument("--kernel", type=parse_shape, metavar="OxIxKHxKW", action=Once,
                       help="weight shape: (C_out, C_in/groups, *k) for a convolution, "
                            "(C_in, C_out/groups, *k) with --transpose (default: the shape of "
                            "--weight-file)")
    group.add_argument("--transpose", action=OnceFlag,
                       help="the transposed convolution (torch conv_transposeNd)")
    group.add_argument("--stride", type=parse_per_axis, default=1, metavar="S", action=Once,
                       help="step between windows: an int, or ints per axis (2,1) (default 1)")
    group.add_argument("--padding", type=parse_padding, default=0, metavar="P", action=Once,
                       help="int, per axis (1,2), pairs (1:2,0:1), same or valid")
    group.add_argument("--dilation", type=parse_per_axis, default=1, metavar="D", action=Once,
                       help="spacing between kernel taps: an int, or ints per axis (default 1)")
    group.add_argument("--groups", type=parse_groups, default=1, metavar="G", action=Once,
                       help="channel groups: input and output channels split into G "
                            "independent blocks; must divide both (default 1)")
    group.add_argument("--padding-mode", default="zeros", choices=PADDING_MODES, action=Once)
    group.add_argument("--output-padding", type=parse_per_axis, default=None, metavar="A",
                       action=Once,
                       help="extra output size of a transposed convolution (default 0; for "
                            "Keras: not given, i.e. Keras' own length rule)")
    group.add_argument("--keras", metavar="CLASS", choices=KERAS_CLASSES, action=Once,
                       help="a Keras layer instead (Conv1D/2D/3D, Conv1D/2D/3DTranspose, "
                            "DepthwiseConv1D/2D): --input and --kernel then use Keras layouts, "
                            "e.g. --input 3x3x1 --kernel 2x2x1x1")
    group.add_argument("--channels-first", action=OnceFlag,
                       help="with --keras: data_format='channels_first'")
    group.add_argument("--weight", default=None, choices=WEIGHT_FILLS, action=Once,
                       help="weight values (default ones, as in the seed)")
    group.add_argument("--weight-file", type=Path, metavar="W.npy", action=Once,
                       help="real weight values from a .npy file (numpy.save), in the layout "
                            "--kernel describes (torch, or Keras with --keras)")
    group.add_argument("--seed", type=parse_count, default=0, action=Once,
                       help="seed for --weight random and data")
    return parent


def budget_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-bytes", type=parse_max_bytes, default=DEFAULT_MAX_BYTES,
                        metavar="BYTES", action=Once,
                        help=f"refuse work estimated to need more memory than this, before "
                             f"allocating it: e.g. 512M, 16GiB, or none (default "
                             f"{format_bytes(DEFAULT_MAX_BYTES)})")


def layer_command(subparsers: Any, name: str, help: str) -> ArgumentParser:
    """Add the subcommand ``name`` with the layer flags (help, description and examples)."""
    parser: ArgumentParser = subparsers.add_parser(
        name, parents=[layer_arguments()], help=help, description=help, epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser
