"""The ``convmatrix`` command line: reports, verification, shapes and matrices of a layer.

Each command is a module with ``register(subparsers)``; :func:`build_parser` assembles them.
The command table (name, module, one-line help) is :data:`convmatrix.cli._parser.COMMANDS`:
:func:`main` imports only the module of the command that runs, so ``--version`` and ``--help``
import nothing heavy. Shared pieces live in :mod:`convmatrix.cli._args` (argument types, the
layer flags), ``_layer`` (the layer the flags describe) and ``_output`` (writing files).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.cli._parser import COMMANDS, EXAMPLES, ArgumentParser

__all__ = ["build_parser", "main"]


def _version() -> str:
    try:
        return version("convmatrix")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argparse parser of the ``convmatrix`` command.

    Parameters
    ----------
    command : str, optional
        Give only this subcommand its flags (importing only its module); the others are listed
        by name and help, enough for ``--help`` and for refusing an unknown command. Default:
        every subcommand complete.

    Returns
    -------
    argparse.ArgumentParser
        The parser; ``parse_args`` sets ``run`` to the command's function.

    Examples
    --------
    >>> from convmatrix.cli import build_parser
    >>> words = ["shape", "--input", "1x5x5", "--kernel", "1x1x3x3"]
    >>> args = build_parser("shape").parse_args(words)
    >>> args.command, args.input
    ('shape', (1, 5, 5))
    """
    parser = ArgumentParser(
        prog="convmatrix",
        description="Convolution layers as explicit sparse matrices: C, its transpose Cᵀ, "
                    "symbolic derivations and verified reports.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"convmatrix {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, entry in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(entry.module).register(subparsers)
        else:  # listed for --help; its module (and what its flags need) is not imported
            subparsers.add_parser(name, help=entry.help)
    parser.set_defaults(_commands=subparsers.choices)
    return parser


def _command(argv: Sequence[str]) -> str:
    """The subcommand ``argv`` names: its first word that is not an option ("" if none)."""
    return next((word for word in argv if not word.startswith("-")), "")


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, MemoryError):
        text = f"out of memory ({text}); lower the size or --max-bytes"
    elif isinstance(error, RecursionError):
        text = f"input nested too deeply ({text})"
    return textwrap.shorten(" ".join(text.split()), width=400, placeholder=" …")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 check failed, 2 bad arguments)."""
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(words))
    try:
        args, extras = parser.parse_known_args(words)
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
