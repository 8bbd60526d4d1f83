"""Single-channel images, small layers, value refresh and peer tools, measured in one run.

Run from the repository root::

    python benchmarks/bench_peers.py            # everything (needs ~3 GiB free memory)
    python benchmarks/bench_peers.py --quick    # skip 1024×1024 and the ResNet layers

Every time is the best (minimum) of ``--repeat`` runs: the machine is shared and noisy, and the
minimum is the least disturbed run. The *write bound* is the time to allocate arrays of the
finished CSR's sizes and dtypes and fill each once (one thread), measured in the same run. A
*first* build starts from an empty cache (``cm.cache.clear_cache()``); a *repeated* one reuses the
cached layout. Peak memory is what tracemalloc traces during one build (numpy's buffers
included); *kept* is what stays traced after the matrix is deleted (the cache). Peers that
are not installed are skipped and reported as such.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import time
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
import scipy.linalg
import scipy.sparse as sp

import convmatrix as cm


def best(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None) -> float:
    """Best wall time of ``repeat`` calls (results dropped), ``setup`` untimed before each."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


def nbytes(matrix: sp.sparray) -> int:
    return sum(a.nbytes for a in (matrix.data, matrix.indices, matrix.indptr))


def write_bound(matrix: sp.sparray, repeat: int) -> float:
    parts = [(a.size, a.dtype) for a in (matrix.data, matrix.indices, matrix.indptr)]

    def fill() -> list[np.ndarray]:
        arrays = [np.empty(size, dtype=dtype) for size, dtype in parts]
        for array in arrays:
            array.fill(1)
        return arrays

    return best(fill, repeat)


