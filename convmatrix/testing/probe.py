"""Recover the exact sparse matrix of a black-box linear function by graph-coloured probing."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.builder import indexing
from convmatrix.builder.budget import check_max_bytes
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.layers.base import Layer
from convmatrix.testing.blackbox import BlackBox, Linearity, check_linearity
from convmatrix.testing.pattern import Structure, layer_structure

__all__ = ["ProbeResult", "Progress", "probe", "probe_box", "probe_matrix", "unit_probe_nbytes"]

Progress = Callable[[int, int], object] | bool | None
"""``progress=``: a callback ``(done, total)`` after each batch of probes, False (silent), or
None: a tqdm bar when tqdm is installed and stderr is a terminal, otherwise silent."""

_PROGRESS_MIN_SAMPLES = 1000  # fewer probes finish in moments: no automatic bar


def _reporter(progress: Progress, total: int, what: str) -> tuple[Callable[[int], None],
                                                                   Callable[[], None]]:
    """``(advance(done), close())`` for ``progress`` over ``total`` probes."""
    if callable(progress):
        callback = progress

        def report(done: int) -> None:
            callback(done, total)

        return report, (lambda: None)
    automatic = progress is None and total >= _PROGRESS_MIN_SAMPLES and sys.stderr.isatty()
    if progress is True or automatic:
        try:
            tqdm = importlib.import_module("tqdm.auto").tqdm
        except ImportError:
            return (lambda done: None), (lambda: None)
        bar = tqdm(total=total, desc=what, unit="probe", leave=False)

        def advance(done: int) -> None:
            bar.update(done - bar.n)

        return advance, bar.close
    return (lambda done: None), (lambda: None)


@dataclass(frozen=True)
class ProbeResult:
    """A recovered affine map ``fn(x) = matrix @ x.ravel() + offset`` and what it cost.

    Attributes
    ----------
    matrix : csr_array, shape ``(∏output_shape, ∏input_shape)``
        The linear part, checked against an extra random probe; explicit zeros removed.
    offset : ndarray, shape ``(∏output_shape,)``
        ``fn(0)``, flattened (zeros for a linear ``fn``).
    input_shape, output_shape : tuple of int
        One sample in and out.
    samples, calls : int
        Samples ``fn`` evaluated, and calls made (equal unless ``batched``).
    method : str
        ``"coloured: <pattern>"`` or ``"unit vectors"``.
    colours : int
        Probe vectors of the successful colouring (0 for unit vectors).
    """

    matrix: sp.csr_array
    offset: np.ndarray
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    samples: int
    calls: int
    method: str
    colours: int


def _nonlinear_message(lin: Linearity, rtol: float) -> str:
    return (f"`fn` is not linear: fn(a + b) − fn(a) − fn(b) + fn(0) reaches "
            f"{lin.additive_error:.3g} and fn(2a) − 2·fn(a) + fn(0) reaches "
            f"{lin.homogeneous_error:.3g} of the largest response, over `rtol` (={rtol:g}); "
            f"only linear (or affine) functions have a matrix (if fn computes in float32, "
            f"pass rtol=1e-5)")


def _bytes_text(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**28 else f"{nbytes / 2**20:.1f} MiB"


def _check_probe(matrix: sp.csr_array, lin: Linearity, rtol: float) -> bool:
    """Whether the recovered matrix reproduces fn's response to the extra random probe."""
    predicted = matrix @ lin.probe  # (no |M| copy: the matrix may be most of max_bytes)
    scale = max(float(np.max(np.abs(lin.response), initial=0.0)),
                float(np.max(np.abs(predicted), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(predicted - lin.response), initial=0.0)) <= rtol * scale


def _coloured(box: BlackBox, structure: Structure, lin: Linearity, max_bytes: int | None,
              rtol: float, progress: Progress = False) -> tuple[sp.csr_array | None, int]:
    """Probe with one vector per colour and decode on the structure; None if the check fails."""
    channel_colour, spatial_colour = structure.colours()
    n_spatial = int(spatial_colour.max(initial=0)) + 1
    n_colours = (int(channel_colour.max(initial=0)) + 1) * n_spatial
    spatial = structure.spatial()
    m, n = box.m, box.n
    nnz = structure.nnz()
    index_dtype = indexing.index_dtype(nnz, (m, n))
    itemsize = np.dtype(index_dtype).itemsize
    nbytes = 8 * n_colours * m + nnz * (8 + itemsize) + (m + 1) * itemsize
    if max_bytes is not None and nbytes > max_bytes:
        raise ConvMatrixError(
            f"probing {n_colours} colours into a {m}×{n} matrix with {nnz:,} candidate entries "
            f"needs about {_bytes_text(nbytes)}, over `max_bytes` (={_bytes_text(max_bytes)}); "
            f"pass a larger max_bytes (or None)")
    colour_of = (channel_colour[:, None] * n_spatial + spatial_colour[None, :]).ravel()
    responses = np.empty((n_colours, m), dtype=box.dtype)  # one row per probe
    members = np.argsort(colour_of, kind="stable")  # input pixels grouped by colour
    bounds = np.searchsorted(colour_of[members], np.arange(n_colours + 1))
    step = box.batch_size()
    advance, close = _reporter(progress, n_colours, "coloured probes")
    try:
        for start in range(0, n_colours, step):
            ids = np.arange(start, min(start + step, n_colours))
            probes = np.zeros((ids.size, n))
            for row, colour in enumerate(ids):
                probes[row, members[bounds[colour]:bounds[colour + 1]]] = 1.0
            out = box(probes)
            if out.dtype != responses.dtype:
                responses = responses.astype(np.result_type(out, responses))
            np.subtract(out, lin.zero, out=responses[start:start + ids.size])
            del probes, out
            advance(start + ids.size)
    finally:
        close()

    c_out, _ = structure.channels.shape

    m_sp, n_sp = spatial.shape
    row_len = np.diff(spatial.indptr).astype(np.int64)
    per_channel = structure.channels.sum(axis=1).astype(np.int64)
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.outer(per_channel, row_len).ravel(), out=indptr[1:])
    indices: np.ndarray = np.empty(nnz, dtype=index_dtype)
    data = np.empty(nnz, dtype=responses.dtype)
    sp_rows = np.repeat(np.arange(m_sp, dtype=np.int64), row_len)
    sp_start = spatial.indptr[sp_rows].astype(np.int64)
    local = np.arange(sp_rows.size, dtype=np.int64) - sp_start
    sp_cols = spatial.indices.astype(np.int64)
    # one output channel's block in CSR order, laid out once per set of input channels: its
    # column indices, and where each entry sits in that channel's (output pixel, colour) table
    layouts: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    for co in range(c_out):
        chans = np.flatnonzero(structure.channels[co])
        q = chans.size
        if q == 0:
            continue
        if chans.tobytes() not in layouts:
            pos = (q * sp_start + local)[:, None] + np.arange(q)[None, :] * row_len[sp_rows][
                :, None]
            cols = np.empty(pos.size, dtype=index_dtype)
            cols[pos.ravel()] = (chans[None, :] * n_sp + sp_cols[:, None]).ravel()
            gather = np.empty(pos.size, dtype=np.int64)
            gather[pos.ravel()] = (sp_rows[:, None] * n_colours + channel_colour[chans][None, :]
                                   * n_spatial + spatial_colour[sp_cols][:, None]).ravel()
            layouts[chans.tobytes()] = (cols, gather)
            del pos
        cols, gather = layouts[chans.tobytes()]
        base = int(indptr[co * m_sp])
        indices[base:base + cols.size] = cols
        # the channel's responses as (output pixel, colour): each row's entries are then read
        # from one short contiguous row
        table = np.ascontiguousarray(responses[:, co * m_sp:(co + 1) * m_sp].T)
        np.take(table.reshape(-1), gather, out=data[base:base + cols.size])
        del table
    del responses, layouts
    matrix = sp.csr_array((data, indices, indptr.astype(index_dtype)), shape=(m, n))
    if not _check_probe(matrix, lin, rtol):
        return None, n_colours
    matrix.eliminate_zeros()
    return matrix, n_colours


