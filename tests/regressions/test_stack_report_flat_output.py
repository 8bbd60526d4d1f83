"""A stack ending in Flatten/Linear crashed the report's figures; its overlap text misled.

Found by a newcomer's walkthrough (issue 20): ``convmatrix report --stack
docs/reference/stack-example.toml`` (the documented example file, which ends in ``Flatten`` and
``Linear``) failed with matplotlib's "Invalid shape () for image data" — the overlap map of an
output without spatial axes is 0-D — and so did ``convmatrix compare`` of it; with
``--no-figures`` the report said "every output pixel is within reach of a border" of an output
that has no pixels.
"""

from pathlib import Path

import pytest

from convmatrix.cli import main

pytest.importorskip("matplotlib")
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "stack-example.toml"


def test_report_and_compare_of_a_stack_with_a_flat_output(tmp_path):
    assert main(["report", "--stack", str(EXAMPLE), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert "no spatial axes" in text and "within reach of a border" not in text
    pngs = list((tmp_path / "r").glob("*.png"))
    assert pngs and all(p.stat().st_size > 0 for p in pngs)
    assert main(["compare", str(EXAMPLE), str(EXAMPLE), "--out", str(tmp_path / "c")]) == 0


def test_flat_output_verdict_text():
    from convmatrix.reports.stackfile import load_stack

    verdict = load_stack(EXAMPLE).stack.checkerboard()
    assert verdict.verdict == "no interior" and "no spatial axes" in verdict.describe()
