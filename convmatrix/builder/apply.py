"""Matrix-free convolution: ``C @ x`` and ``Cᵀ @ y`` on batches, the entry points.

The kernels live in modules of their own: :mod:`~convmatrix.builder.forward` (tiled im2col,
channel-wise taps, shifted sums), :mod:`~convmatrix.builder.adjoint` (the adjoint as a
convolution, by phases, tiled col2im), with :mod:`~convmatrix.builder.padding`,
:mod:`~convmatrix.builder.tiles`, :mod:`~convmatrix.builder.phases` and
:mod:`~convmatrix.builder.scratch` under them; the dtype rules are
:mod:`~convmatrix.builder.dtypes`. The tunables (:data:`TILE_BYTES`, …) have their home in
:mod:`~convmatrix.builder.tuning` (:data:`WORKSPACE_BYTES` in
:mod:`~convmatrix.builder.budget`): this module forwards them, so ``apply.TILE_BYTES`` reads
the value the kernels use and setting it (or monkeypatching it) sets that value.
"""

from __future__ import annotations

import contextlib
import math
import sys
import types
from typing import TYPE_CHECKING, Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.builder import adjoint, budget, forward, scratch, tiles, tuning
from convmatrix.builder.adjoint import adjoint_into as _adjoint_into
from convmatrix.builder.dtypes import (
    INTEGER_RULE,
    compute_dtype,
    conv_abs_row_sum,
    integer_dtype,
    max_abs,
)
from convmatrix.builder.forward import forward_into as _forward_into
from convmatrix.builder.sparse import spec_matrix
from convmatrix.builder.threads import one_blas_thread
from convmatrix.builder.tiles import batch_tiling as _tiling
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction

if TYPE_CHECKING:  # properties forwarding to their homes at run time (see _Forwarding)
    from convmatrix.builder.budget import WORKSPACE_BYTES
    from convmatrix.builder.tuning import (
        ACCUMULATE_RATIO,
        FLAT_GROUPS,
        GROUP_TILE_BYTES,
        SHIFT_GAIN,
        SMALL_PRODUCT,
        TAP_CHUNK_BYTES,
        TILE_BYTES,
    )

__all__ = ["ACCUMULATE_RATIO", "FLAT_GROUPS", "GROUP_TILE_BYTES", "INTEGER_RULE", "SHIFT_GAIN",
           "SMALL_PRODUCT", "TAP_CHUNK_BYTES", "TILE_BYTES", "WORKSPACE_BYTES", "compute_dtype",
           "conv_abs_row_sum", "conv_apply", "conv_apply_adjoint", "integer_dtype", "max_abs"]

_TUNABLES = ("ACCUMULATE_RATIO", "FLAT_GROUPS", "GROUP_TILE_BYTES", "SHIFT_GAIN", "SMALL_PRODUCT",
             "TAP_CHUNK_BYTES", "TILE_BYTES")

#: the switches between equivalent kernels, under the private names tests set them by here
_SWITCHES = ("ACCUMULATE_CHANNELS", "ADJOINT_AS_CONVOLUTION", "PAD_FIRST", "PHASE_SPLIT",
             "STRIDED_ADJOINT", "TAPS")

#: names read and set in their home module (home, name there): the tunables, and the kernels
#: and limits tests replace through this module
_HOMES: dict[str, tuple[types.ModuleType, str]] = {
    **{name: (tuning, name) for name in _TUNABLES},
    **{f"_{name}": (tuning, name) for name in _SWITCHES},
    "WORKSPACE_BYTES": (budget, "WORKSPACE_BYTES"),
    "_KEEP_BYTES": (scratch, "_KEEP_BYTES"),
    "_padded_chunk": (tiles, "padded_chunk"),
    "_pad": (forward, "_pad"),  # padding.pad_copy, under the name the forward calls it by
    "_phases": (adjoint, "_phases"),  # phases.polyphases, likewise in the adjoint
    "_taps_into": (forward, "_taps_into"),
    "_shifted_into": (forward, "_shifted_into"),
    "_shift_gain": (forward, "_shift_gain"),
    "_transposed_spec": (adjoint, "_transposed_spec"),
    "_flat_col2im_into": (adjoint, "_flat_col2im_into"),
    "_accumulating_gemm": (adjoint, "_accumulating_gemm"),
    "_accumulate_taps": (adjoint, "_accumulate_taps"),
}


