"""``convmatrix matrix``: print the layer's matrix densely (small layers) or save it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.budget import dense_nbytes, estimate_nbytes
from convmatrix.cli._args import Once, budget_argument, layer_command, parse_count
from convmatrix.cli._layer import build_layer, check_memory, plan_layer
from convmatrix.cli._output import save_matrix_file, save_streamed
from convmatrix.cli._parser import COMMANDS

__all__ = ["register", "run_matrix"]


def register(subparsers: Any) -> None:
    """Add ``convmatrix matrix``."""
    p = layer_command(subparsers, "matrix", COMMANDS["matrix"].help)
    p.add_argument("--save", type=Path, metavar="FILE", action=Once,
                   help="write the matrix: .npz (scipy.sparse.save_npz) or .mtx (Matrix Market); "
                        "over --max-bytes it is streamed in row blocks")
    p.add_argument("--max-dense", type=parse_count, default=4096, metavar="N", action=Once,
                   help="refuse to print more than N entries densely (default 4096)")
    budget_argument(p)
    p.set_defaults(run=run_matrix)


def run_matrix(args: argparse.Namespace) -> int:
    """``convmatrix matrix``: print the matrix, or write it to ``--save``."""
    plan = plan_layer(args)
    name = "Cᵀ" if plan.transposed else "C"
    rows, cols = plan.spec.matrix_shape[::-1] if plan.transposed else plan.spec.matrix_shape
    _, nbytes = estimate_nbytes(plan.spec, plan.dtype, direction=plan.direction, format="csr")
    channels_last = (plan.keras is not None
                     and plan.keras["config"]["data_format"] == "channels_last")
    if channels_last:  # re-indexed copy and the permutations of both flattenings
        nbytes = 2 * nbytes + 16 * (rows + cols)
    if args.save is None:
        entries = rows * cols
        if entries > args.max_dense:
            raise ConvMatrixError(
                f"{name} is {rows}×{cols} ({entries:,} entries), more than `--max-dense` "
                f"(={args.max_dense}); save it with --save FILE.npz instead")
        nbytes += dense_nbytes(rows, cols, plan.dtype)
    elif args.save.suffix.lower() not in (".npz", ".mtx"):
        raise ConvMatrixError(f"`--save` (={str(args.save)!r}) must end in .npz or .mtx")
    elif (plan.keras is None and args.max_bytes is not None
          and plan.weight_nbytes + nbytes > args.max_bytes):
        print(save_streamed(build_layer(args, plan), args.save, args.max_bytes, name))
        return 0
    check_memory(args, plan, f"the matrix {name}", nbytes)
    matrix = build_layer(args, plan).matrix("csr", max_bytes=None)
    layout = plan.layout
    if args.save is not None:
        save_matrix_file(matrix, args.save)
        print(f"wrote {name} {matrix.shape}, {matrix.nnz:,} stored entries ({layout} "
              f"flattening), to {args.save}")
        return 0
    print(f"{name}: {rows}×{cols}, {matrix.nnz} stored entries "
          f"(rows: output pixels, columns: input pixels, flattened {layout}, C order)")
    with np.printoptions(linewidth=200, threshold=max(args.max_dense, 1)):
        print(matrix.toarray())
    return 0
