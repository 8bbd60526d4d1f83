"""Scratch memory of the kernels: per-role buffers kept per thread, aligned apart."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ScratchBuffer"]


_KEEP_BYTES = 16 * 2**20
_POOL = threading.local()
# distinct addresses modulo 4 KiB for the buffers one loop reads and writes together: equal
# low address bits make every load wait on the store before it (4K aliasing), 5-10x slower
_OFFSETS = {"pad": 1088, "columns": 2240, "rows": 3392, "fold": 448, "padded": 1600,
            "phases": 2816, "shifted": 3968}


def _scratch(role: str, nbytes: int,
             held: tuple[np.ndarray, int] | None = None) -> tuple[np.ndarray, int]:
    """A buffer of at least ``nbytes`` for ``role`` and the offset of its aligned memory.

    Fresh memory costs a page fault per page on its first write (a large part of a product
    on some machines): buffers of at most ``_KEEP_BYTES`` are kept per thread between calls,
    and a buffer ``held`` by the caller (one call's :class:`ScratchBuffer`) is reused while it is
    large enough, so a call's tiles and chunks never hold two large buffers at once.
    """
    if held is not None and held[0].size >= held[1] + nbytes:
        return held
    pool: dict[str, tuple[np.ndarray, int]] = _POOL.__dict__.setdefault("buffers", {})
    buffer, start = pool.get(role, (None, 0))
    if buffer is not None and buffer.size >= start + nbytes:
        return buffer, start
    offset = _OFFSETS.get(role, 0)
    buffer = np.empty(nbytes + offset + 64, dtype=np.uint8)
    start = offset + (-buffer.__array_interface__["data"][0] - offset) % 64
    if nbytes <= _KEEP_BYTES:
        pool[role] = (buffer, start)
    return buffer, start


class ScratchBuffer:
    """Scratch memory for one role; each tile takes a prefix in the shape it needs."""

    def __init__(self, dtype: np.dtype[Any], role: str) -> None:
        self.dtype = np.dtype(dtype)
        self.role = role
        self.held: tuple[np.ndarray, int] | None = None

    def take(self, shape: Sequence[int], batch_last: bool) -> np.ndarray:
        """A ``(b, *rest)`` view of a prefix; memory ``(*rest, b)`` when ``batch_last``.

        The memory of the views taken before is reused: take the next tile's view once the
        last one is done with.
        """
        nbytes = math.prod(shape) * self.dtype.itemsize
        self.held = _scratch(self.role, nbytes, self.held)
        buffer, start = self.held
        flat = buffer[start:start + nbytes].view(self.dtype)
        if batch_last:
            return np.moveaxis(flat.reshape(*shape[1:], shape[0]), -1, 0)
        return flat.reshape(shape)
