"""Symbolic rows straight from the index arithmetic (issue 19): against the dense reference and
closed forms, over block boundaries and on layers far too large for a table of the whole layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

from convmatrix import reference
from convmatrix import symbolic as sym
from convmatrix.geometry.spec import conv_spec
from convmatrix.symbolic import _rows
from convmatrix.symbolic._rows import row_entries, rows_entries
from convmatrix.symbolic.outputs import spec_outputs

LAYERS = [  # (weight shape, input shape, geometry): several row blocks each (7 rows a block)
    ((2, 1, 3), (2, 23), {"groups": 2, "padding": 1, "padding_mode": "reflect"}),
    ((3, 2, 3, 3), (2, 6, 7), {"stride": 2, "padding": 2, "padding_mode": "circular"}),
    ((4, 1, 2, 3), (2, 7, 5), {"groups": 2, "dilation": (2, 1), "padding": (1, 2),
                               "padding_mode": "replicate"}),
    ((2, 3, 2, 2, 2), (3, 3, 4, 3), {"stride": (1, 2, 1), "padding": 1}),
]


def _dense_reference(spec, weight):
    """C column by column: the dense reference convolution of every unit input."""
    n_in = math.prod(spec.input_shape)
    columns = [reference.conv(np.eye(n_in)[j].reshape(spec.input_shape), weight,
                              stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
                              groups=spec.groups, padding_mode=spec.padding_mode).ravel()
               for j in range(n_in)]
    return np.stack(columns, axis=1)


@pytest.mark.parametrize(("wshape", "ishape", "geometry"), LAYERS)
@pytest.mark.parametrize("direction", ["forward", "adjoint"])
def test_rows_entries_rebuild_the_reference_matrix(wshape, ishape, geometry, direction,
                                                   monkeypatch):
    monkeypatch.setattr(_rows, "ROWS_PER_BLOCK", 7)
    spec = conv_spec(wshape, ishape, **geometry)
    weight = np.arange(1.0, math.prod(wshape) + 1).reshape(wshape)  # distinct weights
    dense = _dense_reference(spec, weight)
    if direction == "adjoint":
        dense = dense.T
    flat = weight.ravel()
    rebuilt = np.zeros_like(dense)
    rows = range(dense.shape[0])
    for row, entries in zip(rows, rows_entries(spec, direction, rows), strict=True):
        columns = [col for col, _ in entries]
        assert columns == sorted(set(columns))  # ascending, one entry per column
        for col, widx in entries:
            rebuilt[row, col] = flat[widx].sum()
    np.testing.assert_array_equal(rebuilt, dense)
    some = [0, dense.shape[0] - 1, 7, 6, 5, 5]  # any order, repeats
    assert [list(row_entries(spec, direction, r)) for r in some] == \
        list(rows_entries(spec, direction, some))


def test_sampled_outputs_of_a_billion_pixel_layer_are_the_closed_form():
    # a table of this layer would need tens of GB: the rows come from the index arithmetic
    n = 10**9
    spec = conv_spec((1, 1, 3), (1, n), padding=1, padding_mode="replicate")
    positions = [0, n // 2, n - 1]
    got = spec_outputs(spec, positions=positions, max_terms=None)
    x = {i: sympy.Symbol(f"x_{{{i}}}")
         for i in (0, 1, n // 2 - 1, n // 2, n // 2 + 1, n - 2, n - 1)}
    w = [sympy.Symbol(f"w_{{{t}}}") for t in range(3)]  # 1 channel: spatial indices only
    expected = [w[0] * x[0] + w[1] * x[0] + w[2] * x[1],  # replicated left border
                w[0] * x[n // 2 - 1] + w[1] * x[n // 2] + w[2] * x[n // 2 + 1],
                w[0] * x[n - 2] + w[1] * x[n - 1] + w[2] * x[n - 1]]
    assert [sympy.expand(g - e) for g, e in zip(got, expected, strict=True)] == [0, 0, 0]


def test_explain_of_a_huge_layer_samples_its_outputs():
    e = sym.explain((1, 1, 3), (1, 10**6))
    assert 0 < len(e.outputs) < 100
    w = [sympy.Symbol(f"w_{{{t}}}") for t in range(3)]  # 1 channel: spatial indices only
    for (c, j), expr in e.outputs.items():
        assert c == 0
        assert sympy.expand(expr - sum(w[t] * sympy.Symbol(f"x_{{{j + t}}}")
                                       for t in range(3))) == 0
