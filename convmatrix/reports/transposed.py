"""What "transposed convolution" means in each framework: builders and the built-in report.

The TensorFlow builders read ``tf.nn.conv2d`` / ``tf.nn.conv2d_transpose`` arguments into layer
kinds without importing TensorFlow: ``conv2d_transpose`` is TensorFlow's ``Conv2DBackpropInput``
— the adjoint of ``conv2d`` on an ``output_shape`` sample — so it is built as exactly that
(tests/regressions/test_tf_transpose_vectors.py checks both against recorded TensorFlow runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.geometry.shapes import same_padding_tf
from convmatrix.layers.channels_last import KerasConv
from convmatrix.layers.conv import Conv, ConvLayer

__all__ = ["tf_conv2d", "tf_conv2d_transpose"]


def _pairs(value: Any, name: str) -> tuple[int, int]:
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) == 4:  # TF's NHWC form (1, s, s, 1)
        values = values[1:3]
    if len(values) != 2 or any(not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ConvMatrixError(f"`{name}` (={value!r}) must be an int or two positive ints "
                              f"(or TF's (1, s_h, s_w, 1))")
    return int(values[0]), int(values[1])


def tf_conv2d(filters: Any, input_shape: Sequence[int], strides: Any = 1,
              padding: str = "VALID") -> KerasConv:
    """``tf.nn.conv2d(x, filters, strides, padding)`` on one NHWC sample, as a layer object.

    Parameters
    ----------
    filters : array_like, shape ``(k_h, k_w, C_in, C_out)``
        TensorFlow's HWIO filter.
    input_shape : sequence of int
        One sample ``(H, W, C_in)`` without the batch axis.
    strides : int or sequence of int, optional
        ``s``, ``(s_h, s_w)`` or ``(1, s_h, s_w, 1)``.
    padding : {"VALID", "SAME"}, optional
        ``"SAME"``: ``⌈n/s⌉`` outputs, the odd extra pad after (TensorFlow's rule).

    Returns
    -------
    KerasConv
        Channels-last; its matrix acts on the sample flattened in C order.

    Examples
    --------
    >>> import numpy as np
    >>> tf_conv2d(np.ones((3, 3, 1, 2)), (5, 5, 1), strides=2, padding="SAME")
    tf.nn.conv2d(1→2, 5×5×1 → 3×3×2, kernel 3×3, stride 2, padding 1)
    """
    w = np.asarray(filters, dtype=float)
    shape = tuple(int(v) for v in input_shape)
    if w.ndim != 4 or len(shape) != 3 or w.shape[2] != shape[2]:
        raise ConvMatrixError(f"`filters` {w.shape} (HWIO) and `input_shape` {shape} (H, W, C) "
                              f"do not fit: C must be the filter's third axis")
    stride = _pairs(strides, "strides")
    if padding not in ("VALID", "SAME"):
        raise ConvMatrixError(f"`padding` (={padding!r}) must be 'VALID' or 'SAME'")
    pads = tuple(same_padding_tf(shape[a], w.shape[a], stride[a]) if padding == "SAME"
                 else (0, 0) for a in range(2))
    core = Conv(np.transpose(w, (3, 2, 0, 1)), (shape[2], shape[0], shape[1]), stride=stride,
                padding=pads)
    return KerasConv(core, "tf.nn.conv2d")


def tf_conv2d_transpose(filters: Any, input_shape: Sequence[int], output_shape: Sequence[int],
                        strides: Any = 1, padding: str = "VALID") -> KerasConv:
    """``tf.nn.conv2d_transpose(x, filters, output_shape, strides, padding)`` on one sample.

    TensorFlow defines it as the gradient of :func:`tf_conv2d` with the same filter on an
    ``output_shape`` sample, so its matrix is that convolution's ``Cᵀ``; an ``output_shape``
    that convolution does not map onto ``input_shape`` is refused, as TensorFlow refuses it.

    Parameters
    ----------
    filters : array_like, shape ``(k_h, k_w, C_out, C_in)``
        TensorFlow's HWOI filter for the transpose (the forward's HWIO).
    input_shape, output_shape : sequence of int
        One sample in and out, ``(H, W, C)`` without the batch axis.
    strides, padding : optional
        As for :func:`tf_conv2d` (of the forward convolution).

    Returns
    -------
    KerasConv

    Examples
    --------
    >>> import numpy as np
    >>> up = tf_conv2d_transpose(np.ones((3, 3, 1, 1)), (3, 3, 1), (5, 5, 1), 2, "SAME")
    >>> up
    tf.nn.conv2d_transpose(1→1, 3×3×1 → 5×5×1, kernel 3×3, stride 2, padding 1)
    >>> tf_conv2d_transpose(np.ones((3, 3, 1, 1)), (3, 3, 1), (4, 4, 1), 2, "SAME")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    convmatrix._errors.ConvMatrixError: `output_shape` (=(4, 4, 1)): ... maps it to (2, 2, 1), ...
    """
    forward = tf_conv2d(filters, output_shape, strides, padding)
    shape = tuple(int(v) for v in input_shape)
    if tuple(forward.output_shape) != shape:
        raise ConvMatrixError(
            f"`output_shape` (={tuple(output_shape)}): tf.nn.conv2d with strides "
            f"{_pairs(strides, 'strides')} and padding {padding!r} maps it to "
            f"{tuple(forward.output_shape)}, not to `input_shape` (={shape}); TensorFlow "
            f"refuses it too")
    core = forward.torch
    return KerasConv(ConvLayer.from_spec(core.spec, core.weight, direction="adjoint"),
                     "tf.nn.conv2d_transpose")
