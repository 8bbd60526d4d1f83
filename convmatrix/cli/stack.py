"""Command-line pieces for stacks: ``convmatrix report --stack FILE`` and ``convmatrix compare``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["STACK_HELP", "add_compare_command", "add_stack_argument", "run_compare",
           "run_stack_report"]

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
"""


def add_stack_argument(parser: argparse.ArgumentParser) -> None:
    """``--stack FILE`` on ``convmatrix report``."""
    parser.add_argument("--stack", type=Path, metavar="FILE.toml",
                        help="report a stack of layers described in a TOML file (format "
                             "below; the layer flags are then not used)")
    parser.epilog = (parser.epilog or "") + "\n" + STACK_HELP


def add_compare_command(sub: Any) -> None:
    """The ``convmatrix compare A.toml B.toml ...`` subcommand."""
    parser = sub.add_parser(
        "compare", help="side-by-side overlap/checkerboard report of two or more stacks",
        description="Write a side-by-side report of stacks described in TOML files: verdict "
                    "table, overlap maps, per-axis laws.",
        epilog=STACK_HELP + "\nexample:\n  convmatrix compare k3.toml k4.toml --out k3-vs-k4",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stacks", nargs="+", type=Path, metavar="FILE.toml",
                        help="two or more stack files")
    parser.add_argument("--out", type=Path, default=Path("convmatrix-compare"), metavar="PATH",
                        help="a .md file, or a directory for compare.md and its figures "
                             "(default ./convmatrix-compare)")
    parser.add_argument("--title", help="heading of the report")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.set_defaults(run=run_compare)


def _write(report: Any, out: Path, default_stem: str) -> None:
    from convmatrix.cli import _report_target, _write_report

    directory, stem = _report_target(out, default_stem)
    written = _write_report(report, directory, stem)
    print(f"wrote {written[0]} ({len(written) - 1} figures): {report.title}")


def run_stack_report(args: argparse.Namespace) -> int:
    """``convmatrix report --stack FILE``."""
    from convmatrix.reports.stack import stack_report
    from convmatrix.reports.stackfile import load_stack

    loaded = load_stack(args.stack)
    report = stack_report(loaded.stack, name="report", title=args.title or loaded.title,
                          figures=not args.no_figures)
    _write(report, args.out, "report")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``convmatrix compare A.toml B.toml ...``."""
    from convmatrix._errors import ConvMatrixError
    from convmatrix.reports.stack import compare_report
    from convmatrix.reports.stackfile import load_stack

    if len(args.stacks) < 2:
        raise ConvMatrixError(f"`stacks` has {len(args.stacks)} file; compare needs at least "
                              f"two stack files")
    loaded = [load_stack(path) for path in args.stacks]
    report = compare_report([(item.title, item.stack) for item in loaded], name="compare",
                            title=args.title, figures=not args.no_figures)
    _write(report, args.out, "compare")
    return 0
