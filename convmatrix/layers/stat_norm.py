"""Normalisations by the input's own statistics, linearised at a point (GroupNorm, LayerNorm, ...).

``GroupNorm``, ``LayerNorm`` and ``InstanceNorm`` normalise each group of a sample by the
group's own mean and (biased) variance, ``y = γ·(x − μ)/σ + β`` with ``σ = √(var + eps)``.
That is not linear, but it is smooth: at a point ``x`` its exact Jacobian is, per group of
``n`` entries,

    J = diag(γ/σ) · (I − (1·1ᵀ + x̂·x̂ᵀ)/n),      x̂ = (x − μ)/σ,

dense within the group and block-diagonal across groups. The kinds here are that Jacobian
as a layer object, with the offset ``f(x) − J x`` that makes the layer the tangent map at
``x`` (so it agrees with the normalisation at ``x`` exactly, and to first order nearby).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder.sparse import SparseFormat
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers._separable import as_int
from convmatrix.layers.base import Layer, ShapedLayer
from convmatrix.layers.selection import point_array

__all__ = ["GroupNormAt", "InstanceNormAt", "LayerNormAt", "StatNormAt"]


def _affine(value: Any, shape: tuple[int, ...], name: str, default: float) -> np.ndarray:
    if value is None:
        return np.full(shape, default)
    from convmatrix._arrays import to_numpy

    array = to_numpy(value)
    if array.dtype.kind not in "biuf":
        raise ConvMatrixError(f"`{name}` has dtype {array.dtype}; it must be real numbers")
    if array.shape != shape:
        raise ConvMatrixError(f"`{name}` has shape {array.shape}; it must have shape {shape}")
    return np.asarray(array, dtype=np.float64)


def _eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.floating) \
            or not eps >= 0 or not math.isfinite(eps):
        raise ConvMatrixError(f"`eps` (={eps!r}) must be a non-negative number")
    return float(eps)


class StatNormAt(ShapedLayer):
    """A normalisation by per-group statistics, linearised at ``x`` (its exact tangent map).

    The sample (flattened in C order) is cut into consecutive groups of ``group_size``
    entries; each is normalised by its own mean and biased variance, then scaled by ``γ`` and
    shifted by ``β`` (element-wise, the sample's shape). The matrix is the Jacobian at ``x``
    (block-diagonal, one dense ``group_size × group_size`` block per group), the offset
    ``f(x) − J x``: ``layer(x) == f(x)`` and ``layer(x + h) = f(x + h) + O(‖h‖²)``.

    Parameters
    ----------
    x : array_like
        The point: one sample, finite.
    group_size : int
        Entries per group; must divide ``x.size``.
    gamma, beta : array_like, shape ``x.shape``, optional
        The element-wise affine parameters (default 1 and 0).
    eps : float, optional

    Attributes
    ----------
    sigma : ndarray, shape ``(groups,)``
        ``√(var + eps)`` per group at ``x``.
    normalized : ndarray, shape ``x.shape``
        ``x̂ = (x − μ)/σ``.
    """

    def __init__(self, x: Any, group_size: int, gamma: Any = None, beta: Any = None,
                 eps: float = 1e-5) -> None:
        array = point_array(x, spatial=None)
        size = as_int(group_size, "group_size", 1)
        if array.size % size:
            raise ConvMatrixError(f"`group_size` (={group_size!r}) must divide the sample's "
                                  f"size ({array.size})")
        self.eps = _eps(eps)
        self._input_shape = self._output_shape = tuple(array.shape)
        self.group_size = size
        self.groups = array.size // size
        self.gamma = _affine(gamma, array.shape, "gamma", 1.0).reshape(self.groups, size)
        self.beta = _affine(beta, array.shape, "beta", 0.0).reshape(self.groups, size)
        grouped = array.reshape(self.groups, size)
        mean = grouped.mean(axis=1, keepdims=True)
        centred = grouped - mean
        var = (centred * centred).mean(axis=1, keepdims=True)
        if np.any(var + self.eps <= 0):
            raise ConvMatrixError(
                f"a group of `x` is constant and `eps` (={eps!r}) is 0: σ = 0, the "
                f"normalisation is not differentiable there")
        sigma = np.sqrt(var + self.eps)
        self.sigma = sigma[:, 0]
        self._hat = centred / sigma
        self.normalized = self._hat.reshape(self._input_shape)
        self._scale = self.gamma / sigma
        value = self.gamma * self._hat + self.beta
        self._offset = (value - self._apply_groups(grouped[None])[0]).reshape(-1)

    def _apply_groups(self, batch: np.ndarray) -> np.ndarray:
        """``J v`` per group: ``(γ/σ)(v − mean(v) − x̂·mean(x̂ v))`` on ``(B, groups, n)``."""
        hat = self._hat[None]
        inner = (batch - batch.mean(axis=2, keepdims=True)
                 - hat * (hat * batch).mean(axis=2, keepdims=True))
        result: np.ndarray = self._scale[None] * inner
        return result

    def _adjoint_groups(self, batch: np.ndarray) -> np.ndarray:
        hat = self._hat[None]
        scaled = self._scale[None] * batch
        result: np.ndarray = (scaled - scaled.mean(axis=2, keepdims=True)
                              - hat * (hat * scaled).mean(axis=2, keepdims=True))
        return result

    def offset(self) -> np.ndarray:
        """``f(x) − J x``: the tangent map at ``x`` meets the normalisation there."""
        return self._offset.copy()

    def _nnz_estimate(self) -> int:
        return self.groups * self.group_size ** 2

    def _build_matrix(self, format: SparseFormat, max_bytes: int | None) -> sp.sparray:
        n = self.group_size
        hat = self._hat
        blocks = np.eye(n)[None] - (1.0 + hat[:, :, None] * hat[:, None, :]) / n
        blocks *= self._scale[:, :, None]
        size = self.groups * n
        matrix = sp.bsr_array((blocks, np.arange(self.groups), np.arange(self.groups + 1)),
                              shape=(size, size))
        return sp.csr_array(matrix.tocsr()).asformat(format)

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        """``J v`` on a batch, matrix-free."""
        grouped = batch.reshape(batch.shape[0], self.groups, self.group_size)
        return self._apply_groups(grouped).reshape(batch.shape[0], *self._output_shape)

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        """``Jᵀ w`` on a batch, matrix-free."""
        grouped = batch.reshape(batch.shape[0], self.groups, self.group_size)
        return self._adjoint_groups(grouped).reshape(batch.shape[0], *self._input_shape)

    def lipschitz_bound(self) -> float:
        """``max|γ| / √eps``: a global Lipschitz bound (inf when ``eps`` is 0).

        ``I − (1·1ᵀ + x̂·x̂ᵀ)/n`` is a projection minus a non-negative multiple of another, so
        ``‖J‖ ≤ max|γ|/σ ≤ max|γ|/√eps`` at every point. Loose: a normalisation has no useful
        global constant, it amplifies nearly constant groups.
        """
        top = float(np.abs(self.gamma).max(initial=0.0))
        return math.inf if self.eps == 0 and top else (top / math.sqrt(self.eps) if top else 0.0)

    def _adjoint(self) -> Layer:
        from convmatrix.layers.base import Adjoint

        return Adjoint(self)

    def _describe(self) -> str:
        return (f"{shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"{self.groups} group{'s' * (self.groups != 1)} of {self.group_size}")


class GroupNormAt(StatNormAt):
    """Torch's ``GroupNorm(num_groups, C)`` (and ``F.group_norm``) linearised at ``x``.

    Parameters
    ----------
    x : array_like, shape ``(C, *spatial)``
    num_groups : int
        Divides ``C``; each group is ``C/num_groups`` consecutive channels, all their pixels.
    weight, bias : array_like, shape ``(C,)``, optional
        Per-channel affine parameters (default 1 and 0).
    eps : float, optional

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> x = np.array([[1.0, 3.0], [0.0, 4.0]])
    >>> norm = cm.GroupNormAt(x, 2, eps=0.0)
    >>> norm
    GroupNormAt(2×2 → 2×2, 2 groups of 2)
    >>> norm(x)
    array([[-1.,  1.],
           [-1.,  1.]])
    >>> norm.matrix().toarray()   # a tangent of a constant ±1 output: zero
    array([[0., 0., 0., 0.],
           [0., 0., 0., 0.],
           [0., 0., 0., 0.],
           [0., 0., 0., 0.]])
    """

    def __init__(self, x: Any, num_groups: int, weight: Any = None, bias: Any = None,
                 eps: float = 1e-5) -> None:
        array = point_array(x, spatial=(0, 1, 2, 3))
        channels = array.shape[0]
        groups = as_int(num_groups, "num_groups", 1)
        if channels % groups:
            raise ConvMatrixError(f"`num_groups` (={num_groups!r}) must divide the number of "
                                  f"channels ({channels})")
        along = (channels,) + (1,) * (array.ndim - 1)
        gamma = None if weight is None else np.broadcast_to(
            _affine(weight, (channels,), "weight", 1.0).reshape(along), array.shape)
        beta = None if bias is None else np.broadcast_to(
            _affine(bias, (channels,), "bias", 0.0).reshape(along), array.shape)
        self.num_groups = groups
        super().__init__(array, array.size // groups, gamma, beta, eps)


class InstanceNormAt(GroupNormAt):
    """Torch's ``InstanceNorm1d/2d/3d`` (by the input's statistics) linearised at ``x``.

    A :class:`GroupNormAt` with one group per channel.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> cm.InstanceNormAt(np.arange(6.0).reshape(2, 3))
    InstanceNormAt(2×3 → 2×3, 2 groups of 3)
    """

    def __init__(self, x: Any, weight: Any = None, bias: Any = None,
                 eps: float = 1e-5) -> None:
        array = point_array(x, spatial=(1, 2, 3))
        super().__init__(array, array.shape[0], weight, bias, eps)


class LayerNormAt(StatNormAt):
    """Torch's ``LayerNorm(normalized_shape)`` (and ``F.layer_norm``) linearised at ``x``.

    Parameters
    ----------
    x : array_like
        One sample whose trailing axes are ``normalized_shape``.
    normalized_shape : int or sequence of int
        The trailing axes normalised together; every leading index is its own group.
    weight, bias : array_like, shape ``normalized_shape``, optional
    eps : float, optional

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> x = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 4.0]])
    >>> norm = cm.LayerNormAt(x, 3)
    >>> norm
    LayerNormAt(2×3 → 2×3, 2 groups of 3)
    >>> bool(np.allclose(norm(x), (x - x.mean(1, keepdims=True))
    ...                  / np.sqrt(x.var(1, keepdims=True) + 1e-5)))
    True
    """

    def __init__(self, x: Any, normalized_shape: int | Sequence[int], weight: Any = None,
                 bias: Any = None, eps: float = 1e-5) -> None:
        array = point_array(x, spatial=None)
        if isinstance(normalized_shape, str) or not hasattr(normalized_shape, "__iter__"):
            shape: tuple[int, ...] = (as_int(normalized_shape, "normalized_shape", 1),)
        else:
            shape = tuple(as_int(v, "normalized_shape", 1) for v in normalized_shape)
        if not shape or shape != array.shape[array.ndim - len(shape):]:
            raise ConvMatrixError(
                f"`normalized_shape` (={normalized_shape!r}) must be the trailing axes of the "
                f"sample {array.shape}")
        self.normalized_shape = shape
        gamma = None if weight is None else np.broadcast_to(
            _affine(weight, shape, "weight", 1.0), array.shape)
        beta = None if bias is None else np.broadcast_to(
            _affine(bias, shape, "bias", 0.0), array.shape)
        super().__init__(array, math.prod(shape), gamma, beta, eps)
