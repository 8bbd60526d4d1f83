"""``layer.to_dask()`` products against the operator's matvec (issue 19).

Run from the repository root::

    python benchmarks/bench_dask.py           # 64x28x28 -> 64, 3x3 pad 1 (27.5 M entries)
    python benchmarks/bench_dask.py --quick   # 16x64x64 -> 16, 3x3 pad 1 (9.3 M entries)
    python benchmarks/bench_dask.py --cluster # also a 2-worker LocalCluster (processes)

Every time is a ratio to ``layer.operator() @ x`` measured in the same run (best of
``--repeat``), dask's threaded scheduler unless said otherwise:

* ``lazy, old COO`` — the chunks converted by ``sparse.COO.from_scipy_sparse`` as before
  issue 19 (rebuilt and converted for every product);
* ``lazy`` — ``to_dask()`` as it is now, rebuilt for every product;
* ``persist()`` — the one-off cost of building and keeping every chunk;
* ``persisted product`` — ``C @ x`` on the persisted array (no build, no conversion);
* ``CSR product`` — the whole scipy CSR matrix, for scale.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import sparse  # noqa: E402

import convmatrix as cm  # noqa: E402
from convmatrix.analysis.blocks import block_plan, block_rows  # noqa: E402


def best(repeat: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def old_to_dask(layer: cm.Conv, row_chunks: int) -> Any:
    """``to_dask`` before issue 19: ``COO.from_scipy_sparse`` per chunk (int64, sorted)."""
    cols = layer.matrix_shape[1]
    meta = sparse.COO.from_numpy(np.zeros((0, 0)))
    parts = [da.from_delayed(dask.delayed(lambda b: sparse.COO.from_scipy_sparse(b()))(build),
                             shape=(stop - start, cols), dtype=np.float64, meta=meta)
             for start, stop, build in block_plan(layer, block_rows(layer, row_chunks))]
    return da.concatenate(parts, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    channels, size = (16, 64) if args.quick else (64, 28)
    weight = np.random.default_rng(0).standard_normal((channels, channels, 3, 3)) / 24
    layer = cm.Conv(weight, (channels, size, size), padding=1)
    x = np.random.default_rng(1).standard_normal(layer.matrix_shape[1])
    op = layer.operator()
    matrix = layer.matrix()
    chunk = size * size * max(1, channels // 8)
    rows: list[tuple[str, float]] = []
    base = best(args.repeat, lambda: op @ x)
    rows.append(("operator matvec", base))
    rows.append(("CSR product", best(args.repeat, lambda: matrix @ x)))
    old = old_to_dask(layer, chunk)
    rows.append(("lazy, old COO (before)", best(1, lambda: (old @ x).compute(
        scheduler="threads"))))
    C = layer.to_dask(row_chunks=chunk)
    rows.append(("lazy (now)", best(1, lambda: (C @ x).compute(scheduler="threads"))))
    start = time.perf_counter()
    kept = C.persist(scheduler="threads")
    rows.append(("persist() once", time.perf_counter() - start))
    rows.append(("persisted product", best(args.repeat, lambda: (kept @ x).compute(
        scheduler="threads"))))
    if args.cluster:
        import distributed

        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster, \
                distributed.Client(cluster):
            rows.append(("cluster: lazy", best(1, lambda: (C @ x).compute())))
            on_workers = C.persist()
            distributed.wait(on_workers)
            rows.append(("cluster: persisted product",
                         best(args.repeat, lambda: (on_workers @ x).compute())))
    print(f"layer {layer!r}: {matrix.nnz:,} entries, chunks of {chunk} rows")
    print("| product | s | × operator matvec |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.4f} | {seconds / base:.1f} |")


if __name__ == "__main__":
    main()
