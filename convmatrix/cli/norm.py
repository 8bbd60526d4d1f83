"""Command-line pieces for spectra and streaming: ``convmatrix norm`` and streamed ``--save``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.cli._args import layer_command
from convmatrix.cli._layer import layer_from_args
from convmatrix.cli._output import save_streamed

__all__ = ["add_norm_command", "norm_text", "register", "run_norm", "save_streamed"]


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
    p = command("norm", "print the layer's operator norm, its top singular values and a "
                        "certified upper bound, without building the matrix")
    p.add_argument("--top", type=_positive_int, default=3, metavar="K",
                   help="how many of the largest singular values to print (default 3)")
    p.add_argument("--tol", type=_tolerance, default=1e-6, metavar="TOL",
                   help="ARPACK's relative tolerance for large layers (default 1e-6)")
    p.set_defaults(run=run_norm)


def norm_text(layer: Any, top: int = 3, tol: float = 1e-6) -> str:
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
    k = min(top, min(rows, cols) - 1 if method == "iterative" else min(rows, cols))
    values = ([norm] if k <= 1 else
              list(spectra.singular_values(layer, k, tol=tol)))
    bound = spectra.operator_norm_bound(layer)
    ratio = f"{bound / norm:.6g}× the norm" if norm > 0 else "the norm is 0"
    return "\n".join([
        f"{layer!r}: C is {rows}×{cols}",
        f"‖C‖₂ = {norm:.10g} ({how}; {elapsed:.2f} s)",
        f"top {len(values)} singular value{'s' if len(values) != 1 else ''}: "
        + ", ".join(f"{value:.6g}" for value in values),
        f"certified upper bound: {bound:.10g} ({ratio})",
    ])


def run_norm(args: argparse.Namespace) -> int:
    """``convmatrix norm``: spectra of the layer the flags describe."""
    print(norm_text(_layer_object(layer_from_args(args)), args.top, args.tol))
    return 0


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