def memory(fn: Callable[[], sp.sparray]) -> tuple[int, int, int]:
    """(peak traced during fn, bytes of its matrix, traced bytes kept after deleting it)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    matrix = fn()
    peak = tracemalloc.get_traced_memory()[1] - before
    size = nbytes(matrix)
    del matrix
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return peak, size, kept


def optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def single_channel(sides: list[int], repeat: int) -> None:
    sc = optional("sparse_convolution")
    print("## Single-channel images, 'same' padding, float32 weights\n")
    print("| image, kernel | nnz | first build s | repeated s | write bound s | first/bound "
          "| repeated/bound | sparse-convolution s | × faster (first) | peak/matrix "
          "| kept/matrix |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for side in sides:
        for k in (7, 3):
            weight = np.random.default_rng(k).standard_normal((1, 1, k, k)).astype(np.float32)

            def build(weight: np.ndarray = weight, side: int = side) -> sp.sparray:
                return cm.conv_matrix(weight, (1, side, side), padding="same")

            matrix = build()
            nnz = matrix.nnz
            bound = write_bound(matrix, repeat)
            del matrix
            first = best(build, repeat, setup=cm.cache.clear_cache)
            build()
            repeated = best(build, repeat)
            cm.cache.clear_cache()
            peak, size, kept = memory(build)
            if sc is not None:
                kernel = weight[0, 0]
                t_sc = best(lambda kernel=kernel, side=side: sc.Toeplitz_convolution2d(
                    (side, side), kernel, mode="same", method="precomputed", backend="numpy"),
                    max(1, repeat // 2))
                peer = f"{t_sc:.4f} | {t_sc / first:.1f}"
            else:
                peer = "not installed | –"
            print(f"| {side}×{side}, {k}×{k} | {nnz:,} | {first:.4f} | {repeated:.4f} | "
                  f"{bound:.4f} | {first / bound:.2f} | {repeated / bound:.2f} | {peer} | "
                  f"{peak / size:.2f} | {kept / size:.3f} |")
    print()


def small_layers() -> None:
    print("## Small layers (µs per build, best of 5 × 1000)\n")
    print("| layer | µs per build |")
    print("|---|---:|")
    for label, wshape, ishape, geometry in [
        ("1×32×32, 3×3", (1, 1, 3, 3), (1, 32, 32), {}),
        ("1×32×32, 3×3, 'same'", (1, 1, 3, 3), (1, 32, 32), {"padding": "same"}),
        ("1×32×32, 3×3, reflect pad 1", (1, 1, 3, 3), (1, 32, 32),
         {"padding": 1, "padding_mode": "reflect"}),
        ("8×16×16 → 8, 3×3 pad 1", (8, 8, 3, 3), (8, 16, 16), {"padding": 1}),
    ]:
        weight = np.ones(wshape)
        cm.conv_matrix(weight, ishape, **geometry)
        per = min(timeit.repeat(lambda w=weight, i=ishape, g=geometry: cm.conv_matrix(w, i, **g),
                                number=1000, repeat=5)) / 1000
        print(f"| {label} | {per * 1e6:.0f} |")
    print()


def resnet(repeat: int) -> None:
    print("## ResNet layers: forward, transposed CSR, value refresh (float64)\n")
    print("| layer | forward s | write bound s | forward/bound | Cᵀ as CSR s | Cᵀ CSR/forward "
          "| refresh (like=) s | refresh/forward | layer.matrix(weight=) s "
          "| in place (out=) s | in place/forward |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for label, wshape, ishape, geometry in [
        ("stage 64×56×56 → 64, 3×3 pad 1", (64, 64, 3, 3), (64, 56, 56), {"padding": 1}),
        ("stem 3×224×224 → 64, 7×7 s2 p3", (64, 3, 7, 7), (3, 224, 224),
         {"stride": 2, "padding": 3}),
    ]:
        weight = rng.standard_normal(wshape)
        other = rng.standard_normal(wshape)
        spec = cm.conv_spec(wshape, ishape, **geometry)
        forward = cm.spec_matrix(spec, weight)
        bound = write_bound(forward, repeat)
        t_fwd = best(lambda s=spec, w=weight: cm.spec_matrix(s, w), repeat)
        t_refresh = best(lambda s=spec, w=other, f=forward: cm.spec_matrix(s, w, like=f),
                         repeat)
        layer = cm.Conv(weight, ishape, **geometry)
        kept = layer.matrix()
        t_layer = best(lambda lay=layer, w=other: lay.matrix(weight=w), repeat)
        t_inplace = best(lambda lay=layer, w=other, c=kept: lay.matrix(weight=w, out=c), repeat)
        del forward, kept
        gc.collect()
        t_tcsr = best(lambda s=spec, w=weight: cm.spec_matrix(s, w, direction="adjoint",
                                                              format="csr"), repeat)
        print(f"| {label} | {t_fwd:.4f} | {bound:.4f} | {t_fwd / bound:.2f} | {t_tcsr:.4f} | "
              f"{t_tcsr / t_fwd:.2f} | {t_refresh:.4f} | {t_refresh / t_fwd:.2f} | "
              f"{t_layer:.4f} | {t_inplace:.4f} | {t_inplace / t_fwd:.2f} |")
    print()


def peers(repeat: int) -> None:
    print("## Peers on small layers (same matrix, seconds)\n")
    print("| layer | convmatrix s | peer | peer s | × convmatrix | same matrix |")
    print("|---|---:|---|---:|---:|---|")
    rng = np.random.default_rng(1)
    side, k = 64, 3
    kernel = rng.standard_normal((k, k))
    weight = kernel[None, None]
    ours = cm.conv_matrix(weight, (1, side, side), padding="same")
    t_ours = best(lambda: cm.conv_matrix(weight, (1, side, side), padding="same"), repeat)
    label = f"1×{side}×{side}, {k}×{k} 'same'"

    pylops = optional("pylops")
    if pylops is not None:
        from pylops.signalprocessing import Convolve2D

        # PyLops convolves (flipped kernel); offset = kernel centre gives 'same'
        op = Convolve2D((side, side), kernel[::-1, ::-1].copy(), offset=(k // 2, k // 2),
                        method="direct")
        t = best(lambda: op.tosparse(), max(1, repeat // 2))
        same = bool(abs(sp.csr_array(op.tosparse()) - ours).max() < 1e-12)
        print(f"| {label} | {t_ours:.4f} | PyLops Convolve2D.tosparse() | {t:.4f} | "
              f"{t / t_ours:.0f} | {same} |")
    else:
        print(f"| {label} | {t_ours:.4f} | PyLops | not installed | – | – |")

    torch = optional("torch")
    small_side = 32
    small = cm.conv_matrix(weight, (1, small_side, small_side), padding="same")
    t_small = best(lambda: cm.conv_matrix(weight, (1, small_side, small_side), padding="same"),
                   repeat)
    small_label = f"1×{small_side}×{small_side}, {k}×{k} 'same'"
    if torch is not None:
        w_t = torch.tensor(weight)

        def jac() -> sp.sparray:
            def f(x: Any) -> Any:
                return torch.nn.functional.conv2d(x.reshape(1, 1, small_side, small_side), w_t,
                                                  padding="same").reshape(-1)

            dense = torch.func.jacrev(f)(torch.zeros(small_side * small_side,
                                                     dtype=torch.float64))
            return sp.csr_array(dense.numpy())

        t = best(jac, max(1, repeat // 2))
        # a dense Jacobian drops the explicit zeros convmatrix keeps: compare values
        same = bool(abs(jac() - small).max() < 1e-12)
        print(f"| {small_label} | {t_small:.5f} | torch.func.jacrev + dense→CSR | {t:.4f} | "
              f"{t / t_small:.0f} | {same} |")
    else:
        print(f"| {small_label} | {t_small:.5f} | torch.func.jacrev | not installed | – | – |")

    n, taps = 2048, 9
    a = rng.standard_normal(taps)
    ours_1d = cm.conv_matrix(a[::-1].copy()[None, None], (1, n), padding="same")
    t_1d = best(lambda: cm.conv_matrix(a[::-1].copy()[None, None], (1, n), padding="same"),
                repeat)
    t_scipy = best(lambda: scipy.linalg.convolution_matrix(a, n, mode="same"), repeat)
    t_scipy_csr = best(lambda: sp.csr_array(scipy.linalg.convolution_matrix(a, n, mode="same")),
                       repeat)
    same = bool(abs(sp.csr_array(scipy.linalg.convolution_matrix(a, n, mode="same"))
                    - ours_1d).max() < 1e-12)
    print(f"| 1-D n={n}, {taps} taps 'same' | {t_1d:.5f} | scipy.linalg.convolution_matrix "
          f"(dense) | {t_scipy:.4f} | {t_scipy / t_1d:.0f} | {same} |")
    print(f"| 1-D n={n}, {taps} taps 'same' | {t_1d:.5f} | … + dense→CSR | {t_scipy_csr:.4f} | "
          f"{t_scipy_csr / t_1d:.0f} | {same} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip 1024×1024 and ResNet layers")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    args = parser.parse_args()
    np.ones(2**27 // 8 if args.quick else 2**30 // 8).sum()  # warm the allocator up once
    sc = optional("sparse_convolution")
    peer = getattr(sc, "__version__", "installed") if sc else "not installed (skipped)"
    print(f"sparse-convolution: {peer}; {os.cpu_count()} cores; numpy {np.__version__}, "
          f"scipy {scipy.__version__}\n")
    single_channel([256] if args.quick else [256, 1024], args.repeat)
    small_layers()
    if not args.quick:
        resnet(args.repeat)
    peers(args.repeat)


if __name__ == "__main__":
    main()
