"""Exact products of convolution matrices in blocked form: channel blocks on per-axis tables.

A product of convolution-like matrices (convolutions, transposed convolutions, their sums and
channel concatenations) with respect to an input of ``C_in`` channels is stored as

* per spatial axis an :class:`AxisTable`: for every output position along the axis, the sorted
  input positions it reaches (a padded table, ``-1`` after the last one);
* one dense array ``values`` of shape ``(C, C_in, F_1 + 1, …, F_d + 1)`` where ``F_a`` is the
  number of slots of axis ``a``'s table (``n_out · width``) and the last slot of every axis is
  a zero the gathers read for "nothing here".

Entry ``values[c, ci, z_1·w_1 + j_1, …]`` is the matrix entry in row ``(c, z_1, …)`` and column
``(ci, table_1[z_1, j_1], …)``. Multiplying by one more convolution is then, per combination of
the per-axis tap maps, one gather of the earlier values into the new tables' slots, and all
combinations together are one matrix product with the taps' channel matrices stacked side by
side (an im2col whose "image" is the earlier product): the multiply-adds of a sparse product
at BLAS speed, with index arithmetic on the small per-axis tables only. Slots no path reaches
stay exact zeros and are dropped when the result is written as CSR (:func:`blocked_to_csr`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from convmatrix.builder.threads import one_blas_thread
from convmatrix.geometry.indices import axis_taps
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction

__all__ = [
    "STENCIL_CHUNK_BYTES",
    "AxisMap",
    "AxisTable",
    "Blocked",
    "ProgramNode",
    "StencilProgram",
    "StencilStep",
    "blocked_conv",
    "blocked_identity",
    "blocked_nbytes",
    "blocked_to_csr",
    "channel_weights",
    "conv_axis_maps",
    "conv_nbytes",
    "conv_step",
    "csr_nbytes",
    "identity_tables",
    "merge_step",
    "stencil_program",
]

STENCIL_CHUNK_BYTES: int = 4 * 2**20
"""Working memory of one chunk of :func:`blocked_conv`'s gathered columns (its im2col)."""

@dataclass(frozen=True, eq=False)
class AxisTable:
    """Which input positions every output position reaches along one spatial axis.

    Attributes
    ----------
    cols : ndarray of int64, shape ``(n_out, width)``
        Sorted input positions per output position, ``-1`` after the last one.
    n_in : int
        Input positions along the axis.
    """

    cols: np.ndarray
    n_in: int

    @property
    def n_out(self) -> int:
        """Output positions along the axis."""
        return int(self.cols.shape[0])

    @property
    def width(self) -> int:
        """Slots per output position."""
        return int(self.cols.shape[1])

    @property
    def slots(self) -> int:
        """``n_out · width``: the axis's slots without the zero slot."""
        return self.n_out * self.width


@dataclass(frozen=True, eq=False)
class AxisMap:
    """One tap of a layer along one axis as a partial map from its outputs to its inputs.

    Attributes
    ----------
    tap : int
        The kernel tap along the axis.
    source : ndarray of int64, shape ``(n_out,)``
        The input position output ``z`` reads through this tap, ``-1`` where it reads none.
    """

    tap: int
    source: np.ndarray


@dataclass(frozen=True, eq=False)
class StencilStep:
    """The index arithmetic of one product step, computed before any value is allocated.

    Attributes
    ----------
    tables : tuple of AxisTable
        The result's per-axis tables.
    gathers : tuple of tuple of (int, ndarray)
        Per axis, per map: its tap and, per slot of the result's axis (and its zero slot), the
        slot of the earlier product it reads (the earlier zero slot where none).
    """

    tables: tuple[AxisTable, ...]
    gathers: tuple[tuple[tuple[int, np.ndarray], ...], ...]


@dataclass(eq=False)
class Blocked:
    """A product in blocked form: ``values`` on per-axis ``tables`` (see the module docstring).

    Attributes
    ----------
    values : ndarray, shape ``(C, C_in, F_1 + 1, …)``
    tables : tuple of AxisTable
    """

    values: np.ndarray
    tables: tuple[AxisTable, ...]


