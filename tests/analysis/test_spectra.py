"""Spectra against the dense SVD of the built matrix: the circulant FFT spectrum, ARPACK's k
largest/smallest on the operator, the certified norm bound, and a stack's Lipschitz table."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
import convmatrix.analysis.spectra as spectra
from tests.helpers import rng as seeded

hypothesis = pytest.importorskip("hypothesis")
given, settings = hypothesis.given, hypothesis.settings

from tests.layer_strategies import (  # noqa: E402
    MODES,
    conv_layers,
    conv_transpose_layers,
    sample_stack,
)


def dense_singular_values(layer):
    """The independent answer: numpy's SVD of the dense built matrix."""
    return np.linalg.svd(layer.matrix().toarray().astype(complex), compute_uv=False)


CIRCULANT = [
    # weight shape, input shape, geometry (circular padding, stride 1, b + a = d·(k − 1))
    ((1, 1, 3), (1, 7), {"padding": 1}),
    ((2, 3, 3, 3), (3, 5, 6), {"padding": 1}),
    ((3, 2, 2, 3), (2, 4, 5), {"padding": ((1, 0), (0, 2))}),
    ((4, 1, 3, 2), (2, 6, 4), {"padding": ((2, 2), (1, 0)), "dilation": (2, 1), "groups": 2}),
    ((2, 2, 3, 3), (2, 3, 3), {"padding": ((2, 2), (1, 1)), "dilation": (2, 1)}),  # wraps twice
    ((2, 1, 2, 2, 2), (1, 3, 4, 3), {"padding": ((1, 0), (0, 1), (1, 0))}),
    ((5, 2, 3), (2, 6), {"padding": 1}),  # C_out > C_in: zeros beyond min(C_out, C_in)
]


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
@pytest.mark.parametrize(("weight_shape", "input_shape", "geometry"), CIRCULANT)
def test_circulant_fft_spectrum_equals_the_dense_svd(weight_shape, input_shape, geometry, dtype):
    rng = seeded(weight_shape, input_shape, geometry, dtype)
    weight = rng.standard_normal(weight_shape)
    if dtype == "complex128":
        weight = weight + 1j * rng.standard_normal(weight_shape)
    layer = cm.Conv(weight, input_shape, padding_mode="circular", **geometry)
    values = cm.singular_values(layer, method="fft")
    expected = dense_singular_values(layer)
    assert values.shape == expected.shape
    np.testing.assert_allclose(values, expected, rtol=1e-10, atol=1e-10)
    assert np.all(np.diff(values) <= 0)
    np.testing.assert_allclose(cm.singular_values(layer.T), expected, rtol=1e-10, atol=1e-10)
    assert cm.operator_norm(layer) == pytest.approx(expected[0], rel=1e-12)
    assert cm.operator_norm_bound(layer) >= expected[0]
    assert cm.operator_norm_bound(layer) == pytest.approx(expected[0], rel=1e-8)
    np.testing.assert_allclose(cm.singular_values(layer, 3, "smallest"), expected[-3:],
                               rtol=1e-10, atol=1e-10)


LAYERS = [
    cm.Conv(seeded(1).standard_normal((3, 2, 3, 3)), (2, 7, 6), padding=1),
    cm.Conv(seeded(2).standard_normal((2, 2, 3, 3)), (2, 8, 7), stride=2, padding=1,
            padding_mode="reflect"),
    cm.Conv(seeded(3).standard_normal((4, 1, 3)), (2, 11), groups=2, dilation=2,
            padding=2, padding_mode="replicate"),
    cm.Conv(seeded(4).standard_normal((2, 2, 2, 2)), (2, 6, 6), padding=1,
            padding_mode="symmetric"),
    cm.Conv(seeded(5).standard_normal((2, 2, 3, 3)), (2, 6, 6), stride=2, padding=1,
            padding_mode="circular"),
    cm.ConvTranspose(seeded(6).standard_normal((3, 2, 3, 3)), (3, 4, 4), stride=2, padding=1,
                     output_padding=1),
    cm.Conv(seeded(7).standard_normal((1, 2, 2, 2, 2)), (2, 3, 4, 3), padding=1),
]


