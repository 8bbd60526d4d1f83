"""Layer objects: every layer kind as an exact affine map with its matrix, offset and adjoint.

The readers of framework models (``from_torch``, ``from_keras``) live one level up, in
:mod:`convmatrix.adapters`; layers never import adapters.
"""

import importlib
import warnings
from typing import Any

from convmatrix.layers.adaptive import AdaptiveAvgPool, GlobalAvgPool
from convmatrix.layers.base import Adjoint, Layer
from convmatrix.layers.channels_last import ChannelsLast, KerasConv
from convmatrix.layers.conv import Conv, ConvLayer, ConvTranspose
from convmatrix.layers.graph import Add, Cat, Concat, Graph, Node, Sum
from convmatrix.layers.identity import Identity
from convmatrix.layers.linear import Linear
from convmatrix.layers.linearization import Linearization
from convmatrix.layers.norm import BatchNorm
from convmatrix.layers.pad import NumpyPad, Pad
from convmatrix.layers.permute import Permute
from convmatrix.layers.pool import AvgPool
from convmatrix.layers.repeat import Repeat
from convmatrix.layers.reshape import Flatten, Reshape, Slice
from convmatrix.layers.resize import Resize
from convmatrix.layers.scale import Scale
from convmatrix.layers.selection import AdaptiveMaxPoolAt, GlobalMaxPoolAt, MaxPoolAt
from convmatrix.layers.sequential import Sequential
from convmatrix.layers.shuffle import DepthToSpace, PixelShuffle, PixelUnshuffle, SpaceToDepth
from convmatrix.layers.stat_norm import GroupNormAt, InstanceNormAt, LayerNormAt
from convmatrix.layers.upsample import Upsample

__all__ = ["AdaptiveAvgPool", "AdaptiveMaxPoolAt", "Add", "Adjoint", "AvgPool",
           "BatchNorm", "Cat", "ChannelsLast", "Concat", "Conv", "ConvLayer",
           "ConvTranspose", "DepthToSpace", "Flatten", "GlobalAvgPool",
           "GlobalMaxPoolAt", "Graph", "GroupNormAt", "Identity", "InstanceNormAt",
           "KerasConv", "Layer", "LayerNormAt", "Linear", "Linearization", "MaxPoolAt",
           "Node", "NumpyPad", "Pad", "Permute", "PixelShuffle", "PixelUnshuffle", "Repeat",
           "Reshape", "Resize", "Scale", "Sequential", "Slice", "SpaceToDepth", "Sum",
           "Upsample"]

_MOVED = {"from_torch": "convmatrix.adapters.torch", "from_keras": "convmatrix.adapters.keras"}


def __getattr__(name: str) -> Any:
    """``convmatrix.layers.from_torch`` / ``from_keras``: deprecated, moved to the adapters."""
    if name in _MOVED:
        warnings.warn(
            f"convmatrix.layers.{name} is deprecated and will be removed in convmatrix 0.3; "
            f"use convmatrix.{name} (or {_MOVED[name]}.{name})", DeprecationWarning,
            stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'convmatrix.layers' has no attribute {name!r}")
