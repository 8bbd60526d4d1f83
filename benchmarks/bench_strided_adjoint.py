"""Strided adjoints: every way of running ``Cᵀ y`` against the one the library picks (issue 19).

For each layer, ``rmatvec`` is timed with each path forced (``_STRIDED_ADJOINT``: phases,
flat col2im, strided windows) and flat col2im both with its taps added inside BLAS
(``gemm`` with ``beta = 1``) and with one product of every tap, in interleaved rounds (minimum
kept, CPU time of the calling thread, one BLAS thread). The last column is the path the
library takes by itself (``adjoint._strided_adjoint`` and ``adjoint._accumulating_gemm``):
it should be the fastest, or within noise of it.

    python benchmarks/bench_strided_adjoint.py [--rounds 21] [--float32]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import convmatrix as cm
from convmatrix.builder import adjoint, apply


def layers(dtype: Any) -> list[tuple[str, Any]]:
    rng = np.random.default_rng(8)

    def conv(weight_shape: tuple[int, ...], input_shape: tuple[int, ...], groups: int = 1,
             padding: int = 1) -> Any:
        weight = (rng.standard_normal(weight_shape) / 10).astype(dtype)
        return cm.Conv(weight, input_shape, stride=2, padding=padding, groups=groups)

    return [
        ("1-D 32x4096->32 5", conv((32, 32, 5), (32, 4096), padding=2)),
        ("1-D 64x4096->16 4", conv((16, 64, 4), (64, 4096))),
        ("2-D 64x56x56->64 3x3", conv((64, 64, 3, 3), (64, 56, 56))),
        ("2-D 64x56x56->128 3x3 (downsample)", conv((128, 64, 3, 3), (64, 56, 56))),
        ("2-D 128x56x56->64 3x3", conv((64, 128, 3, 3), (128, 56, 56))),
        ("2-D 3x224x224->64 7x7 (stem)", conv((64, 3, 7, 7), (3, 224, 224), padding=3)),
        ("2-D 16x56x56->64 3x3", conv((64, 16, 3, 3), (16, 56, 56))),
        ("3-D 8x16x32x32->16 3x3x3", conv((16, 8, 3, 3, 3), (8, 16, 32, 32))),
        ("2-D 64x56x56 3x3 groups 4", conv((64, 16, 3, 3), (64, 56, 56), groups=4)),
        ("2-D 64x56x56 3x3 groups 8", conv((64, 8, 3, 3), (64, 56, 56), groups=8)),
        ("2-D depthwise 4x112x112 3x3", conv((4, 1, 3, 3), (4, 112, 112), groups=4)),
    ]


def forced(path: str, accumulate: bool | None) -> Callable[[Callable[[], Any]], Any]:
    """Run a call with the strided path (and flat col2im's BLAS adds) forced."""
    chosen = adjoint._accumulating_gemm

    def run(call: Callable[[], Any]) -> Any:
        old = apply._STRIDED_ADJOINT
        apply._STRIDED_ADJOINT = path
        if accumulate is not None:
            apply._accumulating_gemm = (
                (lambda spec, dtype: chosen(spec, dtype) or _any_gemm(dtype)) if accumulate
                else (lambda spec, dtype: None))
        try:
            return call()
        finally:
            apply._STRIDED_ADJOINT = old
            apply._accumulating_gemm = chosen
    return run


def _any_gemm(dtype: Any) -> Any:
    from scipy.linalg import blas

    return getattr(blas, {"f4": "sgemm", "f8": "dgemm"}[f"{dtype.kind}{dtype.itemsize}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--float32", action="store_true")
    args = parser.parse_args()
    dtype = np.float32 if args.float32 else np.float64
    ways = {"phases": ("phases", None), "flat, BLAS adds": ("flat", True),
            "flat, one product": ("flat", False), "windows": ("windows", None),
            "library": ("auto", None)}
    print(f"{np.dtype(dtype).name}, {args.rounds} interleaved rounds, minimum kept, ms "
          "(CPU time of the calling thread, one BLAS thread)")
    print()
    print("| layer | " + " | ".join(ways) + " | library's path |")
    print("|---|" + "---:|" * len(ways) + "---|")
    with threadpool_limits(1):
        for name, layer in layers(dtype):
            op = layer.operator()
            y = np.random.default_rng(9).standard_normal(op.shape[0]).astype(dtype)
            best = dict.fromkeys(ways, float("inf"))
            for _ in range(args.rounds):
                for way, (path, accumulate) in ways.items():
                    run = forced(path, accumulate)
                    gc.collect()
                    start = time.thread_time()
                    run(lambda op=op, y=y: op.rmatvec(y))
                    best[way] = min(best[way], time.thread_time() - start)
            spec = layer.spec
            path = adjoint._strided_adjoint(spec)
            if path == "flat":
                path += (", BLAS adds" if adjoint._accumulating_gemm(spec, np.dtype(dtype))
                         else ", one product")
            cells = " | ".join(f"{best[way] * 1e3:.2f}" for way in ways)
            print(f"| {name} | {cells} | {path} |")


if __name__ == "__main__":
    main()
