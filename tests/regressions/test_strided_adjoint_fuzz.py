"""Issue 19: what an adversarial fuzz of the adjoint kernels (flat col2im, phases, the
channel-wise taps) found, each against live torch and the layer's exact sparse matrix."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.builder import apply

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_zero_weight_tap_still_multiplies_an_inf():
    """A channel-wise layer adds its taps with BLAS ``axpy``, which returns at once for a
    zero weight: ``0·inf`` was dropped (a finite value where torch and the matrix, which
    stores the zero tap, give a nan)."""
    weight = np.array([[[1.0, 0.0]]])
    x = np.array([[[1.0, np.inf, 1.0]]])
    conv = cm.Conv(weight, (1, 3))
    expected = F.conv1d(torch.from_numpy(x), torch.from_numpy(weight)).numpy()
    with np.errstate(invalid="ignore"):
        got = conv(x)
        exact = conv.matrix() @ x.ravel()
    np.testing.assert_array_equal(np.isnan(got).ravel(), np.isnan(expected).ravel())
    np.testing.assert_array_equal(np.isnan(got).ravel(), np.isnan(exact))
    assert np.isnan(got[0, 0, 0])


def test_strided_depthwise_adjoint_with_a_zero_tap_propagates_the_nan():
    """The adjoint of a strided depthwise layer with more groups than ``FLAT_GROUPS`` runs
    by phases, each a channel-wise convolution (the ``axpy`` taps): a zero tap times an inf
    in ``y`` is a nan, as in torch's vjp and ``Cᵀ y``."""
    weight = np.ones((6, 1, 5))
    weight[:, :, 2] = 0.0  # the second tap of its phase (the first is a plain multiply)
    spec = cm.conv_spec(weight.shape, (6, 11), stride=2, groups=6)
    assert apply.adjoint._strided_adjoint(spec) == "phases"
    y = np.ones((1, *spec.output_shape))
    y[0, 0, 1] = np.inf
    x = torch.zeros((1, *spec.input_shape), dtype=torch.float64, requires_grad=True)
    F.conv1d(x, torch.from_numpy(weight), stride=2, groups=6).backward(torch.from_numpy(y))
    with np.errstate(invalid="ignore"):
        got = apply.conv_apply_adjoint(spec, weight, y)
        exact = cm.conv_matrix(weight, (6, 11), stride=2, groups=6).T @ y.ravel()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(x.grad.numpy()))
    np.testing.assert_array_equal(np.isnan(got).ravel(), np.isnan(exact))
    assert np.isnan(got).any()


@pytest.mark.parametrize(("n", "stride", "padding", "dilation", "output_padding"),
                         [(2, 1, 3, 2, 1), (5, 1, 6, 3, 2), (3, (1, 2), (2, 3), 3, (2, 1))])
def test_transposed_layer_whose_output_padding_trims_outputs(n, stride, padding, dilation,
                                                              output_padding):
    """``output_padding ≥ stride`` (allowed when the dilation is larger) leaves the forward
    convolution fewer outputs than its input gives; with stride 1 the adjoint's flipped
    convolution then has a padded input shorter than the kernel, and building it raised
    "kernel does not fit" on a valid layer (its forward, ``Conv.T`` and the operators)."""
    ndim = 1 if isinstance(stride, int) else len(stride)
    weight = np.arange(1.0, 2 * 3**ndim + 1).reshape(1, 2, *(3,) * ndim)
    x = np.arange(1.0, n**ndim + 1).reshape(1, 1, *(n,) * ndim)
    layer = cm.ConvTranspose(weight, (1, *(n,) * ndim), stride=stride, padding=padding,
                             dilation=dilation, output_padding=output_padding)
    expected = getattr(F, f"conv_transpose{ndim}d")(
        torch.from_numpy(x), torch.from_numpy(weight), stride=stride, padding=padding,
        dilation=dilation, output_padding=output_padding).numpy()
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)
    np.testing.assert_allclose(layer.operator().matvec(x.ravel()), expected.ravel(),
                               rtol=1e-12)
    np.testing.assert_allclose(layer.matrix() @ x.ravel(), expected.ravel(), rtol=1e-12)
