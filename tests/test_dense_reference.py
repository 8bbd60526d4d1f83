"""The dense reference itself, against real framework runs and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from convmatrix import reference
from convmatrix._errors import ConvMatrixError
from tests import oracle


@pytest.mark.parametrize("case", oracle.select("torch", "conv"), ids=lambda c: c["id"])
def test_reference_conv_matches_torch(case):
    a = oracle.arrays(case)
    y = reference.conv(a["x"], a["weight"], stride=case["stride"],
                       padding=oracle.torch_padding(case), dilation=case["dilation"],
                       groups=case["groups"], padding_mode=case["padding_mode"])
    np.testing.assert_allclose(y, a["y"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", oracle.select("torch", "conv_transpose"),
                         ids=lambda c: c["id"])
def test_reference_conv_transpose_matches_torch(case):
    a = oracle.arrays(case)
    y = reference.conv_transpose(a["x"], a["weight"], stride=case["stride"],
                                 padding=case["padding"], output_padding=case["output_padding"],
                                 dilation=case["dilation"], groups=case["groups"])
    np.testing.assert_allclose(y, a["y"], rtol=1e-12, atol=1e-12)


def test_reference_1d_is_numpy_correlate():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(11), rng.standard_normal(4)
    np.testing.assert_allclose(reference.conv(x[None], w[None, None])[0],
                               np.correlate(x, w, "valid"))
    # the transposed convolution of a 1-channel signal is a full true convolution
    np.testing.assert_allclose(reference.conv_transpose(x[None], w[None, None])[0],
                               np.convolve(x, w, "full"))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_pad_adjoint_is_the_adjoint_of_pad(mode):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5))
    padding = [(2, 1), (0, 3)]
    padded = reference.pad(x, padding, mode)
    g = rng.standard_normal(padded.shape)
    assert np.isclose(np.vdot(padded, g), np.vdot(x, reference.pad_adjoint(g, padding, mode)))


def test_reference_errors():
    with pytest.raises(ConvMatrixError, match="channels"):
        reference.conv(np.ones((3, 4)), np.ones((1, 2, 2)))
    with pytest.raises(ConvMatrixError, match="padding_mode"):
        reference.conv(np.ones((1, 4)), np.ones((1, 1, 2)), padding_mode="mirror")
