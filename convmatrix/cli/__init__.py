"""The ``convmatrix`` command line: reports, verification, shapes and matrices of a layer."""

from __future__ import annotations

import argparse
import math
import re
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convmatrix import __version__
from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.keras.config import SUPPORTED as KERAS_CLASSES
from convmatrix.build.budget import (
    check_budget,
    dense_nbytes,
    format_bytes,
    report_nbytes,
    verification_nbytes,
)
from convmatrix.build.sparse import DEFAULT_MAX_BYTES, _as_weight, estimate_nbytes
from convmatrix.build.weights import WEIGHT_FILLS, make_weight
from convmatrix.cli.norm import add_norm_command, save_streamed
from convmatrix.cli.stack import add_compare_command, add_stack_argument, run_stack_report
from convmatrix.geometry.spec import PADDING_MODES, ConvSpec, conv_spec, conv_transpose_spec
from convmatrix.layers.base import shape_text
from convmatrix.layers.channels_last import KerasConv
from convmatrix.layers.conv import Conv, ConvTranspose
from convmatrix.reports.layer import keras_conv
from convmatrix.symbolic.arithmetic import size_derivation

__all__ = ["build_parser", "layer_from_args", "main"]

EXAMPLES = """\
examples:
  convmatrix report --out seed-report          the seed example (Keras Conv2D/Conv2DTranspose)
  convmatrix report --input 1x4x4 --kernel 1x1x3x3 --stride 2 --transpose --out k3s2.md
  convmatrix verify --input 3x8x8 --kernel 4x3x3x3 --padding 1 --padding-mode reflect
  convmatrix verify --input 3x32x32 --weight-file conv1.npy --padding 1
  convmatrix shape --input 1x5x5 --kernel 1x1x3x3 --stride 2 --transpose --output-padding 1
  convmatrix matrix --input 1x3x3 --kernel 1x1x2x2          print C densely
  convmatrix matrix --input 64x56x56 --kernel 64x64x3x3 --padding 1 --save resnet.npz
  convmatrix reports --out reports                  regenerate every report in reports/
  convmatrix report --stack gen.toml --out gen       a stack of layers from a TOML file
  convmatrix compare k3.toml k4.toml --out k3-vs-k4  stacks side by side (format: compare -h)
"""

_INT64_MAX = 2**63 - 1
_LAYER_FLAGS = frozenset({"input", "kernel", "transpose", "stride", "padding", "dilation",
                          "groups", "padding_mode", "output_padding", "keras", "channels_first",
                          "weight", "weight_file", "seed"})
