"""Benchmark the matrix-free operator, operator norms and streamed saving on ResNet-size layers.

Run from the repository root (each part can run alone; ``--repeat`` runs, the minimum kept)::

    python benchmarks/bench_operator.py matvec   # ResNet stage: operator vs CSR matvec, memory
    python benchmarks/bench_operator.py norm     # ResNet stage: operator norm, time and accuracy
    python benchmarks/bench_operator.py big      # 256x112x112 -> 256: norm with peak memory
    python benchmarks/bench_operator.py save     # save_matrix above the memory guard, peak/block

BLAS runs on one thread (``OPENBLAS_NUM_THREADS=1`` etc. are set before numpy is imported
unless ``--threads`` says otherwise): the development machine has 2 cores shared by several
processes, where OpenBLAS' own threads oversubscribe them and make every timing noisy; scipy's
CSR product is single-threaded anyway. Peak memory is tracemalloc's peak (numpy's buffers,
ARPACK's work arrays) while the measured call runs.
"""

from __future__ import annotations

import argparse
import os
import sys


def _threads_from_argv() -> str:
    for index, arg in enumerate(sys.argv):
        if arg == "--threads" and index + 1 < len(sys.argv):
            return sys.argv[index + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "1"


for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, _threads_from_argv())

import gc  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy.sparse.linalg import LinearOperator, eigsh  # noqa: E402

import convmatrix as cm  # noqa: E402
from convmatrix.analysis import blocks as cm_blocks  # noqa: E402

GIB = 2**30


def resnet_stage() -> cm.Conv:
    weight = np.random.default_rng(0).standard_normal((64, 64, 3, 3)) / 24
    return cm.Conv(weight, (64, 56, 56), padding=1)


def big_layer() -> cm.Conv:
    weight = np.random.default_rng(1).standard_normal((256, 256, 3, 3)) / 48
    return cm.Conv(weight, (256, 112, 112), padding=1)


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def traced_peak(run: Callable[[], Any]) -> tuple[int, Any]:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result


def csr_bytes(matrix: Any) -> int:
    return int(matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes)


def bench_matvec(repeat: int) -> None:
    layer = resnet_stage()
    op = layer.operator()
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(op.shape[1]), rng.standard_normal(op.shape[0])
    op @ x  # warm-up
    t_op, out = best_of(repeat, lambda: op @ x)
    t_rop, _ = best_of(repeat, lambda: op.rmatvec(y))
    peak, _ = traced_peak(lambda: op @ x)
    matrix = layer.matrix()
    t_csr, expected = best_of(repeat, lambda: matrix @ x)
    t_csr_t, _ = best_of(repeat, lambda: matrix.T @ y)
    error = float(np.abs(out - expected).max() / np.abs(expected).max())
    nbytes = csr_bytes(matrix)
    print(f"{layer!r}")
    print(f"  CSR matrix: {matrix.nnz:,} stored entries, {nbytes / GIB:.2f} GiB")
    print(f"  matvec   operator {t_op:.4f} s   CSR C @ x   {t_csr:.4f} s   "
          f"speed-up {t_csr / t_op:.1f}x   (max rel. difference {error:.1e})")
    print(f"  rmatvec  operator {t_rop:.4f} s   CSR C.T @ y {t_csr_t:.4f} s   "
          f"speed-up {t_csr_t / t_rop:.1f}x")
    print(f"  operator matvec peak memory {peak / 2**20:.1f} MiB = "
          f"{100 * peak / nbytes:.2f} % of the matrix (one input {x.nbytes / 2**20:.1f} MiB, "
          f"one output {out.nbytes / 2**20:.1f} MiB)")


