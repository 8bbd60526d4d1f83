"""The Keras adapter: Keras layers, models and serialized configs as convmatrix objects.

One framework, one place; nothing imports Keras at module level (live layers are read
through ``get_config()`` and their weights; models are walked, traced, loaded and linearised
with Keras imported inside the functions that need it):

- :mod:`~convmatrix.adapters.keras.config`: a serialized convolution config → spec, weight
  and direction (:func:`keras_layer`, :func:`keras_matrix`, :func:`keras_output_shape`);
- :mod:`~convmatrix.adapters.keras.layers`: one Keras layer → a layer object
  (:data:`KERAS_READERS`, :func:`read_keras_layer`);
- :mod:`~convmatrix.adapters.keras.models`: :func:`from_keras` (a layer, a model or a
  ``.keras`` file), :func:`from_keras_sequential` and :func:`from_keras_functional`;
- :mod:`~convmatrix.adapters.keras.functional`: the walk of a functional (or traced
  subclassed) model's graph into a :class:`~convmatrix.Graph`;
- :mod:`~convmatrix.adapters.keras.saved`: a ``.keras`` file loaded in safe mode;
- :mod:`~convmatrix.adapters.keras.linearize`: :func:`linearize_keras`, a model's exact
  Jacobian at a point (what :func:`convmatrix.linearize` calls for Keras).

The layer kinds it builds (:class:`~convmatrix.KerasConv`,
:class:`~convmatrix.layers.channels_last.ChannelsLast`, :class:`~convmatrix.layers.repeat.Repeat`)
live in :mod:`convmatrix.layers`; they are re-exported here only for the deprecated module paths
``convmatrix.layers.keras`` and ``convmatrix.layers.keras_stack``.
"""

from convmatrix.adapters.keras.config import (
    SUPPORTED,
    KerasLayer,
    keras_layer,
    keras_matrix,
    keras_output_shape,
)
from convmatrix.adapters.keras.layers import (
    KERAS_READERS,
    is_other_keras,
    keras_conv,
    read_keras_layer,
)
from convmatrix.adapters.keras.linearize import linearize_keras
from convmatrix.adapters.keras.models import (
    from_keras,
    from_keras_functional,
    from_keras_other,
    from_keras_sequential,
)

# the layer kinds, for the deprecated convmatrix.layers.keras / keras_stack paths (not in __all__)
from convmatrix.layers.channels_last import ChannelsLast as ChannelsLast
from convmatrix.layers.channels_last import KerasConv as KerasConv
from convmatrix.layers.repeat import Repeat as Repeat

__all__ = [
    "KERAS_READERS",
    "SUPPORTED",
    "KerasLayer",
    "from_keras",
    "from_keras_functional",
    "from_keras_other",
    "from_keras_sequential",
    "is_other_keras",
    "keras_conv",
    "keras_layer",
    "keras_matrix",
    "keras_output_shape",
    "linearize_keras",
    "read_keras_layer",
]
