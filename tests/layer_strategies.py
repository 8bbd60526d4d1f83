"""Hypothesis strategies of small random layers (imported only by tests that have hypothesis)."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st

import convmatrix as cm
from tests.helpers import rng as seeded

assume = hypothesis.assume

MODES = list(cm.spec.PADDING_MODES)


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