_SEED = ((1, 3, 3), (1, 1, 2, 2))  # input and weight shape of the seed example


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports errors as one line (and exit code 2), never a traceback.

    Every option that stores a value or a flag may be given once: a repeated one is an error,
    not "last one wins" (also for options other modules add to these parsers).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _Once)
        self.register("action", "store", _Once)
        self.register("action", "store_true", _OnceFlag)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Once(argparse.Action):
    """Store an option's value, refusing a second occurrence (no silent "last one wins")."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        given: dict[str, str] = namespace.__dict__.setdefault("_given", {})
        text = "" if self.nargs == 0 else _show(values)
        if self.dest in given:
            values_text = f" ({given[self.dest]} and {text})" if text else ""
            raise argparse.ArgumentError(self, f"given twice{values_text}; give it once")
        given[self.dest] = text
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


class _OnceFlag(_Once):
    """A ``store_true`` flag that may appear only once."""

    def __init__(self, option_strings: Sequence[str], dest: str, default: Any = False,
                 required: bool = False, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, const=True, default=default,
                         required=required, help=help)


def _show(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value))
    return _shorten(str(value))


def _int(text: str, name: str) -> int:
    """One integer of a flag value, refusing values no array index can hold."""
    value = int(text.strip())
    if abs(value) > _INT64_MAX:
        raise argparse.ArgumentTypeError(
            f"{name} {_shorten(text)!r} is out of range: each value must lie below 2**63")
    return value


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:18] + "…" + text[-18:]


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(_int(v, name) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name} {_shorten(text)!r} must be integers separated by 'x' or ','") from None


def _shape(text: str) -> tuple[int, ...]:
    return _ints(text, "shape")


def _per_axis(text: str) -> int | tuple[int, ...]:
    values = _ints(text, "value")
    return values[0] if len(values) == 1 else values


def _count(text: str) -> int:
    try:
        value = _int(text, "value")
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{_shorten(text)!r} must be a non-negative integer")
    return value


def _groups(text: str) -> int:
    try:
        return _int(text, "groups")
    except ValueError:
        raise argparse.ArgumentTypeError(f"groups {_shorten(text)!r} must be an integer") from None


_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20,
          "mib": 2**20, "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40,
          "tib": 2**40}


def _max_bytes(text: str) -> int | None:
    """``4294967296``, ``512M``, ``4GiB`` (binary units) or ``none`` (no guard)."""
    if text.strip().lower() == "none":
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(
            f"max-bytes {_shorten(text)!r} must be a byte count like 1000000, 512M or 4GiB "
            f"(binary units K, M, G, T), or 'none'")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _padding(text: str) -> Any:
    """``1``, ``1,2`` (per axis), ``1:2,0:1`` (before:after per axis), ``same``, ``valid``."""
    if text in ("same", "valid", "causal"):
        return text
    try:
        parts = text.split(",")
        if any(":" in p for p in parts):
            pairs = []
            for p in parts:
                before, _, after = p.partition(":")
                pairs.append((_int(before, "padding"), _int(after or before, "padding")))
            return tuple(pairs)
        values = tuple(_int(p, "padding") for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"padding {_shorten(text)!r} must be an int, ints per axis (1,2), before:after pairs "
            f"per axis (1:2,0:1), 'same' or 'valid'") from None
    return values[0] if len(values) == 1 else values


def _layer_arguments() -> _ArgumentParser:
    parent = _ArgumentParser(add_help=False)
    group = parent.add_argument_group("layer (torch layouts, one sample, channels first)")
    group.add_argument("--input", type=_shape, metavar="CxHxW", action=_Once,
                       help="input shape of one sample, e.g. 1x3x3 (default: the seed example)")
    group.add_argument("--kernel", type=_shape, metavar="OxIxKHxKW", action=_Once,
                       help="weight shape: (C_out, C_in/groups, *k) for a convolution, "
                            "(C_in, C_out/groups, *k) with --transpose (default: the shape of "
                            "--weight-file)")
    group.add_argument("--transpose", action=_OnceFlag,
                       help="the transposed convolution (torch conv_transposeNd)")
    group.add_argument("--stride", type=_per_axis, default=1, metavar="S", action=_Once)
    group.add_argument("--padding", type=_padding, default=0, metavar="P", action=_Once,
                       help="int, per axis (1,2), pairs (1:2,0:1), same or valid")
    group.add_argument("--dilation", type=_per_axis, default=1, metavar="D", action=_Once)
    group.add_argument("--groups", type=_groups, default=1, metavar="G", action=_Once)
    group.add_argument("--padding-mode", default="zeros", choices=PADDING_MODES, action=_Once)
    group.add_argument("--output-padding", type=_per_axis, default=None, metavar="A",
                       action=_Once,
                       help="extra output size of a transposed convolution (default 0; for "
                            "Keras: not given, i.e. Keras' own length rule)")
    group.add_argument("--keras", metavar="CLASS", choices=KERAS_CLASSES, action=_Once,
                       help="a Keras layer instead (Conv1D/2D/3D, Conv1D/2D/3DTranspose, "
                            "DepthwiseConv1D/2D): --input and --kernel then use Keras layouts, "
                            "e.g. --input 3x3x1 --kernel 2x2x1x1")
    group.add_argument("--channels-first", action=_OnceFlag,
                       help="with --keras: data_format='channels_first'")
    group.add_argument("--weight", default=None, choices=WEIGHT_FILLS, action=_Once,
                       help="weight values (default ones, as in the seed)")
    group.add_argument("--weight-file", type=Path, metavar="W.npy", action=_Once,
                       help="real weight values from a .npy file (numpy.save), in the layout "
                            "--kernel describes (torch, or Keras with --keras)")
    group.add_argument("--seed", type=_count, default=0, action=_Once,
                       help="seed for --weight random and data")
    return parent


def _budget_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-bytes", type=_max_bytes, default=DEFAULT_MAX_BYTES,
                        metavar="BYTES", action=_Once,
                        help=f"refuse work estimated to need more memory than this, before "
                             f"allocating it: e.g. 512M, 16GiB, or none (default "
                             f"{format_bytes(DEFAULT_MAX_BYTES)})")


# --------------------------------------------------------------------------------------------
# the layer: shapes and geometry first, values last


@dataclass(frozen=True)
class _Plan:
    """The layer the flags describe, validated from shapes alone (no weight allocated yet)."""

    spec: ConvSpec
    transpose: bool
    weight_shape: tuple[int, ...]
    dtype: np.dtype[Any]
    keras: dict[str, Any] | None  # the serialized Keras layer, if any
    input_shape: tuple[int, ...]  # one sample in the layer's own layout
    output_shape: tuple[int, ...]

    @property
    def weight_nbytes(self) -> int:
        return math.prod(self.weight_shape) * self.dtype.itemsize

    @property
    def layout(self) -> str:
        """How samples are flattened: channels first, or the Keras layer's data format."""
        if self.keras is None:
            return "channels first"
        return f"Keras layout, {self.keras['config']['data_format']}"


