"""Command-line pieces for spectra and streaming: ``convmatrix norm`` and streamed ``--save``."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.cli._args import budget_argument, layer_command
from convmatrix.cli._layer import LayerPlan, build_layer, check_memory, plan_layer
from convmatrix.cli._output import save_streamed
from convmatrix.cli._parser import COMMANDS

__all__ = ["add_norm_command", "norm_nbytes", "norm_text", "register", "run_norm",
           "save_streamed"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"`--top` (={text!r}) must be a positive integer")
    return value


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"`--tol` (={text!r}) must be a number in [0, 1)")
    return value


def register(subparsers: Any) -> None:
    """Add ``convmatrix norm`` (with the layer flags)."""
    add_norm_command(lambda name, help: layer_command(subparsers, name, help))


def add_norm_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register ``convmatrix norm`` with the layer flags (``command`` adds a subparser)."""
    p = command("norm", COMMANDS["norm"].help)
    p.add_argument("--top", type=_positive_int, default=None, metavar="K",
                   help="also print the K largest singular values (default: none; K > 1 "
                        "takes much longer than the norm on large layers)")
    p.add_argument("--tol", type=_tolerance, default=1e-6, metavar="TOL",
                   help="ARPACK's relative tolerance for large layers (default 1e-6)")
    budget_argument(p)
    p.set_defaults(run=run_norm)


def norm_text(layer: Any, top: int | None = None, tol: float = 1e-6) -> str:
    """The ``convmatrix norm`` report of a layer object.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> conv = cm.Conv(np.array([[[1.0, 2.0]]]), (1, 4), padding=((0, 1),),
    ...                padding_mode="circular")
    >>> print(norm_text(conv, top=2))           # doctest: +ELLIPSIS
    Conv(1→1, 1×4 → 1×4, kernel 2, padding ((0, 1),), circular): C is 4×4
    ‖C‖₂ = 3 (exact: FFT of the kernel, per-frequency SVD; ... s)
    top 2 singular values: 3, 2.23607
    certified upper bound: 3.000000003 (1× the norm)
    """
    from convmatrix.analysis import spectra

    rows, cols = layer.matrix_shape
    method = spectra.choose_method(layer)
    how = {"fft": "exact: FFT of the kernel, per-frequency SVD",
           "dense": "exact: dense SVD",
           "iterative": "ARPACK Lanczos on the matrix-free CᴴC"}[method]
    start = time.perf_counter()
    norm = spectra.operator_norm(layer, tol=tol)
    elapsed = time.perf_counter() - start
    lines = [f"{layer!r}: C is {rows}×{cols}", f"‖C‖₂ = {norm:.10g} ({how}; {elapsed:.2f} s)"]
    if top is not None:
        k = min(top, min(rows, cols) - 1 if method == "iterative" else min(rows, cols))
        values = ([norm] if k <= 1 else
                  list(spectra.singular_values(layer, k, tol=tol)))
        lines.append(f"top {len(values)} singular value{'s' if len(values) != 1 else ''}: "
                     + ", ".join(f"{value:.6g}" for value in values))
    bound = spectra.operator_norm_bound(layer)
    ratio = f"{bound / norm:.6g}× the norm" if norm > 0 else "the norm is 0"
    lines.append(f"certified upper bound: {bound:.10g} ({ratio})")
    return "\n".join(lines)


def run_norm(args: argparse.Namespace) -> int:
    """``convmatrix norm``: spectra of the layer the flags describe."""
    plan = plan_layer(args)
    check_memory(args, plan, "the norm" + (f" and top {args.top} singular values"
                                           if args.top else ""), norm_nbytes(plan, args.top))
    print(norm_text(_layer_object(build_layer(args, plan)), args.top, args.tol))
    return 0


def norm_nbytes(plan: LayerPlan, top: int | None = None) -> int:
    """Bytes ``convmatrix norm`` needs at most (an upper estimate), from the shapes alone.

    Counts a float copy of the weight; for the exact dense SVD the dense matrix twice; for a
    block-circulant layer (FFT path) every per-frequency singular value and a bounded chunk
    of per-frequency matrices with its temporaries; otherwise (Lanczos) 32 vectors of the
    input and output size, and one unfolded input (output pixels × taps × input channels per
    group) for the matrix-free products. ``--top k`` adds ``2k + 24`` Lanczos vectors.
    """
    from convmatrix.analysis.spectra.fft import chunk_work_bytes, is_circulant
    from convmatrix.analysis.spectra.methods import DENSE_MAX_ENTRIES

    spec = plan.spec
    rows, cols = spec.matrix_shape
    item = 16 if plan.dtype.kind == "c" else 8
    weight = math.prod(plan.weight_shape) * item
    taps = math.prod(spec.kernel_size)
    cig = spec.in_channels // max(spec.groups, 1)
    unfolded = math.prod(spec.output_size) * taps * cig * item
    if rows * cols <= DENSE_MAX_ENTRIES:
        work = 3 * rows * cols * item
    elif is_circulant(spec):
        frequencies = math.prod(spec.input_size)
        cog = spec.out_channels // max(spec.groups, 1)
        work = 3 * frequencies * spec.groups * min(cog, cig) * 8 + chunk_work_bytes() + 16 * cols
    else:
        work = 32 * (rows + cols) * item + unfolded
    if top is not None and top > 1:
        work = max(work, (2 * top + 24) * (rows + cols) * item + unfolded)
    return weight + work


def _layer_object(layer: Any) -> Any:
    """A layer object with the same singular values as what ``layer_from_args`` returned.

    The CLI's older ``convmatrix.layer.Layer`` (spec, weight, transpose) becomes the forward
    :class:`~convmatrix.Conv` (a transpose and a Keras layout permutation keep the spectrum).
    """
    from convmatrix.layers.base import Layer
    from convmatrix.layers.conv import ConvLayer

    if isinstance(layer, Layer):
        return layer
    try:
        return ConvLayer.from_spec(layer.spec, layer.weight)
    except ConvMatrixError:  # a transposed layer whose output_padding crops the forward output
        raise ConvMatrixError(
            f"`convmatrix norm` cannot rebuild {layer!r} as a layer object") from None
