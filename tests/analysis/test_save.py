"""cm.save_matrix: files written block by block load back equal with scipy's own readers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import convmatrix as cm
from convmatrix import cache
from convmatrix.builder import indexing
from tests.helpers import rng as seeded

LAYERS = {
    "conv-groups": lambda w: cm.Conv(w((4, 1, 3, 3)), (2, 6, 5), padding=1, groups=2),
    "conv-reflect": lambda w: cm.Conv(w((3, 2, 3)), (2, 7), stride=2, padding=2,
                                      padding_mode="reflect"),
    "transpose": lambda w: cm.ConvTranspose(w((2, 3, 2, 2)), (2, 3, 4), stride=2),
    "adjoint-circular": lambda w: cm.Conv(w((2, 2, 3)), (2, 5), padding=1,
                                          padding_mode="circular").T,
}


def weights(name, kind):
    rng = seeded(name, kind)

    def make(shape):
        if kind == "int":
            return rng.integers(-5, 6, shape)
        if kind == "complex":
            return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        return rng.standard_normal(shape)

    return make


@pytest.mark.parametrize("rows_per_block", [1, 7, None])
@pytest.mark.parametrize("kind", ["float", "int", "complex"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_npz_loads_back_equal(tmp_path, name, kind, rows_per_block):
    layer = LAYERS[name](weights(name, kind))
    path = cm.save_matrix(layer, tmp_path / "m.npz", rows_per_block=rows_per_block)
    loaded = sp.load_npz(path)
    expected = layer.matrix()
    assert isinstance(loaded, sp.csr_array)
    assert loaded.shape == expected.shape and loaded.dtype == expected.dtype
    assert (loaded != expected).nnz == 0
    np.testing.assert_array_equal(loaded.indptr, expected.indptr)
    assert not list(tmp_path.glob(".convmatrix-*")) and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("kind", ["float", "int", "complex"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_matrix_market_loads_back_equal(tmp_path, name, kind):
    layer = LAYERS[name](weights(name, kind))
    path = cm.save_matrix(layer, tmp_path / "m.mtx", rows_per_block=5)
    loaded = sp.csr_array(scipy.io.mmread(path))
    expected = layer.matrix()
    assert loaded.shape == expected.shape
    assert loaded.nnz == expected.nnz
    np.testing.assert_array_equal(loaded.toarray(), expected.toarray())  # %.17g round-trips


def test_int64_indices_when_the_matrix_needs_them(tmp_path, monkeypatch):
    layer = cm.Conv(seeded("int64").standard_normal((2, 1, 3)), (1, 9))
    monkeypatch.setattr(indexing, "INT32_MAX", 5)  # pretend the matrix is past int32 range
    cache.clear_cache()  # and keep no layout built with the lowered limit afterwards
    try:
        loaded = sp.load_npz(cm.save_matrix(layer, tmp_path / "big.npz", rows_per_block=4))
    finally:
        cache.clear_cache()
    assert loaded.indices.dtype == np.int64 and loaded.indptr.dtype == np.int64
    assert (loaded != layer.matrix()).nnz == 0


def test_bad_paths_and_arguments_are_refused(tmp_path):
    layer = cm.Conv(np.ones((1, 1, 2)), (1, 4))
    with pytest.raises(cm.ConvMatrixError, match=r"`path` \(=.*m\.csv'\) must end in '\.npz'"):
        cm.save_matrix(layer, tmp_path / "m.csv")
    with pytest.raises(cm.ConvMatrixError, match=r"`rows_per_block` \(=0\)"):
        cm.save_matrix(layer, tmp_path / "m.npz", rows_per_block=0)
    assert not list(tmp_path.iterdir())
