"""Time symbolic outputs of transposed convolutions of growing size (linear in non-zeros?).

Run from the repository root: ``python benchmarks/bench_symbolic.py``. For each layer it prints
the stored entries of ``Cᵀ``, the time ``convmatrix.symbolic.conv_transpose_outputs`` takes to
write every output as an explicit sum of ``w·x`` products, and microseconds per stored entry;
a constant last column means time grows linearly with the non-zeros.
"""

from __future__ import annotations

import time

import convmatrix as cm
from convmatrix import symbolic as sym

LAYERS = [  # (weight shape, input shape, stride): 1 channel, 3x3 kernel, stride 2
    ((1, 1, 3, 3), (1, 8, 8), 2),
    ((1, 1, 3, 3), (1, 16, 16), 2),
    ((1, 1, 3, 3), (1, 32, 32), 2),
    ((1, 1, 3, 3), (1, 64, 64), 2),
    ((2, 2, 3, 3), (2, 32, 32), 2),
    ((1, 1, 3, 3), (1, 96, 96), 2),
]


def main() -> None:
    print("| transposed layer | output | nnz of Cᵀ | seconds | µs per nnz |")
    print("|---|---|---:|---:|---:|")
    for wshape, ishape, stride in LAYERS:
        spec = cm.conv_transpose_spec(wshape, ishape, stride=stride)
        nnz = spec.nnz_upper_bound()
        start = time.perf_counter()
        outputs = sym.conv_transpose_outputs(wshape, ishape, stride=stride)
        elapsed = time.perf_counter() - start
        print(f"| {'×'.join(map(str, ishape))}, kernel 3×3, stride {stride}, C_out "
              f"{wshape[1]} | {'×'.join(map(str, outputs.shape))} | {nnz:,} | {elapsed:.2f} | "
              f"{1e6 * elapsed / nnz:.1f} |")


if __name__ == "__main__":
    main()
