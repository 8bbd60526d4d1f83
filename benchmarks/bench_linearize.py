"""Benchmark cm.linearize on a ResNet BasicBlock at 64×56×56 (issue 17, Performance).

Run from the repository root::

    python benchmarks/bench_linearize.py            # 64×56×56, 5 rounds
    python benchmarks/bench_linearize.py --size 28 --repeat 3

Two ratios, measured in the same run, single thread (torch.set_num_threads(1) and one BLAS
thread, set before numpy is imported):

* ``matvec``: ``linearize(block, x).operator().matvec(v)`` against torch's own
  ``torch.func.jvp(block, (x,), (v,))`` at x — the same Jacobian-vector product — in float64
  (linearize evaluates in float64), interleaved rounds, the minimum kept. Also ``rmatvec``
  against ``torch.func.vjp``.
* ``linearize``: ``cm.linearize(block, x)`` against one float64 forward pass plus the builds of
  the factors it needs (``from_torch`` of every linear module and the Jacobian kinds from
  their inputs), timed separately.

Both ratios are targets of the issue: at most 2.
"""

from __future__ import annotations

import argparse
import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import convmatrix as cm  # noqa: E402


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (inplace ReLU, ``out += identity``)."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: Any) -> Any:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


def _block(planes: int) -> BasicBlock:
    torch.manual_seed(0)
    block = BasicBlock(planes).double().eval()
    with torch.no_grad():
        for bn in (block.bn1, block.bn2):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    return block


def _best(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Interleaved rounds: every contender once per round; the minimum per contender."""
    times = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times


def _builds(block: BasicBlock, x: Any) -> Callable[[], None]:
    """The factors linearize needs, built from stored inputs (no forward pass)."""
    with torch.no_grad():
        a = block.bn1(block.conv1(x))
        b = block.bn2(block.conv2(torch.relu(a))) + x
    a_np, b_np = a[0].numpy(), b[0].numpy()
    shape = tuple(x.shape[1:])

    def build() -> None:
        for module in (block.conv1, block.bn1, block.conv2, block.bn2):
            cm.from_torch(module, shape)
        for z in (a_np, b_np):
            d = (z > 0).astype(np.float64)
            cm.Scale(z.shape, d, z * 0.0)

    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    block = _block(args.channels)
    x = torch.randn(1, args.channels, args.size, args.size, dtype=torch.float64)
    v = torch.randn_like(x)
    lin = cm.linearize(block, x)
    op = lin.operator()
    vec = v.numpy().ravel()
    w = np.random.default_rng(0).standard_normal(op.shape[0])
    wt = torch.from_numpy(w.reshape(x.shape))

    _, vjp_fn = torch.func.vjp(block, x)
    got = op.matvec(vec)
    want = torch.func.jvp(block, (x,), (v,))[1].detach().numpy().ravel()
    error = float(np.abs(got - want).max() / np.abs(want).max())
    times = _best({
        "operator matvec": lambda: op.matvec(vec),
        "torch jvp": lambda: torch.func.jvp(block, (x,), (v,)),
        "operator rmatvec": lambda: op.rmatvec(w),
        "torch vjp (backward only)": lambda: vjp_fn(wt),
        "torch forward": lambda: block(x.clone()),
        "factor builds": _builds(block, x),
        "linearize": lambda: cm.linearize(block, x),
    }, args.repeat)
    shape = f"{args.channels}×{args.size}×{args.size}"
    print(f"ResNet BasicBlock {shape}, float64, one thread, best of {args.repeat}")
    print(f"matvec relative error vs jvp: {error:.1e}")
    for name, seconds in times.items():
        print(f"  {name:28s} {seconds * 1e3:9.1f} ms")
    print(f"matvec / jvp                         "
          f"{times['operator matvec'] / times['torch jvp']:.2f}")
    print(f"rmatvec / vjp                        "
          f"{times['operator rmatvec'] / times['torch vjp (backward only)']:.2f}")
    baseline = times["torch forward"] + times["factor builds"]
    print(f"linearize / (forward + factor builds) {times['linearize'] / baseline:.2f}")


if __name__ == "__main__":
    main()