class _Forwarding(types.ModuleType):
    """The module itself, the names of ``_HOMES`` read from and set in their home modules.

    Module attribute access customised as the Python reference describes (a ``ModuleType``
    subclass as ``sys.modules[__name__].__class__``), each name a property: ``apply.TILE_BYTES``
    is ``tuning.TILE_BYTES``, and ``apply.TILE_BYTES = n`` sets ``tuning.TILE_BYTES``, which
    the kernels read at call time. Properties (data descriptors), not ``__getattr__`` and
    ``__setattr__``: ``monkeypatch.setattr`` then restores the old value on undo instead of
    deleting a module ``__dict__`` entry that never existed. Deleting a name hides it here
    (the home keeps its value) until it is set again: ``unittest.mock.patch``, which deletes
    a name it did not find in the module's ``__dict__`` and sets the original back once the
    name is gone, and ``monkeypatch.delattr`` then restore it as on a plain module.
    """

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_HOMES} - _DELETED)


#: forwarded names deleted from this module (set again by assigning them)
_DELETED: set[str] = set()


def _forwarded(name: str, home: types.ModuleType, attribute: str) -> property:
    """A property reading, setting and (here only) deleting ``home.attribute`` as ``name``."""

    def read(module: types.ModuleType) -> Any:
        if name in _DELETED:
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        return getattr(home, attribute)

    def write(_: types.ModuleType, value: Any) -> None:
        setattr(home, attribute, value)
        _DELETED.discard(name)

    def delete(module: types.ModuleType) -> None:
        if name in _DELETED:
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        _DELETED.add(name)

    return property(read, write, delete, doc=f"``{home.__name__}.{attribute}``")


for _name, (_home, _attribute) in _HOMES.items():
    setattr(_Forwarding, _name, _forwarded(_name, _home, _attribute))
del _name, _home, _attribute

sys.modules[__name__].__class__ = _Forwarding


def conv_apply(spec: ConvSpec, weight: np.ndarray, x: np.ndarray, *,
               out: np.ndarray | None = None) -> np.ndarray:
    """The convolution ``C`` on a batch, without building ``C``.

    Parameters
    ----------
    spec : ConvSpec
        The convolution.
    weight : ndarray, shape ``spec.weight_shape``
        torch layout.
    x : ndarray, shape ``(B, *spec.input_shape)``
        A batch of inputs (any strides).
    out : ndarray, shape ``(B, *spec.output_shape)``, optional
        Where to write the result (any strides, e.g. the columns of a larger array); a
        different dtype than :func:`compute_dtype` is computed in that dtype and cast.

    Returns
    -------
    ndarray, shape ``(B, *spec.output_shape)``
        ``y[b].ravel() == C @ x[b].ravel()``, in :func:`compute_dtype`.

    Raises
    ------
    ConvMatrixError
        Integer weights and data whose product could exceed :func:`compute_dtype` (the
        absolute row sums times ``max |x|``): it would wrap around; cast to a wider type.

    Notes
    -----
    The batch runs in tiles of samples and output rows
    (:func:`~convmatrix.builder.tiles.batch_tiling`: about :data:`TILE_BYTES`, never above
    :data:`WORKSPACE_BYTES`). Per tile the padded rows are
    written once (each padding mode is ``np.pad`` of the pixel indices), every kernel tap
    copies its strided window into a column matrix ``(C_in/G · ∏k) × (samples · pixels)``
    (im2col), and one matrix product per group (inner dimension ``C_in/G · ∏k``) writes the
    tile's outputs in place. A padded layer's samples are padded whole first when they fit
    (chunks of samples within :data:`WORKSPACE_BYTES` less one tile; the tiles then read
    their rows in place), except a zero-padded batch interleaved in memory, whose tiles pad
    their own rows. A batch whose samples are interleaved in memory (the columns of an
    operator's ``matmat``) is worked on in that layout, and the result has it too.
    Working memory: the padded chunk or the tile's padded rows, and the tile's column matrix,
    besides ``x`` and the output. Two layers skip the full column matrix: a channel-wise
    layer (one input and one output channel per group, stride 1, floating dtype) adds each
    tap's shifted run of the padded rows with BLAS ``axpy`` (no product at all), and where
    :data:`SHIFT_GAIN` says so the last kernel axis is applied by shifted sums of one taller
    product (the column matrix holds only the other axes' taps). A weight holding an inf or a
    nan is applied by the layer's exact sparse matrix instead (within the default
    ``max_bytes``, else a ConvMatrixError): the kernels multiply padding zeros by every
    weight, and ``0·inf`` is a nan where the matrix has no entry.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> spec = cm.conv_spec((1, 1, 2), (1, 4), padding=1, padding_mode="circular")
    >>> conv_apply(spec, np.array([[[1.0, 10.0]]]), np.array([[[1.0, 2.0, 3.0, 4.0]]]))
    array([[[14., 21., 32., 43., 14.]]])
    """
    x = np.asarray(x)
    return _run("forward", spec, weight, x, (x.shape[0], *spec.output_shape), out)


