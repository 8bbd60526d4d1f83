"""Framework adapters: the matrix of a real Keras layer or torch module, in its own layout.

Adapters only translate a layer into a :class:`~convmatrix.geometry.spec.ConvSpec` plus a
torch-layout weight; the matrix always comes from the one builder. Neither Keras nor torch is imported unless
a function that needs a live object is called.
"""

from convmatrix.adapters.keras import (
    KerasLayer,
    keras_layer,
    keras_matrix,
    keras_output_shape,
)
from convmatrix.adapters.torch import torch_bias, torch_matrix
from convmatrix.build.channels_last import channels_last_matrix, channels_last_permutation

__all__ = [
    "KerasLayer",
    "channels_last_matrix",
    "channels_last_permutation",
    "keras_layer",
    "keras_matrix",
    "keras_output_shape",
    "torch_bias",
    "torch_matrix",
]
