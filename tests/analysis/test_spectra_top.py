"""The k largest singular values (block Lanczos / Lanczos from plane-wave starts) against
numpy's dense SVD of the built matrix, and against the FFT closed form of circular layers."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.analysis.spectra import iterative
from tests.helpers import rng as seeded


def dense_top(layer, k):
    """The independent answer: numpy's SVD of the dense built matrix."""
    return np.linalg.svd(layer.matrix().toarray().astype(complex), compute_uv=False)[:k]


def circular_closed_form(weight, size):
    """All singular values of a circular, stride-1 2-D convolution: per frequency the SVD of
    the kernel's DFT on the torus (numpy's FFT; the shift by the padding is a unimodular
    phase, so it changes no singular value)."""
    out_c, in_c, kh, kw = weight.shape
    torus = np.zeros((out_c, in_c, *size), dtype=complex)
    for a in range(kh):
        for b in range(kw):
            torus[:, :, a % size[0], b % size[1]] += weight[:, :, a, b]
    symbol = np.fft.fft2(torus, axes=(2, 3)).transpose(2, 3, 0, 1)
    return np.sort(np.linalg.svd(symbol, compute_uv=False).reshape(-1))[::-1]


LAYERS = [
    cm.Conv(seeded(1).standard_normal((3, 2, 3, 3)), (2, 12, 11), padding=1),
    cm.Conv(seeded(2).standard_normal((2, 2, 3, 3)), (2, 14, 13), stride=2, padding=1,
            padding_mode="reflect"),
    cm.Conv(seeded(3).standard_normal((4, 1, 3)), (2, 40), groups=2, dilation=2,
            padding=2, padding_mode="replicate"),
    cm.Conv(seeded(4).standard_normal((2, 2, 2, 2)), (2, 12, 12), padding=1,
            padding_mode="symmetric"),
    cm.Conv(seeded(5).standard_normal((2, 2, 3, 3)), (2, 12, 12), stride=2, padding=1,
            padding_mode="circular"),
    cm.Conv(seeded(6).standard_normal((4, 2, 3, 3)), (4, 10, 10), padding=2, dilation=2,
            groups=2),
    cm.ConvTranspose(seeded(7).standard_normal((3, 2, 3, 3)), (3, 6, 6), stride=2, padding=1,
                     output_padding=1),
    cm.Conv(seeded(8).standard_normal((1, 2, 2, 2, 2)), (2, 5, 6, 5), padding=1),
    cm.Conv(seeded(9).standard_normal((2, 2, 3, 3))
            + 1j * seeded(10).standard_normal((2, 2, 3, 3)), (2, 9, 9), padding=1),
]


# Every algorithm on every layer, except single-vector Lanczos on dilated layers: dilation d
# repeats values exactly ∏d times and one Lanczos vector can find only one copy (that is why
# the automatic choice uses the block method there, split per dilation sub-grid).
CASES = [(layer, block) for block in (None, True, False) for layer in LAYERS
         if not (block is False and max(layer.conv_view().spec.dilation) > 1)]


@pytest.mark.parametrize(("layer", "block"), CASES,
                         ids=[f"{layer!r}-block={block}" for layer, block in CASES])
def test_top_values_equal_the_dense_svd(layer, block, monkeypatch):
    k = 6
    expected = dense_top(layer, k)
    if block is not None:  # both algorithms on every kind, not only the one auto picks
        original = iterative.conv_top
        monkeypatch.setattr(iterative, "conv_top",
                            lambda *a, **kw: original(*a, **kw, block=block))
        import convmatrix.analysis.spectra.methods as methods
        monkeypatch.setattr(methods, "conv_top", iterative.conv_top)
    top = cm.top_singular_values(layer, k, tol=1e-8, method="iterative")
    np.testing.assert_allclose(top.values, expected, rtol=1e-8, atol=1e-12)
    assert np.all(top.residuals <= 1e-7)
    assert top.products > 0 and top.method in ("block-lanczos", "lanczos")
    np.testing.assert_allclose(cm.singular_values(layer, k, method="iterative", tol=1e-8),
                               expected, rtol=1e-8, atol=1e-12)
    assert top.gaps.shape == (k - 1,) and top.separated.shape == (k - 1,)


@pytest.mark.parametrize(("weight_shape", "size", "padding"), [
    ((3, 3, 3, 3), (12, 10), 1),
    ((2, 4, 3, 2), (9, 8), ((1, 1), (1, 0))),
    ((4, 4, 5, 5), (16, 16), 2),
])
def test_circular_top_values_equal_the_fft_closed_form(weight_shape, size, padding):
    weight = seeded(weight_shape).standard_normal(weight_shape)
    layer = cm.Conv(weight, (weight_shape[1], *size), padding=padding, padding_mode="circular")
    expected = circular_closed_form(weight, size)[:6]
    # real weights: f and −f give exactly equal values, the pairs a block must resolve
    top = cm.top_singular_values(layer, 6, tol=1e-9, method="iterative")
    np.testing.assert_allclose(top.values, expected, rtol=1e-9)
    assert np.all(top.residuals <= 1e-8)
    np.testing.assert_allclose(cm.top_singular_values(layer, 6).values, expected, rtol=1e-12)
    assert cm.top_singular_values(layer, 6).method == "fft"


