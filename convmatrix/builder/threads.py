"""BLAS threads around the library's own products: limited locally, never globally.

One home for the ``threadpoolctl`` controller the matrix-free kernels
(:mod:`convmatrix.builder.apply`, :mod:`convmatrix.builder.adjoint`) and the blocked graph
products (:mod:`convmatrix.builder.stencil`) share.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

__all__ = ["one_blas_thread"]

_CONTROLLER: list[tuple[Any, bool]] = []
"""The controller (None without ``threadpoolctl``) and whether scipy's BLAS was loaded when it
was built: one item, replaced whole, so a thread never sees one without the other."""

_SCIPY_BLAS = "scipy.linalg._fblas"
"""scipy's BLAS wrappers (``axpy``, ``gemm`` of the channel-wise and flat col2im kernels): its
wheels bundle an OpenBLAS of their own, a second library beside numpy's, loaded with this
module."""


def one_blas_thread() -> Any:
    """A context running BLAS on one thread (``threadpoolctl``; nothing if it already does).

    The limit is set on the BLAS libraries loaded when it is first used (numpy's among them),
    and again once scipy's own BLAS is loaded (the kernels import it when they first call
    it), and lifted on leaving the context: other code in the process keeps its threads.

    Examples
    --------
    >>> import numpy as np
    >>> with one_blas_thread():
    ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
    4.0
    """
    with_scipy = _SCIPY_BLAS in sys.modules
    state = _CONTROLLER[0] if _CONTROLLER else None
    if state is None or (with_scipy and not state[1]):
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a declared dependency
            state = (None, with_scipy)
        else:
            state = (ThreadpoolController().select(user_api="blas"), with_scipy)
        _CONTROLLER[:] = [state]
    controller = state[0]
    if controller is None or all(lib.num_threads == 1 for lib in controller.lib_controllers):
        return contextlib.nullcontext()
    return controller.limit(limits=1)
