"""Size guards of the symbolic side: closed-form term counts checked before anything is built.

The memory (byte) estimates of the symbolic functions live with every other budget in
:mod:`convmatrix.builder.budget`; this module counts ``w·x`` terms and stride residues.
"""

from __future__ import annotations

import math

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.spec import ConvSpec
from convmatrix.typing import Direction

__all__ = [
    "DEFAULT_MAX_TERMS",
    "check_max_terms",
    "check_residues",
    "check_terms",
    "layer_terms",
    "row_terms_bound",
]

DEFAULT_MAX_TERMS: int = 10**6
"""Largest number of ``w·x`` terms (or outputs) derived unless ``max_terms`` says more."""

_EXACT_TAPS = 10**6  # kernel taps per axis up to which the exact term count is affordable


def check_max_terms(max_terms: int | None) -> None:
    """Refuse a ``max_terms`` that is neither None nor a non-negative int."""
    if max_terms is None:
        return
    if isinstance(max_terms, bool) or not isinstance(max_terms, int) or max_terms < 0:
        raise ConvMatrixError(
            f"`max_terms` (={max_terms!r}) must be a non-negative int or None (no limit)")


def layer_terms(spec: ConvSpec) -> tuple[int, bool]:
    """``w·x`` terms in all outputs of the layer (the same for ``C`` and ``Cᵀ``), and exactness.

    One term per (output pixel, kernel tap, input channel of the group) pair that reads a real
    pixel: :meth:`ConvSpec.nnz_upper_bound` (exact for zero padding; for the other modes every
    tap reads a pixel, so it is exact too: merged taps are still separate terms). When a kernel
    axis is too long to count exactly, the bound ``channels · ∏ o·k`` is returned instead,
    flagged inexact.
    """
    per_pair = math.prod(o * k for o, k in zip(spec.output_size, spec.kernel_size, strict=True))
    channels = spec.out_channels * (spec.in_channels // spec.groups)
    if max(spec.kernel_size) > _EXACT_TAPS:
        return channels * per_pair, False
    return spec.nnz_upper_bound(), True


def row_terms_bound(spec: ConvSpec, direction: Direction) -> int:
    """Most ``w·x`` terms one output can hold: its group's channels times the kernel taps."""
    channels = (spec.out_channels if direction == "adjoint" else spec.in_channels) // spec.groups
    return channels * math.prod(spec.kernel_size)


def check_terms(what: str, outputs: int, terms: int, max_terms: int | None, *,
                exact: bool = True, noun: str = "outputs") -> None:
    """Raise unless ``outputs`` (or rows: ``noun``) and ``terms`` are both at most ``max_terms``."""
    check_max_terms(max_terms)
    if max_terms is None or max(outputs, terms) <= max_terms:
        return
    about = "" if exact else "up to "
    raise ConvMatrixError(
        f"{what} would derive {outputs:,} {noun} holding {about}{terms:,} w·x terms, over "
        f"`max_terms` (={max_terms:,}); pass a larger max_terms (or max_terms=None) to derive "
        f"them anyway"
    )


def check_residues(what: str, spec: ConvSpec, max_terms: int | None) -> None:
    """Refuse an overlap law with more stride residues (one count each) than ``max_terms``.

    The interior law of an axis lists one count per residue of ``j`` modulo the stride, so a
    huge stride makes a huge law even when the layer itself is tiny.
    """
    check_max_terms(max_terms)
    if max_terms is None or sum(spec.stride) <= max_terms:
        return
    axis = max(range(spec.ndim), key=lambda a: spec.stride[a])
    raise ConvMatrixError(
        f"{what} would list one overlap count per stride residue, {spec.stride[axis]:,} along "
        f"spatial axis {axis} (`stride` (={spec.stride})), over `max_terms` (={max_terms:,}); "
        f"pass a larger max_terms (or max_terms=None) to derive it anyway"
    )
