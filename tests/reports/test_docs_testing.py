"""docs/guides/testing.md's examples run as doctests, so the messages they show cannot rot."""

import doctest
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "guides" / "testing.md"


def test_worked_example_in_docs_runs():
    result = doctest.testfile(str(DOC), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted >= 5
    assert result.failed == 0