@pytest.mark.parametrize("which", ["largest", "smallest"])
@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_iterative_singular_values_equal_the_dense_svd(layer, which):
    k = 4
    values = cm.singular_values(layer, k, which, method="iterative")
    expected = dense_singular_values(layer)
    expected = expected[:k] if which == "largest" else expected[-k:]
    np.testing.assert_allclose(values, expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(cm.singular_values(layer, k, which), expected, rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_iterative_operator_norm_equals_the_dense_svd(layer):
    expected = dense_singular_values(layer)[0]
    assert cm.operator_norm(layer, method="iterative") == pytest.approx(expected, rel=1e-9)
    assert cm.operator_norm(layer.T, method="iterative") == pytest.approx(expected, rel=1e-9)
    assert cm.operator_norm(layer) == pytest.approx(expected, rel=1e-12)


@settings(max_examples=120, deadline=None)
@given(conv_layers())
def test_certified_bound_is_at_least_the_norm(layer):
    norm = dense_singular_values(layer)[0]
    bound = cm.operator_norm_bound(layer)
    assert bound >= norm
    assert cm.operator_norm_bound(layer.T) == bound


@settings(max_examples=60, deadline=None)
@given(conv_transpose_layers())
def test_certified_bound_of_transposed_layers_is_at_least_the_norm(layer):
    assert cm.operator_norm_bound(layer) >= dense_singular_values(layer)[0]


def test_zero_padding_bound_is_tight_for_a_large_layer():
    """The circular-embedding bound approaches the norm as the image grows (same kernel)."""
    weight = seeded("tight").standard_normal((2, 2, 3, 3))
    layer = cm.Conv(weight, (2, 16, 16), padding=1)
    norm = np.linalg.norm(layer.matrix().toarray(), 2)
    assert norm <= cm.operator_norm_bound(layer) <= 1.02 * norm


def test_bound_of_a_layer_kind_without_a_convolution_uses_hoelder():
    """A generic layer: √(‖C‖₁‖C‖∞) from its matrix blocks."""
    conv = cm.Conv(seeded("generic").standard_normal((2, 2, 3)), (2, 6), padding=1,
                   padding_mode="replicate")

    class Wrapped(cm.Layer):
        input_shape = conv.input_shape
        output_shape = conv.output_shape

        def _build_matrix(self, format, max_bytes):
            return conv.matrix(format, max_bytes=max_bytes)

    dense = np.abs(conv.matrix().toarray())
    expected = np.sqrt(dense.sum(axis=1).max() * dense.sum(axis=0).max())
    assert cm.operator_norm_bound(Wrapped()) == pytest.approx(expected, rel=1e-8)
    assert cm.operator_norm_bound(Wrapped()) >= dense_singular_values(conv)[0]


def test_lipschitz_of_a_stack_against_the_dense_product():
    a = cm.Conv(seeded("a").standard_normal((3, 2, 3, 3)), (2, 8, 8), padding=1)
    b = cm.Conv(seeded("b").standard_normal((2, 3, 3, 3)), (3, 8, 8), stride=2, padding=1,
                padding_mode="reflect")
    c = cm.ConvTranspose(seeded("c").standard_normal((2, 1, 2, 2)), (2, 4, 4), stride=2)
    result = cm.lipschitz([a, b, c])
    product = (c.matrix() @ b.matrix() @ a.matrix()).toarray()
    assert result.exact == pytest.approx(np.linalg.norm(product, 2), rel=1e-10)
    norms = [np.linalg.norm(m.matrix().toarray(), 2) for m in (a, b, c)]
    np.testing.assert_allclose(result.norms, norms, rtol=1e-10)
    assert result.product_of_norms == pytest.approx(np.prod(norms), rel=1e-10)
    assert result.exact <= result.product_of_norms <= result.product_of_bounds
    text = str(result)
    assert "product of the layers" in text and f"{result.exact:.6g}" in text
    assert result._repr_markdown_().startswith("| layer | ‖C‖₂ | certified bound |")


def test_lipschitz_refuses_mismatched_shapes():
    a = cm.Conv(np.ones((2, 1, 3)), (1, 8))
    with pytest.raises(cm.ConvMatrixError,
                       match=r"layer 1 takes \(1, 8\) but layer 0 gives \(2, 6\)"):
        cm.lipschitz([a, a])
    with pytest.raises(cm.ConvMatrixError, match="non-empty sequence"):
        cm.lipschitz([])


def test_bad_arguments_are_refused():
    layer = cm.Conv(np.ones((1, 1, 3)), (1, 8), padding=1)
    with pytest.raises(cm.ConvMatrixError, match=r"`k` \(=0\) must be None or an int between 1"):
        cm.singular_values(layer, 0)
    with pytest.raises(cm.ConvMatrixError, match=r"`k` \(=9\)"):
        cm.singular_values(layer, 9)
    with pytest.raises(cm.ConvMatrixError, match=r"`which` \(='top'\)"):
        cm.singular_values(layer, 1, "top")  # type: ignore[arg-type]
    with pytest.raises(cm.ConvMatrixError, match=r"`method` \(='svd'\) must be one of"):
        cm.operator_norm(layer, method="svd")  # type: ignore[arg-type]
    with pytest.raises(cm.ConvMatrixError, match="method='fft' needs a block-circulant"):
        cm.singular_values(layer, method="fft")
    with pytest.raises(cm.ConvMatrixError, match="method='iterative' computes a few"):
        cm.singular_values(layer, method="iterative")
    with pytest.raises(cm.ConvMatrixError, match=r"`tol` \(=-1\)"):
        cm.operator_norm(layer, tol=-1)
    with pytest.raises(cm.ConvMatrixError, match="must be a convmatrix layer object"):
        cm.operator_norm(np.eye(3))  # type: ignore[arg-type]


def test_dense_is_refused_above_the_entry_limit(monkeypatch):
    layer = cm.Conv(np.ones((1, 1, 3)), (1, 8), padding=1)
    monkeypatch.setattr(spectra.methods, "DENSE_MAX_ENTRIES", 10)
    with pytest.raises(cm.ConvMatrixError, match=r"needs the 8×8 matrix as a dense array"):
        cm.singular_values(layer, method="dense")
    # auto falls back to ARPACK on the operator
    assert cm.operator_norm(layer) == pytest.approx(dense_singular_values(layer)[0], rel=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_padding_norm_counts_the_copies(mode):
    """‖Pad‖₂ by the copy count against the dense padding matrix's norm."""
    layer = cm.Conv(np.ones((1, 1, 1, 1)), (1, 5, 4), padding=((2, 1), (0, 3)),
                    padding_mode=mode)
    pad = np.zeros((8 * 7, 20))
    source = np.arange(20).reshape(1, 1, 5, 4)
    from convmatrix.builder.apply import _pad

    padded = _pad(source.astype(float) + 1, layer.spec).reshape(-1)
    for row, value in enumerate(padded):
        if value:
            pad[row, int(value) - 1] = 1
    # the padding map of a 1×1 convolution is its matrix
    np.testing.assert_array_equal(pad, layer.matrix().toarray())
    expected = np.linalg.norm(pad, 2)
    assert spectra.bounds.padding_norm(layer.spec) == pytest.approx(expected, rel=1e-12)


def test_stack_of_every_layer_kind():
    """Sequential: exact norm of the product, per-layer certified bounds, their product."""
    stack = sample_stack()
    dense = stack.matrix().toarray()
    norm = np.linalg.norm(dense, 2)
    assert cm.operator_norm(stack) == pytest.approx(norm, rel=1e-10)
    assert cm.operator_norm(stack, method="iterative") == pytest.approx(norm, rel=1e-8)
    result = cm.lipschitz(stack)
    assert result.exact == pytest.approx(norm, rel=1e-10)
    layer_norms = [np.linalg.norm(layer.matrix().toarray(), 2) for layer in stack.layers]
    np.testing.assert_allclose(result.norms, layer_norms, rtol=1e-9)
    assert all(b >= n for b, n in zip(result.bounds, layer_norms, strict=True))
    assert cm.operator_norm_bound(stack) == pytest.approx(result.product_of_bounds, rel=1e-12)
    assert cm.operator_norm_bound(stack) >= norm
    assert cm.operator_norm_bound(stack.T) >= norm


def test_the_spectra_package_re_exports_its_parts():
    from convmatrix.analysis.spectra import bounds, fft, iterative, methods

    assert spectra.singular_values is methods.singular_values
    assert spectra.operator_norm is methods.operator_norm
    assert spectra.operator_norm_bound is bounds.operator_norm_bound
    assert spectra.lipschitz is bounds.lipschitz
    assert spectra.LipschitzBounds is bounds.LipschitzBounds
    assert cm.singular_values is spectra.singular_values
    assert fft.is_circulant(cm.Conv(np.ones((1, 1, 2)), (1, 4), padding=((0, 1),),
                                    padding_mode="circular").spec)
    assert callable(iterative.conv_norm)


def test_one_dense_limit_for_the_stack_norm_too(monkeypatch):
    a = cm.Conv(np.array([[[1.0, 1.0]]]), (1, 40))
    b = cm.Conv(np.array([[[1.0, -1.0]]]), (1, 39))
    dense = cm.lipschitz([a, b]).exact
    monkeypatch.setattr(spectra.methods, "DENSE_MAX_ENTRIES", 10)  # ARPACK on the product
    assert cm.lipschitz([a, b], tol=1e-10).exact == pytest.approx(dense, rel=1e-8)
