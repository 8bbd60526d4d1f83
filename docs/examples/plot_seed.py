"""
The seed example: why ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]]``
===========================================================

A 2x2 all-ones input through a 2x2 all-ones transposed kernel.
"""

import numpy as np

import convmatrix as cm

layer = cm.ConvTranspose(np.ones((1, 1, 2, 2)), input_shape=(1, 2, 2))
print(layer(np.ones((1, 2, 2))))
