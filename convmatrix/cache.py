"""A byte-budgeted, least-recently-used cache for the per-geometry layouts the builders reuse."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from convmatrix._errors import ConvMatrixError

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "cache_nbytes",
    "cached",
    "clear_cache",
    "peek",
    "set_cache_budget",
]

DEFAULT_CACHE_BYTES: int = 64 * 2**20
"""Bytes the cache may hold by default (64 MiB)."""

T = TypeVar("T")

_lock = threading.Lock()
_entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
_state = {"nbytes": 0, "budget": DEFAULT_CACHE_BYTES}


def cached(key: Hashable, compute: Callable[[], T], nbytes: Callable[[T], int]) -> T:
    """Return the cached value of ``key``, computing (and storing it, if it fits) on a miss.

    A value larger than a quarter of the budget is returned but not kept; older entries are
    evicted, least recently used first, until the new one fits.
    """
    with _lock:
        hit = _entries.get(key)
        if hit is not None:
            _entries.move_to_end(key)
            return hit[0]  # type: ignore[no-any-return]
    value = compute()
    size = int(nbytes(value))
    with _lock:
        if size <= _state["budget"] // 4 and key not in _entries:
            _entries[key] = (value, size)
            _state["nbytes"] += size
            _evict(_state["budget"])
    return value


def peek(key: Hashable) -> Any:
    """The cached value of ``key`` (marked as recently used), or None; never computes."""
    with _lock:
        hit = _entries.get(key)
        if hit is not None:
            _entries.move_to_end(key)
    return None if hit is None else hit[0]


def _evict(budget: int) -> None:
    while _state["nbytes"] > budget and _entries:
        _, (_, size) = _entries.popitem(last=False)
        _state["nbytes"] -= size


def cache_nbytes() -> int:
    """Bytes held by the cache of per-geometry layouts and index tables.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> cm.cache.clear_cache()
    >>> cm.cache.cache_nbytes()
    0
    >>> _ = cm.conv_matrix(np.ones((1, 1, 3, 3)), (1, 8, 8))
    >>> 0 < cm.cache.cache_nbytes() <= cm.cache.set_cache_budget(None)
    True
    """
    with _lock:
        return int(_state["nbytes"])


def clear_cache() -> None:
    """Drop every cached layout and index table (they are recomputed on the next build)."""
    with _lock:
        _entries.clear()
        _state["nbytes"] = 0


def set_cache_budget(max_bytes: int | None) -> int:
    """Set the cache's byte budget (None: leave it) and return the budget in force before.

    Parameters
    ----------
    max_bytes : int or None
        Non-negative; 0 disables caching. Entries over the new budget are evicted at once.

    Returns
    -------
    int
        The previous budget.
    """
    with _lock:
        previous = int(_state["budget"])
        if max_bytes is None:
            return previous
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ConvMatrixError(
                f"`max_bytes` (={max_bytes!r}) must be a non-negative int (bytes) or None"
            )
        _state["budget"] = max_bytes
        _evict(max_bytes)
        return previous
