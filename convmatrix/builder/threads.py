"""BLAS threads around the library's own products: limited locally, never globally.

One home for the ``threadpoolctl`` controller the matrix-free kernels
(:mod:`convmatrix.builder.apply`) and the blocked graph products
(:mod:`convmatrix.builder.stencil`) share.
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["one_blas_thread"]

_CONTROLLER: list[Any] = []


def one_blas_thread() -> Any:
    """A context running BLAS on one thread (``threadpoolctl``; nothing if it already does).

    The limit is set on the BLAS libraries loaded when it is first used (numpy's among them)
    and lifted on leaving the context: other code in the process keeps its threads.

    Examples
    --------
    >>> import numpy as np
    >>> with one_blas_thread():
    ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
    4.0
    """
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a declared dependency
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController().select(user_api="blas"))
    controller = _CONTROLLER[0]
    if controller is None or all(lib.num_threads == 1 for lib in controller.lib_controllers):
        return contextlib.nullcontext()
    return controller.limit(limits=1)
