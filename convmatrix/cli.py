"""The ``convmatrix`` command line: reports, verification, shapes and matrices of a layer."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.frameworks.keras import SUPPORTED as KERAS_CLASSES
from convmatrix.layer import WEIGHT_FILLS, Layer, make_weight
from convmatrix.spec import PADDING_MODES
from convmatrix.stack_cli import add_compare_command, add_stack_argument, run_stack_report
from convmatrix.symbolic.arithmetic import size_derivation

__all__ = ["build_parser", "layer_from_args", "main"]

EXAMPLES = """\
examples:
  convmatrix report --out seed-report          the seed example (Keras Conv2D/Conv2DTranspose)
  convmatrix report --input 1x4x4 --kernel 1x1x3x3 --stride 2 --transpose --out k3s2.md
  convmatrix verify --input 3x8x8 --kernel 4x3x3x3 --padding 1 --padding-mode reflect
  convmatrix shape --input 1x5x5 --kernel 1x1x3x3 --stride 2 --transpose --output-padding 1
  convmatrix matrix --input 1x3x3 --kernel 1x1x2x2          print C densely
  convmatrix matrix --input 64x56x56 --kernel 64x64x3x3 --padding 1 --save resnet.npz
  convmatrix reports --out reports                  regenerate every report in reports/
  convmatrix report --stack gen.toml --out gen       a stack of layers from a TOML file
  convmatrix compare k3.toml k4.toml --out k3-vs-k4  stacks side by side (format: compare -h)