def _weight_header(path: Path) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of a ``.npy`` file, memory-mapped (nothing is read into memory)."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as error:
        raise ConvMatrixError(f"`--weight-file` ({str(path)!r}): "
                              f"{error.strerror or error}") from None
    except (ValueError, EOFError) as error:
        raise ConvMatrixError(f"`--weight-file` ({str(path)!r}) must be an array saved with "
                              f"numpy.save (.npy): {error}") from None
    if not isinstance(mapped, np.ndarray):
        raise ConvMatrixError(f"`--weight-file` ({str(path)!r}) must hold one array (.npy), "
                              f"not an archive of several (.npz)")
    try:
        _as_weight(np.empty(0, dtype=mapped.dtype))
    except TypeError as error:
        raise ConvMatrixError(f"`--weight-file` ({str(path)!r}): {error}") from None
    return tuple(int(v) for v in mapped.shape), np.dtype(mapped.dtype)


def _shapes(args: argparse.Namespace) -> tuple[tuple[int, ...], tuple[int, ...], np.dtype[Any]]:
    """Input shape, weight shape and weight dtype, from --input, --kernel and --weight-file."""
    if args.weight_file is not None and args.weight is not None:
        raise ConvMatrixError("give either `--weight` (generated values) or `--weight-file` "
                              "(values from a file), not both")
    dtype = np.dtype(np.float64 if args.weight == "random" else np.int64)
    kernel = args.kernel
    if args.weight_file is not None:
        file_shape, dtype = _weight_header(args.weight_file)
        if kernel is not None and tuple(kernel) != file_shape:
            raise ConvMatrixError(
                f"`--weight-file` ({str(args.weight_file)!r}) has shape "
                f"{shape_text(file_shape)}, but `--kernel` says {shape_text(kernel)}")
        kernel = file_shape
    if args.input is None and kernel is None and not args.keras:
        return _SEED[0], _SEED[1], dtype
    if args.input is None or kernel is None:
        raise ConvMatrixError("give both --input and --kernel (or --weight-file), or neither "
                              "for the seed example")
    return tuple(args.input), tuple(kernel), dtype


def _keras_config(args: argparse.Namespace, input_shape: tuple[int, ...],
                  kernel: tuple[int, ...]) -> dict[str, Any]:
    """The serialized Keras layer the flags describe (kernel and input in Keras layouts)."""
    rank = len(input_shape) - 1
    if len(kernel) != rank + 2:
        raise ConvMatrixError(f"`--kernel` {shape_text(kernel)} must have {rank + 2} axes for a "
                              f"{rank}-D {args.keras} (kernel size, then two channel axes)")

    def per_axis(value: Any) -> list[int]:
        return [value] * rank if isinstance(value, int) else list(value)

    ignored = [flag for flag, used in [
        ("--transpose", args.transpose),
        ("--padding-mode", args.padding_mode != "zeros"),
        ("--output-padding", args.output_padding is not None and "Transpose" not in args.keras),
        ("--groups", args.groups != 1 and args.keras.startswith(("Conv1DT", "Conv2DT", "Conv3DT",
                                                                 "Depthwise")))] if used]
    if ignored:
        raise ConvMatrixError(
            f"{', '.join(ignored)} cannot be used with --keras {args.keras} (the Keras class "
            f"fixes it: pick a *Transpose class for a transposed layer; Keras pads with zeros)")
    padding = args.padding if isinstance(args.padding, str) else None
    if args.padding not in (0, "valid", "same", "causal"):
        raise ConvMatrixError(f"`--padding` (={args.padding!r}) must be valid, same or causal "
                              f"for a Keras layer")
    config: dict[str, Any] = {
        "kernel_size": list(kernel[:rank]), "strides": per_axis(args.stride),
        "padding": padding or "valid", "dilation_rate": per_axis(args.dilation),
        "data_format": "channels_first" if args.channels_first else "channels_last"}
    if "Transpose" in args.keras:
        config["filters"] = kernel[rank]
        config["output_padding"] = (None if args.output_padding is None
                                    else per_axis(args.output_padding))
    elif "Depthwise" in args.keras:
        config["depth_multiplier"] = kernel[rank + 1]
    else:
        config["filters"], config["groups"] = kernel[rank + 1], args.groups
    return {"class_name": args.keras, "config": config}


