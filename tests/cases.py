"""Geometries that once broke something (or nearly did), kept as regression cases.

Each entry says why it is here. Add to the end; never remove.
"""

import numpy as np

ONCE_FAILED = [
    {"why": "torch allows output_padding >= stride when below dilation: the forward "
            "convolution behind it has one more output than the transposed input",
     "transpose": True, "weight_shape": (4, 1, 2, 3), "input_shape": (4, 4, 10),
     "geometry": {"stride": 1, "padding": (1, 2), "output_padding": 1, "dilation": 2,
                  "groups": 2}},
    {"why": "reflect padding on a small input: several taps read one pixel and must add",
     "weight_shape": (2, 1, 5, 5), "input_shape": (1, 3, 4),
     "geometry": {"padding": 2, "padding_mode": "reflect"}},
    {"why": "circular padding equal to the input size wraps the whole axis once",
     "weight_shape": (1, 2, 3, 4), "input_shape": (2, 2, 3),
     "geometry": {"padding": ((2, 2), (3, 3)), "padding_mode": "circular"}},
    {"why": "replicate padding larger than the input clamps many taps onto the edge pixel",
     "weight_shape": (1, 1, 7), "input_shape": (1, 2),
     "geometry": {"padding": 4, "padding_mode": "replicate", "dilation": 1}},
    {"why": "a kernel tap that never reads a real pixel (padding wider than the dilated gap)",
     "weight_shape": (1, 1, 3), "input_shape": (1, 1),
     "geometry": {"padding": 2, "dilation": 2}},
    {"why": "strided asymmetric padding where the last input pixels are never read",
     "weight_shape": (2, 3, 2, 2), "input_shape": (3, 7, 8),
     "geometry": {"stride": 3, "padding": ((0, 1), (2, 0))}},
    {"why": "Keras DepthwiseConv2D with strides AND dilation (refused until Keras 3.15 allowed "
            "it): grouped, strided, dilated, TF 'same' pads (2, 2) and (0, 1)",
     "weight_shape": (4, 1, 3, 2), "input_shape": (2, 9, 8),
     "geometry": {"stride": (2, 3), "dilation": 2, "groups": 2,
                  "padding": ((2, 2), (0, 1))}},
    {"why": "0-d arrays as stride/padding/dilation/groups gave 'iteration over a 0-d array'",
     "weight_shape": (2, 1, 3, 3), "input_shape": (2, 7, 6),
     "geometry": {"stride": np.array(2), "padding": np.array(1), "dilation": np.array(1),
                  "groups": np.array(2)}},
    {"why": "0-d arrays in a transposed convolution, output_padding included",
     "transpose": True, "weight_shape": (1, 2, 3, 3), "input_shape": (1, 4, 3),
     "geometry": {"stride": np.array(2), "padding": np.array(1),
                  "output_padding": np.array(1)}},
]