_UNIT_BYTES_PER_ENTRY = 24  # a stored response: row, column and value (int64, int64, float64)


def unit_probe_nbytes(m: int, n: int) -> int:
    """Bytes unit-vector probing may hold: every one of ``n`` probes' ``m`` outputs stored.

    fn is a black box, so nothing bounds its responses' non-zeros below ``m·n`` in advance.

    Examples
    --------
    >>> unit_probe_nbytes(100, 100)
    240000
    """
    return m * n * _UNIT_BYTES_PER_ENTRY


def _unit(box: BlackBox, lin: Linearity, max_bytes: int | None, rtol: float,
          progress: Progress = False) -> sp.csr_array:
    """One probe per input pixel (in batches); the columns are fn's responses."""
    m, n = box.m, box.n
    worst = unit_probe_nbytes(m, n)
    if max_bytes is not None and worst > max_bytes:  # refused before any probe, not after
        raise ConvMatrixError(
            f"unit-vector probing would evaluate {n:,} samples of {m:,} outputs each: up to "
            f"{m * n:,} stored entries, about {_bytes_text(worst)}, over `max_bytes` "
            f"(={_bytes_text(max_bytes)}); pass a `layer` whose pattern fn follows (coloured "
            f"probing needs far fewer samples), or a larger max_bytes (or None)")
    step = box.batch_size()
    rows, cols, vals = [], [], []
    advance, close = _reporter(progress, n, "unit-vector probes")
    try:
        for start in range(0, n, step):
            count = min(step, n - start)
            probes = np.zeros((count, n))
            probes[np.arange(count), start + np.arange(count)] = 1.0
            out = box(probes) - lin.zero
            local, row = np.nonzero(out)
            rows.append(row)
            cols.append(start + local)
            vals.append(out[local, row])
            advance(start + count)
    finally:
        close()
    matrix = sp.csr_array(sp.coo_array(
        (np.concatenate(vals) if vals else np.zeros(0),
         (np.concatenate(rows) if rows else np.zeros(0, int),
          np.concatenate(cols) if cols else np.zeros(0, int))), shape=(m, n)))
    matrix.sum_duplicates()
    if not _check_probe(matrix, lin, rtol):
        batch_note = (" (or, with batched=True, one sample's output depends on the other "
                      "samples in its batch)") if box.batched else ""
        raise ConvMatrixError(
            f"`fn` is not linear: the matrix of its unit-vector responses does not reproduce "
            f"its response to a random input{batch_note}")
    return matrix


