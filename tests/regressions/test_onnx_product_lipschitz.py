"""A product of two branches in an ONNX model passed its local slopes off as global constants.

Found by review (issue 17/18): ``cm.linearize`` of an ONNX model reads ``Mul``/``Div`` of two
branches as its tangent map at the point (one diagonal per branch) but recorded no non-linear
site for it. So ``lipschitz_summary(...).upper_bound`` multiplied the diagonals' norms
``|b₀|``, ``|a₀|`` as if they were global Lipschitz constants — a "bound" that the network's
own slope exceeds a little way from the point — and ``piecewise_linear`` said True, claiming
the map holds on a whole region. A product has no global Lipschitz constant: the bound is
infinite, and the map is not piecewise linear. The reference is ``onnx.reference``'s forward.
"""

import math

import numpy as np
import pytest

import convmatrix as cm

onnx = pytest.importorskip("onnx")
from tests.adapters.onnx.helpers import helper, model, reference  # noqa: E402


def _net():
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "v"], ["d"], pads=[1, 1]),
             helper.make_node("Mul", ["r", "d"], ["y"])]
    return model(nodes, [1, 1, 6], {"w": rng.standard_normal((2, 1, 3)).astype(np.float32),
                                    "v": rng.standard_normal((2, 2, 3)).astype(np.float32)})


def _slope(proto, x, eps=1e-6):
    """‖J‖₂ at x by central differences of onnx.reference's forward (numpy's SVD)."""
    columns = [(reference(proto, x + eps * e.reshape(x.shape))
                - reference(proto, x - eps * e.reshape(x.shape))).ravel() / (2 * eps)
               for e in np.eye(x.size)]
    return float(np.linalg.norm(np.stack(columns, axis=1), 2))


def test_a_product_of_branches_has_no_finite_product_bound():
    proto = _net()
    x = np.random.default_rng(1).standard_normal((1, 1, 6))
    summary = cm.lipschitz_summary(proto, x)
    # the network's slope further out is larger than any finite number read off the point:
    # the old "upper bound" (≈ the local product) fails against the network itself
    steeper = _slope(proto, 50 * x)
    assert steeper > summary.local_product
    assert summary.upper_bound >= steeper and math.isinf(summary.upper_bound)
    assert not summary.piecewise_linear
    lin = cm.linearize(proto, x)
    assert not lin.piecewise_linear
    assert any(site.kind == "product" for site in lin.sites)
    assert "product of two branches" in str(lin.explain())
    # the tangent map itself is still the exact Jacobian at x
    assert abs(float(np.linalg.norm(lin.matrix().toarray(), 2)) - _slope(proto, x)) < 1e-6


def test_a_square_is_a_product_too():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]),
             helper.make_node("Mul", ["c", "c"], ["y"])]
    proto = model(nodes, [1, 1, 5], {"w": np.ones((1, 1, 3), np.float32)})
    x = np.random.default_rng(2).standard_normal((1, 1, 5))
    summary = cm.lipschitz_summary(proto, x)
    assert math.isinf(summary.upper_bound) and not summary.piecewise_linear
    assert _slope(proto, 10 * x) > summary.local_product
