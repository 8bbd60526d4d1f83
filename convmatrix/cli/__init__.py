"""The ``convmatrix`` command line: reports, verification, shapes and matrices of a layer.

Each command is a module with ``register(subparsers)``; :func:`build_parser` assembles them.
Shared pieces live in :mod:`convmatrix.cli._args` (argument types, the layer flags),
``_layer`` (the layer the flags describe) and ``_output`` (writing files).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.cli import compare, matrix, norm, report, reports, shape, verify
from convmatrix.cli._args import EXAMPLES, ArgumentParser

__all__ = ["build_parser", "main"]


def _version() -> str:
    try:
        return version("convmatrix")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``convmatrix`` command."""
    parser = ArgumentParser(
        prog="convmatrix",
        description="Convolution layers as explicit sparse matrices: C, its transpose Cᵀ, "
                    "symbolic derivations and verified reports.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"convmatrix {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (report, reports, verify, shape, matrix, norm, compare):
        command.register(subparsers)
    parser.set_defaults(_commands=subparsers.choices)
    return parser


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, MemoryError):
        text = f"out of memory ({text}); lower the size or --max-bytes"
    elif isinstance(error, RecursionError):
        text = f"input nested too deeply ({text})"
    return textwrap.shorten(" ".join(text.split()), width=400, placeholder=" …")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 check failed, 2 bad arguments)."""
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:  # reported by the subcommand's parser, which names itself
            args._commands[args.command].error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as done:  # --help, --version, or a bad flag (already reported)
        return int(done.code or 0)
    except KeyboardInterrupt:
        print("convmatrix: interrupted", file=sys.stderr)
        return 130
    try:
        return int(args.run(args))
    except KeyboardInterrupt:  # files are written atomically: nothing half-written remains
        print(f"convmatrix {args.command}: interrupted; no file was left half-written",
              file=sys.stderr)
        return 130
    except (ConvMatrixError, TypeError, OSError, MemoryError, RecursionError) as error:
        print(f"convmatrix {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2


def __getattr__(name: str) -> Any:
    if name == "layer_from_args":  # public in convmatrix 0.1
        warnings.warn("convmatrix.cli.layer_from_args is deprecated and will be removed in "
                      "convmatrix 0.3", DeprecationWarning, stacklevel=2)
        from convmatrix.cli._layer import layer_from_args

        return layer_from_args
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
