"""Hypothesis strategies of small random layers, and a sample stack (tests with hypothesis)."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import numpy as np

import convmatrix as cm
from convmatrix.geometry.spec import PADDING_MODES
from tests.helpers import rng as seeded

assume = hypothesis.assume

MODES = list(PADDING_MODES)


@st.composite
def conv_layers(draw, modes=tuple(MODES)):
    """A small random Conv (1–3 spatial axes, groups, stride, dilation, asymmetric padding)."""
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    size = [draw(st.integers(1, 6 if ndim < 3 else 4)) for _ in range(ndim)]
    kernel = [draw(st.integers(1, 3)) for _ in range(ndim)]
    stride = [draw(st.integers(1, 3)) for _ in range(ndim)]
    dilation = [draw(st.integers(1, 2)) for _ in range(ndim)]
    padding = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim)]
    mode = draw(st.sampled_from(modes))
    key = (ndim, groups, c_in, c_out, size, kernel, stride, dilation, padding, mode)
    weight = seeded("conv", key).standard_normal((c_out, c_in // groups, *kernel))
    try:
        return cm.Conv(weight, (c_in, *size), stride=stride, padding=padding,
                       dilation=dilation, groups=groups, padding_mode=mode)
    except cm.ConvMatrixError:
        assume(False)
        raise


@st.composite
def conv_transpose_layers(draw):
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    size = [draw(st.integers(1, 5 if ndim < 3 else 3)) for _ in range(ndim)]
    kernel = [draw(st.integers(1, 3)) for _ in range(ndim)]
    stride = [draw(st.integers(1, 3)) for _ in range(ndim)]
    dilation = [draw(st.integers(1, 2)) for _ in range(ndim)]
    padding = [draw(st.integers(0, 1)) for _ in range(ndim)]
    output_padding = [draw(st.integers(0, max(s, d) - 1)) for s, d in
                      zip(stride, dilation, strict=True)]
    key = (ndim, groups, c_in, c_out, size, kernel, stride, dilation, padding, output_padding)
    weight = seeded("transpose", key).standard_normal((c_in, c_out // groups, *kernel))
    try:
        return cm.ConvTranspose(weight, (c_in, *size), stride=stride, padding=padding,
                                output_padding=output_padding, dilation=dilation, groups=groups)
    except cm.ConvMatrixError:
        assume(False)
        raise


def sample_stack():
    """A stack through every layer kind with a matrix-free apply (built per test)."""
    def weight(shape, key):
        return seeded("stack", key).standard_normal(shape)

    return cm.Sequential([
        cm.Conv(weight((4, 2, 3, 3), 1), (2, 8, 8), padding=1, padding_mode="reflect"),
        cm.BatchNorm((4, 8, 8), running_mean=[0.5, 0.0, -1.0, 2.0],
                     running_var=[1.0, 4.0, 0.25, 9.0]),
        cm.AvgPool((4, 8, 8), 2),
        cm.Pad((4, 4, 4), (1, 1, 1, 1), mode="replicate"),
        cm.Conv(weight((4, 2, 2, 2), 2), (4, 6, 6), groups=2, stride=2),
        cm.Upsample((4, 3, 3), scale_factor=2, mode="bilinear"),
        cm.PixelUnshuffle((4, 6, 6), 2),
        cm.ConvTranspose(weight((16, 4, 2, 2), 3), (16, 3, 3), stride=2),
        cm.PixelShuffle((4, 6, 6), 2),
    ])


# --- issue 17's single-input kinds: each drawn with the torch function it must equal ---------


@st.composite
def sample_shapes(draw, min_axes=1, max_axes=4, max_size=5):
    """One sample's shape: 1–4 axes of sizes 1–5."""
    return tuple(draw(st.lists(st.integers(1, max_size), min_size=min_axes, max_size=max_axes)))


@st.composite
def scale_layers(draw):
    """A Scale with a scale and shift that broadcast (a number, per axis, or whole)."""
    shape = draw(sample_shapes())
    key = ("scale", shape, draw(st.integers(0, 10**6)))
    rng = seeded(*key)

    def operand():
        kind = draw(st.sampled_from(["number", "per-axis", "whole", "trailing"]))
        if kind == "number":
            return float(rng.standard_normal())
        if kind == "per-axis":
            axis = draw(st.integers(0, len(shape) - 1))
            sub = [1] * len(shape)
            sub[axis] = shape[axis]
            return rng.standard_normal(sub)
        if kind == "trailing":
            return rng.standard_normal(shape[draw(st.integers(0, len(shape) - 1)):])
        return rng.standard_normal(shape)

    return cm.Scale(shape, operand(), shift=operand())


@st.composite
def linear_layers(draw):
    """A Linear with a random weight and bias and an input shape of its in_features."""
    shape = draw(sample_shapes(max_axes=3, max_size=4))
    out = draw(st.integers(1, 6))
    rng = seeded("linear", shape, out)
    size = 1
    for n in shape:
        size *= n
    bias = rng.standard_normal(out) if draw(st.booleans()) else None
    return cm.Linear(rng.standard_normal((out, size)), bias, shape)


@st.composite
def reshape_layers(draw):
    """A Flatten, or a Reshape to a random factorisation (with a -1 somewhere sometimes)."""
    shape = draw(sample_shapes())
    if draw(st.booleans()):
        return cm.Flatten(shape)
    size = 1
    for n in shape:
        size *= n
    target = []
    rest = size
    while rest > 1 and len(target) < 3:
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = draw(st.sampled_from(divisors))
        target.append(d)
        rest //= d
    target.append(rest)
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return cm.Reshape(shape, target)


