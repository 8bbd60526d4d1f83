"""The cheap part of the command line's parser: the command table, the parser class, ``Once``.

``convmatrix --version`` and ``convmatrix --help`` use only this module (it imports nothing of the
package), so they stay fast: each command's module, with the imports its flags need, is imported
only when that command runs (see :func:`convmatrix.cli.build_parser`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["COMMANDS", "EXAMPLES", "ArgumentParser", "Command", "Once", "OnceFlag", "shorten",
           "show_value"]


class Command(NamedTuple):
    """A subcommand: the module whose ``register(subparsers)`` adds it, and its one-line help."""

    module: str
    help: str


#: every subcommand, in the order ``--help`` lists them; the modules take their help from here
COMMANDS: dict[str, Command] = {
    "report": Command("convmatrix.cli.report",
                      "write the Markdown derivation report of a layer (the seed example, "
                      "Keras Conv2D/Conv2DTranspose, without layer flags)"),
    "reports": Command("convmatrix.cli.reports",
                       "regenerate every built-in report (the reports/ folder)"),
    "verify": Command("convmatrix.cli.verify",
                      "check the layer's matrix against the dense reference and the adjoint "
                      "test; exit 1 on any failure"),
    "shape": Command("convmatrix.cli.shape",
                     "print the layer's output shape and the formula that gives it"),
    "matrix": Command("convmatrix.cli.matrix",
                      "print the layer's matrix densely (small layers) or save it"),
    "norm": Command("convmatrix.cli.norm",
                    "print the layer's operator norm and a certified upper bound (and its top "
                    "singular values with --top), without building the matrix"),
    "compare": Command("convmatrix.cli.compare",
                       "side-by-side overlap/checkerboard report of two or more stacks"),
}

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


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports errors as one line (and exit code 2), never a traceback.

    Every option that stores a value or a flag may be given once: a repeated one is an error,
    not "last one wins" (also for options other modules add to these parsers).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, Once)
        self.register("action", "store", Once)
        self.register("action", "store_true", OnceFlag)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


class Once(argparse.Action):
    """Store an option's value, refusing a second occurrence (no silent "last one wins")."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        given: dict[str, str] = namespace.__dict__.setdefault("_given", {})
        text = "" if self.nargs == 0 else show_value(values)
        if self.dest in given:
            values_text = f" ({given[self.dest]} and {text})" if text else ""
            raise argparse.ArgumentError(self, f"given twice{values_text}; give it once")
        given[self.dest] = text
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


class OnceFlag(Once):
    """A ``store_true`` flag that may appear only once."""

    def __init__(self, option_strings: Sequence[str], dest: str, default: Any = False,
                 required: bool = False, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, const=True, default=default,
                         required=required, help=help)


def show_value(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value))
    return shorten(str(value))


def shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:18] + "…" + text[-18:]