def identity_tables(sizes: Sequence[int]) -> tuple[AxisTable, ...]:
    """Tables of the identity: every position reaches itself.

    Examples
    --------
    >>> identity_tables((3,))[0].cols.ravel().tolist()
    [0, 1, 2]
    """
    return tuple(AxisTable(np.arange(n, dtype=np.int64)[:, None], int(n)) for n in sizes)


def blocked_nbytes(channels: int, channels_in: int, tables: Sequence[AxisTable],
                   itemsize: int) -> int:
    """Bytes of a :class:`Blocked` array of ``channels`` rows on ``tables``.

    Examples
    --------
    >>> blocked_nbytes(2, 1, identity_tables((3,)), 8)
    64
    """
    return channels * channels_in * math.prod(t.slots + 1 for t in tables) * itemsize


def csr_nbytes(channels: int, channels_in: int, tables: Sequence[AxisTable],
               itemsize: int) -> int:
    """A bound on what :func:`blocked_to_csr` holds at once besides the values themselves.

    The mask of stored entries, and the CSR arrays as if every slot were stored (data and
    64-bit indices; the pointers and the row counts).

    Examples
    --------
    >>> csr_nbytes(1, 1, identity_tables((2,)), 8)
    82
    """
    slots = channels * channels_in * math.prod(t.slots for t in tables)
    rows = channels * math.prod(t.n_out for t in tables)
    return slots * (1 + itemsize + 8) + (rows + 1) * 16


def conv_axis_maps(spec: ConvSpec, direction: Direction, axis: int) -> list[AxisMap]:
    """The taps of a convolution (or its adjoint) along one axis as partial maps.

    ``"forward"``: from the convolution's outputs to its inputs (one map per tap);
    ``"adjoint"``: from its inputs to its outputs (one map per tap and per repeat of an input
    read twice by that tap, which only a non-zero padding mode does).

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> spec = conv_spec((1, 1, 2), (1, 4), stride=2)
    >>> [m.source.tolist() for m in conv_axis_maps(spec, "forward", 0)]
    [[0, 2], [1, 3]]
    >>> [m.source.tolist() for m in conv_axis_maps(spec, "adjoint", 0)]
    [[0, -1, 1, -1], [-1, 0, -1, 1]]
    """
    n, out = spec.input_size[axis], spec.output_size[axis]
    index, valid = axis_taps(n, spec.kernel_size[axis], spec.stride[axis], spec.padding[axis],
                             spec.dilation[axis], out, spec.padding_mode)
    maps: list[AxisMap] = []
    for tap in range(spec.kernel_size[axis]):
        ok = valid[:, tap]
        if direction == "forward":
            maps.append(AxisMap(tap, np.where(ok, index[:, tap], -1)))
            continue
        outputs = np.flatnonzero(ok)
        inputs = index[ok, tap]
        order = np.argsort(inputs, kind="stable")
        inputs, outputs = inputs[order], outputs[order]
        first = np.ones(inputs.size, dtype=bool)
        first[1:] = inputs[1:] != inputs[:-1]
        starts = np.maximum.accumulate(np.where(first, np.arange(inputs.size), 0))
        rank = np.arange(inputs.size) - starts
        for r in range(int(rank.max()) + 1 if rank.size else 0):
            source = np.full(n, -1, dtype=np.int64)
            source[inputs[rank == r]] = outputs[rank == r]
            maps.append(AxisMap(tap, source))
    return maps


