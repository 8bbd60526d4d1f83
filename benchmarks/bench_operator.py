"""Benchmark the matrix-free operator, operator norms and streamed saving on ResNet-size layers.

Run from the repository root (each part can run alone; ``--repeat`` runs, the minimum kept)::

    python benchmarks/bench_operator.py matvec   # ResNet stage: operator vs CSR matvec, memory
    python benchmarks/bench_operator.py norm     # ResNet stage: operator norm, time and accuracy
    python benchmarks/bench_operator.py big      # 256x112x112 -> 256: norm with peak memory
    python benchmarks/bench_operator.py save     # save_matrix above the memory guard, peak/block
    python benchmarks/bench_operator.py torch    # operator vs torch and CSR on five layer shapes
    python benchmarks/bench_operator.py torch --quick   # fewer rounds, no CSR, no float32

``torch`` times the operator's ``matvec``, ``rmatvec`` and ``matmat(16)`` side by side with
torch's own ``conv{1,2,3}d`` / ``conv_transpose{1,2,3}d`` (one sample and a batch of 16, on
``torch.set_num_threads`` = the BLAS threads) and scipy's CSR product, in interleaved rounds
(each round runs every contender once; the minimum per contender is kept) and prints the
ratios; then the adjoint against the forward for every padding mode, and float32.

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


def torch_layers(quick: bool) -> list[tuple[str, Any]]:
    rng = np.random.default_rng(5)
    layers = [
        ("ResNet stage 64x56x56 3x3 p1",
         cm.Conv(rng.standard_normal((64, 64, 3, 3)) / 24, (64, 56, 56), padding=1)),
        ("ResNet stem 3x224x224->64 7x7 s2 p3",
         cm.Conv(rng.standard_normal((64, 3, 7, 7)) / 12, (3, 224, 224), stride=2, padding=3)),
        ("1 channel 1024x1024 7x7 same",
         cm.Conv(rng.standard_normal((1, 1, 7, 7)) / 7, (1, 1024, 1024), padding="same")),
        ("depthwise 64x56x56 3x3 p1 groups 64",
         cm.Conv(rng.standard_normal((64, 1, 3, 3)) / 3, (64, 56, 56), padding=1, groups=64)),
        ("3-D 8x16x32x32->16 3x3x3 dilation 2 p2",
         cm.Conv(rng.standard_normal((16, 8, 3, 3, 3)) / 15, (8, 16, 32, 32), padding=2,
                 dilation=2)),
    ]
    if not quick:
        layers.append(("1-D 32x4096->32 5 s2 p2",
                       cm.Conv(rng.standard_normal((32, 32, 5)) / 12, (32, 4096), stride=2,
                               padding=2)))
        # strided layers whose adjoint takes each of the strided paths (issue 19)
        layers.append(("ResNet downsample 64x56x56->128 3x3 s2 p1",
                       cm.Conv(rng.standard_normal((128, 64, 3, 3)) / 24, (64, 56, 56),
                               stride=2, padding=1)))
        layers.append(("1-D 64x4096->16 4 s2 p1",
                       cm.Conv(rng.standard_normal((16, 64, 4)) / 16, (64, 4096), stride=2,
                               padding=1)))
        layers.append(("3-D 8x16x32x32->16 3x3x3 s2 p1",
                       cm.Conv(rng.standard_normal((16, 8, 3, 3, 3)) / 15, (8, 16, 32, 32),
                               stride=2, padding=1)))
    return layers


def _torch_calls(layer: Any, torch: Any, dtype: Any) -> tuple[Any, Any]:
    """``conv{n}d`` and ``conv_transpose{n}d`` closures on torch tensors for a zeros layer."""
    import torch.nn.functional as F

    spec = layer.spec
    n = spec.ndim
    conv = getattr(F, f"conv{n}d")
    conv_t = getattr(F, f"conv_transpose{n}d")
    w = torch.from_numpy(np.array(layer.weight, dtype=dtype))
    padding = tuple(b for b, _ in spec.padding)
    assert all(b == a for b, a in spec.padding), "symmetric padding only"
    output_padding = tuple(spec.remainder)

    def forward(x: Any) -> Any:
        return conv(x, w, stride=spec.stride, padding=padding, dilation=spec.dilation,
                    groups=spec.groups)

    def adjoint(y: Any) -> Any:
        return conv_t(y, w, stride=spec.stride, padding=padding, output_padding=output_padding,
                      dilation=spec.dilation, groups=spec.groups)

    return forward, adjoint


CLOCK: Callable[[], float] = time.thread_time
"""The clock of the torch comparison: CPU time of the calling thread by default (``--clock
cpu``): on a machine shared by several busy processes a call's wall time is mostly the time it
waits for a core, and a longer call is preempted more often, which biases every ratio; with
one BLAS thread and one torch thread all the work runs in the calling thread. ``--clock wall``
(needed for two threads) measures wall time."""


def interleaved(rounds: int, contenders: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Minimum time per contender over ``rounds`` rounds that each run every contender once."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, run in contenders.items():
            gc.collect()
            start = CLOCK()
            run()
            best[name] = min(best[name], CLOCK() - start)
    return best


def bench_torch(repeat: int, quick: bool, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    rounds = 2 if quick else max(repeat, 3)
    print(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
          f"{rounds} interleaved rounds, minimum kept, clock {CLOCK.__name__}")
    print()
    print("| layer | matvec / torch | rmatvec / torch | matmat(16) / torch(16) "
          "| matmat16 per column / matvec | matvec / CSR | rmatvec / CSR | max rel. error |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, layer in torch_layers(quick):
        _compare_layer(name, layer, torch, np.float64, rounds, csr=not quick)
    if quick:
        return
    print()
    print("float32 layers (float32 data), against torch float32:")
    print()
    print("| layer | matvec / torch | rmatvec / torch | matmat(16) / torch(16) "
          "| matmat16 per column / matvec | max rel. error |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, layer in torch_layers(True):
        if "stage" in name or "stem" in name or "depthwise" in name:
            layer32 = cm.Conv(np.asarray(layer.weight, np.float32), layer.input_shape,
                              stride=layer.spec.stride, padding=[b for b, _ in
                                                                 layer.spec.padding],
                              dilation=layer.spec.dilation, groups=layer.spec.groups)
            _compare_layer(name, layer32, torch, np.float32, rounds, csr=False)
    print()
    print("The adjoint against the forward, every padding mode (stage and stem geometry):")
    print()
    print("| layer | mode | matvec s | rmatvec s | rmatvec / matvec | rmatmat(16) / matmat(16) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, layer in torch_layers(True)[:2]:
        for mode in ("zeros", "reflect", "replicate", "circular"):
            moded = cm.Conv(layer.weight, layer.input_shape, stride=layer.spec.stride,
                            padding=[b for b, _ in layer.spec.padding], padding_mode=mode)
            op = moded.operator()
            rng = np.random.default_rng(7)
            x, y = rng.standard_normal(op.shape[1]), rng.standard_normal(op.shape[0])
            X, Y = rng.standard_normal((op.shape[1], 16)), rng.standard_normal((op.shape[0], 16))
            t = interleaved(rounds, {"mv": lambda op=op, x=x: op.matvec(x),
                                     "rmv": lambda op=op, y=y: op.rmatvec(y),
                                     "mm": lambda op=op, X=X: op.matmat(X),
                                     "rmm": lambda op=op, Y=Y: op.rmatmat(Y)})
            print(f"| {name} | {mode} | {t['mv']:.4f} | {t['rmv']:.4f} | "
                  f"{t['rmv'] / t['mv']:.2f} | {t['rmm'] / t['mm']:.2f} |")


def _compare_layer(name: str, layer: Any, torch: Any, dtype: Any, rounds: int,
                   csr: bool) -> None:
    op = layer.operator()
    rng = np.random.default_rng(6)
    n_out, n_in = op.shape
    x = rng.standard_normal(n_in).astype(dtype)
    y = rng.standard_normal(n_out).astype(dtype)
    X = rng.standard_normal((n_in, 16)).astype(dtype)
    forward, adjoint = _torch_calls(layer, torch, dtype)
    tx = torch.from_numpy(x.reshape(1, *layer.input_shape))
    ty = torch.from_numpy(y.reshape(1, *layer.output_shape))
    tX = torch.from_numpy(np.ascontiguousarray(X.T).reshape(16, *layer.input_shape))
    contenders: dict[str, Callable[[], Any]] = {
        "mv": lambda: op.matvec(x), "rmv": lambda: op.rmatvec(y), "mm": lambda: op.matmat(X),
        "tmv": lambda: forward(tx), "trmv": lambda: adjoint(ty), "tmm": lambda: forward(tX)}
    with torch.no_grad():
        for run in contenders.values():
            run()  # warm-up
        t = interleaved(rounds, contenders)
    if csr:
        # in rounds of their own: a CSR product streams the whole matrix through the caches,
        # and the call after it (torch's or the operator's) would start cold
        matrix = layer.matrix()
        matrix_t = matrix.T
        csr_t = interleaved(rounds, {"mv": lambda: op.matvec(x), "rmv": lambda: op.rmatvec(y),
                                     "cmv": lambda: matrix @ x, "crmv": lambda: matrix_t @ y})
    with torch.no_grad():
        expected = forward(tx).numpy().reshape(-1)
        expected_t = adjoint(ty).numpy().reshape(-1)
        expected_m = forward(tX).numpy().reshape(16, -1).T
    error = max(float(np.linalg.norm(op.matvec(x) - expected) / np.linalg.norm(expected)),
                float(np.linalg.norm(op.rmatvec(y) - expected_t) / np.linalg.norm(expected_t)),
                float(np.linalg.norm(op.matmat(X) - expected_m) / np.linalg.norm(expected_m)))
    cells = [f"{t['mv'] / t['tmv']:.2f}", f"{t['rmv'] / t['trmv']:.2f}",
             f"{t['mm'] / t['tmm']:.2f}", f"{t['mm'] / 16 / t['mv']:.2f}"]
    if csr:
        cells += [f"{csr_t['mv'] / csr_t['cmv']:.2f}", f"{csr_t['rmv'] / csr_t['crmv']:.2f}"]
        del matrix, matrix_t
    cells.append(f"{error:.1e}")
    print(f"| {name} | {' | '.join(cells)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["matvec", "norm"],
                        choices=["matvec", "norm", "big", "save", "torch"])
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None,
                        help="torch part: CPU time of the calling thread (default with one "
                             "thread) or wall time (default with more)")
    parser.add_argument("--quick", action="store_true",
                        help="torch part: 2 rounds, no CSR, no float32 or padding modes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", default="1", help="BLAS threads (default 1)")
    parser.add_argument("--big-tol", type=float, default=1e-4, help="tol of the big norm")
    args = parser.parse_args()
    print(f"numpy {np.__version__}, BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}, "
          f"min of {args.repeat}")
    for part in args.parts:
        if part == "torch":
            global CLOCK
            wall = args.clock == "wall" or (args.clock is None and args.threads != "1")
            CLOCK = time.perf_counter if wall else time.thread_time
            bench_torch(args.repeat, args.quick, int(os.environ["OPENBLAS_NUM_THREADS"]))
            continue
        if part == "big":
            bench_big(args.repeat, args.big_tol)
            continue
        {"matvec": bench_matvec, "norm": bench_norm, "save": bench_save}[part](args.repeat)


if __name__ == "__main__":
    main()
