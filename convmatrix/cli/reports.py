"""``convmatrix reports``: regenerate every built-in report (the ``reports/`` folder)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix._files import write_text
from convmatrix.cli._args import Once, OnceFlag
from convmatrix.cli._output import check_replaceable, with_marker, write_report
from convmatrix.cli._parser import COMMANDS

__all__ = ["register", "run_reports"]


def register(subparsers: Any) -> None:
    """Add ``convmatrix reports``."""
    p = subparsers.add_parser("reports", help=COMMANDS["reports"].help,
                              description="Regenerate every built-in report: Markdown byte for "
                                          "byte, figures anew.")
    p.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", action=Once,
                   help="the directory to write the reports, their figures and README.md into "
                        "(created if its parent exists; default ./reports)")
    p.add_argument("--no-figures", action=OnceFlag, help="skip the PNG figures")
    p.add_argument("--force", action=OnceFlag,
                   help="replace files in the output directory that convmatrix did not "
                        "generate (default: refuse, naming the file)")
    p.set_defaults(run=run_reports)


def run_reports(args: argparse.Namespace) -> int:
    """``convmatrix reports``: write every built-in report and the index."""
    from convmatrix.reports.builtin import builtin_reports, index_markdown

    out: Path = args.out
    if not out.is_dir() and not out.parent.is_dir():
        raise ConvMatrixError(f"`--out` ({str(out)!r}): the directory {str(out.parent)!r} does "
                              f"not exist; create it first")
    if out.exists() and not out.is_dir():
        raise ConvMatrixError(f"`--out` ({str(out)!r}) is an existing file; give a directory")
    check_replaceable([out / "README.md"], args.force)
    reports = builtin_reports(figures=not args.no_figures)
    count = 0
    for report in reports:
        count += len(write_report(report, out, report.name, force=args.force))
    write_text(out / "README.md", with_marker(index_markdown(reports)))
    print(f"wrote {len(reports)} reports and their figures ({count} files) and "
          f"{out / 'README.md'}")
    return 0