def probe(
    fn: Callable[[np.ndarray], Any],
    input_shape: Sequence[int],
    *,
    layer: Layer | None = None,
    batched: bool = False,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    rtol: float = 1e-9,
    progress: Progress = None,
) -> ProbeResult:
    """Recover the affine map a black-box function computes: its matrix and its offset.

    Parameters
    ----------
    fn : callable
        Takes **a numpy float64 array** of shape ``input_shape`` (or ``(B, *input_shape)``
        with ``batched=True``) and returns the output (or ``(B, ...)``): a numpy array or
        anything ``np.asarray`` reads (CPU torch tensors are detached first). A torch
        function is wrapped as ``lambda x: F.conv2d(torch.from_numpy(x), w)``.
    input_shape : sequence of int
        One sample, channels first (the matrix flattens input and output in C order).
    layer : Layer, optional
        A conv layer fn is expected to compute. Its sparsity pattern drives graph-coloured
        probing (Curtis–Powell–Reid): input pixels that share no output get the same probe,
        so a stride-1 3×3 layer costs about ``C_in·9`` samples instead of ``∏input_shape``.
        If the result disagrees with an extra random probe (fn reads outside the pattern),
        the pattern is widened (one pixel and every channel, then the kernel extent), and
        last unit vectors are used: a wrong matrix is never returned. Other layer kinds, or
        a fn whose output shape differs from the layer's, are probed with unit vectors.
    batched : bool, optional
        Whether fn takes a leading batch axis (then many probes go in one call).
    max_bytes : int or None, optional
        Refuse (before allocating) probing that needs more memory than this; None disables.
        Unit-vector probing (no ``layer``, or its pattern failed) is refused before its first
        probe when every response could be dense: ``∏output_shape · ∏input_shape`` entries of
        24 bytes over ``max_bytes`` (fn is a black box: nothing smaller is known in advance).
    rtol : float, optional
        Relative tolerance of the linearity and probe checks (1e-9 suits float64 code; use
        about 1e-5 for float32 code).
    progress : callable, bool or None, optional
        ``progress(done, total)`` after each batch of probes; False: silent; None (default):
        a ``tqdm`` bar when tqdm is installed, stderr is a terminal and there are at least
        1000 probes; True: a tqdm bar whenever tqdm is installed.

    Returns
    -------
    ProbeResult
        ``matrix`` (CSR), ``offset`` (``fn(0)``, flat) and the cost.

    Raises
    ------
    ConvMatrixError
        If fn is not linear (``fn(a + b) ≠ fn(a) + fn(b) − fn(0)`` or ``fn(2a) ≠ 2 fn(a) −
        fn(0)`` for random ``a``, ``b``), returns non-numbers or shapes that vary, or the probing
        would exceed ``max_bytes``.

    Notes
    -----
    The linear part is probed by differences, ``fn(e) − fn(0)``, so an affine fn (a bias)
    gives its matrix and its offset. With a linear float64 fn each coloured probe returns
    one weight per output exactly (``w·1`` plus exact zeros), so the matrix is bit for bit
    what fn multiplies by.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> layer = cm.Conv(np.arange(1.0, 10.0).reshape(1, 1, 3, 3), (1, 8, 8), padding=1)
    >>> result = probe(lambda x: cm.reference.conv(x, layer.weight, padding=1) + 0.5,
    ...                (1, 8, 8), layer=layer)
    >>> (result.matrix != layer.matrix()).nnz, result.offset[:2], result.colours
    (0, array([0.5, 0.5]), 9)
    """
    box = BlackBox(fn, input_shape, batched)
    limit = check_max_bytes(max_bytes)
    if layer is not None and not isinstance(layer, Layer):
        raise ConvMatrixError(f"`layer` (={layer!r}) must be a convmatrix layer object or None")
    if layer is not None and tuple(layer.input_shape) != box.input_shape:
        raise ConvMatrixError(
            f"`input_shape` (={box.input_shape}) differs from the layer's input shape "
            f"{layer.input_shape}")
    lin = check_linearity(box)
    if not lin.is_linear(box.tolerance(rtol)):
        raise ConvMatrixError(_nonlinear_message(lin, rtol))
    return probe_box(box, lin, layer, limit, rtol, progress=progress)


