"""Weight values for a layer described only by shapes (the command line and built-in reports)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from convmatrix._errors import ConvMatrixError

__all__ = ["WEIGHT_FILLS", "make_weight"]

WEIGHT_FILLS = ("ones", "arange", "random")


def make_weight(shape: Sequence[int], fill: str = "ones", seed: int = 0) -> np.ndarray:
    """Weight values for a layer described only by shapes.

    Parameters
    ----------
    shape : sequence of int
        The weight shape.
    fill : {"ones", "arange", "random"}
        All ones (integers, as in the seed example), ``1, 2, 3, ...`` (integers, so every tap is
        recognisable in an output), or seeded standard-normal floats.
    seed : int
        Seed for ``"random"``.

    Returns
    -------
    ndarray
        int64 for ``"ones"`` and ``"arange"``, float64 for ``"random"``.

    Examples
    --------
    >>> make_weight((1, 1, 2, 2), "arange")[0, 0].tolist()
    [[1, 2], [3, 4]]
    """
    shape = tuple(shape)
    if fill == "ones":
        return np.ones(shape, dtype=np.int64)
    if fill == "arange":
        return np.arange(1, math.prod(shape) + 1, dtype=np.int64).reshape(shape)
    if fill == "random":
        return np.random.default_rng(seed).standard_normal(shape)
    raise ConvMatrixError(f"`fill` (={fill!r}) must be one of {', '.join(WEIGHT_FILLS)}")
