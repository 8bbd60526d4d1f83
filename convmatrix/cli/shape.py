"""``convmatrix shape``: the layer's output shape and the formula that gives it."""

from __future__ import annotations

import argparse
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.cli._args import layer_command
from convmatrix.cli._layer import plan_layer
from convmatrix.cli._parser import COMMANDS
from convmatrix.symbolic.arithmetic import size_derivation

__all__ = ["register", "run_shape"]


def register(subparsers: Any) -> None:
    """Add ``convmatrix shape``."""
    p = layer_command(subparsers, "shape", COMMANDS["shape"].help)
    p.set_defaults(run=run_shape)


def run_shape(args: argparse.Namespace) -> int:
    """``convmatrix shape``: print the shapes and one derivation per spatial axis."""
    unused = [flag for flag in ("weight", "seed")  # --weight-file may give the kernel shape
              if flag in getattr(args, "_given", {})]
    if unused:
        raise ConvMatrixError(
            f"{', '.join('--' + flag.replace('_', '-') for flag in unused)} cannot be used with "
            f"`convmatrix shape`: shapes do not depend on the weight values")
    plan = plan_layer(args)
    if plan.keras is not None:
        layout = plan.keras["config"]["data_format"]
        print(f"input shape:  {(1, *plan.input_shape)}  (Keras, batch of 1, {layout})")
        print(f"output shape: {(1, *plan.output_shape)}")
        print("per spatial axis, in channels-first terms:")
    else:
        print(f"input shape:  {plan.input_shape}")
        print(f"output shape: {plan.output_shape}")
    for axis, line in enumerate(size_derivation(plan.spec, direction=plan.direction)):
        print(f"spatial axis {axis}: {line}")
    return 0
