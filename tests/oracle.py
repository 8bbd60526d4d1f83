"""Load the framework oracle vectors shipped in tests/data/oracle (see its README)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

ORACLE_DIR = Path(__file__).parent / "data" / "oracle"


@cache
def cases() -> tuple[dict[str, Any], ...]:
    """Every record of cases.json, in file order."""
    return tuple(json.loads((ORACLE_DIR / "cases.json").read_text()))


@cache
def _arrays() -> dict[str, np.ndarray]:
    with np.load(ORACLE_DIR / "arrays.npz") as archive:
        return {key: archive[key] for key in archive.files}


def arrays(case: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of one case, by name (``x``, ``weight``/``kernel``, ``y``, ...)."""
    store = _arrays()
    return {name: store[f"{case['id']}__{name}"] for name in case["arrays"]}


def select(framework: str, op: str | None = None) -> list[dict[str, Any]]:
    """Cases of one framework (and op), for ``pytest.mark.parametrize``."""
    return [c for c in cases() if c["framework"] == framework and op in (None, c["op"])]


def torch_padding(case: dict[str, Any]) -> Any:
    """The case's padding as convmatrix takes it (JSON lists of pairs become tuples)."""
    padding = case["padding"]
    if isinstance(padding, list) and padding and isinstance(padding[0], list):
        return tuple(tuple(pair) for pair in padding)
    return padding