def probe_box(box: BlackBox, lin: Linearity, layer: Layer | None, max_bytes: int | None,
              rtol: float, *, progress: Progress = False) -> ProbeResult:
    """:func:`probe` for a wrapped, already linearity-checked function (reuses its samples)."""
    assert box.output_shape is not None
    output_shape = box.output_shape
    rtol = box.tolerance(rtol)
    if layer is not None:
        for level in range(3):
            structure = layer_structure(layer, level)
            if structure is None or structure.output_shape != output_shape:
                break
            matrix, colours = _coloured(box, structure, lin, max_bytes, rtol, progress)
            if matrix is not None:
                return ProbeResult(matrix, lin.zero, box.input_shape, output_shape,
                                   box.samples, box.calls, f"coloured: {structure.label}",
                                   colours)
    matrix = _unit(box, lin, max_bytes, rtol, progress)
    return ProbeResult(matrix, lin.zero, box.input_shape, output_shape, box.samples,
                       box.calls, "unit vectors", 0)


def probe_matrix(
    fn: Callable[[np.ndarray], Any],
    input_shape: Sequence[int],
    *,
    layer: Layer | None = None,
    batched: bool = False,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    rtol: float = 1e-9,
    progress: Progress = None,
) -> sp.csr_array:
    """The exact sparse matrix of a black-box **linear** function (see :func:`probe`).

    Parameters
    ----------
    fn, input_shape, layer, batched, max_bytes, rtol, progress
        As in :func:`probe`; fn receives numpy arrays.

    Returns
    -------
    M : (∏output_shape, ∏input_shape) scipy.sparse.csr_array
        ``fn(x).ravel() == M @ x.ravel()``, checked on an extra random probe.

    Raises
    ------
    ConvMatrixError
        As :func:`probe`, and when ``fn(0) ≠ 0`` (an affine map has no matrix alone: use
        :func:`probe`, which also returns the offset).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> w = np.array([[[1.0, -2.0, 3.0]]])
    >>> M = probe_matrix(lambda x: np.convolve(x[0], w[0, 0][::-1], "valid")[None], (1, 6))
    >>> (M != cm.conv_matrix(w, (1, 6))).nnz
    0
    """
    result = probe(fn, input_shape, layer=layer, batched=batched, max_bytes=max_bytes,
                   rtol=rtol, progress=progress)
    if np.any(result.offset != 0):
        first = int(np.flatnonzero(result.offset)[0])
        raise ConvMatrixError(
            f"`fn` is affine, not linear: fn(0) is non-zero ({np.count_nonzero(result.offset)} "
            f"of {result.offset.size} outputs; output {first} is {result.offset[first]:g}), "
            f"e.g. an added bias; use convmatrix.testing.probe(...) for the matrix and the "
            f"offset")
    return result.matrix

