"""Channels-first ↔ channels-last flattening as index permutations of a sparse matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["channels_last_matrix", "channels_last_permutation"]


def channels_last_permutation(shape: Sequence[int]) -> np.ndarray:
    """Where each channels-first flat index of a ``(C, *spatial)`` sample lands channels-last.

    Parameters
    ----------
    shape : sequence of int
        Channels-first shape ``(C, *spatial)`` of one sample.

    Returns
    -------
    perm : (∏shape,) ndarray of int64
        ``x_last.ravel()[perm] == x_first.ravel()`` where ``x_last = moveaxis(x_first, 0, -1)``.

    Examples
    --------
    >>> channels_last_permutation((2, 3)).tolist()   # pixel p of channel c -> p·C + c
    [0, 2, 4, 1, 3, 5]
    """
    channels, pixels = shape[0], math.prod(shape[1:])
    return (np.arange(pixels, dtype=np.int64)[None, :] * channels
            + np.arange(channels, dtype=np.int64)[:, None]).ravel()


def channels_last_matrix(
    matrix: sp.sparray, input_shape: Sequence[int], output_shape: Sequence[int]
) -> sp.csr_array:
    """Re-index a channels-first layer matrix for channels-last flattened vectors.

    Parameters
    ----------
    matrix : sparse array, shape ``(∏output_shape, ∏input_shape)``
        The matrix for channels-first vectors.
    input_shape, output_shape : sequence of int
        Channels-first shapes ``(C, *spatial)`` of one input and one output sample.

    Returns
    -------
    csr_array
        ``M_last`` with ``M_last @ moveaxis(x, 0, -1).ravel() == moveaxis(y, 0, -1).ravel()``;
        canonical (sorted indices). Memory is proportional to the matrix (its stored entries
        and rows), not to the input: the column permutation is applied arithmetically to the
        stored indices.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> x = np.arange(18.0).reshape(2, 3, 3)
    >>> C = cm.conv_matrix(np.ones((1, 2, 2, 2)), x.shape)
    >>> C_last = channels_last_matrix(C, x.shape, (1, 2, 2))
    >>> bool(np.allclose(C_last @ np.moveaxis(x, 0, -1).ravel(), C @ x.ravel()))  # C_out = 1
    True
    """
    csr = sp.csr_array(matrix)
    if input_shape[0] == 1 and output_shape[0] == 1:
        return csr  # one channel: both flattenings coincide
    # arithmetic on the stored entries only (never an array the size of the whole input):
    # channels-first flat index c·P + p is channels-last p·C + c
    c_in, p_in = int(input_shape[0]), math.prod(input_shape[1:])
    c_out, p_out = int(output_shape[0]), math.prod(output_shape[1:])
    cols = csr.indices.astype(np.int64, copy=False)
    cols_last = (cols % p_in) * c_in + cols // p_in
    remapped = sp.csr_array((csr.data, cols_last.astype(csr.indices.dtype), csr.indptr),
                            shape=csr.shape)
    # row r = p·C_out + c of the result is channels-first row c·P_out + p
    rows = np.arange(csr.shape[0], dtype=np.int64)
    result = remapped[(rows % c_out) * p_out + rows // c_out]
    result.sort_indices()
    return result
