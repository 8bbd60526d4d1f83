"""Doctest collection skips the deprecated alias modules (importing them warns, by design).

Live Keras tests run Keras 3 on the torch backend (set before anything imports keras).
"""

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

_PACKAGE = Path(__file__).parent / "convmatrix"

collect_ignore = [
    str(path)
    for path in _PACKAGE.rglob("*.py")
    if "alias_module(__name__" in path.read_text() or path.parent.name == "frameworks"
]
