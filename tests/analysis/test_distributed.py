"""layer.to_dask(): lazily built sparse row chunks; products and reductions on dask's local
scheduler against the in-memory matrix."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from tests.helpers import rng as seeded

da = pytest.importorskip("dask.array")
pytest.importorskip("sparse")


@pytest.mark.slow
def test_dask_products_and_reductions_equal_the_matrix():
    rng = seeded("dask")
    layer = cm.Conv(rng.standard_normal((4, 1, 3, 3)), (2, 6, 6), padding=1, groups=2,
                    padding_mode="replicate")
    C = layer.to_dask(row_chunks=40)  # 36 pixels a channel: one channel a chunk
    matrix = layer.matrix()
    assert C.shape == matrix.shape and C.dtype == matrix.dtype
    assert C.chunks[0] == (36, 36, 36, 36)
    X = rng.standard_normal((matrix.shape[1], 3))
    np.testing.assert_allclose((C @ X).compute(scheduler="threads"), matrix @ X, rtol=1e-12)
    column_sums = C.sum(axis=0).compute(scheduler="sync").todense()
    np.testing.assert_allclose(column_sums, matrix.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(C[40:80].compute().todense(), matrix[40:80].toarray())


def test_chunks_are_built_lazily(monkeypatch):
    layer = cm.ConvTranspose(seeded("lazy").standard_normal((2, 3, 2)), (2, 5), stride=2)
    calls = []
    import convmatrix.analysis.blocks as blocks

    original = blocks._channel_block

    def counting(*args, **kwargs):
        calls.append(args[3:5])  # (first, last) channel
        return original(*args, **kwargs)

    monkeypatch.setattr(blocks, "_channel_block", counting)
    C = layer.to_dask(row_chunks=10)
    assert calls == []  # nothing built yet
    assert len(C.chunks[0]) == 3  # one output channel of 10 pixels each
    part = C[10:20].compute().todense()
    np.testing.assert_allclose(part, layer.matrix()[10:20].toarray())
    assert calls == [(1, 2)]
