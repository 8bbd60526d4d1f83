"""layer.matrix_blocks(): CSR row blocks built channel range by channel range, concatenated,
against the whole built matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import convmatrix as cm
import convmatrix.analysis.blocks as blocks
from tests.helpers import rng as seeded

hypothesis = pytest.importorskip("hypothesis")
given, settings, st = hypothesis.given, hypothesis.settings, hypothesis.strategies

from tests.layer_strategies import conv_layers, conv_transpose_layers  # noqa: E402


def assert_blocks_equal_matrix(layer, rows_per_block):
    parts = list(layer.matrix_blocks(rows_per_block=rows_per_block))
    matrix = layer.matrix()
    assert all(isinstance(part, sp.csr_array) for part in parts)
    assert all(part.shape[1] == matrix.shape[1] for part in parts)
    assert all(part.shape[0] <= rows_per_block for part in parts)
    stacked = sp.vstack(parts, format="csr")
    assert stacked.shape == matrix.shape
    assert stacked.dtype == matrix.dtype
    assert (stacked != matrix).nnz == 0
    np.testing.assert_array_equal(stacked.toarray(), matrix.toarray())


@settings(max_examples=100, deadline=None)
@given(conv_layers(), st.integers(1, 80))
def test_conv_blocks_concatenate_to_the_matrix(layer, rows_per_block):
    assert_blocks_equal_matrix(layer, rows_per_block)


@settings(max_examples=60, deadline=None)
@given(conv_transpose_layers(), st.integers(1, 80))
def test_transposed_and_adjoint_blocks_concatenate_to_the_matrix(layer, rows_per_block):
    assert_blocks_equal_matrix(layer, rows_per_block)
    assert_blocks_equal_matrix(layer.T, rows_per_block)


@settings(max_examples=40, deadline=None)
@given(conv_layers(modes=("reflect", "circular", "symmetric")), st.integers(1, 40))
def test_adjoint_of_a_padding_mode_blocks(layer, rows_per_block):
    assert_blocks_equal_matrix(layer.T, rows_per_block)


def test_blocks_are_built_per_channel_range_not_from_the_whole_matrix(monkeypatch):
    layer = cm.Conv(seeded("range").standard_normal((6, 2, 3, 3)), (4, 6, 6), padding=1,
                    groups=2)
    expected = layer.matrix()
    monkeypatch.setattr(type(layer), "_build_matrix", lambda *a: pytest.fail("whole matrix"))
    parts = list(blocks.matrix_blocks(layer, rows_per_block=72))
    assert [part.shape[0] for part in parts] == [72, 36, 72, 36]  # never across a group
    assert (sp.vstack(parts) != expected).nnz == 0


def test_default_block_size_follows_the_byte_budget(monkeypatch):
    layer = cm.Conv(seeded("budget").standard_normal((4, 3, 3, 3)), (3, 10, 10), padding=1)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 20_000)
    parts = list(layer.matrix_blocks())
    matrix = layer.matrix()
    per_row = matrix.nnz / matrix.shape[0] * (8 + 8)  # float64 data and int64 indices
    assert max(part.shape[0] for part in parts) <= 20_000 // per_row
    assert len(parts) > 1
    assert (sp.vstack(parts) != layer.matrix()).nnz == 0


def test_other_layer_kinds_slice_the_matrix():
    conv = cm.Conv(np.arange(12.0).reshape(2, 2, 3), (2, 5))

    class Wrapped(cm.Layer):
        input_shape = conv.input_shape
        output_shape = conv.output_shape

        def _build_matrix(self, format, max_bytes):
            return conv.matrix(format, max_bytes=max_bytes)

    parts = list(Wrapped().matrix_blocks(rows_per_block=4))
    assert [part.shape for part in parts] == [(4, 10), (2, 10)]
    assert (sp.vstack(parts) != conv.matrix()).nnz == 0


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "10"])
def test_rows_per_block_is_validated(value):
    layer = cm.Conv(np.ones((1, 1, 2)), (1, 4))
    with pytest.raises(cm.ConvMatrixError, match=r"`rows_per_block` \(=.*\) must be a positive"):
        list(layer.matrix_blocks(rows_per_block=value))