def _merge(sources: Sequence[tuple[AxisTable, np.ndarray]], n_out: int
           ) -> tuple[AxisTable, list[np.ndarray]]:
    """The table reached through partial maps into earlier tables, and each map's gather."""
    n_in = sources[0][0].n_in
    rows = []
    for table, source in sources:
        ok = source >= 0
        picked = table.cols[np.where(ok, source, 0)]
        rows.append(np.where(ok[:, None], picked, -1))
    both = np.concatenate(rows, axis=1)
    keyed = np.where(both < 0, n_in, both)
    keyed.sort(axis=1)
    repeat = np.zeros(keyed.shape, dtype=bool)
    repeat[:, 1:] = keyed[:, 1:] == keyed[:, :-1]
    keyed[repeat] = n_in
    keyed.sort(axis=1)
    width = max(int((keyed < n_in).sum(axis=1).max(initial=0)), 1)
    keyed = np.ascontiguousarray(keyed[:, :width])
    table = AxisTable(np.where(keyed == n_in, -1, keyed), n_in)
    positions = np.arange(n_out, dtype=np.int64)[:, None] * (n_in + 1)
    keys = (positions + keyed).ravel()
    gathers = []
    for (earlier, source), picked in zip(sources, rows, strict=True):
        gather = np.full(n_out * width + 1, earlier.slots, dtype=np.int64)
        z, j = np.nonzero(picked >= 0)
        where = np.searchsorted(keys, z * (n_in + 1) + picked[z, j])
        gather[where] = source[z] * earlier.width + j
        gathers.append(gather)
    return table, gathers


def conv_step(tables: Sequence[AxisTable], spec: ConvSpec, direction: Direction
              ) -> StencilStep:
    """The tables and gathers of a convolution (or its adjoint) applied after ``tables``.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> step = conv_step(identity_tables((4,)), conv_spec((1, 1, 2), (1, 4)), "forward")
    >>> step.tables[0].cols.tolist()
    [[0, 1], [1, 2], [2, 3]]
    """
    new_tables, gathers = [], []
    for axis, table in enumerate(tables):
        maps = conv_axis_maps(spec, direction, axis)
        n_out = (spec.output_size if direction == "forward" else spec.input_size)[axis]
        new, per_map = _merge([(table, m.source) for m in maps], n_out)
        new_tables.append(new)
        gathers.append(tuple((m.tap, g) for m, g in zip(maps, per_map, strict=True)))
    return StencilStep(tuple(new_tables), tuple(gathers))


def merge_step(inputs: Sequence[Sequence[AxisTable]]) -> StencilStep:
    """Common tables for products on the same positions (a sum or a channel concatenation).

    ``gathers[a][i]`` re-indexes input ``i`` along axis ``a`` into the common table.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> a = identity_tables((3,))
    >>> b = conv_step(a, conv_spec((1, 1, 3), (1, 3), padding=1), "forward").tables
    >>> step = merge_step([a, b])
    >>> step.tables[0].cols.tolist()
    [[0, 1, -1], [0, 1, 2], [1, 2, -1]]
    """
    new_tables, gathers = [], []
    for axis in range(len(inputs[0])):
        n_out = inputs[0][axis].n_out
        identity = np.arange(n_out, dtype=np.int64)
        new, per_input = _merge([(tables[axis], identity) for tables in inputs], n_out)
        new_tables.append(new)
        gathers.append(tuple((0, g) for g in per_input))
    return StencilStep(tuple(new_tables), tuple(gathers))


def blocked_identity(channels: int, sizes: Sequence[int], dtype: Any) -> Blocked:
    """The identity on ``(channels, *sizes)`` in blocked form.

    Examples
    --------
    >>> blocked_to_csr(blocked_identity(1, (2,), np.int64)).toarray().tolist()
    [[1, 0], [0, 1]]
    """
    values = np.zeros((channels, channels, *(n + 1 for n in sizes)), dtype=dtype)
    inner: tuple[slice, ...] = tuple(slice(0, n) for n in sizes)
    for c in range(channels):
        index: tuple[Any, ...] = (c, c, *inner)
        values[index] = 1
    return Blocked(values, identity_tables(sizes))


def _gathered(values: np.ndarray, gathers: Sequence[np.ndarray], first: slice) -> np.ndarray:
    out = values.take(gathers[0][first], axis=2)
    for axis, gather in enumerate(gathers[1:], start=3):
        out = out.take(gather, axis=axis)
    return out


