"""padding_mode="symmetric" (numpy / TF MirrorPad SYMMETRIC) against np.pad and closed forms."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convmatrix as cm
from convmatrix import reference
from tests.helpers import rng as _rng


def test_symmetric_by_hand():
    # [a b c] padded by 2 on both sides -> [b a | a b c | c b]
    x = np.array([[1, 2, 3]])
    assert reference.pad(x, [(2, 2)], "symmetric").tolist() == [[2, 1, 1, 2, 3, 3, 2]]
    # the matrix of a one-tap identity kernel copies the padded signal: rows pick inputs
    C = cm.conv_matrix(np.ones((1, 1, 1), dtype=int), (1, 3), padding=[(2, 2)],
                       padding_mode="symmetric")
    assert (C @ np.array([1, 2, 3])).tolist() == [2, 1, 1, 2, 3, 3, 2]
    # a 2-tap kernel merges the two edge taps reading the same pixel into one entry 1 + 10
    C = cm.conv_matrix(np.array([[[1, 10]]]), (1, 3), padding=[(1, 1)],
                       padding_mode="symmetric")
    assert C.toarray().tolist() == [[11, 0, 0], [1, 10, 0], [0, 1, 10], [0, 0, 11]]


@pytest.mark.parametrize(("n", "pads"), [(3, (3, 3)), (4, (1, 4)), (1, (1, 1)), (5, (0, 2))])
def test_symmetric_up_to_the_input_size(n, pads):
    x = _rng(n, pads).standard_normal((2, n))
    w = _rng(n, pads, "w").standard_normal((3, 2, 2))
    C = cm.conv_matrix(w, x.shape, padding=[pads], padding_mode="symmetric")
    expected = reference.conv(x, w, padding=[pads], padding_mode="symmetric")
    np.testing.assert_allclose(C @ x.ravel(), expected.ravel(), rtol=1e-12, atol=1e-12)


def test_symmetric_padding_beyond_the_input_is_refused():
    with pytest.raises(cm.ConvMatrixError, match=r"at most the input size \(3\).*symmetric"):
        cm.conv_matrix(np.ones((1, 1, 2)), (1, 3), padding=4, padding_mode="symmetric")


GRID = list(itertools.product([1, 2], [1, (2, 0), ((1, 3), (0, 2))], [1, (2, 1)], [1, 2]))


@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"), GRID, ids=str)
def test_symmetric_grid_2d_against_reference(stride, padding, dilation, groups):
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode="symmetric")
    rng = _rng(stride, padding, dilation, groups)
    weight = rng.standard_normal((4, 4 // groups, 3, 2))
    x = rng.standard_normal((4, 5, 4))
    layer = cm.Conv(weight, x.shape, **geometry)
    expected = reference.conv(x, weight, **geometry)
    np.testing.assert_allclose(layer.matrix() @ x.ravel(), expected.ravel(), rtol=1e-12,
                               atol=1e-12)
    # the adjoint: <C x, y> = <x, Cᵀ y>, Cᵀ y via the reference's own pad adjoint
    y = rng.standard_normal(layer.output_shape)
    np.testing.assert_allclose(np.vdot(layer.matrix() @ x.ravel(), y.ravel()),
                               np.vdot(x.ravel(), layer.T.matrix() @ y.ravel()), rtol=1e-10)


@pytest.mark.parametrize("ndim", [1, 3])
def test_symmetric_nd_against_reference(ndim):
    rng = _rng(ndim)
    x = rng.standard_normal((2, *(4, 3, 5)[:ndim]))
    w = rng.standard_normal((2, 2, *(3, 2, 3)[:ndim]))
    geometry = dict(padding=2, stride=(1, 2, 1)[:ndim], padding_mode="symmetric")
    np.testing.assert_allclose(cm.conv_matrix(w, x.shape, **geometry) @ x.ravel(),
                               reference.conv(x, w, **geometry).ravel(), rtol=1e-12,
                               atol=1e-12)


def test_pad_adjoint_symmetric():
    rng = _rng("adjoint")
    x = rng.integers(-5, 5, (2, 4, 3))
    padding = [(2, 4), (3, 1)]
    g = rng.integers(-5, 5, reference.pad(x, padding, "symmetric").shape)
    assert np.vdot(reference.pad(x, padding, "symmetric"), g) == np.vdot(
        x, reference.pad_adjoint(g, padding, "symmetric"))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2),
       before=st.integers(0, 6), after=st.integers(0, 6))
def test_symmetric_property_1d(n, k, s, d, before, after):
    before, after = min(before, n), min(after, n)
    if n + before + after < d * (k - 1) + 1:
        return
    x = np.arange(1.0, n + 1)[None]
    w = 10.0 ** np.arange(k)[None, None]
    C = cm.conv_matrix(w, x.shape, stride=s, padding=[(before, after)], dilation=d,
                       padding_mode="symmetric")
    np.testing.assert_array_equal(
        C @ x.ravel(), reference.conv(x, w, stride=s, padding=[(before, after)], dilation=d,
                                      padding_mode="symmetric").ravel())
