"""torch's broadcasting of one sample onto another's shape, as a layer (:func:`broadcast_layer`).

Used where two values that depend on the input meet with different shapes: a sum of branches
(``h - h.mean((1, 2, 3), keepdim=True)``) and, at a point, products and switches of branches.
"""

from __future__ import annotations

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.layers.base import Layer

__all__ = ["broadcast_layer"]


def broadcast_layer(shape: tuple[int, ...], out: tuple[int, ...]) -> Layer | None:
    """The 0/1 map broadcasting one sample of ``shape`` onto ``out`` (None: the same shape).

    torch's broadcasting of two batched tensors, seen on one sample: ``shape`` is aligned
    right (leading axes of 1 added), then each axis of 1 is copied: the channel axis by a
    convolution (a :class:`~convmatrix.Linear` for a flat sample) of ones, the other axes by a
    :class:`~convmatrix.layers.repeat.Repeat`.

    Examples
    --------
    >>> import numpy as np
    >>> broadcast_layer((2, 1), (2, 3))(np.array([[1.0], [2.0]]))
    array([[1., 1., 1.],
           [2., 2., 2.]])
    """
    from convmatrix.layers.conv import Conv
    from convmatrix.layers.linear import Linear
    from convmatrix.layers.repeat import Repeat
    from convmatrix.layers.reshape import Reshape
    from convmatrix.layers.sequential import Sequential

    if shape == out:
        return None
    padded = (1,) * (len(out) - len(shape)) + shape
    if len(padded) != len(out) or any(p not in (1, o) for p, o in zip(padded, out, strict=True)):
        raise ConvMatrixError(f"the shape {shape} does not broadcast onto {out}")
    layers: list[Layer] = [Reshape(shape, padded)] if padded != shape else []
    current = padded
    if current[0] != out[0]:
        ones = np.ones((out[0], 1, *(1,) * (len(out) - 1)))
        layers.append(Linear(ones, input_shape=current) if len(out) == 1 else
                      Conv(ones, current))
        current = layers[-1].output_shape
    sizes = tuple(o if c != o else 1 for c, o in zip(current[1:], out[1:], strict=True))
    if any(size > 1 for size in sizes):
        layers.append(Repeat(current, sizes))
    return layers[0] if len(layers) == 1 else Sequential(layers)