def _plan(args: argparse.Namespace) -> _Plan:
    """Validate every flag and the geometry from shapes alone; allocate nothing."""
    if args.channels_first and not args.keras:
        raise ConvMatrixError("`--channels-first` applies only with --keras (convmatrix's own "
                              "layers are always channels first)")
    input_shape, kernel, dtype = _shapes(args)
    if args.keras:
        serialized = _keras_config(args, input_shape, kernel)
        # the Keras geometry needs a kernel: check its size against the budget first
        check_budget(f"the {shape_text(kernel)} kernel", math.prod(kernel) * dtype.itemsize,
                     getattr(args, "max_bytes", DEFAULT_MAX_BYTES), flag="--max-bytes")
        keras = keras_conv(serialized, np.zeros(kernel, dtype=dtype), input_shape)
        return _Plan(keras.torch.spec, isinstance(keras.torch, ConvTranspose), kernel, dtype,
                     serialized, input_shape, keras.output_shape)
    geometry: dict[str, Any] = {"stride": args.stride, "padding": args.padding,
                                "dilation": args.dilation, "groups": args.groups}
    if args.transpose:
        if args.padding_mode != "zeros":
            raise ConvMatrixError(
                f"`--padding-mode` (={args.padding_mode!r}) must be 'zeros' with --transpose "
                f"(torch's ConvTranspose allows only zero padding)")
        spec = conv_transpose_spec(kernel, input_shape, output_padding=args.output_padding or 0,
                                   **geometry)
    else:
        if args.output_padding is not None:
            raise ConvMatrixError("`--output-padding` applies only with --transpose")
        spec = conv_spec(kernel, input_shape, padding_mode=args.padding_mode, **geometry)
    output_shape = spec.input_shape if args.transpose else spec.output_shape
    return _Plan(spec, args.transpose, kernel, dtype, None, input_shape, output_shape)


