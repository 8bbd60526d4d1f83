"""``convmatrix.lax``: ``jax.lax``'s convolutions of one sample as layer objects.

The public path of :mod:`convmatrix.adapters.lax` (where the code lives, with the other
framework readers): ``import convmatrix.lax``, ``from convmatrix.lax import conv_transpose`` and
``cm.lax.conv_transpose`` are the same functions. No JAX import.

Examples
--------
>>> import numpy as np
>>> from convmatrix.lax import conv_general_dilated
>>> conv_general_dilated((1, 1, 5), np.ones((1, 1, 3)), (1,), "VALID").matrix().toarray()
array([[1., 1., 1., 0., 0.],
       [0., 1., 1., 1., 0.],
       [0., 0., 1., 1., 1.]])
"""

from convmatrix.adapters.lax import conv_general_dilated, conv_transpose

__all__ = ["conv_general_dilated", "conv_transpose"]
