"""Issue 16 items 5 and 8: every kind's matrix, row blocks, dask chunks and saved file are
refused before allocating when the estimate is over ``max_bytes``.

The shapes are large (hundreds of MB to GB of matrix) and the budget tiny, so a kind that
builds first would take long or fail in numpy's allocator instead of raising the refusal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp

import convmatrix as cm
from convmatrix.layers.base import Adjoint, Layer
from convmatrix.layers.channels_last import ChannelsLast
from convmatrix.layers.repeat import Repeat

BIG = (64, 4000, 4000)  # 1.024e9 pixels: an identity matrix alone is ~12 GB as CSR

KINDS: dict[str, Callable[[], Layer]] = {
    "AvgPool": lambda: cm.AvgPool(BIG, 2),
    "Upsample": lambda: cm.Upsample(BIG, scale_factor=2),
    "Pad": lambda: cm.Pad(BIG, (1, 1, 1, 1)),
    "PixelShuffle": lambda: cm.PixelShuffle(BIG, 2),
    "Permute": lambda: cm.Permute(BIG, (1, 2, 0)),
    "Resize": lambda: cm.Resize(BIG, scales=(2, 2), axes=(1, 2), mode="linear"),
    "NumpyPad": lambda: cm.NumpyPad(BIG, ((0, 0), (1, 1), (1, 1)), "reflect"),
    "DepthToSpace": lambda: cm.DepthToSpace(BIG, 2),
    "BatchNorm": lambda: cm.BatchNorm(BIG, np.zeros(64), np.ones(64)),
    "Identity": lambda: cm.Identity(BIG),
    "Repeat": lambda: Repeat(BIG, (2, 2)),
    "ChannelsLast": lambda: ChannelsLast(cm.Identity(BIG), "Identity"),
    "Adjoint": lambda: Adjoint(cm.Identity(BIG)),
    "Adjoint of reflect padding": lambda: cm.Pad(BIG, (1, 1, 1, 1), mode="reflect").T,
    "Sequential": lambda: cm.Sequential([cm.Identity(BIG), cm.Identity(BIG)]),
    "Conv": lambda: cm.Conv(np.ones((64, 64, 1, 1)), BIG),
}
FORMATS = ["csr", "csc", "coo"]


def _at_least(layer: Layer) -> int:
    """A lower bound of any sparse matrix of the layer: one stored value per output row."""
    rows, _ = layer.matrix_shape
    return rows * layer.dtype.itemsize


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("format", FORMATS)
def test_matrix_refused_before_allocating(kind: str, format: str) -> None:
    layer = KINDS[kind]()
    assert _at_least(layer) > 10**9  # the refusal is about a real size, not a tiny one
    with pytest.raises(cm.ConvMatrixError, match="max_bytes") as info:
        layer.matrix(format, max_bytes=10**6)
    message = str(info.value)
    assert re.search(r"[0-9.e+]+ [KMGT]iB", message)  # the estimate is named


def test_identity_default_budget_refuses_the_issue_repro() -> None:
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        cm.Identity(BIG).matrix()  # ~12 GB: over the default 4 GiB


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_matrix_blocks_and_save_refused_before_allocating(kind: str, tmp_path) -> None:
    layer = KINDS[kind]()
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        layer.matrix_blocks(max_bytes=10**6)  # refused on the call, not when iterated
    target = tmp_path / "m.npz"
    target.write_bytes(b"old")
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        cm.save_matrix(layer, target, max_bytes=10**6)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_sequential_save_refused_by_default(tmp_path) -> None:
    """The issue's 2-layer 64×224² stack: the product is far over the default budget."""
    stack = cm.Sequential([cm.Conv(np.ones((64, 64, 3, 3)), (64, 224, 224), padding=1),
                           cm.Conv(np.ones((64, 64, 3, 3)), (64, 224, 224), padding=1)])
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        cm.save_matrix(stack, tmp_path / "s.npz")
    with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
        stack.matrix_blocks()


def test_to_dask_refused_before_allocating() -> None:
    pytest.importorskip("dask.array")
    pytest.importorskip("sparse")
    for kind in ("Identity", "Sequential", "Conv"):
        with pytest.raises(cm.ConvMatrixError, match="max_bytes"):
            KINDS[kind]().to_dask(max_bytes=10**6)


@pytest.mark.parametrize("kind", ["Identity", "Upsample", "Sequential", "Pad"])
def test_small_layers_still_stream_exactly(kind: str, tmp_path) -> None:
    small = (2, 5, 6)
    layer = {"Identity": lambda: cm.Identity(small),
             "Upsample": lambda: cm.Upsample(small, scale_factor=2, mode="bilinear"),
             "Sequential": lambda: cm.Sequential([cm.Pad(small, (1, 1, 1, 1)),
                                                  cm.AvgPool((2, 7, 8), 2)]),
             "Pad": lambda: cm.Pad(small, (1, 2, 0, 1), mode="reflect")}[kind]()
    # independent: the matrix's columns are the layer applied to unit vectors
    n = math.prod(layer.input_shape)
    eye = np.eye(n).reshape(n, *layer.input_shape)
    dense = np.stack([layer(e) - layer(np.zeros(layer.input_shape)) for e in eye]
                     ).reshape(n, -1).T
    blocks = list(layer.matrix_blocks(rows_per_block=7, max_bytes=10**6))
    np.testing.assert_allclose(sp.vstack(blocks).toarray(), dense, atol=1e-12)
    path = cm.save_matrix(layer, tmp_path / "m.npz", rows_per_block=7, max_bytes=10**6)
    np.testing.assert_allclose(sp.load_npz(path).toarray(), dense, atol=1e-12)


def _dense_by_unit_vectors(layer: Layer) -> np.ndarray:
    n = math.prod(layer.input_shape)
    eye = np.eye(n).reshape(n, *layer.input_shape)
    zero = layer(np.zeros(layer.input_shape))
    return np.stack([layer(e) - zero for e in eye]).reshape(n, -1).T


@pytest.mark.parametrize("rows_per_block", [1, 4, 5, 13, 31, 1000])
def test_per_axis_kinds_stream_any_block_size_exactly(rows_per_block: int) -> None:
    layers = [cm.AvgPool((2, 6, 5), 2, padding=1), cm.Identity((3, 4)),
              cm.Upsample((2, 3, 2, 2), scale_factor=2, mode="trilinear"),
              cm.BatchNorm((3, 2, 3), np.arange(3.0), np.ones(3) * 2)]
    for layer in layers:
        blocks = list(layer.matrix_blocks(rows_per_block=rows_per_block, max_bytes=10**6))
        assert all(b.shape[0] <= rows_per_block for b in blocks)
        np.testing.assert_allclose(sp.vstack(blocks).toarray(), _dense_by_unit_vectors(layer),
                                   atol=1e-12)


def test_big_identity_streams_within_the_budget() -> None:
    """Rows of a 12 GB identity, one small block at a time (no whole matrix built)."""
    blocks = cm.Identity(BIG).matrix_blocks(rows_per_block=1000, max_bytes=10**6)
    first = next(iter(blocks))
    assert first.shape == (1000, math.prod(BIG))
    np.testing.assert_array_equal(first.indices, np.arange(1000))
    np.testing.assert_array_equal(first.data, np.ones(1000))
    up = cm.Upsample(BIG, scale_factor=2).matrix_blocks(rows_per_block=500, max_bytes=10**6)
    block = next(iter(up))
    # nearest ×2: output (0, 0, j) reads input (0, 0, j // 2)
    np.testing.assert_array_equal(block.indices, np.arange(500) // 2)
