"""Layer objects: every layer kind as an exact affine map with its matrix, offset and adjoint."""

from convmatrix.layers.base import Adjoint, Layer
from convmatrix.layers.conv import Conv, ConvLayer, ConvTranspose
from convmatrix.layers.keras import KerasConv, from_keras
from convmatrix.layers.sequential import Sequential
from convmatrix.layers.torch import from_torch

__all__ = ["Adjoint", "Conv", "ConvLayer", "ConvTranspose", "KerasConv", "Layer", "Sequential",
           "from_keras", "from_torch"]
