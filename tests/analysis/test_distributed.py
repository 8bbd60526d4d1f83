"""layer.to_dask(): lazily built sparse row chunks; products and reductions on dask's local
scheduler against the in-memory matrix."""

from __future__ import annotations

import os

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


def test_persisted_chunks_are_built_once(monkeypatch):
    layer = cm.Conv(seeded("persist").standard_normal((3, 2, 3, 3)), (2, 7, 7), padding=1)
    calls = []
    import convmatrix.analysis.blocks as blocks

    original = blocks._channel_block

    def counting(*args, **kwargs):
        calls.append(args[3:5])
        return original(*args, **kwargs)

    monkeypatch.setattr(blocks, "_channel_block", counting)
    C = layer.to_dask(row_chunks=49).persist(scheduler="threads")
    assert len(calls) == 3  # one build per chunk (output channel)
    x = seeded("x").standard_normal(layer.matrix_shape[1])
    expected = layer.operator() @ x  # the matrix-free product, an independent code path
    back = layer.operator().rmatvec(expected)
    for _ in range(3):  # summed in another order: 1e-12 of the norm
        np.testing.assert_allclose((C @ x).compute(scheduler="threads"), expected,
                                   atol=1e-12 * np.linalg.norm(expected))
        y = (C.T @ expected).compute(scheduler="threads")
        np.testing.assert_allclose(y, back, atol=1e-12 * np.linalg.norm(back))
    assert len(calls) == 3  # the products rebuilt nothing


def _reset_peak_rss() -> None:
    """Linux: restart the process's peak resident set size (VmHWM) from its current size."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _peak_rss() -> int:
    """Linux: the process's peak resident set size (VmHWM) in bytes since the last reset."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


@pytest.mark.slow
def test_local_cluster_product_of_a_matrix_larger_than_a_worker():
    """2 worker processes of 500 MB each (about 240 MB of it is the imported packages); the
    stored matrix (COO chunks) is about 600 MB; one output channel (38 MB) a chunk."""
    distributed = pytest.importorskip("distributed")
    limit = 500 * 2**20
    layer = cm.Conv(seeded("cluster").standard_normal((16, 16, 3, 3)), (16, 128, 128),
                    padding=1)
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("peak memory per worker is read from Linux's /proc")
    entries = 16 * 16 * (3 * 128 - 2) ** 2  # per axis 3n − 2 taps read the image (padding 1)
    assert entries * 16 > limit  # int32 row and column coordinates + float64 data
    x = seeded("cx").standard_normal(layer.matrix_shape[1])
    # dashboard on a free port: None still binds :8787, and a busy 8787 (another cluster on
    # this machine) turns into a warning that fails the test
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  memory_limit=limit, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        client.run(_reset_peak_rss)  # workers forked from a large process start large
        C = layer.to_dask(row_chunks=128 * 128)
        y = (C @ x).compute()
        peaks = client.run(_peak_rss)
    expected = layer.operator() @ x  # summed in another order: 1e-12 of the norm
    np.testing.assert_allclose(y, expected, atol=1e-12 * np.linalg.norm(expected))
    assert len(peaks) == 2
    assert all(peak < limit for peak in peaks.values()), peaks