def conv_apply_adjoint(spec: ConvSpec, weight: np.ndarray, y: np.ndarray, *,
                       out: np.ndarray | None = None) -> np.ndarray:
    """The transpose ``Cᵀ`` on a batch (the transposed convolution), without building ``C``.

    Parameters
    ----------
    spec : ConvSpec
        The forward convolution.
    weight : ndarray, shape ``spec.weight_shape``
        torch convolution layout.
    y : ndarray, shape ``(B, *spec.output_shape)``
        A batch of outputs (any strides).
    out : ndarray, shape ``(B, *spec.input_shape)``, optional
        Where to write the result, as in :func:`conv_apply`.

    Returns
    -------
    ndarray, shape ``(B, *spec.input_shape)``
        ``x[b].ravel() == C.T @ y[b].ravel()`` (a transpose, not conjugated).

    Raises
    ------
    ConvMatrixError
        Integer weights and data whose product could exceed :func:`compute_dtype`, as
        :func:`conv_apply`.

    Notes
    -----
    With stride 1 the adjoint is a convolution itself: of ``y`` with the flipped kernel
    (channels swapped per group) through :func:`conv_apply`'s kernel — straight into the
    result for zero padding of at most ``d·(k − 1)``, otherwise into the padded input's shape
    (chunks of samples within :data:`WORKSPACE_BYTES` less one tile), whose border is then
    folded back onto the pixels it copied (the mirrored, edge or wrapped pixels for reflect,
    replicate and circular; slabs of the border only, the interior copied as one block).
    A strided layer's adjoint is split by phases (the padded positions ``≡ r (mod s)``).
    With at most :data:`FLAT_GROUPS` groups it is col2im in tiles into the phases, each held
    flat in common strides so that every tap's ``W_tᵀ y`` lands on one run of its phase: each
    tap's product is added onto its run inside BLAS (``gemm`` with ``beta = 1``, ``y`` laid
    out in those strides) when ``C_out/G`` is at most :data:`ACCUMULATE_RATIO` times
    ``C_in/G`` (half that in float32) or at most 16; else one matrix product of every tap
    per group on ``y`` as it lies, each tap added onto its window of the run. With zero
    padding the phases are then written straight into the result, otherwise interleaved
    into the padded rows and the border folded back. With more groups and
    ``C_out ≤ 1.5·C_in`` each phase is a stride-1 convolution of ``y`` with the taps that
    land on it (run by :func:`conv_apply`'s kernel into the padded input's shape, the border
    then folded back). Otherwise, and when the phases' padded sample or col2im's one output
    row is above the workspace, the taps are added onto their strided windows. A weight
    holding an inf or a nan is applied by the exact sparse matrix (the kernels would multiply
    padding zeros by it: ``0·inf`` is a nan where the matrix has no entry), as in
    :func:`conv_apply`.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> spec = cm.conv_spec((1, 1, 2), (1, 3))
    >>> conv_apply_adjoint(spec, np.array([[[1.0, 10.0]]]), np.array([[[1.0, 2.0]]]))
    array([[[ 1., 12., 20.]]])
    """
    y = np.asarray(y)
    return _run("adjoint", spec, weight, y, (y.shape[0], *spec.input_shape), out)


def _blas_threads(work: int) -> Any:
    """A context running BLAS on one thread while a kernel's products are small.

    ``work`` is the multiply-adds of the largest BLAS call; below :data:`SMALL_PRODUCT`,
    :func:`convmatrix.builder.threads.one_blas_thread`, else nothing.
    """
    return contextlib.nullcontext() if work >= tuning.SMALL_PRODUCT else one_blas_thread()


def _work_per_call(spec: ConvSpec, batch: int) -> int:
    """Multiply-adds of a kernel's BLAS calls (one group, one sample's rows of a tile)."""
    tiling = _tiling(spec, batch, 8, False)
    columns = tiling.rows * math.prod(spec.output_size[1:])
    k = math.prod(spec.kernel_size)
    return spec.in_channels // spec.groups * k * (spec.out_channels // spec.groups) * columns


