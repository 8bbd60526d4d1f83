"""``convmatrix compare A.toml B.toml ...``: a side-by-side report of stacks from stack files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import check_budget, stack_report_nbytes
from convmatrix.cli._args import STACK_HELP, budget_argument
from convmatrix.cli._output import write_and_announce
from convmatrix.cli._parser import COMMANDS

__all__ = ["add_compare_command", "register", "run_compare"]


def register(subparsers: Any) -> None:
    """Add ``convmatrix compare A.toml B.toml ...``."""
    parser = subparsers.add_parser(
        "compare", help=COMMANDS["compare"].help,
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
    parser.add_argument("--force", action="store_true",
                        help="replace files in the output directory that convmatrix did not "
                             "generate (default: refuse, naming the file)")
    budget_argument(parser)
    parser.set_defaults(run=run_compare)


add_compare_command = register  # the name in convmatrix 0.1 (convmatrix.stack_cli)


def run_compare(args: argparse.Namespace) -> int:
    """``convmatrix compare A.toml B.toml ...``."""
    from convmatrix.reports.stack import compare_report
    from convmatrix.reports.stackfile import load_stack

    if len(args.stacks) < 2:
        raise ConvMatrixError(f"`stacks` has {len(args.stacks)} file; compare needs at least "
                              f"two stack files")
    loaded = [load_stack(path, max_bytes=args.max_bytes) for path in args.stacks]
    check_budget("the comparison of " + ", ".join(str(path) for path in args.stacks),
                 stack_report_nbytes([item.stack for item in loaded],
                                     figures=not args.no_figures),
                 args.max_bytes, flag="--max-bytes")
    report = compare_report([(item.title, item.stack) for item in loaded], name="compare",
                            title=args.title, figures=not args.no_figures, max_bytes=None)
    write_and_announce(report, args.out, "compare", force=args.force)
    return 0