@st.composite
def slice_layers(draw):
    """A Slice along a random axis with Python slice bounds (negative, None, out of range)."""
    shape = draw(sample_shapes())
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    bound = st.none() | st.integers(-7, 7)
    start, stop = draw(bound), draw(bound)
    step = draw(st.integers(1, 3))
    n = shape[axis]
    assume(len(range(*slice(start, stop, step).indices(n))) > 0)
    return cm.Slice(shape, axis, start, stop, step)


@st.composite
def global_avg_pools(draw):
    """A GlobalAvgPool over the spatial axes or a random set of axes, keepdims or not."""
    shape = draw(sample_shapes(min_axes=2))
    keepdims = draw(st.booleans())
    if draw(st.booleans()):
        return cm.GlobalAvgPool(shape, keepdims=keepdims)
    axes = draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=3))
    chosen = {a % len(shape) for a in axes}
    assume(len(chosen) == len(axes) and (keepdims or len(chosen) < len(shape)))
    return cm.GlobalAvgPool(shape, keepdims=keepdims, axes=axes)


@st.composite
def adaptive_avg_pools(draw):
    """An AdaptiveAvgPool over 1–3 spatial axes; outputs smaller, equal or larger; None entries."""
    ndim = draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 3)), *(draw(st.integers(1, 7 if ndim < 3 else 4))
                                        for _ in range(ndim)))
    sizes = [draw(st.none() | st.integers(1, 8 if ndim < 3 else 4)) for _ in range(ndim)]
    if ndim > 1 and draw(st.booleans()):
        return cm.AdaptiveAvgPool(shape, sizes[0] or 1)
    return cm.AdaptiveAvgPool(shape, sizes)


def torch_function(layer, torch):
    """The torch computation a layer of the new kinds must equal (one sample, float64)."""
    if isinstance(layer, cm.Scale):
        scale = torch.tensor(np.array(layer.scale, dtype=np.float64))
        shift = torch.tensor(np.array(layer.shift, dtype=np.float64))
        return lambda x: scale * x + shift
    if isinstance(layer, cm.Linear):
        weight = torch.tensor(np.array(layer.weight, dtype=np.float64))
        bias = None if layer.bias is None else torch.tensor(np.array(layer.bias, np.float64))
        return lambda x: torch.nn.functional.linear(torch.flatten(x), weight, bias)
    if isinstance(layer, cm.Flatten):
        return torch.flatten
    if isinstance(layer, cm.Reshape):
        return lambda x: x.reshape(layer.output_shape)
    if isinstance(layer, cm.Slice):
        index = (slice(None),) * layer.axis + (slice(layer.start, layer.stop, layer.step),)
        return lambda x: x[index]
    if isinstance(layer, cm.GlobalAvgPool):
        return lambda x: x.mean(dim=layer.axes, keepdim=layer.keepdims)
    if isinstance(layer, cm.AdaptiveAvgPool):
        pool = getattr(torch.nn.functional, f"adaptive_avg_pool{len(layer.output_size)}d")
        return lambda x: pool(x[None], layer.output_size)[0]
    raise TypeError(type(layer))


new_kind_layers = st.one_of(scale_layers(), linear_layers(), reshape_layers(), slice_layers(),
                            global_avg_pools(), adaptive_avg_pools())
"""Any of issue 17's single-input kinds (see :func:`torch_function` for its torch twin)."""


@st.composite
def new_kind_stacks(draw):
    """A random chain through the new kinds and a convolution: Conv → Scale → Slice → pool →
    Flatten → Linear → Reshape (each present or not; the pool global or adaptive)."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 5)), draw(st.integers(2, 5))
    key = ("new-stack", c, h, w, draw(st.integers(0, 10**6)))
    rng = seeded(*key)
    layers = [cm.Conv(rng.standard_normal((2, c, 2, 2)), (c, h, w), bias=rng.standard_normal(2))]
    shape = layers[-1].output_shape
    if draw(st.booleans()):
        layers.append(cm.Scale(shape, rng.standard_normal((shape[0], 1, 1)),
                               shift=float(rng.standard_normal())))
    wide = [axis for axis in range(3) if shape[axis] >= 2]
    if wide and draw(st.booleans()):
        layers.append(cm.Slice(shape, draw(st.sampled_from(wide)), 1, None))
        shape = layers[-1].output_shape
    pool = draw(st.sampled_from(["none", "global", "adaptive"]))
    if pool == "global":
        layers.append(cm.GlobalAvgPool(shape, keepdims=draw(st.booleans())))
        shape = layers[-1].output_shape
    elif pool == "adaptive":
        layers.append(cm.AdaptiveAvgPool(shape, (draw(st.integers(1, 3)), None)))
        shape = layers[-1].output_shape
    layers.append(cm.Flatten(shape))
    size = layers[-1].output_shape[0]
    out = draw(st.integers(1, 4)) * 4
    layers.append(cm.Linear(rng.standard_normal((out, size)), rng.standard_normal(out)))
    if draw(st.booleans()):
        layers.append(cm.Reshape((out,), (out // 4, 2, -1)))
    return cm.Sequential(layers)