def _reference_norm(layer: Any, tol: float) -> float:
    """ARPACK from a random start on the operator's CᵀC, to a tight tolerance."""
    op = layer.operator()
    gram = LinearOperator(shape=(op.shape[1],) * 2, dtype=np.float64,
                          matvec=lambda v: op.rmatvec(op.matvec(v)))
    v0 = np.random.default_rng(op.shape[1]).standard_normal(op.shape[1])
    (value,) = eigsh(gram, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return float(np.sqrt(value))


def bench_norm(repeat: int) -> None:
    layer = resnet_stage()
    print(f"{layer!r}")
    for tol in (1e-4, 1e-6):
        t_norm, norm = best_of(repeat, lambda tol=tol: cm.operator_norm(layer, tol=tol,
                                                                        method="iterative"))
        print(f"  operator_norm(tol={tol:g}) {norm:.12f} in {t_norm:.2f} s")
    bound_time, bound = best_of(repeat, lambda: cm.operator_norm_bound(layer))
    t_ref, reference = best_of(1, lambda: _reference_norm(layer, 1e-12))
    print(f"  reference: ARPACK tol 1e-12 from a random start {reference:.12f} in {t_ref:.1f} s;"
          f" relative difference of the last {abs(norm - reference) / reference:.1e}")
    print(f"  operator_norm_bound (certified) {bound:.6f} in {bound_time:.2f} s "
          f"({bound / norm:.4f}x the norm)")


def bench_big(repeat: int, tol: float = 1e-4) -> None:
    layer = big_layer()
    cols = layer.matrix_shape[1]
    nnz = layer.spec.nnz_upper_bound()
    print(f"{layer!r}")
    print(f"  CSR would hold {nnz:,} entries, {nnz * 12 / GIB:.0f} GiB (float64 + int32 "
          f"indices); the guard refuses it:")
    try:
        layer.matrix()
    except cm.ConvMatrixError as error:
        print(f"    {str(error)[:110]}...")
    op = layer.operator()
    x = np.random.default_rng(3).standard_normal(cols)
    t_mv, _ = best_of(repeat, lambda: op @ x)
    print(f"  one operator matvec {t_mv:.2f} s")
    start = time.perf_counter()
    peak, norm = traced_peak(lambda: cm.operator_norm(layer, tol=tol, method="iterative"))
    elapsed = time.perf_counter() - start
    print(f"  operator_norm(tol={tol:g}) {norm:.10f} in {elapsed:.1f} s (one run), peak memory "
          f"{peak / GIB:.2f} GiB")


def bench_save(repeat: int) -> None:
    weight = np.random.default_rng(4).standard_normal((64, 64, 3, 3))
    layer = cm.Conv(weight, (64, 112, 112), padding=1)
    nnz = layer.spec.nnz_upper_bound()
    estimate = cm.estimate_nbytes(layer.spec)[1]
    print(f"{layer!r}: {nnz:,} entries, {estimate / GIB:.2f} GiB as CSR "
          f"(guard {cm.DEFAULT_MAX_BYTES / GIB:.0f} GiB)")
    rows_per_block = 8 * 112 * 112  # 8 output channels
    sizes = [csr_bytes(block) for _, _, build in
             cm_blocks.block_plan(layer, rows_per_block)[:1] for block in [build()]]
    block = sizes[0]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.npz"
        start = time.perf_counter()
        peak, _ = traced_peak(lambda: cm.save_matrix(layer, path,
                                                     rows_per_block=rows_per_block))
        elapsed = time.perf_counter() - start
        size = path.stat().st_size
    print(f"  save_matrix .npz: {size / GIB:.2f} GiB written in {elapsed:.1f} s; "
          f"one block {block / 2**20:.0f} MiB, peak memory {peak / 2**20:.0f} MiB = "
          f"{peak / block:.2f}x one block")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["matvec", "norm"],
                        choices=["matvec", "norm", "big", "save"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", default="1", help="BLAS threads (default 1)")
    parser.add_argument("--big-tol", type=float, default=1e-4, help="tol of the big norm")
    args = parser.parse_args()
    print(f"numpy {np.__version__}, BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}, "
          f"min of {args.repeat}")
    for part in args.parts:
        if part == "big":
            bench_big(args.repeat, args.big_tol)
            continue
        {"matvec": bench_matvec, "norm": bench_norm, "save": bench_save}[part](args.repeat)


if __name__ == "__main__":
    main()
