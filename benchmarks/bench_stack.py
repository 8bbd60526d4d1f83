"""Benchmark a DCGAN generator as one sparse matrix: the chosen product order vs naive orders.

Run from the repository root (``PYTHONPATH=.`` makes it measure this checkout, not an
installed copy)::

    PYTHONPATH=. python benchmarks/bench_stack.py --generator-only --repeat 1   # full size
    PYTHONPATH=. python benchmarks/bench_stack.py --width 8 --max-flops 1e10    # a quick run

The generator (Radford et al. 2016): ``z`` (100×1×1) → ConvTranspose(100, 512, 4, 1, 0) →
512×4×4 → ConvTranspose(·, ·, 4, 2, 1) to 256×8×8, 128×16×16, 64×32×32 and 3×64×64 (five
transposed layers, float32 weights). For each association order it prints the wall time of
``Sequential.plan(order).matrix()`` (factors built one at a time, when needed; best of
``--repeat`` runs, interleaved), the peak memory tracemalloc sees during one more run (numpy's
and scipy's buffers), the final matrix's bytes, the largest
factor's bytes, and the two targets: time ≤ 1.1 × the layer-order product, and peak ≤ 2 × the
final matrix + the largest factor.

Orders: ``chosen`` (the dynamic program), ``layer order`` (input side first:
``M5(M4(M3(M2 M1)))``), ``output side first`` (``(((M5 M4) M3) M2) M1``; run only when its
estimated multiply-adds are below ``--max-flops``, else its estimate is shown).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import time
import tracemalloc
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp

import convmatrix as cm


def generator(width: int) -> cm.Sequential:
    """The DCGAN generator with channels 512/256/128/64 divided by ``width``."""
    rng = np.random.default_rng(0)
    channels = [100, 512 // width, 256 // width, 128 // width, 64 // width, 3]
    layers: list[cm.Layer] = []
    shape: tuple[int, ...] = (100, 1, 1)
    for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
        weight = rng.standard_normal((c_in, c_out, 4, 4)).astype(np.float32)
        geometry = {"stride": 1, "padding": 0} if i == 0 else {"stride": 2, "padding": 1}
        layer = cm.ConvTranspose(weight, shape, **geometry)
        layers.append(layer)
        shape = layer.output_shape
    return cm.Sequential(layers)


def nbytes(matrix: Any) -> int:
    return int(matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes)


def timed(plan: cm.layers.sequential.ProductPlan) -> tuple[float, float]:
    """CPU seconds (all threads; robust to other load on the machine) and wall seconds."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    matrix = plan.matrix(max_bytes=None)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    del matrix
    return cpu, wall


def traced(plan: cm.layers.sequential.ProductPlan) -> tuple[int, sp.csr_array]:
    """Peak traced bytes while forming the product, and the product."""
    gc.collect()
    tracemalloc.start()
    matrix = plan.matrix(max_bytes=None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, sp.csr_array(matrix)


def chain_orders(count: int) -> dict[str, Any]:
    layer_order: Any = 0
    for i in range(1, count):
        layer_order = (layer_order, i)
    output_first: Any = count - 1
    for i in range(count - 2, -1, -1):
        output_first = (i, output_first)
    return {"layer order": layer_order, "output side first": output_first}


def bench(title: str, stack: cm.Sequential, repeat: int, max_flops: float) -> None:
    print(f"\n### {title}\n")
    print(stack)
    sizes = []
    for layer in stack:
        matrix = layer.matrix(max_bytes=None)
        sizes.append((matrix.nnz, nbytes(matrix)))
        del matrix
    largest = max(b for _, b in sizes)
    print("factors (nnz / MiB):", ", ".join(f"{n:,} / {b / 2**20:.1f}" for n, b in sizes))
    plans = {"chosen": stack.plan()}
    plans.update({name: stack.plan(order) for name, order in chain_orders(len(stack)).items()})
    runnable: dict[str, Any] = {}
    same: dict[str, str] = {}
    for name, plan in plans.items():
        twin = next((other for other, p in runnable.items() if p.order == plan.order), None)
        if twin is not None:
            same[name] = twin  # the same computation: its figures are the twin's
        elif plan.flops <= max_flops:
            runnable[name] = plan
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runnable}
    for _ in range(repeat):  # interleaved, so load on the machine hits every order alike
        for name, plan in runnable.items():
            times[name].append(timed(plan))
    print("\n| order | product order | est. multiply-adds | best CPU s | best wall s | peak MiB |"
          " final MiB | largest factor MiB | peak / (2·final + largest) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    reference = None
    best: dict[str, float] = {}
    ratio: dict[str, float] = {}
    for name, plan in plans.items():
        order_text = str(plan).split(":")[0].removeprefix("product order ")
        if name in same:
            print(f"| {name} | {order_text} | {plan.flops:.3g} | = {same[name]} | | | | | |")
            best[name], ratio[name] = best[same[name]], ratio[same[name]]
            continue
        if name not in runnable:
            print(f"| {name} | {order_text} | {plan.flops:.3g} | not run (estimate above "
                  f"--max-flops) | | | | | |")
            continue
        peak, matrix = traced(plan)
        final = nbytes(matrix)
        if reference is None:
            reference = matrix
        else:
            scale = float(abs(reference).max())
            assert float(abs(matrix - reference).max()) <= 1e-3 * scale, "orders disagree"
        best[name] = min(cpu for cpu, _ in times[name])
        wall = min(w for _, w in times[name])
        ratio[name] = peak / (2 * final + largest)
        print(f"| {name} | {order_text} | {plan.flops:.3g} | {best[name]:.2f} | {wall:.2f} | "
              f"{peak / 2**20:.1f} | {final / 2**20:.1f} | {largest / 2**20:.1f} | "
              f"{ratio[name]:.2f} |")
        del matrix
    if "layer order" in best:
        print(f"\nchosen / layer-order CPU time: {best['chosen'] / best['layer order']:.2f} "
              f"(target ≤ 1.10); chosen peak / (2·final + largest factor): "
              f"{ratio['chosen']:.2f} (target ≤ 1.00)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1, help="divide the channels by this")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per order (best)")
    parser.add_argument("--generator-only", action="store_true",
                        help="skip the adjoint stack (halves the run time)")
    parser.add_argument("--max-flops", type=float, default=2e10,
                        help="skip orders estimated above this many multiply-adds")
    args = parser.parse_args()
    stack = generator(args.width)
    generator(8).plan().matrix()  # warm the allocator and the index caches up
    print(f"numpy {np.__version__}, scipy {scipy.__version__}")
    bench(f"DCGAN generator, channels / {args.width}", stack, args.repeat, args.max_flops)
    if not args.generator_only:
        bench(f"its adjoint (3×64×64 → 100), channels / {args.width}", stack.T, args.repeat,
              args.max_flops)


if __name__ == "__main__":
    main()