def channel_weights(spec: ConvSpec, weight: np.ndarray, direction: Direction,
                     dtype: Any) -> np.ndarray:
    """``(C_out, C_in, *k)``: the layer's channel matrix per tap (grouped blocks expanded)."""
    full = np.zeros((spec.out_channels, spec.in_channels, *spec.kernel_size), dtype=dtype)
    per_out, per_in = spec.out_channels // spec.groups, spec.in_channels // spec.groups
    for g in range(spec.groups):
        full[g * per_out:(g + 1) * per_out, g * per_in:(g + 1) * per_in] = \
            weight[g * per_out:(g + 1) * per_out]
    return full if direction == "forward" else full.swapaxes(0, 1)


def _combos_weight(channels: np.ndarray, pre: Sequence[tuple[tuple[int, np.ndarray], ...]],
                   last: Sequence[tuple[int, np.ndarray]]) -> np.ndarray:
    """The channel matrices of every tap combination.

    A block row per last-axis map, a block column per combination of the other axes' maps.
    """
    def block(combo: tuple[tuple[int, np.ndarray], ...], tap: int) -> np.ndarray:
        taps: tuple[Any, ...] = (slice(None), slice(None), *(t for t, _ in combo), tap)
        return np.asarray(channels[taps])

    return np.concatenate([np.concatenate([block(combo, tap) for combo in pre], axis=1)
                           for tap, _ in last], axis=0)


def _first_axis_groups(step: StencilStep, earlier: AxisTable
                       ) -> list[tuple[np.ndarray, tuple[int, ...]]]:
    """The first axis's new slots grouped by which of its maps reach them.

    Per slot, the maps that read nothing (a transposed convolution's other phases, the
    borders) are skipped.
    """
    reached = np.stack([g != earlier.slots for _, g in step.gathers[0]], axis=1)
    patterns, inverse = np.unique(reached, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(patterns) + 1))
    return [(order[lo:hi], tuple(np.flatnonzero(pattern).tolist()))
            for pattern, lo, hi in zip(patterns, bounds[:-1], bounds[1:], strict=True)]


