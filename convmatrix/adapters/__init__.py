"""Framework adapters: a real Keras layer/model or torch module as a layer object or matrix.

One module (or package) per framework: :mod:`convmatrix.adapters.torch`,
:mod:`convmatrix.adapters.keras`, :mod:`convmatrix.adapters.lax` (``cm.lax``),
:mod:`convmatrix.adapters.flax`. Adapters sit above :mod:`convmatrix.layers`: they translate
a framework's layer into a layer kind (a :class:`~convmatrix.geometry.spec.ConvSpec` plus a
torch-layout weight for convolutions), and the matrix always comes from the one builder.
Layers never import adapters. Neither Keras nor torch is imported: live objects are read
through their attributes.
"""

from convmatrix.adapters import lax
from convmatrix.adapters.flax import from_flax
from convmatrix.adapters.jacobian import LipschitzSummary, linearize, lipschitz_summary
from convmatrix.adapters.keras import (
    KerasLayer,
    from_keras,
    keras_layer,
    keras_matrix,
    keras_output_shape,
)
from convmatrix.adapters.onnx import from_onnx
from convmatrix.adapters.torch import from_torch, torch_bias, torch_matrix
from convmatrix.builder.channels_last import channels_last_matrix, channels_last_permutation

__all__ = [
    "KerasLayer",
    "LipschitzSummary",
    "channels_last_matrix",
    "channels_last_permutation",
    "from_flax",
    "from_keras",
    "from_onnx",
    "from_torch",
    "keras_layer",
    "keras_matrix",
    "keras_output_shape",
    "lax",
    "linearize",
    "lipschitz_summary",
    "torch_bias",
    "torch_matrix",
]
