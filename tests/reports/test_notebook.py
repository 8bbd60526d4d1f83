"""docs/tour.ipynb runs clean through a real Jupyter kernel (nbclient + ipykernel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "tour.ipynb"


@pytest.mark.slow
def test_the_tour_notebook_runs_clean_in_a_jupyter_kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel must import this checkout's convmatrix, not an installed one
    guard = nbformat.v4.new_code_cell(
        "import convmatrix, pathlib\n"
        f"assert pathlib.Path(convmatrix.__file__).resolve().is_relative_to({str(ROOT)!r}), "
        "convmatrix.__file__")
    nb.cells.insert(0, guard)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    client.execute(env=env)
    errors = [(i, out) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, errors
    # the cells produced what they claim: the seed's numbers and the full explanation
    text = "\n".join(str(out.get("text", "")) + str(out.get("data", {}))
                     for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []))
    assert "[[1. 2. 1.]" in text and "[4. 4.]" in text
    assert "Explanation(ConvTranspose2d 1×2×2 → 1×3×3, kernel 2×2)" in text
    assert "text/latex" in text and "Even overlap" in text
