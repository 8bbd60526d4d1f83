"""The first build in a fresh process against later ones (issue 19: "first call in a process").

Run from the repository root: ``python benchmarks/bench_first_call.py [--repeat N]``. Each of
``N`` fresh interpreters imports convmatrix, then times, for a 1×32×32 3×3 ``Conv``:

- ``first cm.Conv``: the first use of a layer name (imports the layers and the builder lazily);
- ``first build``: the first ``layer.matrix()`` in the process;
- ``rebuild``: the same build again after ``convmatrix.cache.clear_cache()`` (no cached layout);
- ``cached``: the build again with the layout cached (a new layer object, same geometry).

It prints the minimum and the median over the processes of the wall time and of the process's
CPU time (which a loaded machine inflates less), and the ratio first build / rebuild.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, time
import numpy as np
import convmatrix as cm
def timed(f):
    w0, c0 = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - w0, time.process_time() - c0
w = np.ones((1, 1, 3, 3))
out = {"first cm.Conv": timed(lambda: cm.Conv)}
out["first build"] = timed(lambda: cm.Conv(w, (1, 32, 32)).matrix())
cm.cache.clear_cache()
out["rebuild"] = timed(lambda: cm.Conv(w, (1, 32, 32)).matrix())
out["cached"] = timed(lambda: cm.Conv(w, (1, 32, 32)).matrix())
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="fresh processes")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD], check=True, env=env,
                                      cwd=ROOT, capture_output=True, text=True).stdout)
            for _ in range(args.repeat)]
    print(f"| step (1×32×32, 3×3; {args.repeat} fresh processes) | wall min ms | wall median ms "
          "| CPU min ms | CPU median ms |")
    print("|---|---:|---:|---:|---:|")
    for step in runs[0]:
        wall = [1e3 * run[step][0] for run in runs]
        cpu = [1e3 * run[step][1] for run in runs]
        print(f"| {step} | {min(wall):.3f} | {statistics.median(wall):.3f} | {min(cpu):.3f} | "
              f"{statistics.median(cpu):.3f} |")
    first = min(1e3 * run["first build"][1] for run in runs)
    again = min(1e3 * run["rebuild"][1] for run in runs)
    print(f"\nfirst build / rebuild (CPU, min): {first / again:.2f}")


if __name__ == "__main__":
    main()
