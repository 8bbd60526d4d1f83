"""``convmatrix verify``: the layer's matrix against the dense reference and the adjoint test."""

from __future__ import annotations

import argparse
from typing import Any

from convmatrix.builder.budget import verification_nbytes
from convmatrix.cli._args import budget_argument, layer_command
from convmatrix.cli._layer import build_layer, check_memory, plan_layer
from convmatrix.cli._parser import COMMANDS

__all__ = ["register", "run_verify"]


def register(subparsers: Any) -> None:
    """Add ``convmatrix verify``."""
    p = layer_command(subparsers, "verify", COMMANDS["verify"].help)
    budget_argument(p)
    p.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    """``convmatrix verify``: print the checks; exit code 1 when one fails."""
    plan = plan_layer(args)
    check_memory(args, plan, "the verification",
                 verification_nbytes(plan.spec, plan.dtype, direction=plan.direction))
    result = build_layer(args, plan).verify(seed=args.seed)
    text = str(result)
    if plan.keras is not None:  # the header in the Keras layout the flags used
        first, _, rest = text.partition("\n")
        layout = plan.keras["config"]["data_format"]
        shapes = (f"{'×'.join(map(str, plan.input_shape))} → "
                  f"{'×'.join(map(str, plan.output_shape))}")
        text = (f"Keras {plan.keras['class_name']} {shapes} ({layout}, one sample); checked as "
                f"the channels-first {first}\n{rest}")
    print(text)
    return 0 if result.passed else 1
