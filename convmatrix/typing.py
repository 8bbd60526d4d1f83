"""Type aliases used in convmatrix's signatures (one home, as in opt_einsum's ``typing.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, SupportsIndex, TypeAlias

__all__ = [
    "ArrayLike",
    "Direction",
    "IntOrSeq",
    "Layout",
    "PaddingArg",
    "PaddingMode",
    "ShapeLike",
    "SparseFormat",
]

#: an int for every spatial axis, or one per axis (``stride``, ``dilation``, ``output_padding``)
IntOrSeq: TypeAlias = SupportsIndex | Sequence[SupportsIndex]

#: ``padding``: an int, one int per axis, one ``(before, after)`` pair per axis, or a string
PaddingArg: TypeAlias = (SupportsIndex | str | Sequence[SupportsIndex]
                         | Sequence[Sequence[SupportsIndex]])

#: ``padding_mode`` names: torch's four, plus numpy's / TF MirrorPad's edge-including mirror
PaddingMode: TypeAlias = Literal["zeros", "reflect", "replicate", "circular", "symmetric"]

#: layouts of the returned scipy.sparse arrays
SparseFormat: TypeAlias = Literal["csr", "csc", "coo"]

#: the shape of one sample (channels first unless a Keras layout says otherwise)
ShapeLike: TypeAlias = Sequence[SupportsIndex]

#: anything ``numpy.asarray`` accepts (weights, samples, torch tensors)
ArrayLike: TypeAlias = Any

#: which way a map runs: ``"forward"`` is ``C`` (the convolution), ``"adjoint"`` is ``Cᵀ``
#: (the transposed convolution). Always a literal, never a bool.
Direction: TypeAlias = Literal["forward", "adjoint"]

#: how one sample is flattened: channels first (torch, ONNX) or channels last (Keras, flax)
Layout: TypeAlias = Literal["channels_first", "channels_last"]