def conv_nbytes(step: StencilStep, channels_out: int, channels_mid: int, channels_in: int,
                earlier: Sequence[AxisTable], itemsize: int, *,
                chunk_bytes: int = STENCIL_CHUNK_BYTES) -> int:
    """Bytes :func:`blocked_conv` holds besides its input: the result and one chunk's buffers.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> tables = identity_tables((4,))
    >>> step = conv_step(tables, conv_spec((1, 1, 2), (1, 4)), "forward")
    >>> conv_nbytes(step, 1, 1, 1, tables, 8)
    192
    """
    result = blocked_nbytes(channels_out, channels_in, step.tables, itemsize)
    last = len(step.gathers[-1])
    if len(step.tables) == 1:  # the applied values of every map, and a gather buffer
        applied = last * channels_out * channels_in * (earlier[0].slots + 1) * itemsize
        return result + applied + result
    pre = math.prod(len(axis) for axis in step.gathers[:-1])
    row = _row_bytes(step, earlier, pre, channels_out, channels_mid, channels_in, itemsize)
    return result + max(1, chunk_bytes // row) * row


def _row_bytes(step: StencilStep, earlier: Sequence[AxisTable], pre: int, c_out: int,
               c_mid: int, c_in: int, itemsize: int) -> int:
    """Bytes one first-axis slot of a chunk holds in :func:`blocked_conv`.

    Its gathered columns (``pre`` combinations), the applied values (a block per last-axis
    map), the first gather and a second axis's temporary, the gathered target and a buffer.
    """
    inner = math.prod(t.slots + 1 for t in step.tables[1:-1]) * (earlier[-1].slots + 1)
    widest = math.prod(max(t.slots, e.slots) + 1
                       for t, e in zip(step.tables[1:], earlier[1:], strict=True))
    target = c_out * c_in * math.prod(t.slots + 1 for t in step.tables[1:])
    return itemsize * ((pre * c_mid + len(step.gathers[-1]) * c_out) * c_in * inner
                       + 2 * c_mid * c_in * widest + 2 * target)


def blocked_conv(blocked: Blocked, step: StencilStep, channels: np.ndarray, dtype: Any, *,
                 chunk_bytes: int = STENCIL_CHUNK_BYTES) -> Blocked:
    """A convolution's channel matrices ``channels`` (per tap) times ``blocked``, exactly.

    ``channels`` has shape ``(C_out, C_mid, *k)`` (:func:`channel_weights`; ``C_mid`` the
    rows of ``blocked``). The gathers along every axis but the last copy whole rows, so they
    run first: per combination of those axes' tap maps the earlier values are gathered into
    the new slots (the last axis still on the earlier slots). One matrix product with the
    channel matrices of every tap combination (a block per last-axis map and earlier
    combination) then gives, per last-axis map, the values to gather along the last axis into
    the new slots, summed. The first axis's new slots go in groups reached by the same maps
    (a transposed convolution's phases, the borders), in chunks of about ``chunk_bytes``.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> spec = conv_spec((1, 1, 2), (1, 3))
    >>> start = blocked_identity(1, (3,), np.int64)
    >>> step = conv_step(start.tables, spec, "forward")
    >>> weights = channel_weights(spec, np.array([[[1, 2]]]), "forward", np.int64)
    >>> blocked_to_csr(blocked_conv(start, step, weights, np.int64)).toarray().tolist()
    [[1, 2, 0], [0, 1, 2]]
    """
    c_out, c_mid = channels.shape[:2]
    values = blocked.values
    c_in = values.shape[1]
    last_maps = step.gathers[-1]
    sizes = [t.slots + 1 for t in step.tables]
    if len(sizes) == 1:
        big = _combos_weight(channels, [()], last_maps)
        applied = (big @ values.reshape(c_mid, -1)).reshape(len(last_maps), c_out, c_in, -1)
        out = np.empty((c_out, c_in, sizes[0]), dtype=dtype)
        _gather_last(applied, last_maps, out)
        return Blocked(out, step.tables)
    out = np.empty((c_out, c_in, *sizes), dtype=dtype)
    for slots, reaching in _first_axis_groups(step, blocked.tables[0]):
        if not reaching:
            out[:, :, slots] = 0
            continue
        pre = list(itertools.product([step.gathers[0][m] for m in reaching],
                                     *step.gathers[1:-1]))
        big = _combos_weight(channels, pre, last_maps)
        row = _row_bytes(step, blocked.tables, len(pre), c_out, c_mid, c_in, values.itemsize)
        rows = max(1, chunk_bytes // row)
        for start in range(0, slots.size, rows):
            chunk = slots[start:start + rows]
            inner = (chunk.size, *sizes[1:-1], values.shape[-1])
            columns = np.empty((len(pre), c_mid, c_in, *inner), dtype=dtype)
            firsts: dict[int, np.ndarray] = {}
            for i, combo in enumerate(pre):
                key = id(combo[0][1])
                if key not in firsts:
                    firsts = {key: values.take(combo[0][1][chunk], axis=2)}
                part = firsts[key]
                for axis, (_, gather) in enumerate(combo[1:], start=3):
                    part = part.take(gather, axis=axis)
                columns[i] = part
            applied = (big @ columns.reshape(len(pre) * c_mid, -1)).reshape(
                len(last_maps), c_out, c_in, *inner)
            target = np.empty((c_out, c_in, chunk.size, *sizes[1:]), dtype=dtype)
            _gather_last(applied, last_maps, target)
            out[:, :, chunk] = target
    return Blocked(out, step.tables)


def _gather_last(applied: np.ndarray, maps: Sequence[tuple[int, np.ndarray]],
                 target: np.ndarray) -> None:
    """``target = Σ_m applied[m]`` gathered along the last axis by map ``m``."""
    np.take(applied[0], maps[0][1], axis=-1, out=target)
    if len(maps) > 1:
        buffer = np.empty(target.shape, dtype=target.dtype)
        for i in range(1, len(maps)):
            np.take(applied[i], maps[i][1], axis=-1, out=buffer)
            target += buffer


@dataclass(frozen=True)
class ProgramNode:
    """One node of a :class:`StencilProgram`.

    Attributes
    ----------
    name : str
    kind : {"conv", "sum", "cat"}
        A convolution (or its adjoint) of its one input; a weighted sum of its inputs; their
        concatenation along the channel axis.
    inputs : tuple of str
    channels : int
        Its output channels.
    spec : ConvSpec or None
        The forward convolution's geometry (``"conv"`` only).
    direction : {"forward", "adjoint"}
    coefficients : tuple
        The sum's coefficients (``"sum"`` only).
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    channels: int
    spec: ConvSpec | None = None
    direction: Direction = "forward"
    coefficients: tuple[Any, ...] = ()


_Part = tuple[int, Any, str]  # (first channel it fills, coefficient, the Blocked it reads)


@dataclass(eq=False)
class StencilProgram:
    """The exact matrix of a graph of convolutions, sums and channel concatenations.

    Built by :func:`stencil_program` from shapes alone (every table and gather, and the peak
    memory, known before a value is allocated); :meth:`run` computes the matrix with each
    convolution's weights. A sum or concatenation is never formed: a node's value is a list of
    parts (blocked products filling some of its channels, with a coefficient), and a
    convolution applies its channel matrices to each part on that part's own tables and adds
    the results on their common tables — so a skip connection's narrow product is never
    padded out to the wide one's tables before the convolution that reads both.

    Attributes
    ----------
    peak_bytes : int
        The largest number of bytes held at once (values alive, a convolution's results and
        chunk buffers, the final CSR arrays).
    """

    input_name: str
    input_shape: tuple[int, ...]
    nodes: tuple[ProgramNode, ...]
    output: str
    itemsize: int
    chunk_bytes: int
    steps: dict[str, list[StencilStep]]
    merges: dict[str, StencilStep | None]
    tables: dict[str, tuple[AxisTable, ...]]
    parts: dict[str, list[_Part]]
    frees: dict[str, tuple[str, ...]]
    final: StencilStep | None
    peak_bytes: int

    def run(self, weights: dict[str, np.ndarray], dtype: Any) -> sp.csr_array:
        """The matrix, given each convolution node's forward weight (torch layout).

        Examples
        --------
        >>> from convmatrix.geometry.spec import conv_spec
        >>> node = ProgramNode("c", "conv", ("x",), 1, conv_spec((1, 1, 2), (1, 3)))
        >>> program = stencil_program("x", (1, 3), [node], "c", 8)
        >>> program.run({"c": np.array([[[1, 2]]])}, np.int64).toarray().tolist()
        [[1, 2, 0], [0, 1, 2]]
        """
        with one_blas_thread():
            return self._run(weights, dtype)

    def _run(self, weights: dict[str, np.ndarray], dtype: Any) -> sp.csr_array:
        channels_in, *sizes = self.input_shape
        store: dict[str, Blocked] = {self.input_name: blocked_identity(channels_in, sizes,
                                                                      dtype)}
        for node in self.nodes:
            if node.kind == "conv":
                assert node.spec is not None
                channels = channel_weights(node.spec, np.asarray(weights[node.name]),
                                           node.direction, dtype)
                results = []
                for (first, coefficient, key), step in zip(self.parts[node.inputs[0]],
                                                           self.steps[node.name], strict=True):
                    earlier = store[key]
                    used = channels[:, first:first + earlier.values.shape[0]]
                    if coefficient != 1:
                        used = (used * coefficient).astype(dtype, copy=False)
                    results.append(blocked_conv(earlier, step, used, dtype,
                                                chunk_bytes=self.chunk_bytes))
                merge = self.merges[node.name]
                store[node.name] = results[0] if merge is None else _summed(
                    [(0, 1, r) for r in results], merge, node.channels, dtype)
            for key in self.frees[node.name]:
                store.pop(key, None)
        parts = self.parts[self.output]
        if self.final is None:
            result = store[parts[0][2]]
        else:
            channels_out = self.output_channels
            result = _summed([(first, coefficient, store[key]) for first, coefficient, key
                              in parts], self.final, channels_out, dtype)
        return blocked_to_csr(result)

    @property
    def output_channels(self) -> int:
        """The output node's channels."""
        for node in self.nodes:
            if node.name == self.output:
                return node.channels
        return self.input_shape[0]


def _summed(parts: Sequence[tuple[int, Any, Blocked]], merge: StencilStep, channels: int,
            dtype: Any) -> Blocked:
    """Parts (first channel, coefficient, values) added on the merge's common tables."""
    c_in = parts[0][2].values.shape[1]
    out = np.zeros((channels, c_in, *(t.slots + 1 for t in merge.tables)), dtype=dtype)
    for i, (first, coefficient, blocked) in enumerate(parts):
        values = blocked.values if coefficient == 1 else coefficient * blocked.values
        rows = out[first:first + values.shape[0]]
        gathers = [axis[i][1] for axis in merge.gathers]
        if all(g.size == b.slots + 1 and bool((g == np.arange(g.size)).all())
               for g, b in zip(gathers, blocked.tables, strict=True)):
            rows += values
            continue
        if 8 * values[0, 0].size >= rows[0, 0].size:  # a large part: gathered, then added
            rows += _gathered(values, gathers, slice(None))
            continue
        # a small one scattered: each part slot to its common slot (the part's unused slots,
        # all zero, to the zero slot)
        scatters = []
        for gather, table in zip(gathers, blocked.tables, strict=True):
            scatter = np.full(table.slots + 1, gather.size - 1, dtype=np.int64)
            reached = gather != table.slots
            scatter[gather[reached]] = np.flatnonzero(reached)
            scatters.append(scatter)
        index: tuple[Any, ...] = (slice(None), slice(None), *np.ix_(*scatters))
        rows[index] += values
    return Blocked(out, merge.tables)


def stencil_program(input_name: str, input_shape: Sequence[int], nodes: Sequence[ProgramNode],
                    output: str, itemsize: int, *, chunk_bytes: int = STENCIL_CHUNK_BYTES
                    ) -> StencilProgram:
    """Plan a :class:`StencilProgram`: every table, gather and the peak memory, no values.

    ``nodes`` in evaluation order, each reading the input or earlier nodes; ``input_shape``
    ``(C, *spatial)`` with at least one spatial axis.

    Examples
    --------
    >>> from convmatrix.geometry.spec import conv_spec
    >>> node = ProgramNode("c", "conv", ("x",), 1, conv_spec((1, 1, 2), (1, 3)))
    >>> stencil_program("x", (1, 3), [node], "c", 8).peak_bytes
    176
    """
    channels_in, *sizes = (int(n) for n in input_shape)
    start = identity_tables(sizes)
    tables: dict[str, tuple[AxisTable, ...]] = {input_name: start}
    channels: dict[str, int] = {input_name: channels_in}
    parts: dict[str, list[_Part]] = {input_name: [(0, 1, input_name)]}
    steps: dict[str, list[StencilStep]] = {}
    merges: dict[str, StencilStep | None] = {}
    for node in nodes:
        if node.kind == "conv":
            assert node.spec is not None
            node_steps = [conv_step(tables[key], node.spec, node.direction)
                          for _, _, key in parts[node.inputs[0]]]
            steps[node.name] = node_steps
            merge = None if len(node_steps) == 1 else merge_step([s.tables for s in node_steps])
            merges[node.name] = merge
            tables[node.name] = node_steps[0].tables if merge is None else merge.tables
            parts[node.name] = [(0, 1, node.name)]
        elif node.kind == "sum":
            parts[node.name] = [(first, coefficient * c, key)
                                for name, c in zip(node.inputs, node.coefficients, strict=True)
                                for first, coefficient, key in parts[name]]
        else:
            offset, joined = 0, []
            for name in node.inputs:
                joined += [(first + offset, coefficient, key)
                           for first, coefficient, key in parts[name]]
                offset += channels[name]
            parts[node.name] = joined
        channels[node.name] = node.channels
    last_use: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.inputs:
            for _, _, key in parts[name]:
                last_use[key] = index
    frees: dict[str, tuple[str, ...]] = {node.name: () for node in nodes}
    for key, index in last_use.items():
        if not any(key == k for _, _, k in parts[output]):
            frees[nodes[index].name] += (key,)
    out_parts = parts[output]
    final = None
    if not (len(out_parts) == 1 and out_parts[0][:2] == (0, 1)
            and channels[out_parts[0][2]] == channels[output]):
        final = merge_step([tables[key] for _, _, key in out_parts])
    # the peak: values alive, plus a convolution's results, chunk buffers and their sum
    sizes_of = {key: blocked_nbytes(channels[key], channels_in, t, itemsize)
                for key, t in tables.items() if key in channels}
    live = {input_name: sizes_of[input_name]}
    peak = sum(live.values())
    for node in nodes:
        if node.kind == "conv":
            held = 0
            for (_, _, key), step in zip(parts[node.inputs[0]], steps[node.name], strict=True):
                peak = max(peak, sum(live.values()) + held + conv_nbytes(
                    step, node.channels, channels[key], channels_in, tables[key], itemsize,
                    chunk_bytes=chunk_bytes))
                held += blocked_nbytes(node.channels, channels_in, step.tables, itemsize)
            if merges[node.name] is not None:  # the sum and its gathers' temporaries
                peak = max(peak, sum(live.values()) + held + 4 * sizes_of[node.name])
            live[node.name] = sizes_of[node.name]
        for key in frees[node.name]:
            live.pop(key, None)
    out_tables = tables[out_parts[0][2]] if final is None else final.tables
    result_bytes = blocked_nbytes(channels[output], channels_in, out_tables, itemsize)
    if final is not None:  # the sum and its gathers' temporaries
        peak = max(peak, sum(live.values()) + 4 * result_bytes)
    finish = (0 if final is None else result_bytes) + csr_nbytes(
        channels[output], channels_in, out_tables, itemsize)
    peak = max(peak, sum(live.values()) + finish)
    return StencilProgram(input_name, (channels_in, *sizes), tuple(nodes), output, itemsize,
                          chunk_bytes, steps, merges, tables, parts, frees, final, int(peak))


def blocked_to_csr(blocked: Blocked) -> sp.csr_array:
    """The product as a CSR array (rows and columns channels-first, C order; no stored zeros).

    Examples
    --------
    >>> blocked_to_csr(blocked_identity(2, (1,), np.float64)).toarray()
    array([[1., 0.],
           [0., 1.]])
    """
    values, tables = blocked.values, blocked.tables
    c_out, c_in = values.shape[:2]
    d = len(tables)
    # a view splitting every axis's slots into (position, slot), the zero slots left out
    shape, strides = [c_out, c_in], list(values.strides[:2])
    for table, stride in zip(tables, values.strides[2:], strict=True):
        shape += [table.n_out, table.width]
        strides += [stride * table.width, stride]
    split = np.lib.stride_tricks.as_strided(values, shape=shape, strides=strides,
                                            writeable=False)
    # (c_out, z_1, …, z_d, c_in, j_1, …, j_d): one row per (c_out, z), its columns sorted
    order = (0, *(2 + 2 * a for a in range(d)), 1, *(3 + 2 * a for a in range(d)))
    rows_first = split.transpose(order)
    stored = rows_first != 0
    n_in = [t.n_in for t in tables]
    n_cols = c_in * math.prod(n_in)
    n_rows = c_out * math.prod(t.n_out for t in tables)
    index_type = np.int32 if max(n_cols, 1) < 2**31 else np.int64
    column: np.ndarray = (np.arange(c_in, dtype=index_type) * math.prod(n_in)).reshape(
        (1,) * (d + 1) + (c_in,) + (1,) * d)
    for a, table in enumerate(tables):
        axis_shape = [1] * (2 * d + 2)
        axis_shape[1 + a], axis_shape[d + 2 + a] = table.n_out, table.width
        column = column + (table.cols * math.prod(n_in[a + 1:])).astype(index_type).reshape(
            axis_shape)
    data = rows_first[stored]
    indices = np.broadcast_to(column, rows_first.shape)[stored]
    counts = stored.reshape(n_rows, -1).sum(axis=1)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    if indptr[-1] < 2**31 and index_type == np.int32:
        indptr = indptr.astype(np.int32)
    result = sp.csr_array((data, indices, indptr), shape=(n_rows, n_cols))
    result.has_sorted_indices = True
    return result
