"""Layer objects: every layer kind as an exact affine map with its matrix, offset and adjoint."""

from convmatrix.adapters.torch_modules import from_torch
from convmatrix.layers.base import Adjoint, Layer
from convmatrix.layers.conv import Conv, ConvLayer, ConvTranspose
from convmatrix.layers.identity import Identity
from convmatrix.layers.keras import KerasConv, from_keras
from convmatrix.layers.norm import BatchNorm
from convmatrix.layers.pad import Pad
from convmatrix.layers.pool import AvgPool
from convmatrix.layers.sequential import Sequential
from convmatrix.layers.shuffle import PixelShuffle, PixelUnshuffle
from convmatrix.layers.upsample import Upsample

__all__ = ["Adjoint", "AvgPool", "BatchNorm", "Conv", "ConvLayer", "ConvTranspose", "Identity",
           "KerasConv", "Layer", "Pad", "PixelShuffle", "PixelUnshuffle", "Sequential", "Upsample",
           "from_keras", "from_torch"]
