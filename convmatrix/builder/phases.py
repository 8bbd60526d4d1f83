"""Phases of a strided layer's adjoint: the padded positions ``≡ r (mod s)`` and their taps."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from convmatrix.builder.padding import PaddedAxis
from convmatrix.builder.padding import padded_length as _used_length
from convmatrix.builder.scratch import ScratchBuffer as _Buffer
from convmatrix.geometry.spec import ConvSpec, conv_spec

__all__ = ["add_phases", "interleave_phases", "polyphases", "scatter_phases", "tap_phases"]


@dataclass(frozen=True)
class _Phase:
    """The padded positions ``≡ phase (mod stride)`` of a strided layer's adjoint.

    ``spec`` is the stride-1 convolution of ``y`` that computes them (None: no tap writes
    them, they are zero) and ``taps`` the kernel taps it uses along each axis (ascending).
    """

    phase: tuple[int, ...]
    spec: ConvSpec | None
    taps: tuple[tuple[int, ...], ...]


def _phase_axis(o: int, k: int, s: int, d: int, used: int,
                r: int) -> tuple[tuple[int, ...], int, tuple[int, int]]:
    """One axis of a phase ``r``: its taps, their dilation in ``y`` and the padding of ``y``.

    Tap ``t`` writes padded position ``q = s·o + d·t``; those with ``d·t ≡ r (mod s)`` write
    the phase's positions ``m = (q − r)/s = o + e_t``, ``e_t = (d·t − r)/s``, spaced by
    ``d/gcd(d, s)``. As a correlation of ``y`` with the taps reversed: padding ``max e_t``
    before, and after whatever makes the output the phase's length ``⌈(used − r)/s⌉``.
    """
    taps = tuple(t for t in range(k) if (d * t - r) % s == 0)
    if not taps:
        return taps, 1, (0, 0)
    shifts = [(d * t - r) // s for t in taps]
    dilation = shifts[1] - shifts[0] if len(taps) > 1 else 1
    length = len(range(r, used, s))
    before = shifts[-1]
    after = length - o - before + dilation * (len(taps) - 1)
    return taps, dilation, (before, after)


@lru_cache(maxsize=256)
def polyphases(spec: ConvSpec) -> tuple[_Phase, ...]:
    """A strided layer's adjoint ``Cₚᵀ`` as one stride-1 convolution per phase (polyphase).

    Each phase reads whole windows of ``y`` with the taps that land on it, so the forward
    kernel (im2col or shifted sums, inner dimension ``C_out/G`` times the phase's taps)
    computes it: the multiply-adds of all phases are the forward's, and nothing is scattered.
    """
    used = [_used_length(spec, a) for a in range(spec.ndim)]
    per_axis = [[_phase_axis(o, k, s, d, u, r) for r in range(s)]
                for o, k, s, d, u in zip(spec.output_size, spec.kernel_size, spec.stride,
                                         spec.dilation, used, strict=True)]
    phases = []
    for phase in itertools.product(*(range(s) for s in spec.stride)):
        parts = [per_axis[a][r] for a, r in enumerate(phase)]
        taps = tuple(p[0] for p in parts)
        if not all(taps):
            phases.append(_Phase(phase, None, taps))
            continue
        groups = spec.groups
        phase_spec = conv_spec((spec.in_channels, spec.out_channels // groups,
                                *(len(t) for t in taps)), spec.output_shape,
                               padding=tuple(p[2] for p in parts),
                               dilation=tuple(p[1] for p in parts), groups=groups)
        phases.append(_Phase(phase, phase_spec, taps))
    return tuple(phases)


def scatter_phases(spec: ConvSpec, taps: Sequence[tuple[int, ...]], cols: np.ndarray,
                   pad: np.ndarray, rows: int, phases: _Buffer, batch_last: bool) -> None:
    """col2im of a strided layer: ``pad`` (overwritten) ``= Σ_t`` tap ``t``'s window of ``cols``.

    Tap ``t`` writes padded positions ``s·o + d·t``: phase ``(d·t) mod s``, positions
    ``o + ⌊d·t / s⌋`` within it. The taps are added into a buffer split by phases, where every
    window is contiguous (a strided window is added element by element, several times slower),
    and the phases are then interleaved into ``pad`` with one strided copy each.
    """
    stride = spec.stride
    lengths = (pad.shape[2], *pad.shape[3:])
    split = phases.take((pad.shape[0], pad.shape[1], *stride,
                         *(-(-n // st) for n, st in zip(lengths, stride, strict=True))),
                        batch_last)
    split[...] = 0
    sizes = (rows, *spec.output_size[1:])
    for t, tap in enumerate(taps):
        shifts = [tt * d for tt, d in zip(tap, spec.dilation, strict=True)]
        index: tuple[Any, ...] = (
            slice(None), slice(None), *(sh % st for sh, st in zip(shifts, stride, strict=True)),
            *(slice(sh // st, sh // st + n) for sh, st, n in zip(shifts, stride, sizes,
                                                                   strict=True)))
        window = split[index]
        np.add(window, cols[:, :, t], out=window)
    parts = []
    for phase in itertools.product(*(range(st) for st in stride)):
        where: tuple[Any, ...] = (slice(None), slice(None), *phase)
        parts.append(split[where])
    interleave_phases(pad, stride, parts)


def interleave_phases(pad: np.ndarray, stride: Sequence[int],
                      values: Sequence[np.ndarray]) -> None:
    """``pad[:, :, r₀::s₀, r₁::s₁, …] =`` phase ``r``'s values, one strided copy per phase.

    ``values`` holds a ``(b, C, …)`` array per phase (row-major order of ``r``), at least as
    long as the phase along every axis (its first ``⌈(n − r)/s⌉`` positions are copied).
    """
    lengths = pad.shape[2:]
    for index, phase in enumerate(itertools.product(*(range(st) for st in stride))):
        counts = [len(range(r, n, st)) for r, n, st in zip(phase, lengths, stride, strict=True)]
        target: tuple[Any, ...] = (slice(None), slice(None), *(
            slice(r, None, st) for r, st in zip(phase, stride, strict=True)))
        source: tuple[Any, ...] = (slice(None), slice(None), *(slice(0, c) for c in counts))
        np.copyto(pad[target], values[index][source])


@lru_cache(maxsize=256)
def tap_phases(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """Per kernel tap (row-major), the phase it writes (flat index) and its rows ``e_t`` there.

    Tap ``t`` writes padded position ``s·o + d·t``: phase ``d·t mod s``, position
    ``o + ⌊d·t / s⌋`` of that phase, per axis.
    """
    shifts = [[t * d for t, d in zip(tap, spec.dilation, strict=True)]
              for tap in itertools.product(*(range(k) for k in spec.kernel_size))]
    phases = tuple(int(np.ravel_multi_index([sh % st for sh, st in zip(shift, spec.stride,
                                                                        strict=True)],
                                            spec.stride)) for shift in shifts)
    rows = tuple(tuple(sh // st for sh, st in zip(shift, spec.stride, strict=True))
                 for shift in shifts)
    return phases, rows


def add_phases(out: np.ndarray, phases: Sequence[np.ndarray], spec: ConvSpec,
               axes: tuple[PaddedAxis, ...], p0: int, prow: int, assign: bool) -> None:
    """``out +=`` each phase's values inside the input (zero padding: the border is dropped).

    Phase ``r`` (row-major order) holds a tile's padded positions ``r + s·m`` along each axis
    (the tile's padded rows start at ``p0``, ``prow`` of them; every used position of the
    other axes); those inside the input (``[lo, hi)`` per axis, :func:`padded_axes`) are
    input position ``r + s·m − before``: one strided add per phase, with no padded buffer
    and nothing to fold. ``assign``: nothing else writes ``out`` (one tile holds every row
    of these samples), so the phases, which partition the positions, are copied (a strided
    copy is about 2.5× faster than a strided add).
    """
    lengths = (prow, *(_used_length(spec, a) for a in range(1, spec.ndim)))
    for phase, values in zip(itertools.product(*(range(st) for st in spec.stride)), phases,
                             strict=True):
        source: list[Any] = [slice(None), slice(None)]
        target: list[Any] = [slice(None), slice(None)]
        for a, (r, st, info) in enumerate(zip(phase, spec.stride, axes, strict=True)):
            first = p0 if a == 0 else 0  # the tile's first padded position on this axis
            count = len(range(r, lengths[a], st))
            m_lo = min(max(-(-(info.lo - first - r) // st), 0), count)
            m_hi = min(max(-(-(info.hi - first - r) // st), m_lo), count)
            q = first + r + st * m_lo - info.before
            source.append(slice(m_lo, m_hi))
            target.append(slice(q, q + st * (m_hi - m_lo), st))
        view = out[tuple(target)]
        if not view.size:
            continue
        if assign:
            np.copyto(view, values[tuple(source)], casting="unsafe")
        else:
            np.add(view, values[tuple(source)], out=view, casting="unsafe")
