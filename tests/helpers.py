"""Shared test helpers: deterministic per-test data and checks used by several test modules."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np


def seed(*key: object) -> int:
    """A seed derived from the test's own parameters (for torch.manual_seed and the like)."""
    return zlib.crc32(repr(key).encode())


def rng(*key: object) -> np.random.Generator:
    """A generator seeded from the test's own parameters, so ``-k`` never changes the data.

    Examples
    --------
    >>> float(rng("a", 1).standard_normal()) == float(rng("a", 1).standard_normal())
    True
    """
    return np.random.default_rng(seed(*key))


def assert_linearizes(lin: Any, model: Any, x: Any) -> None:
    """``lin`` (a ``cm.linearize`` result) is ``model``'s Jacobian at ``x`` and its offset is
    ``f(x) − J x``, both against torch (``torch.func.jacrev`` and the live forward), 1e-12."""
    import warnings

    import torch

    n = x.numel()
    with warnings.catch_warnings():  # torch: no batching rule for some backwards (slow path)
        warnings.simplefilter("ignore")
        expected = torch.func.jacrev(model)(x).reshape(-1, n).detach().numpy()
    value = model(x).detach().numpy().ravel()
    np.testing.assert_allclose(lin.matrix().toarray(), expected, rtol=1e-12, atol=1e-12)
    offset = value - expected @ x.numpy().ravel()
    np.testing.assert_allclose(np.asarray(lin.offset()).ravel(), offset, rtol=1e-12,
                               atol=1e-12)
