"""``convmatrix report``: the Markdown derivation report of a layer (or of a stack file)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import report_nbytes
from convmatrix.cli._args import LAYER_FLAGS, Once, OnceFlag, budget_argument, layer_command
from convmatrix.cli._layer import build_layer, check_memory, plan_layer
from convmatrix.cli._output import report_target, write_report
from convmatrix.cli._parser import COMMANDS
from convmatrix.cli.stack import add_stack_argument, run_stack_report

__all__ = ["register", "run_report"]


def register(subparsers: Any) -> None:
    """Add ``convmatrix report`` (with the layer flags and ``--stack``)."""
    p = layer_command(subparsers, "report", COMMANDS["report"].help)
    p.add_argument("--out", type=Path, default=Path("convmatrix-report"), metavar="PATH",
                   action=Once,
                   help="a .md file, or a directory for report.md and its figures (created if "
                        "its parent exists; default ./convmatrix-report)")
    p.add_argument("--title", help="heading of the report", action=Once)
    p.add_argument("--no-figures", action=OnceFlag, help="skip the PNG figures")
    p.add_argument("--force", action=OnceFlag,
                   help="replace files in the output directory that convmatrix did not "
                        "generate (default: refuse, naming the file)")
    budget_argument(p)
    add_stack_argument(p)
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    """``convmatrix report``: write the report and print where."""
    from convmatrix.reports.builtin import seed_report
    from convmatrix.reports.layer import layer_report

    layer_flags = sorted(set(getattr(args, "_given", {})) & LAYER_FLAGS)
    if args.stack is not None:
        if layer_flags:
            raise ConvMatrixError(
                f"{', '.join('--' + flag.replace('_', '-') for flag in layer_flags)} cannot be "
                f"used with --stack (the stack file describes the layers)")
        return run_stack_report(args)
    directory, stem = report_target(args.out)
    if not layer_flags:
        if args.title is not None:
            raise ConvMatrixError("`--title` needs a layer (--input and --kernel); the seed "
                                  "report has its own title")
        report = seed_report(figures=not args.no_figures)
    else:
        plan = plan_layer(args)
        check_memory(args, plan, "the report", report_nbytes(
            plan.spec, plan.dtype, direction=plan.direction, figures=not args.no_figures))
        report = layer_report(build_layer(args, plan), name="report", title=args.title,
                              figures=not args.no_figures, max_bytes=None)
    written = write_report(report, directory, stem, force=args.force,
                           named=args.out.suffix.lower() == ".md")
    print(f"wrote {written[0]} ({len(written) - 1} figures): {report.title}")
    return 0
