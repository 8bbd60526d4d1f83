"""``direction=`` in the public testing API; ``transposed=`` is its deprecated spelling."""

import numpy as np
import pytest
from hypothesis import given, settings

import convmatrix as cm
from convmatrix.testing import identify
from convmatrix.testing.strategies import conv_layers


def _fn(x):
    return cm.reference.conv(x, np.arange(1.0, 4.0).reshape(1, 1, 3), padding=[(2, 0)])


def test_identify_transposed_is_deprecated_and_means_direction():
    w = np.arange(1.0, 4.0).reshape(1, 1, 3)
    new = identify(_fn, (1, 6), w, direction="forward")
    with pytest.deprecated_call(match="`transposed=` is deprecated"):
        old = identify(_fn, (1, 6), w, transposed=False)
    assert [repr(layer) for layer in old] == [repr(layer) for layer in new] and new
    with pytest.deprecated_call():
        old = identify(_fn, (1, 6), w, transposed=True)
    new = identify(_fn, (1, 6), w, direction="adjoint")
    assert [repr(layer) for layer in old] == [repr(layer) for layer in new] and new


def test_conv_layers_direction_is_validated():
    with pytest.raises(cm.ConvMatrixError, match=r"`direction` \(=True\) must be"):
        conv_layers(direction=True)


@settings(max_examples=5)
@given(forward=conv_layers(direction="forward", max_side=3),
       adjoint=conv_layers(direction="adjoint", max_side=3))
def test_conv_layers_draws_one_direction(forward, adjoint):
    assert type(forward) is cm.Conv and type(adjoint) is cm.ConvTranspose


def test_conv_layers_deprecated_transposed():
    with pytest.deprecated_call(match="`transposed=` is deprecated"):
        strategy = conv_layers(transposed=True, max_side=3)

    @settings(max_examples=3)
    @given(strategy)
    def check(layer):
        assert type(layer) is cm.ConvTranspose

    check()


def test_geometry_takes_a_direction_and_refuses_a_bool():
    from convmatrix.testing.candidates import Geometry, geometry_of

    layer = cm.ConvTranspose(np.ones((1, 1, 3)), (1, 4), stride=2)
    geometry = geometry_of(layer)
    assert geometry.direction == "adjoint"
    with pytest.deprecated_call(match="Geometry.transposed"):
        assert geometry.transposed is True
    with pytest.raises(cm.ConvMatrixError, match=r"`direction` \(=True\) must be"):
        Geometry(True, layer.weight, (1, 4), (2,), ((0, 0),), (1,), 1)