def _nonfinite(weight: np.ndarray) -> bool:
    """Whether a floating or complex weight holds an inf or a nan."""
    w = np.asarray(weight)
    return w.dtype.kind in "fc" and not bool(np.isfinite(w).all())


def _sparse_into(direction: Direction, spec: ConvSpec, weight: np.ndarray, data: np.ndarray,
                 out: np.ndarray) -> None:
    """``out[b] = M data[b]`` by the layer's sparse matrix ``M`` (``C`` or ``Cᵀ``).

    The kernels multiply padding (and col2im's margin) zeros by every weight: with an inf in
    the weight that is a nan where the matrix has no entry at all, so a layer with a
    non-finite weight is applied through its exact matrix, within the default budget.
    """
    try:
        matrix = spec_matrix(spec, weight, direction=direction, format="csr")
    except ConvMatrixError as error:
        raise ConvMatrixError(
            f"the weight holds an inf or a nan: the matrix-free kernels would multiply padding "
            f"zeros by it (0·inf = nan where the matrix has no entry), so the product runs "
            f"through the exact sparse matrix, and {error}") from None
    product = matrix @ data.reshape(data.shape[0], -1).T
    np.copyto(out, product.T.reshape(out.shape), casting="unsafe")


def _run(direction: Direction, spec: ConvSpec, weight: np.ndarray, data: np.ndarray,
         shape: tuple[int, ...], out: np.ndarray | None) -> np.ndarray:
    """Allocate (or check) the result and run the direction's kernel on a non-empty batch.

    A weight with an inf or a nan goes through :func:`_sparse_into` instead.
    """
    dtype = compute_dtype(np.asarray(weight).dtype, data.dtype)
    if dtype.kind in "iu" and shape[0]:
        _check_integer_range(direction, spec, weight, data, dtype)
    batch_last = _batch_last(data)
    if out is None:
        result = _allocate(shape, dtype, batch_last)
    elif out.shape != shape:
        raise ConvMatrixError(f"`out` has shape {out.shape}; the result has shape {shape}")
    elif out.dtype != dtype:
        result = _allocate(shape, dtype, batch_last)
    else:
        result = out
    if shape[0] and _nonfinite(weight):
        _sparse_into(direction, spec, weight, data, result)
    elif shape[0]:
        kernel = _forward_into if direction == "forward" else _adjoint_into
        with _blas_threads(_work_per_call(spec, shape[0])):
            kernel(spec, weight, data, result, batch_last)
    if out is not None and result is not out:
        np.copyto(out, result, casting="unsafe")
        return out
    return result


def _check_integer_range(direction: Direction, spec: ConvSpec, weight: np.ndarray,
                         data: np.ndarray, dtype: np.dtype[Any]) -> None:
    """Refuse an integer product that could wrap around in ``dtype`` (exact or refused).

    The bound is the product's absolute row sum times ``max |data|``
    (:func:`~convmatrix.builder.dtypes.conv_abs_row_sum`); the layers and operators widen the
    dtype by :data:`INTEGER_RULE` before they get here, this low-level entry point computes
    in :func:`compute_dtype` as documented, so it refuses instead of wrapping.
    """
    bound = conv_abs_row_sum(spec, np.asarray(weight), direction) * max_abs(data)
    if bound > np.iinfo(dtype).max:
        name = "x" if direction == "forward" else "y"
        raise ConvMatrixError(
            f"`{name}` ({data.dtype}) with `weight` ({np.asarray(weight).dtype}) can reach "
            f"magnitudes up to {bound:,}, beyond {dtype} (max {np.iinfo(dtype).max:,}), the "
            f"dtype the product is computed in; cast `{name}` or `weight` to a wider integer "
            f"type (or use a layer's operator, which widens by the integer rule)")


def _batch_last(x: np.ndarray) -> bool:
    """Whether a batch's samples are interleaved in memory (the batch axis moves fastest)."""
    if x.shape[0] < 2:
        return False
    strides = [abs(st) for st, n in zip(x.strides[1:], x.shape[1:], strict=True) if n > 1]
    return abs(x.strides[0]) < min(strides, default=abs(x.strides[0]) + 1)


def _allocate(shape: tuple[int, ...], dtype: np.dtype[Any], batch_last: bool) -> np.ndarray:
    """A ``(B, …)`` result, its memory batch-last (``(…, B)``) when ``batch_last``."""
    if batch_last:
        return np.moveaxis(np.empty((*shape[1:], shape[0]), dtype=dtype), -1, 0)
    return np.empty(shape, dtype=dtype)
