"""Benchmark exact matrices of whole networks (issue 17): dense-when-dense products and graphs.

Run from the repository root::

    python benchmarks/bench_graph.py            # both parts
    python benchmarks/bench_graph.py --quick    # the DCGAN generator only

1. **DCGAN generator** (Linear 100 → 4·4·512, view, BatchNorm, ConvTranspose 4×4 stride 2
   512 → 256 → 128 → 64 → 3 with BatchNorm, to 3×64×64): its exact 12288×100 matrix from
   ``cm.from_torch(generator).matrix()`` (a Sequential: the product plan applies the later
   layers to the dense product's columns instead of chaining sparse products) against
   ``torch.func.jacfwd`` of the same map converted to CSR, in the same run: seconds and the
   growth of the peak resident memory over the model's own footprint (each method in a fresh
   process, so torch's allocations count too), single thread.
2. **A 4-block U-Net at 32×32** as a ``cm.Graph`` (two down blocks, two up blocks with
   concatenated skips): ``Graph.matrix()`` against the sum of its factors' builds
   (every layer's ``matrix()``) plus the products' output size at the memory-write bound
   (fresh arrays of the result's sizes, filled once), and beside it the same matrix by
   chaining scipy's sparse products (the path before the blocked form,
   ``convmatrix.builder.stencil``), all in the same run.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

import convmatrix as cm


def best_time(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    gc.collect()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        gc.collect()
    return min(times)


def dcgan(torch: Any) -> Any:
    nn = torch.nn

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(100, 4 * 4 * 512)
            self.net = nn.Sequential(
                nn.BatchNorm2d(512),
                nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256),
                nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128),
                nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64),
                nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False))

        def forward(self, z: Any) -> Any:
            return self.net(self.fc(z).view(-1, 512, 4, 4))

    torch.manual_seed(0)
    generator = Generator().eval()
    for module in generator.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return generator


def _dcgan_method(method: str, repeat: int) -> tuple[float, float, sp.sparray]:
    """Seconds (best of ``repeat``) and peak RSS growth in MiB of one method, in this process."""
    import resource

    import torch

    torch.set_num_threads(1)
    generator = dcgan(torch).double()
    layer = cm.from_torch(generator, (100,))
    chain = cm.Sequential(list(layer.node_layers()))  # the same layers as one cm.Sequential
    z = torch.zeros(100, dtype=torch.float64)

    def run() -> sp.sparray:
        if method == "graph":
            return layer.matrix()
        if method == "sequential":
            return chain.matrix()
        jac = torch.func.jacfwd(lambda v: generator(v[None])[0])(z)
        return sp.csr_array(jac.detach().reshape(-1, 100).numpy())

    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run()
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return best_time(run, repeat), peak, result


def bench_dcgan(repeat: int, rounds: int = 3) -> None:
    """Each method in a fresh process (peak RSS growth over the model's own footprint).

    The methods take turns for ``rounds`` rounds (the machine's load shifts between minutes);
    each method's best time and its smallest peak are reported.
    """
    import json
    import os
    import subprocess
    import sys

    # one thread for torch (set in the method) and for numpy's BLAS alike
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    methods = ("jacfwd", "graph", "sequential")
    runs: dict[str, list[dict[str, float]]] = {method: [] for method in methods}
    for _ in range(rounds):
        for method in methods:
            out = subprocess.run([sys.executable, __file__, "--dcgan-method", method,
                                  "--repeat", str(repeat)], check=True, capture_output=True,
                                 text=True, env=env).stdout
            runs[method].append(json.loads(out.strip().splitlines()[-1]))
    rows = {method: {"seconds": min(r["seconds"] for r in runs[method]),
                     "peak_mib": min(r["peak_mib"] for r in runs[method]),
                     "checksum": runs[method][0]["checksum"]} for method in methods}
    t_jac, p_jac = rows["jacfwd"]["seconds"], rows["jacfwd"]["peak_mib"]
    print(f"DCGAN generator: matrix (12288, 100); same as jacfwd: "
          f"{all(r['checksum'] == rows['jacfwd']['checksum'] for r in rows.values())}; "
          f"best of {rounds} interleaved rounds")
    print("| method | seconds | × jacfwd | peak RSS growth MiB | × jacfwd |")
    print("|---|---:|---:|---:|---:|")
    names = {"graph": "cm.from_torch(generator).matrix() (a Graph)",
             "sequential": "cm.Sequential(same layers).matrix()",
             "jacfwd": "torch.func.jacfwd → CSR"}
    for method in ("graph", "sequential", "jacfwd"):
        t, p = rows[method]["seconds"], rows[method]["peak_mib"]
        print(f"| {names[method]} | {t:.3f} | {t / t_jac:.2f} | {p:.1f} | {p / p_jac:.2f} |")
    per_round = [f"{g['seconds'] / j['seconds']:.2f}" for g, j in
                 zip(runs["graph"], runs["jacfwd"], strict=True)]
    print(f"graph / jacfwd per round: {', '.join(per_round)}")


def unet(rng: np.random.Generator) -> cm.Graph:
    """Two down blocks (conv 3×3 + conv stride 2) and two up blocks (convT 2×2 s2 + skip cat)."""
    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape)

    nodes = [
        cm.Node("enc1", cm.Conv(w(8, 3, 3, 3), (3, 32, 32), padding=1), ("input",)),
        cm.Node("down1", cm.Conv(w(16, 8, 3, 3), (8, 32, 32), stride=2, padding=1), ("enc1",)),
        cm.Node("enc2", cm.Conv(w(16, 16, 3, 3), (16, 16, 16), padding=1), ("down1",)),
        cm.Node("down2", cm.Conv(w(32, 16, 3, 3), (16, 16, 16), stride=2, padding=1),
                ("enc2",)),
        cm.Node("up2", cm.ConvTranspose(w(32, 16, 2, 2), (32, 8, 8), stride=2), ("down2",)),
        cm.Node("cat2", cm.Cat(0), ("up2", "enc2")),
        cm.Node("dec2", cm.Conv(w(16, 32, 3, 3), (32, 16, 16), padding=1), ("cat2",)),
        cm.Node("up1", cm.ConvTranspose(w(16, 8, 2, 2), (16, 16, 16), stride=2), ("dec2",)),
        cm.Node("cat1", cm.Cat(0), ("up1", "enc1")),
        cm.Node("dec1", cm.Conv(w(3, 16, 3, 3), (16, 32, 32), padding=1), ("cat1",)),
    ]
    return cm.Graph((3, 32, 32), nodes, "dec1")


def write_bound(matrices: list[sp.csr_array]) -> float:
    """Fresh arrays of the matrices' sizes and dtypes, each filled once (one thread)."""
    def fill() -> None:
        for m in matrices:
            for array in (m.data, m.indices, m.indptr):
                out = np.empty_like(array)
                out.fill(1)

    return best_time(fill, 3)


def bench_unet(repeat: int) -> None:
    from convmatrix.layers import graph as graph_module

    graph = unet(np.random.default_rng(0))
    layers = list(graph.node_layers())
    t_graph = best_time(lambda: graph.matrix(), repeat)
    threshold = graph_module.STENCIL_FLOPS
    graph_module.STENCIL_FLOPS = float("inf")  # the sparse products, as before
    try:
        sparse_plan = str(graph.plan())
        t_sparse = best_time(lambda: graph.matrix(), repeat)
        sparse_result = graph.matrix()
    finally:
        graph_module.STENCIL_FLOPS = threshold
    t_factors = best_time(lambda: [layer.matrix() for layer in layers], repeat)
    # the products' outputs: every node's matrix with respect to the input
    products = []
    for node in graph.nodes:
        sub = cm.Graph(graph.input_shape, graph.nodes[: graph.nodes.index(node) + 1], node.name)
        products.append(sp.csr_array(sub.matrix()))
    t_write = write_bound(products)
    result = graph.matrix()
    difference = abs(result - sparse_result).max() / abs(sparse_result).max()
    print(f"U-Net 4 blocks at 32×32: matrix {result.shape}, nnz {result.nnz:,}; "
          f"products written: {sum(p.nnz for p in products):,} entries; "
          f"blocked vs sparse products: max relative difference {difference:.1e}")
    print(f"plan: {graph.plan()}; before: {sparse_plan}")
    print("| Graph.matrix() s | factors' builds s | products' write bound s | ratio "
          "| sparse products s | ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    bound = t_factors + t_write
    print(f"| {t_graph:.3f} | {t_factors:.3f} | {t_write:.3f} | {t_graph / bound:.2f} "
          f"| {t_sparse:.3f} | {t_sparse / bound:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dcgan-method", choices=("graph", "sequential", "jacfwd"))
    args = parser.parse_args()
    if args.dcgan_method:
        import json

        seconds, peak, result = _dcgan_method(args.dcgan_method, args.repeat)
        checksum = round(float(abs(result).sum()), 6)
        print(json.dumps({"seconds": seconds, "peak_mib": peak, "checksum": checksum}))
        return
    bench_dcgan(args.repeat, args.rounds)
    if not args.quick:
        print()
        bench_unet(args.repeat)


if __name__ == "__main__":
    main()
