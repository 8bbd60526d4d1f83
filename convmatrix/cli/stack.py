"""Stack files on the command line: ``convmatrix report --stack FILE`` (and ``compare``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from convmatrix.builder.budget import check_budget, stack_report_nbytes
from convmatrix.cli._args import STACK_HELP
from convmatrix.cli._output import write_and_announce
from convmatrix.cli.compare import add_compare_command, run_compare

__all__ = ["STACK_HELP", "add_compare_command", "add_stack_argument", "run_compare",
           "run_stack_report"]


def add_stack_argument(parser: argparse.ArgumentParser) -> None:
    """``--stack FILE`` on ``convmatrix report``."""
    parser.add_argument("--stack", type=Path, metavar="FILE.toml",
                        help="report a stack of layers described in a TOML file (format "
                             "below; the layer flags are then not used)")
    parser.epilog = (parser.epilog or "") + "\n" + STACK_HELP


def run_stack_report(args: argparse.Namespace) -> int:
    """``convmatrix report --stack FILE``."""
    from convmatrix.reports.stack import stack_report
    from convmatrix.reports.stackfile import load_stack

    loaded = load_stack(args.stack, max_bytes=args.max_bytes)
    check_budget(f"the report of {args.stack}",
                 stack_report_nbytes([loaded.stack], figures=not args.no_figures),
                 args.max_bytes, flag="--max-bytes")
    report = stack_report(loaded.stack, name="report", title=args.title or loaded.title,
                          figures=not args.no_figures, max_bytes=args.max_bytes)
    write_and_announce(report, args.out, "report", force=args.force)
    return 0