def _weight(args: argparse.Namespace, plan: _Plan) -> np.ndarray:
    if args.weight_file is None:
        return make_weight(plan.weight_shape, args.weight or "ones", args.seed)
    try:
        weight = np.load(args.weight_file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:  # pragma: no cover - the header was read
        raise ConvMatrixError(f"`--weight-file` ({str(args.weight_file)!r}): {error}") from None
    if weight.shape != plan.weight_shape or weight.dtype != plan.dtype:  # pragma: no cover
        raise ConvMatrixError(f"`--weight-file` ({str(args.weight_file)!r}) changed while read")
    return weight


def _build(args: argparse.Namespace, plan: _Plan) -> Conv | ConvTranspose | KerasConv:
    weight = _weight(args, plan)
    if plan.keras is not None:
        return keras_conv(plan.keras, weight, plan.input_shape)
    geometry: dict[str, Any] = {"stride": args.stride, "padding": args.padding,
                                "dilation": args.dilation, "groups": args.groups}
    if plan.transpose:
        return ConvTranspose(weight, plan.input_shape, output_padding=args.output_padding or 0,
                             **geometry)
    return Conv(weight, plan.input_shape, padding_mode=args.padding_mode, **geometry)


def layer_from_args(args: argparse.Namespace) -> Conv | ConvTranspose | KerasConv:
    """The layer object the layer flags describe (the seed example without flags).

    The geometry is validated from the shapes before any weight is allocated or loaded.
    """
    return _build(args, _plan(args))


def _check_memory(args: argparse.Namespace, plan: _Plan, what: str, nbytes: int) -> None:
    kind = (f"Keras {plan.keras['class_name']}" if plan.keras is not None
            else f"{'ConvTranspose' if plan.transpose else 'Conv'}{plan.spec.ndim}d")
    check_budget(f"{what} ({kind} {shape_text(plan.input_shape)} → "
                 f"{shape_text(plan.output_shape)})", plan.weight_nbytes + nbytes,
                 args.max_bytes, flag="--max-bytes")


# --------------------------------------------------------------------------------------------
# the commands


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``convmatrix`` command."""
    parser = _ArgumentParser(
        prog="convmatrix",
        description="Convolution layers as explicit sparse matrices: C, its transpose Cᵀ, "
                    "symbolic derivations and verified reports.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"convmatrix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    layer = _layer_arguments()

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[layer], help=help, description=help,
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("report", "write the Markdown derivation report of a layer (the seed example, "
                          "Keras Conv2D/Conv2DTranspose, without layer flags)")
    p.add_argument("--out", type=Path, default=Path("convmatrix-report"), metavar="PATH",
                   action=_Once,
                   help="a .md file, or a directory for report.md and its figures (created if "
                        "its parent exists; default ./convmatrix-report)")
    p.add_argument("--title", help="heading of the report", action=_Once)
    p.add_argument("--no-figures", action=_OnceFlag, help="skip the PNG figures")
    _budget_argument(p)
    add_stack_argument(p)
    p.set_defaults(run=_run_report)
    p = sub.add_parser("reports", help="regenerate every built-in report (the reports/ folder)",
                       description="Regenerate every built-in report: Markdown byte for byte, "
                                   "figures anew.")
    p.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", action=_Once)
    p.add_argument("--no-figures", action=_OnceFlag, help="skip the PNG figures")
    p.set_defaults(run=_run_reports)
    p = command("verify", "check the layer's matrix against the dense reference and the "
                          "adjoint test; exit 1 on any failure")
    _budget_argument(p)
    p.set_defaults(run=_run_verify)
    p = command("shape", "print the layer's output shape and the formula that gives it")
    p.set_defaults(run=_run_shape)
    p = command("matrix", "print the layer's matrix densely (small layers) or save it")
    p.add_argument("--save", type=Path, metavar="FILE", action=_Once,
                   help="write the matrix: .npz (scipy.sparse.save_npz) or .mtx (Matrix Market); "
                        "over --max-bytes it is streamed in row blocks")
    p.add_argument("--max-dense", type=_count, default=4096, metavar="N", action=_Once,
                   help="refuse to print more than N entries densely (default 4096)")
    _budget_argument(p)
    p.set_defaults(run=_run_matrix)
    add_norm_command(command)
    add_compare_command(sub)
    return parser


def _report_target(out: Path, default_stem: str = "report") -> tuple[Path, str]:
    """``--out``: the directory to write into and the report's file stem.

    A path ending in ``.md`` is the report file (its directory must exist); any other path is
    a directory for ``report.md`` (``default_stem``; created when missing, if its parent
    exists).
    """
    if out.is_dir():
        return out, default_stem
    if out.suffix.lower() == ".md":
        directory, stem = out.parent, out.stem
    elif out.exists():
        raise ConvMatrixError(f"`--out` ({str(out)!r}) is an existing file; give a .md file or "
                              f"a directory")
    else:
        directory, stem = out, default_stem
    parent = directory if out.suffix.lower() == ".md" else directory.parent
    if not parent.is_dir():
        raise ConvMatrixError(f"`--out` ({str(out)!r}): the directory {str(parent)!r} does not "
                              f"exist; create it first")
    return directory, stem


def _write_report(report: Any, directory: Path, stem: str) -> list[Path]:
    directory.mkdir(exist_ok=True)
    markdown = report.markdown
    written = []
    for name, png in sorted(report.figures.items()):
        target = name if stem == report.name else name.replace(report.name, stem, 1)
        markdown = markdown.replace(f"]({name})", f"]({target})")
        (directory / target).write_bytes(png)
        written.append(directory / target)
    path = directory / f"{stem}.md"
    path.write_text(markdown, encoding="utf-8")
    return [path, *written]


def _run_report(args: argparse.Namespace) -> int:
    from convmatrix.reports.layer import layer_report, seed_report

    layer_flags = sorted(set(getattr(args, "_given", {})) & _LAYER_FLAGS)
    if args.stack is not None:
        if layer_flags:
            raise ConvMatrixError(
                f"{', '.join('--' + flag.replace('_', '-') for flag in layer_flags)} cannot be "
                f"used with --stack (the stack file describes the layers)")
        return run_stack_report(args)
    directory, stem = _report_target(args.out)
    if not layer_flags:
        if args.title is not None:
            raise ConvMatrixError("`--title` needs a layer (--input and --kernel); the seed "
                                  "report has its own title")
        report = seed_report(figures=not args.no_figures)
    else:
        plan = _plan(args)
        _check_memory(args, plan, "the report", report_nbytes(
            plan.spec, plan.dtype, direction="adjoint" if plan.transpose else "forward",
            figures=not args.no_figures))
        report = layer_report(_build(args, plan), name="report", title=args.title,
                              figures=not args.no_figures, max_bytes=None)
    written = _write_report(report, directory, stem)
    print(f"wrote {written[0]} ({len(written) - 1} figures): {report.title}")
    return 0


def _run_reports(args: argparse.Namespace) -> int:
    from convmatrix.reports.layer import builtin_reports, index_markdown

    out: Path = args.out
    if not out.is_dir() and not out.parent.is_dir():
        raise ConvMatrixError(f"`--out` ({str(out)!r}): the directory {str(out.parent)!r} does "
                              f"not exist; create it first")
    reports = builtin_reports(figures=not args.no_figures)
    count = 0
    for report in reports:
        count += len(_write_report(report, out, report.name))
    (out / "README.md").write_text(index_markdown(reports), encoding="utf-8")
    print(f"wrote {len(reports)} reports and their figures ({count} files) and "
          f"{out / 'README.md'}")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    plan = _plan(args)
    _check_memory(args, plan, "the verification",
                  verification_nbytes(plan.spec, plan.dtype,
                                      direction="adjoint" if plan.transpose else "forward"))
    result = _build(args, plan).verify(seed=args.seed)
    print(result)
    return 0 if result.passed else 1


def _run_shape(args: argparse.Namespace) -> int:
    plan = _plan(args)
    if plan.keras is not None:
        layout = plan.keras["config"]["data_format"]
        print(f"input shape:  {(1, *plan.input_shape)}  (Keras, batch of 1, {layout})")
        print(f"output shape: {(1, *plan.output_shape)}")
        print("per spatial axis, in channels-first terms:")
    else:
        print(f"input shape:  {plan.input_shape}")
        print(f"output shape: {plan.output_shape}")
    for axis, line in enumerate(size_derivation(
            plan.spec, direction="adjoint" if plan.transpose else "forward")):
        print(f"spatial axis {axis}: {line}")
    return 0


def _run_matrix(args: argparse.Namespace) -> int:
    plan = _plan(args)
    name = "Cᵀ" if plan.transpose else "C"
    rows, cols = plan.spec.matrix_shape[::-1] if plan.transpose else plan.spec.matrix_shape
    _, nbytes = estimate_nbytes(plan.spec, plan.dtype,
                                direction="adjoint" if plan.transpose else "forward", format="csr")
    channels_last = (plan.keras is not None
                     and plan.keras["config"]["data_format"] == "channels_last")
    if channels_last:  # re-indexed copy and the permutations of both flattenings
        nbytes = 2 * nbytes + 16 * (rows + cols)
    if args.save is None:
        entries = rows * cols
        if entries > args.max_dense:
            raise ConvMatrixError(
                f"{name} is {rows}×{cols} ({entries:,} entries), more than `--max-dense` "
                f"(={args.max_dense}); save it with --save FILE.npz instead")
        nbytes += dense_nbytes(rows, cols, plan.dtype)
    elif args.save.suffix.lower() not in (".npz", ".mtx"):
        raise ConvMatrixError(f"`--save` (={str(args.save)!r}) must end in .npz or .mtx")
    elif (plan.keras is None and args.max_bytes is not None
          and plan.weight_nbytes + nbytes > args.max_bytes):
        print(save_streamed(_build(args, plan), args.save, args.max_bytes, name))
        return 0
    _check_memory(args, plan, f"the matrix {name}", nbytes)
    matrix = _build(args, plan).matrix("csr", max_bytes=None)
    layout = plan.layout
    if args.save is not None:
        if args.save.suffix.lower() == ".npz":
            import scipy.sparse as sp

            sp.save_npz(args.save, matrix)
        else:
            import scipy.io

            scipy.io.mmwrite(args.save, matrix)
        print(f"wrote {name} {matrix.shape}, {matrix.nnz:,} stored entries ({layout} "
              f"flattening), to {args.save}")
        return 0
    print(f"{name}: {rows}×{cols}, {matrix.nnz} stored entries "
          f"(rows: output pixels, columns: input pixels, flattened {layout}, C order)")
    with np.printoptions(linewidth=200, threshold=max(args.max_dense, 1)):
        print(matrix.toarray())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 check failed, 2 bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a bad flag (already reported)
        return int(done.code or 0)
    try:
        return int(args.run(args))
    except (ConvMatrixError, TypeError, OSError, MemoryError) as error:
        message = textwrap.shorten(str(error), width=400, placeholder=" …")
        print(f"convmatrix {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
