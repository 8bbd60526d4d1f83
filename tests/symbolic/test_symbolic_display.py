"""REPL and notebook behaviour of the symbolic objects, and the importable formula symbols."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import convmatrix as cm
from convmatrix import reference
from convmatrix import symbolic as sym
from convmatrix.symbolic import a, d, j, k, n, p, s
from tests.helpers import rng as seeded

SEED_MAP = r"\begin{bmatrix} 1 & 2 & 1 \\ 2 & 4 & 2 \\ 1 & 2 & 1 \end{bmatrix}"


def _seed():
    return sym.explain((1, 1, 2, 2), (1, 2, 2), direction="adjoint")


# --------------------------------------------------------------------------------------------
# short in the REPL, whole in a notebook


def test_explanation_repr_is_one_short_line():
    assert repr(_seed()) == "Explanation(ConvTranspose2d 1×2×2 → 1×3×3, kernel 2×2)"
    big = sym.explain((64, 64, 3, 3), (64, 56, 56), stride=2, padding=1)
    assert repr(big) == ("Explanation(Conv2d 64×56×56 → 64×28×28, kernel 3×3, stride 2×2, "
                         "padding (1, 1), (1, 1))")
    assert "\n" not in repr(big)


def test_str_stays_the_full_text():
    text = str(_seed())
    assert "Cᵀ: 9×4, 16 stored entries" in text and "Outputs:" in text
    assert "Even overlap" in text


@pytest.mark.parametrize("render", ["_repr_latex_", "_repr_markdown_", "to_latex"])
def test_notebook_renderings_hold_the_whole_explanation(render):
    out = getattr(_seed(), render)()
    # shapes, matrix, outputs, overlap map, per-axis law, verdict: each by a fact known by hand
    assert "1×2×2 → 1×3×3" in out                                  # the layer
    assert "= 3" in out and "o'_" in out                           # output size 2 → 3
    assert "C^T =" in out and "16 stored entries" in out           # the matrix
    assert r"w_{0,0} x_{1,1} + w_{0,1} x_{1,0} + w_{1,0} x_{0,1} + w_{1,1} x_{0,0}" in out
    assert SEED_MAP in out                                         # the overlap map
    assert "c_{0}(j)" in out and "c_{1}(j)" in out                 # the laws
    assert "Even overlap" in out                                   # the verdict


def test_ipython_prints_short_and_jupyter_gets_everything():
    formatters = pytest.importorskip("IPython.core.formatters")
    data, _ = formatters.DisplayFormatter().format(_seed())
    assert data["text/plain"] == "Explanation(ConvTranspose2d 1×2×2 → 1×3×3, kernel 2×2)"
    for mime in ("text/latex", "text/markdown"):
        assert SEED_MAP in data[mime] and "Even overlap" in data[mime], mime
        assert "C^T =" in data[mime], mime
    verdict = sym.checkerboard_law((1, 1, 3, 3), (1, 4, 4), stride=2)
    data, _ = formatters.DisplayFormatter().format(verdict)
    assert data["text/plain"] == "CheckerboardLaw(uneven: interior counts 1, 2, 4, a 4× imbalance)"
    assert r"\pmod{2}" in data["text/latex"] and r"\pmod{2}" in data["text/markdown"]
    data, _ = formatters.DisplayFormatter().format(verdict.axes[1])
    assert data["text/plain"] == ("AxisOverlap(spatial axis 1: kernel 3, stride 2, "
                                  "interior 2, 1)")
    assert "c_{1}(j)" in data["text/latex"] and "c_{1}(j)" in data["text/markdown"]


def test_checkerboard_reprs_are_short_even_for_long_periods():
    verdict = sym.checkerboard_law((1, 1, 2), (1, 2), stride=1000)
    assert repr(verdict) == "CheckerboardLaw(uneven: interior counts 0, 1, holes)"
    assert repr(verdict.axes[0]) == ("AxisOverlap(spatial axis 0: kernel 2, stride 1000, "
                                     "interior 1, 1, 0, 0, 0, 0, 0, 0, …)")
    assert repr(sym.checkerboard_law((1, 1, 4, 4), (1, 3, 3), stride=2)) == (
        "CheckerboardLaw(even: every interior count 4)")


# --------------------------------------------------------------------------------------------
# the formula symbols


def _brute_output_size(nn, kk, ss, pp, dd):
    """Count the window positions that fit the padded input, one by one."""
    return len([o for o in range(nn + 2 * pp) if o * ss + dd * (kk - 1) <= nn + 2 * pp - 1])


def _brute_overlap(jj, nn, kk, ss, pp, dd):
    """(input pixel, tap) pairs of the transposed layer landing on output pixel jj."""
    return sum(1 for i in range(nn) for t in range(kk) if i * ss - pp + t * dd == jj)


GRID = [(nn, kk, ss, pp, dd) for nn in (3, 5, 8) for kk in (1, 2, 3) for ss in (1, 2, 3)
        for pp in (0, 1) for dd in (1, 2) if nn + 2 * pp >= dd * (kk - 1) + 1]


def test_symbols_are_importable_from_the_package_and_the_module():
    assert sym.symbols.k is k and sym.k is k
    assert {str(v) for v in (n, k, s, p, d, a, j)} == set("nkspdaj")
    assert sym.p_before.name == "p_b" and sym.p_after.name == "p_a"


@pytest.mark.parametrize("nn, kk, ss, pp, dd", GRID)
def test_output_size_substitutes_with_the_exported_and_with_plain_symbols(nn, kk, ss, pp, dd):
    expected = _brute_output_size(nn, kk, ss, pp, dd)
    assert sym.conv_output_size().subs({n: nn, k: kk, s: ss, p: pp, d: dd}) == expected
    # a user's own symbols (no assumptions) substitute too: today they silently did not
    un, uk, us, up, ud = sympy.symbols("n k s p d")
    assert sym.conv_output_size().subs({un: nn, uk: kk, us: ss, up: pp, ud: dd}) == expected


@pytest.mark.parametrize("nn, kk, ss, pp, dd", GRID)
def test_overlap_formula_with_plain_symbols_matches_brute_force(nn, kk, ss, pp, dd):
    uj, un, uk, up = sympy.symbols("j n k p")
    formula = sym.overlap_formula(ss, dd).subs({un: nn, uk: kk, up: pp})
    out = (nn - 1) * ss - 2 * pp + dd * (kk - 1) + 1
    got = [formula.subs(uj, jj) for jj in range(max(out, 0))]
    assert got == [_brute_overlap(jj, nn, kk, ss, pp, dd) for jj in range(max(out, 0))]


def test_relationships_substitute_with_plain_symbols():
    un, uk, us, up = sympy.symbols("n k s p")
    rel6 = next(r for r in sym.RELATIONSHIPS if r.number == 6)
    for nn, kk, ss, pp, _ in GRID:
        if nn + 2 * pp >= kk:
            assert rel6.size.subs({un: nn, uk: kk, us: ss, up: pp}) == _brute_output_size(
                nn, kk, ss, pp, 1)


# --------------------------------------------------------------------------------------------
# layer objects


LAYERS = [
    (lambda w: cm.Conv(w, (2, 5, 6), stride=2, padding=1), (3, 2, 3, 3), "forward"),
    (lambda w: cm.ConvTranspose(w, (2, 3, 3), stride=2, padding=1, output_padding=1),
     (2, 3, 3, 3), "adjoint"),
    (lambda w: cm.Conv(w, (1, 4), padding=1, padding_mode="reflect").T, (1, 1, 3),
     "adjoint"),
]


@pytest.mark.parametrize("make, wshape, direction", LAYERS)
def test_explain_takes_a_layer_object(make, wshape, direction):
    weight = seeded("explain-layer", wshape).integers(-3, 4, size=wshape)
    layer = make(weight)
    e = sym.explain(layer)
    assert e.input_shape == layer.input_shape and e.output_shape == layer.output_shape
    assert e.direction == direction
    x = seeded("explain-layer-x", wshape).integers(-3, 4, size=layer.input_shape)
    numbers = sym.explain(layer, x=x)
    y = layer.matrix().toarray() @ x.ravel()  # the sparse matrix, independent of SymPy
    for index, value in numbers.numeric_outputs.items():
        assert value == y[np.ravel_multi_index(index, layer.output_shape)], index
    assert np.array_equal(sym.checkerboard_law(layer).counts(), e.checkerboard.counts())


def test_explain_of_a_keras_layer_takes_a_sample_in_keras_layout():
    config = {"class_name": "Conv2DTranspose",
              "config": {"filters": 1, "kernel_size": [3, 3], "strides": [2, 2],
                         "padding": "valid"}}
    layer = cm.from_keras(config, kernel=np.arange(9).reshape(3, 3, 1, 1), input_shape=(2, 2, 1))
    x = np.arange(4).reshape(2, 2, 1)
    e = sym.explain(layer, x=x)
    assert repr(e) == "Explanation(Conv2DTranspose 1×2×2 → 1×5×5, kernel 3×3, stride 2×2)"
    y = reference.conv_transpose(np.moveaxis(x, -1, 0), np.arange(9).reshape(1, 1, 3, 3),
                                 stride=2)
    for index, value in e.numeric_outputs.items():
        assert value == y[index], index


@pytest.mark.parametrize("call, match", [
    (lambda layer: sym.explain(layer, (1, 3)), "pass no `input_shape`"),
    (lambda layer: sym.explain(layer, stride=2), "pass no `input_shape`"),
    (lambda layer: sym.checkerboard_law(layer, (1, 3)), "pass no `input_shape`"),
    (lambda layer: sym.explain(cm.Sequential([layer, layer.T])), "explain a stack layer by"),
    (lambda layer: sym.explain((1, 1, 2)), "`input_shape` is required"),
    (lambda layer: sym.checkerboard_law((1, 1, 2)), "`input_shape` is required"),
])
def test_layer_and_shape_arguments_do_not_mix(call, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        call(cm.Conv(np.ones((1, 1, 2)), (1, 3)))
