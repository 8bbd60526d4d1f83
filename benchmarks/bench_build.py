"""Benchmark the sparse builder against a memory-write bound and two naive builders.

Run from the repository root::

    python benchmarks/bench_build.py            # all layers (needs ~4 GiB free memory)
    python benchmarks/bench_build.py --quick    # skip the two ResNet-size layers

For each layer it prints the build time of ``conv_matrix`` (best of ``--repeat`` runs after one
warm-up), the stored entries, nanoseconds per entry, the peak memory traced during a build
(tracemalloc, which sees numpy's buffers) relative to the matrix's own bytes, and the ratio of
the build time to a *write bound* measured in the same run: allocating fresh arrays of the
finished CSR's sizes and dtypes and filling each once. It then times the transposed
convolution (``conv_transpose_matrix`` in its default CSC view and built directly as CSR, and
``C.T``). Last, it shows the gap to the textbook builders on a small layer: broadcast COO
triplets + ``tocsr()``, and a Python loop over output positions.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp

import convmatrix as cm
from convmatrix.builder import layout as cm_layout

LAYERS: list[tuple[str, tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ("1x32x32, 3x3", (1, 1, 3, 3), (1, 32, 32), {}),
    ("3x64x64 -> 16, 3x3 stride 2", (16, 3, 3, 3), (3, 64, 64), {"stride": 2}),
    ("ResNet stage 64x56x56 -> 64, 3x3 pad 1", (64, 64, 3, 3), (64, 56, 56), {"padding": 1}),
    ("ResNet stem 3x224x224 -> 64, 7x7 stride 2 pad 3", (64, 3, 7, 7), (3, 224, 224),
     {"stride": 2, "padding": 3}),
]
QUICK = 2  # the first two layers


def best_time(fn: Callable[[], Any], repeat: int) -> float:
    """Best wall time of ``repeat`` calls after one warm-up call (results dropped at once)."""
    fn()
    gc.collect()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
        gc.collect()
    return min(times)


def write_bound(matrix: sp.csr_array, repeat: int) -> float:
    """Time to allocate fresh arrays of the CSR's sizes and dtypes and fill each once."""
    parts = [(a.size, a.dtype) for a in (matrix.data, matrix.indices, matrix.indptr)]

    def fill() -> list[np.ndarray]:
        arrays = [np.empty(size, dtype=dtype) for size, dtype in parts]
        for array in arrays:
            array.fill(1)
        return arrays

    return best_time(fill, repeat)


def peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak traced allocation while ``fn`` runs (its result is kept alive until the end)."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak


def matrix_bytes(matrix: sp.sparray) -> int:
    """Bytes of a compressed matrix's data, indices and pointers."""
    return sum(a.nbytes for a in (matrix.data, matrix.indices, matrix.indptr))


# --------------------------------------------------------------------------------------------
# the textbook builders, for comparison only (2-D, zero padding)


def coo_route(weight: np.ndarray, input_shape: tuple[int, ...], stride: int = 1,
              padding: int = 0) -> sp.csr_array:
    """Broadcast all (row, column, value) triplets, mask the padding, convert with tocsr()."""
    c_out, c_in, kh, kw = weight.shape
    _, h, w = input_shape
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    o, c, y, x, ty, tx = np.ix_(np.arange(c_out), np.arange(c_in), np.arange(oh),
                                np.arange(ow), np.arange(kh), np.arange(kw))
    iy, ix = y * stride - padding + ty, x * stride - padding + tx
    full = (c_out, c_in, oh, ow, kh, kw)
    valid = np.broadcast_to((iy >= 0) & (iy < h) & (ix >= 0) & (ix < w), full)
    rows = np.broadcast_to((o * oh + y) * ow + x, full)[valid]
    cols = np.broadcast_to((c * h + iy) * w + ix, full)[valid]
    vals = np.broadcast_to(weight[o, c, ty, tx], full)[valid]
    return sp.coo_array((vals, (rows, cols)), shape=(c_out * oh * ow, c_in * h * w)).tocsr()


