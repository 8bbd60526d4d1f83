"""torch ``nn.ConvNd`` / ``nn.ConvTransposeNd`` modules as matrices, read by attributes only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._arrays import to_numpy
from convmatrix._errors import ConvMatrixError
from convmatrix.build.sparse import DEFAULT_MAX_BYTES, SparseFormat
from convmatrix.geometry import shapes
from convmatrix.geometry.spec import _as_int, _items

__all__ = ["torch_bias", "torch_matrix"]


def _numpy(tensor: Any) -> np.ndarray:
    """A module's parameter as numpy (detached; bfloat16 widened exactly to float32)."""
    return to_numpy(tensor)


def _output_padding_for(weight: np.ndarray, input_shape: tuple[int, ...], padding: Any,
                        output_size: Sequence[int], *, stride: tuple[int, ...],
                        dilation: tuple[int, ...], groups: int) -> tuple[int, ...]:
    """Output padding by torch's rule: output_size exceeds the minimum by less than the stride."""
    ndim = weight.ndim - 2
    items = _items(output_size)
    if items is None or len(items) < ndim:
        raise ConvMatrixError(
            f"`output_size` (={output_size!r}) must end with the {ndim} spatial output sizes, "
            f"as in torch")
    size = tuple(_as_int(v, "output_size") for v in items[-ndim:])
    result = []
    for axis in range(ndim):
        minimum = shapes.conv_transpose_output_length(
            input_shape[axis + 1], weight.shape[axis + 2], stride[axis],
            (padding[axis], padding[axis]), dilation[axis])
        if not minimum <= size[axis] < minimum + stride[axis]:
            raise ConvMatrixError(
                f"`output_size` (={tuple(output_size)}) must lie in [{minimum}, "
                f"{minimum + stride[axis] - 1}] along spatial axis {axis}, as in torch")
        result.append(size[axis] - minimum)
    return tuple(result)


def torch_matrix(
    module: Any,
    input_shape: Sequence[int],
    *,
    output_size: Sequence[int] | None = None,
    format: SparseFormat | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> sp.sparray:
    """Matrix of a torch convolution module: ``M @ x.ravel() == (module(x[None]) − bias).ravel()``.

    A thin wrapper: ``convmatrix.from_torch(module, input_shape).matrix(format)``. Works by
    reading attributes (``weight``, ``stride``, ``padding``, ``dilation``, ``groups``,
    ``padding_mode``, ``output_padding``), so importing convmatrix never imports torch.

    Parameters
    ----------
    module : torch.nn.Conv1d/2d/3d or torch.nn.ConvTranspose1d/2d/3d
        Every ``padding`` form and ``padding_mode`` of ``ConvNd``; ``output_padding`` of
        ``ConvTransposeNd``.
    input_shape : sequence of int
        One sample ``(C_in, *spatial)``, no batch axis.
    output_size : sequence of int, optional
        For ConvTranspose modules, the ``output_size`` torch's ``forward`` accepts (it picks
        the output padding).
    format : {"csr", "csc", "coo"}, optional
        Default ``"csr"`` for ``ConvNd`` and the free ``"csc"`` view for ``ConvTransposeNd``.
    max_bytes : int or None, optional
        Memory guard, as in :func:`convmatrix.conv_matrix`.

    Returns
    -------
    scipy.sparse array
        In the weight's dtype (float32 for a default module). The bias is not part of the
        linear map: add :func:`torch_bias` to ``M @ x``.
    """
    from convmatrix.layers import ConvTranspose, from_torch

    layer = from_torch(module, input_shape, output_size=output_size)
    if format is None:
        format = "csc" if isinstance(layer, ConvTranspose) else "csr"
    return layer.matrix(format, max_bytes=max_bytes)


def torch_bias(module: Any, input_shape: Sequence[int], *,
               output_size: Sequence[int] | None = None) -> np.ndarray | None:
    """The module's bias as the flat offset added after the matrix (None without a bias).

    Returns
    -------
    ndarray of shape ``(∏output_shape,)`` or None
        ``module(x[None]).ravel() == torch_matrix(module, ...) @ x.ravel() + torch_bias(...)``.
    """
    from convmatrix.layers import from_torch

    if getattr(module, "bias", None) is None:
        return None
    return from_torch(module, input_shape, output_size=output_size).offset()