def test_a_stack_uses_arpack_on_the_product():
    a = cm.Conv(seeded("a").standard_normal((2, 1, 3, 3)), (1, 10, 10), padding=1)
    b = cm.Conv(seeded("b").standard_normal((2, 2, 3, 3)), (2, 10, 10), stride=2)
    stack = cm.Sequential([a, b])
    dense = b.matrix().toarray() @ a.matrix().toarray()
    expected = np.linalg.svd(dense, compute_uv=False)[:4]
    top = cm.top_singular_values(stack, 4, tol=1e-10, method="iterative")
    np.testing.assert_allclose(top.values, expected, rtol=1e-9)
    assert top.method == "arpack"


def test_zero_layer_and_the_table():
    zero = cm.Conv(np.zeros((2, 2, 3, 3)), (2, 30, 30), padding=1)
    np.testing.assert_array_equal(cm.top_singular_values(zero, 3, method="iterative").values,
                                  np.zeros(3))
    layer = LAYERS[0]
    text = str(cm.top_singular_values(layer, 3, method="iterative"))
    assert "residual" in text and "gap to next" in text and "pairs told apart" in text
    assert len(text.splitlines()) == 6


def test_unreached_tolerance_warns(monkeypatch):
    monkeypatch.setattr(iterative, "_MAX_STEPS", 2)
    layer = LAYERS[4]  # real weights, paired peak or not: force the block method
    with pytest.warns(RuntimeWarning, match="without reaching `tol`"):
        iterative.conv_top(layer.conv_view().spec, layer.conv_view().weight, 3, 1e-12,
                           block=True)


def test_bad_arguments_are_refused():
    layer = LAYERS[0]
    with pytest.raises(cm.ConvMatrixError, match="`k`"):
        cm.top_singular_values(layer, 0)
    with pytest.raises(cm.ConvMatrixError, match="`tol`"):
        cm.top_singular_values(layer, 2, tol=-1.0)
    with pytest.raises(cm.ConvMatrixError, match="below"):
        cm.top_singular_values(layer, min(layer.matrix_shape), method="iterative")


def test_default_tolerances_agree():
    import inspect
    defaults = {fn.__name__: inspect.signature(fn).parameters["tol"].default
                for fn in (cm.singular_values, cm.operator_norm, cm.top_singular_values)}
    assert set(defaults.values()) == {1e-6}, defaults


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_the_tolerance_is_honoured(layer, tol):
    """Residuals at most ``tol``, so each value within ``tol`` (relative) of numpy's."""
    expected = dense_top(layer, 5)
    top = cm.top_singular_values(layer, 5, tol=tol, method="iterative")
    assert np.all(top.residuals <= tol)
    np.testing.assert_allclose(top.values, expected, rtol=tol)
    values = cm.singular_values(layer, 5, method="iterative", tol=tol)
    np.testing.assert_allclose(values, expected, rtol=tol)
    first = cm.top_singular_values(layer, 1, tol=tol, method="iterative")  # the norm's run
    assert first.residuals[0] <= tol and first.values[0] == pytest.approx(expected[0], rel=tol)


@pytest.mark.parametrize("stride", [(2, 2), (2, 3), (1, 2)])
def test_the_strided_symbol_gives_the_circular_norm(stride):
    """Aliased frequencies (g + a)/s: on the output grid, the largest singular value of the
    polyphase block over √∏s is the norm of a circular strided layer (numpy's dense SVD)."""
    layer = cm.Conv(seeded(stride).standard_normal((3, 2, 3, 3)), (2, 12, 12), stride=stride,
                    padding=1, padding_mode="circular")
    spec, weight = layer.conv_view().spec, layer.conv_view().weight
    grid = np.stack(np.meshgrid(*(np.arange(n) / n for n in spec.output_size), indexing="ij"),
                    axis=-1).reshape(-1, 2)
    blocks, cycles = iterative._polyphase(spec, weight, grid)
    assert cycles.shape == (len(grid), stride[0] * stride[1], 2)
    norm = np.linalg.svd(blocks, compute_uv=False).max() / np.sqrt(stride[0] * stride[1])
    assert norm == pytest.approx(dense_top(layer, 1)[0], rel=1e-12)


CLUSTERED = [
    # circular, real weights: f and −f give exactly equal values (degenerate pairs)
    cm.Conv(seeded(11).standard_normal((3, 3, 3, 3)), (3, 12, 12), padding=1,
            padding_mode="circular"),
    # zero padding, real weights, peak not self-conjugate: cosine/sine pairs split only by
    # the borders (near-degenerate clusters)
    cm.Conv(seeded(12).standard_normal((2, 2, 3, 3)), (2, 16, 16), padding=1),
    cm.Conv(seeded(13).standard_normal((4, 2, 5, 5)), (2, 20, 20), stride=2, padding=2),
]


@pytest.mark.parametrize("k", [2, 4, 6])
@pytest.mark.parametrize("layer", CLUSTERED, ids=repr)
def test_block_lanczos_read_in_column_blocks_equals_scipy(layer, k, monkeypatch):
    """The basis read in many small column blocks (the cache blocking of large layers) and
    the local-then-full reorthogonalisation: the values against scipy's dense SVD, the Ritz
    vectors orthonormal, on clusters of (nearly) equal values."""
    from scipy.linalg import svdvals

    monkeypatch.setattr(iterative, "_MIN_COLUMNS", 16)
    monkeypatch.setattr(iterative, "_CACHE_BYTES", 1024)
    expected = svdvals(layer.matrix().toarray())[:k]
    view = layer.conv_view()
    found = iterative.conv_top(view.spec, view.weight, k, 1e-10, block=True)
    np.testing.assert_allclose(np.sqrt(found.values), expected, rtol=1e-9)
    assert np.all(found.residuals <= 1e-9)
    gram = found.vectors.conj().T @ found.vectors
    np.testing.assert_allclose(gram, np.eye(k), atol=1e-10)
