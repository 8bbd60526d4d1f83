"""Time symbolic outputs of transposed convolutions of growing size (linear in non-zeros?).

Run from the repository root: ``python benchmarks/bench_symbolic.py`` (``--quick`` stops at 1×64×64
and the 1-D sweep at n = 10⁵). For each layer it prints the stored entries of ``Cᵀ``, the time
``convmatrix.symbolic.conv_transpose_outputs`` takes to write every output as an explicit sum of
``w·x`` products (best of ``--repeat`` runs), and microseconds per stored entry: a constant last
column means time grows linearly with the non-zeros. The "general SymPy" column times the same sums
built with SymPy's general constructors (``sympy.Add(*(w * x …))``, what the module does when the
caller passes its own symbols or numbers) on the smaller layers, for comparison.

A second table sweeps a 1-D 3-tap convolution over n = 10³ … 10⁶ inputs: microseconds per output
of ``sym.conv_outputs`` (``max_terms=None``) and the ratio to n = 10³ (flat means linear in the
layer's size), and ``sym.explain``, which derives a sample of outputs (its other parts, the
overlap map and the per-axis counts, are numpy arrays of the layer's size); then ``explain`` of a
1×10⁷ layer.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    import convmatrix as cm
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import convmatrix as cm

from convmatrix import symbolic as sym

LAYERS = [  # (weight shape, input shape, stride): 3x3 kernel, stride 2
    ((1, 1, 3, 3), (1, 8, 8), 2),
    ((1, 1, 3, 3), (1, 16, 16), 2),
    ((1, 1, 3, 3), (1, 32, 32), 2),
    ((1, 1, 3, 3), (1, 64, 64), 2),
    ((2, 2, 3, 3), (2, 32, 32), 2),
    ((1, 1, 3, 3), (1, 96, 96), 2),
    ((1, 1, 3, 3), (1, 128, 128), 2),
]
GENERAL_MAX_NNZ = 10_000  # the general constructors are timed up to this many entries


def _time_outputs(wshape: tuple[int, ...], ishape: tuple[int, ...], stride: int, repeat: int,
                  **symbols: object) -> float:
    """Best time of ``conv_transpose_outputs`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sym.conv_transpose_outputs(wshape, ishape, stride=stride, **symbols)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at the 1×64×64 layer")
    parser.add_argument("--repeat", type=int, default=3, help="runs per layer (best is shown)")
    parser.add_argument("--sweep-only", action="store_true", help="only the 1-D sweep")
    args = parser.parse_args(argv)
    if not args.sweep_only:
        _transposed_table(args)
    print()
    _sweep(quick=args.quick, repeat=args.repeat)


def _best(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def _sweep(*, quick: bool, repeat: int) -> None:
    """Per-output time of a 1-D 3-tap convolution from n = 10³ to 10⁶, and a 1×10⁷ explain."""
    sizes = [10**3, 10**4, 10**5] + ([] if quick else [10**6])
    print("| 1-D conv, kernel 3, n | outputs | `conv_outputs` s | µs per output | / n = 10³ "
          "| `explain` s | outputs it samples | `explain` µs per layer output |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    first = 0.0
    for n in sizes:
        outputs = n - 2
        runs = repeat if n <= 10**5 else 1  # 10⁶ SymPy sums take about 1 GiB and half a minute
        seconds = _best(lambda n=n: sym.conv_outputs((1, 1, 3), (1, n), max_terms=None), runs)
        per = 1e6 * seconds / outputs
        first = first or per
        explained = _best(lambda n=n: sym.explain((1, 1, 3), (1, n)), repeat)
        sampled = len(sym.explain((1, 1, 3), (1, n)).outputs)
        print(f"| {n:,} | {outputs:,} | {seconds:.3f} | {per:.1f} | {per / first:.2f} | "
              f"{explained:.4f} | {sampled} | {1e6 * explained / outputs:.3f} |")
    n = 10**7
    layer = cm.Conv(np.ones((1, 1, 3)), (1, n))
    seconds = _best(lambda: sym.explain(layer), repeat)
    print(f"\n`explain` of a 1×{n:,} layer (Conv, kernel 3): {seconds:.2f} s (best of {repeat})")


def _transposed_table(args: argparse.Namespace) -> None:
    layers = LAYERS[:4] if args.quick else LAYERS
    print("| transposed layer | output | nnz of Cᵀ | seconds | µs per nnz | general SymPy s |")
    print("|---|---|---:|---:|---:|---:|")
    for wshape, ishape, stride in layers:
        spec = cm.conv_transpose_spec(wshape, ishape, stride=stride)
        nnz = spec.nnz_upper_bound()  # exact for zero padding
        seconds = _time_outputs(wshape, ishape, stride, args.repeat)
        general = "–"
        if nnz <= GENERAL_MAX_NNZ:  # the same symbols, passed in: SymPy's general constructors
            slow = _time_outputs(wshape, ishape, stride, 1, weight=sym.weight_symbols(wshape),
                                 x=sym.input_symbols(ishape))
            general = f"{slow:.2f}"
        print(f"| {'×'.join(map(str, ishape))}, kernel 3×3, stride {stride}, C_out "
              f"{wshape[1]} | {'×'.join(map(str, spec.input_shape))} | {nnz:,} | "
              f"{seconds:.2f} | {1e6 * seconds / nnz:.1f} | {general} |")


if __name__ == "__main__":
    main()
