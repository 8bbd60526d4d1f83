"""The Lipschitz table's last line: a tight bound is called tight, not "overestimates 1×"."""

import numpy as np

import convmatrix as cm


def test_tight_bound_is_called_tight():
    # A residual block whose conv branch is a non-negative kernel: the top singular vectors
    # of both paths agree (the all-ones direction), so the path bound is exact.
    conv = cm.Conv(np.ones((1, 1, 3, 3)), (1, 4, 4), padding=1)
    summary = cm.lipschitz(cm.Add(conv, cm.Identity((1, 4, 4))))
    dense = conv.matrix().toarray() + np.eye(16)
    exact = np.linalg.norm(dense, 2)
    bound = np.linalg.norm(conv.matrix().toarray(), 2) + 1.0
    assert abs(bound - exact) < 1e-9          # independent check that the bound is tight here
    assert "tight" in str(summary) and "overestimates" not in str(summary)
    assert "tight" in summary._repr_markdown_()


def test_loose_bound_says_by_how_much():
    rng = np.random.default_rng(0)
    a = cm.Conv(rng.standard_normal((2, 2, 3, 3)), (2, 5, 5), padding=1)
    b = cm.Conv(rng.standard_normal((2, 2, 3, 3)), (2, 5, 5), padding=1)
    summary = cm.lipschitz(cm.Add(a, b))
    exact = np.linalg.norm(a.matrix().toarray() + b.matrix().toarray(), 2)
    bound = np.linalg.norm(a.matrix().toarray(), 2) + np.linalg.norm(b.matrix().toarray(), 2)
    assert bound / exact > 1.01
    assert f"overestimates the graph's Lipschitz constant {bound / exact:.3g}×" in str(summary)
