"""What the symbolic size guard (``max_terms``) refuses, how fast, and what the default admits.

Run from the repository root: ``python benchmarks/bench_symbolic_guard.py`` (``--quick`` skips
the timed derivation). Prints, for layers a user tried (issue 8), the time until the
``ConvMatrixError`` and its message; then the time and resident-memory growth of
``conv_outputs`` for a 147,456-term layer, per term, and scaled to the default ``max_terms``
(the cost is linear in the terms: ``bench_symbolic.py``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import convmatrix as cm
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import convmatrix as cm

from convmatrix import symbolic as sym

REFUSED: list[tuple[str, Callable[[], Any]]] = [
    ("conv_outputs 16×32×32, k 3, p 1 (ran 221 s)",
     lambda: sym.conv_outputs((16, 16, 3, 3), (16, 32, 32), padding=1)),
    ("conv_outputs 64×56×56, k 3, p 1 (memory grew without end)",
     lambda: sym.conv_outputs((64, 64, 3, 3), (64, 56, 56), padding=1)),
    ("conv_transpose_matrix 64×56×56, k 3, s 2",
     lambda: sym.symbolic_conv_transpose_matrix((64, 64, 3, 3), (64, 56, 56), stride=2)),
    ("explain ConvTranspose 1×3×3, s 99999999 (hung)",
     lambda: sym.explain((1, 1, 3, 3), (1, 3, 3), direction="adjoint", stride=99999999)),
    ("explain Conv 1×3×3, padding 40000",
     lambda: sym.explain((1, 1, 3, 3), (1, 3, 3), padding=40000)),
]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the layer at the limit")
    args = parser.parse_args(argv)
    print("| call | seconds to refuse | message |")
    print("|---|---:|---|")
    for label, call in REFUSED:
        start = time.perf_counter()
        try:
            call()
            message = "(not refused)"
        except cm.ConvMatrixError as error:
            message = str(error)
        print(f"| {label} | {time.perf_counter() - start:.4f} | {message[:90]}… |")
    if args.quick:
        return
    wshape, ishape = (1, 1, 3, 3), (1, 128, 128)
    terms = cm.conv_spec(wshape, ishape, padding=1).nnz_upper_bound()
    limit = sym.conv_outputs.__kwdefaults__["max_terms"]
    before = _peak_mib()
    start = time.perf_counter()
    sym.conv_outputs(wshape, ishape, padding=1)
    seconds, mib = time.perf_counter() - start, _peak_mib() - before
    print(f"\nconv_outputs {ishape}, k 3, p 1: {terms:,} terms in {seconds:.1f} s, peak RSS "
          f"+{mib:.0f} MiB ({1e6 * seconds / terms:.0f} µs, {2**20 * mib / terms:.0f} B per "
          f"term); at the default max_terms ({limit:,}): about {seconds * limit / terms:.0f} s, "
          f"{mib * limit / terms:.0f} MiB")

if __name__ == "__main__":
    main()
