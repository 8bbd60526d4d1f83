"""Issue 17's single-input kinds applied matrix-free (``operator()``) against torch, one thread.

For each kind: the time of ``layer.operator().matmat`` (forward) and ``rmatmat`` (adjoint) on
a batch against torch's own forward and its input gradient on the same batch, best of 5 after
a warm-up, as ratios measured in this run (run: ``python benchmarks/bench_dense_kinds.py``).
torch's slicing and flattening return views: the torch side copies them (``.clone()``), as
the operator's result is a new array.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time

import numpy as np
import torch

import convmatrix as cm

torch.set_num_threads(1)


def best(function, repeats=5):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def case(name, layer, module_forward, batch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *layer.input_shape))
    g = rng.standard_normal((batch, *layer.output_shape))
    op = layer.operator(max_bytes=None)
    xs = x.reshape(batch, -1).T.copy()
    gs = g.reshape(batch, -1).T.copy()
    ours_f = best(lambda: op.matmat(xs))
    ours_a = best(lambda: op.rmatmat(gs))
    tx = torch.from_numpy(x)
    tg = torch.from_numpy(g)
    with torch.no_grad():
        theirs_f = best(lambda: module_forward(tx))

    def gradient():
        inp = tx.clone().requires_grad_(True)
        torch.autograd.grad(module_forward(inp), inp, tg)

    theirs_a = best(gradient)
    print(f"| {name} | {batch} | {ours_f:.4f} | {theirs_f:.4f} | {ours_f / theirs_f:.2f} | "
          f"{ours_a:.4f} | {theirs_a:.4f} | {ours_a / theirs_a:.2f} |")


def main():
    print("| layer | batch | ours fwd s | torch fwd s | ratio | ours adj s | torch grad s "
          "| ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((1000, 2048))
    bias = rng.standard_normal(1000)
    tw, tb = torch.from_numpy(weight), torch.from_numpy(bias)
    case("Linear 2048 → 1000", cm.Linear(weight, bias), lambda x: torch.nn.functional.linear(
        x, tw, tb), 64)
    scale = rng.standard_normal((64, 1, 1))
    ts = torch.from_numpy(scale)
    case("Scale 64×56×56 per channel", cm.Scale((64, 56, 56), scale, shift=1.0),
         lambda x: x * ts + 1.0, 16)
    case("GlobalAvgPool 2048×7×7", cm.GlobalAvgPool((2048, 7, 7)),
         lambda x: x.mean(dim=(2, 3)), 64)
    case("AdaptiveAvgPool 512×14×14 → 5×5", cm.AdaptiveAvgPool((512, 14, 14), 5),
         lambda x: torch.nn.functional.adaptive_avg_pool2d(x, 5), 16)
    case("Slice 256×28×28 channels 64:192", cm.Slice((256, 28, 28), 0, 64, 192),
         lambda x: x[:, 64:192].clone(), 16)
    case("Flatten 512×7×7", cm.Flatten((512, 7, 7)), lambda x: torch.flatten(x, 1).clone(), 64)


if __name__ == "__main__":
    main()