def loop_route(weight: np.ndarray, input_shape: tuple[int, ...], stride: int = 1,
               padding: int = 0) -> sp.csr_array:
    """Python loops over output positions and taps (the slow, obvious way)."""
    c_out, c_in, kh, kw = weight.shape
    _, h, w = input_shape
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    rows, cols, vals = [], [], []
    for o in range(c_out):
        for y in range(oh):
            for x in range(ow):
                for c in range(c_in):
                    for ty in range(kh):
                        for tx in range(kw):
                            iy, ix = y * stride - padding + ty, x * stride - padding + tx
                            if 0 <= iy < h and 0 <= ix < w:
                                rows.append((o * oh + y) * ow + x)
                                cols.append((c * h + iy) * w + ix)
                                vals.append(weight[o, c, ty, tx])
    return sp.csr_array((vals, (rows, cols)), shape=(c_out * oh * ow, c_in * h * w))


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the ResNet-size layers")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # first touch of fresh memory is slow on this VM: warm the allocator up once
    np.ones(2**28 // 8 if args.quick else 2**31 // 8).sum()

    layers = LAYERS[:QUICK] if args.quick else LAYERS
    print("## Forward build: conv_matrix (float64 weights)\n")
    print("| layer | nnz | build s | ns/nnz | write bound s | build/bound | 1 thread s "
          "| 1 thread/bound | peak/matrix |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    transposes = []
    for name, wshape, ishape, geometry in layers:
        weight = rng.standard_normal(wshape)

        def build(weight: np.ndarray = weight, ishape: tuple[int, ...] = ishape,
                  geometry: dict[str, Any] = geometry) -> sp.sparray:
            return cm.conv_matrix(weight, ishape, **geometry)

        matrix = build()
        nbytes, nnz = matrix_bytes(matrix), matrix.nnz
        t_build = best_time(build, args.repeat)
        t_bound = write_bound(matrix, args.repeat)
        del matrix
        threads, cm_layout._MAX_THREADS = cm_layout._MAX_THREADS, 1
        t_single = best_time(build, args.repeat)
        cm_layout._MAX_THREADS = threads
        gc.collect()
        peak = peak_bytes(build)
        print(f"| {name} | {nnz:,} | {t_build:.4f} | {1e9 * t_build / nnz:.2f} | "
              f"{t_bound:.4f} | {t_build / t_bound:.2f} | {t_single:.4f} | "
              f"{t_single / t_bound:.2f} | {peak / nbytes:.2f} |")

        def transpose_csc(weight: np.ndarray = weight, ishape: tuple[int, ...] = ishape,
                          geometry: dict[str, Any] = geometry) -> sp.sparray:
            spec = cm.conv_spec(weight.shape, ishape, **geometry)
            return cm.spec_matrix(spec, weight, direction="adjoint")

        def transpose_csr(weight: np.ndarray = weight, ishape: tuple[int, ...] = ishape,
                          geometry: dict[str, Any] = geometry) -> sp.sparray:
            spec = cm.conv_spec(weight.shape, ishape, **geometry)
            return cm.spec_matrix(spec, weight, direction="adjoint", format="csr")

        forward = build()
        start = time.perf_counter()
        for _ in range(100):
            forward.T  # noqa: B018 - timing the view
        t_view = (time.perf_counter() - start) / 100
        del forward
        transposes.append((name, t_build, best_time(transpose_csc, args.repeat),
                           best_time(transpose_csr, args.repeat), t_view))
        gc.collect()

    print("\n## Transposed convolution (same layers, Cᵀ)\n")
    print("| layer | forward build s | Cᵀ default (CSC view) s | Cᵀ as CSR, built directly s "
          "| C.T on a built C s |")
    print("|---|---:|---:|---:|---:|")
    for name, t_fwd, t_csc, t_csr, t_view in transposes:
        print(f"| {name} | {t_fwd:.4f} | {t_csc:.4f} | {t_csr:.4f} | {t_view:.2e} |")

    wshape, ishape, geometry = (8, 8, 3, 3), (8, 32, 32), {"padding": 1}
    weight = rng.standard_normal(wshape)
    reference = cm.conv_matrix(weight, ishape, **geometry)
    print(f"\n## The gap, on a small layer: 8x32x32 -> 8, 3x3 pad 1 "
          f"(nnz {reference.nnz:,})\n")
    print("| builder | seconds | × convmatrix | same matrix |")
    print("|---|---:|---:|---|")
    t_ours = best_time(lambda: cm.conv_matrix(weight, ishape, **geometry), args.repeat)
    for label, fn in [
        ("convmatrix.conv_matrix", lambda: cm.conv_matrix(weight, ishape, **geometry)),
        ("broadcast COO + tocsr()", lambda: coo_route(weight, ishape, **geometry)),
        ("Python loop over outputs", lambda: loop_route(weight, ishape, **geometry)),
    ]:
        t = best_time(fn, 1 if "loop" in label else args.repeat)
        same = abs(fn() - reference).max() == 0
        print(f"| {label} | {t:.4f} | {t / t_ours:.0f} | {same} |")
    print(f"\n({os.cpu_count()} cores; numpy {np.__version__}, scipy {scipy.__version__}; "
          f"the builder uses up to {cm_layout._MAX_THREADS} threads, the write bound one)")


if __name__ == "__main__":
    main()
