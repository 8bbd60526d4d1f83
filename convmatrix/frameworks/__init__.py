"""Framework adapters: the matrix of a real Keras layer or torch module, in its own layout.

Adapters only translate a layer into a :class:`~convmatrix.spec.ConvSpec` plus a torch-layout
weight; the matrix always comes from the one builder. Neither Keras nor torch is imported unless
a function that needs a live object is called.
"""

from convmatrix.frameworks.keras import (
    KerasLayer,
    keras_layer,
    keras_matrix,
    keras_output_shape,
)
from convmatrix.frameworks.layout import channels_last_matrix, channels_last_permutation
from convmatrix.frameworks.torch import torch_bias, torch_matrix

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
