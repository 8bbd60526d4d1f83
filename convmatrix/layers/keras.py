"""Deprecated alias of :mod:`convmatrix.adapters.keras` (kept for one release).

The layer kinds moved to :mod:`convmatrix.layers.channels_last` (``KerasConv``,
``ChannelsLast``) and :mod:`convmatrix.layers.repeat` (``Repeat``); the Keras reading
(``from_keras``, ``KERAS_READERS``, ...) to :mod:`convmatrix.adapters.keras`, which
re-exports the kinds for this old path.
"""

from convmatrix._deprecated import alias_module

alias_module(__name__, "convmatrix.adapters.keras")