"""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports errors as one line (and exit code 2), never a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name} {text!r} must be integers separated by 'x' or ','") from None
    return values


def _shape(text: str) -> tuple[int, ...]:
    return _ints(text, "shape")


def _per_axis(text: str) -> int | tuple[int, ...]:
    values = _ints(text, "value")
    return values[0] if len(values) == 1 else values


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed {text!r} must be a non-negative integer")
    return value


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
                pairs.append((int(before), int(after or before)))
            return tuple(pairs)
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"padding {text!r} must be an int, ints per axis (1,2), before:after pairs per axis "
            f"(1:2,0:1), 'same' or 'valid'") from None
    return values[0] if len(values) == 1 else values


def _layer_arguments() -> _ArgumentParser:
    parent = _ArgumentParser(add_help=False)
    group = parent.add_argument_group("layer (torch layouts, one sample, channels first)")
    group.add_argument("--input", type=_shape, metavar="CxHxW",
                       help="input shape of one sample, e.g. 1x3x3 (default: the seed example)")
    group.add_argument("--kernel", type=_shape, metavar="OxIxKHxKW",
                       help="weight shape: (C_out, C_in/groups, *k) for a convolution, "
                            "(C_in, C_out/groups, *k) with --transpose")
    group.add_argument("--transpose", action="store_true",
                       help="the transposed convolution (torch conv_transposeNd)")
    group.add_argument("--stride", type=_per_axis, default=1, metavar="S")
    group.add_argument("--padding", type=_padding, default=0, metavar="P",
                       help="int, per axis (1,2), pairs (1:2,0:1), same or valid")
    group.add_argument("--dilation", type=_per_axis, default=1, metavar="D")
    group.add_argument("--groups", type=int, default=1, metavar="G")
    group.add_argument("--padding-mode", default="zeros", choices=PADDING_MODES)
    group.add_argument("--output-padding", type=_per_axis, default=None, metavar="A",
                       help="extra output size of a transposed convolution (default 0; for "
                            "Keras: not given, i.e. Keras' own length rule)")
    group.add_argument("--keras", metavar="CLASS", choices=KERAS_CLASSES,
                       help="a Keras layer instead (Conv1D/2D/3D, Conv1D/2D/3DTranspose, "
                            "DepthwiseConv1D/2D): --input and --kernel then use Keras layouts, "
                            "e.g. --input 3x3x1 --kernel 2x2x1x1")
    group.add_argument("--channels-first", action="store_true",
                       help="with --keras: data_format='channels_first'")
    group.add_argument("--weight", default="ones", choices=WEIGHT_FILLS,
                       help="weight values (default ones, as in the seed)")
    group.add_argument("--seed", type=_seed, default=0, help="seed for --weight random and data")
    return parent


def _keras_layer(args: argparse.Namespace) -> Layer:
    """A Keras layer from the flags: kernel and input in Keras layouts."""
    if args.input is None or args.kernel is None:
        raise ConvMatrixError("--keras needs --input (Keras layout) and --kernel (Keras layout)")
    rank = len(args.input) - 1
    kernel = args.kernel
    if len(kernel) != rank + 2:
        raise ConvMatrixError(f"`--kernel` {kernel} must have {rank + 2} axes for a "
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
    weight = make_weight(kernel, args.weight, args.seed)
    return Layer.from_keras({"class_name": args.keras, "config": config}, weight, args.input,
                            title=f"Keras {args.keras}")


def layer_from_args(args: argparse.Namespace) -> Layer:
    """Build the :class:`Layer` that the layer flags describe (the seed example without flags)."""
    if getattr(args, "keras", None):
        return _keras_layer(args)
    if args.input is None and args.kernel is None:
        input_shape, kernel = (1, 3, 3), (1, 1, 2, 2)
    elif args.input is None or args.kernel is None:
        raise ConvMatrixError("give both --input and --kernel (or neither, for the seed example)")
    else:
        input_shape, kernel = args.input, args.kernel
    weight = make_weight(kernel, args.weight, args.seed)
    geometry: dict[str, Any] = {"stride": args.stride, "padding": args.padding,
                                "dilation": args.dilation, "groups": args.groups}
    if args.transpose:
        if args.padding_mode != "zeros":
            raise ConvMatrixError(
                f"`--padding-mode` (={args.padding_mode!r}) must be 'zeros' with --transpose "
                f"(torch's ConvTranspose allows only zero padding)")
        return Layer.conv_transpose(weight, input_shape,
                                    output_padding=args.output_padding or 0, **geometry)
    if args.output_padding is not None:
        raise ConvMatrixError("`--output-padding` applies only with --transpose")
    return Layer.conv(weight, input_shape, padding_mode=args.padding_mode, **geometry)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``convmatrix`` command."""
    parser = _ArgumentParser(
        prog="convmatrix",
        description="Convolution layers as explicit sparse matrices: C, its transpose Cᵀ, "
                    "symbolic derivations and verified reports.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    layer = _layer_arguments()

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[layer], help=help, description=help,
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("report", "write the Markdown derivation report of a layer (the seed example, "
                          "Keras Conv2D/Conv2DTranspose, without layer flags)")
    p.add_argument("--out", type=Path, default=Path("convmatrix-report"), metavar="PATH",
                   help="a .md file, or a directory for report.md and its figures "
                        "(default ./convmatrix-report)")
    p.add_argument("--title", help="heading of the report")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    add_stack_argument(p)
    p.set_defaults(run=_run_report)
    p = sub.add_parser("reports", help="regenerate every built-in report (the reports/ folder)",
                       description="Regenerate every built-in report: Markdown byte for byte, "
                                   "figures anew.")
    p.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.set_defaults(run=_run_reports)
    p = command("verify", "check the layer's matrix against the dense reference and the "
                          "adjoint test; exit 1 on any failure")
    p.set_defaults(run=_run_verify)
    p = command("shape", "print the layer's output shape and the formula that gives it")
    p.set_defaults(run=_run_shape)
    p = command("matrix", "print the layer's matrix densely (small layers) or save it")
    p.add_argument("--save", type=Path, metavar="FILE",
                   help="write the matrix: .npz (scipy.sparse.save_npz) or .mtx (Matrix Market)")
    p.add_argument("--max-dense", type=int, default=4096, metavar="N",
                   help="refuse to print more than N entries densely (default 4096)")
    p.set_defaults(run=_run_matrix)
    add_compare_command(sub)
    return parser


def _write_report(report: Any, directory: Path, stem: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
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
    from convmatrix.report import layer_report, seed_report

    if args.stack is not None:
        return run_stack_report(args)
    no_layer_flags = args.input is None and args.kernel is None and not args.keras
    if no_layer_flags:
        report = seed_report(figures=not args.no_figures)
    else:
        report = layer_report(layer_from_args(args), name="report", title=args.title,
                              figures=not args.no_figures)
    out: Path = args.out
    directory, stem = (out.parent, out.stem) if out.suffix == ".md" else (out, "report")
    written = _write_report(report, directory, stem)
    print(f"wrote {written[0]} ({len(written) - 1} figures): {report.title}")
    return 0


def _run_reports(args: argparse.Namespace) -> int:
    from convmatrix.report import builtin_reports, index_markdown

    reports = builtin_reports(figures=not args.no_figures)
    out: Path = args.out
    count = 0
    for report in reports:
        count += len(_write_report(report, out, report.name))
    (out / "README.md").write_text(index_markdown(reports), encoding="utf-8")
    print(f"wrote {len(reports)} reports and their figures ({count} files) and "
          f"{out / 'README.md'}")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    result = layer_from_args(args).verify(seed=args.seed)
    print(result)
    return 0 if result.passed else 1


def _run_shape(args: argparse.Namespace) -> int:
    layer = layer_from_args(args)
    if layer.keras is not None:
        print(f"input shape:  {(1, *layer.keras.input_shape)}  (Keras, batch of 1, "
              f"{layer.keras.data_format})")
        print(f"output shape: {(1, *layer.keras.output_shape)}")
        print("per spatial axis, in channels-first terms:")
    else:
        print(f"input shape:  {layer.input_shape}")
        print(f"output shape: {layer.output_shape}")
    for axis, line in enumerate(size_derivation(layer.spec, layer.transpose)):
        print(f"spatial axis {axis}: {line}")
    return 0


def _run_matrix(args: argparse.Namespace) -> int:
    layer = layer_from_args(args)
    matrix = layer.framework_matrix()
    name = "Cᵀ" if layer.transpose else "C"
    layout = ("Keras layout, " + layer.keras.data_format if layer.keras is not None
              else "channels first")
    if args.save is not None:
        suffix = args.save.suffix.lower()
        if suffix == ".npz":
            import scipy.sparse as sp

            sp.save_npz(args.save, matrix)
        elif suffix == ".mtx":
            import scipy.io

            scipy.io.mmwrite(args.save, matrix)
        else:
            raise ConvMatrixError(f"`--save` (={str(args.save)!r}) must end in .npz or .mtx")
        print(f"wrote {name} {matrix.shape}, {matrix.nnz:,} stored entries ({layout} "
              f"flattening), to {args.save}")
        return 0
    entries = matrix.shape[0] * matrix.shape[1]
    if entries > args.max_dense:
        raise ConvMatrixError(
            f"{name} is {matrix.shape[0]}×{matrix.shape[1]} ({entries:,} entries), more than "
            f"`--max-dense` (={args.max_dense}); save it with --save FILE.npz instead")
    print(f"{name}: {matrix.shape[0]}×{matrix.shape[1]}, {matrix.nnz} stored entries "
          f"(rows: output pixels, columns: input pixels, flattened {layout}, C order)")
    with np.printoptions(linewidth=200, threshold=args.max_dense):
        print(matrix.toarray())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 check failed, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConvMatrixError, TypeError, OSError, MemoryError) as error:
        message = textwrap.shorten(str(error), width=400, placeholder=" …")
        print(f"convmatrix {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
