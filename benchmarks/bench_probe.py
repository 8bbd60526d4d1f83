"""Benchmark coloured probing: recover a layer's matrix from torch F.conv2d used as a black box.

Run from the repository root::

    python benchmarks/bench_probe.py            # the ResNet stage layer (needs ~3 GiB free)
    python benchmarks/bench_probe.py --quick    # only the small layers

For the ResNet stage layer (64×56×56 → 64, 3×3, padding 1) it probes ``F.conv2d`` (float64,
``batched=True``) on the layer's pattern and prints the samples evaluated (against
``2·C_in·∏k`` and against the ``∏input`` unit probes), the time, the peak memory traced during
probing (tracemalloc, which sees numpy's buffers; torch's own buffers are one batch of about
20 samples) relative to the matrix's bytes, the process's peak RSS growth, and whether the
recovered matrix equals ``conv_matrix`` bit for bit. On small layers it times
``torch.func.jacrev`` (a dense Jacobian), unit-vector probing and coloured probing side by side.
torch runs on one thread (``--threads``): on a shared machine more threads made small
convolutions 100× slower.
"""

from __future__ import annotations

import argparse
import math
import resource
import time
import tracemalloc
from typing import Any

import numpy as np
import scipy.sparse as sp

import convmatrix as cm
from convmatrix.testing import probe


def _torch_fn(weight: np.ndarray, padding: int) -> Any:
    import torch
    import torch.nn.functional as F

    w = torch.from_numpy(weight)
    return lambda x: F.conv2d(torch.from_numpy(x), w, padding=padding)


def _nbytes(matrix: sp.csr_array) -> int:
    return int(matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big(seed: int) -> None:
    """The ResNet stage layer: samples, time, memory and bit-for-bit equality."""
    c, n, k = 64, 56, 3
    weight = np.random.default_rng(seed).standard_normal((c, c, k, k))
    layer = cm.Conv(weight, (c, n, n), padding=1)
    conv = _torch_fn(weight, 1)
    conv(np.zeros((1, c, n, n)))  # warm-up outside the measurement
    in_fn = [0.0]

    def fn(x: np.ndarray) -> Any:
        start = time.perf_counter()
        out = conv(x)
        in_fn[0] += time.perf_counter() - start
        return out

    rss_before = _rss_mib()
    tracemalloc.start()
    start = time.perf_counter()
    result = probe(fn, layer.input_shape, layer=layer, batched=True)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = _rss_mib() - rss_before
    recovered = result.matrix
    expected = layer.matrix()
    same_layout = (recovered.shape == expected.shape
                   and np.array_equal(recovered.indptr, expected.indptr)
                   and np.array_equal(recovered.indices, expected.indices))
    bitwise = same_layout and np.array_equal(recovered.data, expected.data)
    if not same_layout:
        bitwise = (recovered != expected).nnz == 0
    budget = 2 * c * k * k
    print("| layer | samples | 2·C_in·∏k | unit probes | calls | seconds | of which in F.conv2d "
          "| peak traced / matrix | peak RSS growth / matrix | bit for bit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    matrix_bytes = _nbytes(recovered)
    print(f"| ResNet stage 64x56x56 -> 64, 3x3 pad 1 | {result.samples} | {budget} | "
          f"{math.prod(layer.input_shape):,} | {result.calls} | {seconds:.1f} | {in_fn[0]:.1f} | "
          f"{peak / matrix_bytes:.2f} | {rss_growth * 2**20 / matrix_bytes:.2f} | {bitwise} |")
    print(f"\nmatrix: {recovered.nnz:,} entries, {matrix_bytes / 2**30:.2f} GiB; "
          f"method: {result.method}, {result.colours} colours")


def small(seed: int) -> None:
    """jacrev vs unit probing vs coloured probing on layers small enough for a dense Jacobian."""
    import torch
    from torch.func import jacrev

    print("\n| layer | jacrev s | unit probes s (samples) | coloured s (samples) | equal |")
    print("|---|---:|---:|---:|---|")
    for c, n in ((4, 16), (8, 32)):
        weight = np.random.default_rng(seed).standard_normal((c, c, 3, 3))
        layer = cm.Conv(weight, (c, n, n), padding=1)
        fn = _torch_fn(weight, 1)
        w = torch.from_numpy(weight)

        def single(x: Any, w: Any = w) -> Any:
            return torch.nn.functional.conv2d(x[None], w, padding=1)[0]

        x0 = torch.zeros(layer.input_shape, dtype=torch.float64)
        jacrev(single)(x0)  # warm-up (first calls trace the function)
        start = time.perf_counter()
        jac = jacrev(single)(x0).reshape(layer.matrix_shape).numpy()
        t_jac = time.perf_counter() - start
        start = time.perf_counter()
        unit = probe(fn, layer.input_shape, batched=True)
        t_unit = time.perf_counter() - start
        start = time.perf_counter()
        coloured = probe(fn, layer.input_shape, layer=layer, batched=True)
        t_col = time.perf_counter() - start
        expected = layer.matrix().toarray()
        equal = (np.array_equal(jac, expected) and np.array_equal(unit.matrix.toarray(), expected)
                 and np.array_equal(coloured.matrix.toarray(), expected))
        print(f"| {c}x{n}x{n} -> {c}, 3x3 pad 1 | {t_jac:.3f} | {t_unit:.3f} ({unit.samples}) | "
              f"{t_col:.3f} ({coloured.samples}) | {equal} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small layers")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not args.quick:
        big(args.seed)
    small(args.seed)


if __name__ == "__main__":
    main()
