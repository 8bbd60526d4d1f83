"""Doctest collection skips the deprecated alias modules (importing them warns, by design)."""

from pathlib import Path

_PACKAGE = Path(__file__).parent / "convmatrix"

collect_ignore = [
    str(path)
    for path in _PACKAGE.rglob("*.py")
    if "alias_module(__name__" in path.read_text() or path.parent.name == "frameworks"
]
