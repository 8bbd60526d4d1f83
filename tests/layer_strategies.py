"""Hypothesis strategies of small random layers, and a sample stack (tests with hypothesis)."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st

import convmatrix as cm
from tests.helpers import rng as seeded

assume = hypothesis.assume

MODES = list(cm.geometry.spec.PADDING_MODES)


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
