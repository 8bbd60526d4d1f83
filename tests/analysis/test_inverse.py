"""Why the transpose is not the inverse: every number against an independent computation (the
dense reference convolutions built column by column, numpy's SVD and pseudo-inverse)."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from convmatrix.analysis.inverse import InverseAnalysis
from tests.helpers import rng as _rng


def _reference_matrix(weight, input_shape, transpose, geometry):
    """The dense matrix of the layer, one column per unit input, from convmatrix.reference."""
    apply = reference.conv_transpose if transpose else reference.conv
    columns = []
    for flat in range(int(np.prod(input_shape))):
        unit = np.zeros(int(np.prod(input_shape)))
        unit[flat] = 1.0
        columns.append(apply(unit.reshape(input_shape), weight, **geometry).ravel())
    return np.stack(columns, axis=1)


CASES = [  # (weight shape, input shape, transpose, geometry)
    ((1, 1, 2, 2), (1, 3, 3), False, {}),                         # the seed's Conv2D: 4×9
    ((1, 1, 2, 2), (1, 2, 2), True, {}),                          # the seed's transpose: 9×4
    ((1, 1, 3, 3), (1, 4, 4), False, {"padding": 1}),             # square 16×16
    ((1, 1, 3, 3), (1, 3, 3), True, {"stride": 2}),               # k3/s2 upsampling, tall
    ((2, 1, 3), (1, 7), False, {"stride": 2, "padding": 1}),      # two channels, strided
    ((1, 2, 4), (1, 3), True, {"stride": 2, "padding": 1}),       # tall, two output channels
]


def _layer(weight, input_shape, transpose, geometry):
    kind = cm.ConvTranspose if transpose else cm.Conv
    return kind(weight, input_shape, **geometry)


@pytest.mark.parametrize(("weight_shape", "input_shape", "transpose", "geometry"), CASES)
@pytest.mark.parametrize("fill", ["ones", "random"])
def test_rank_gram_and_least_squares_against_numpy(weight_shape, input_shape, transpose,
                                                   geometry, fill):
    rng = _rng(weight_shape, input_shape, transpose, geometry, fill)
    weight = (np.ones(weight_shape) if fill == "ones"
              else rng.integers(-3, 4, weight_shape).astype(float))
    x = rng.standard_normal(input_shape)
    analysis = _layer(weight, input_shape, transpose, geometry).transpose_vs_inverse(x)
    dense = _reference_matrix(weight, input_shape, transpose, geometry)
    rows, columns = dense.shape
    singular = np.linalg.svd(dense, compute_uv=False)
    rank = int(np.sum(singular > singular.max() * max(rows, columns) * 1e-12))
    assert (analysis.rows, analysis.columns, analysis.rank) == (rows, columns, rank)
    assert analysis.lost_dimensions == columns - rank
    np.testing.assert_allclose(analysis.gram_diagonal, np.sum(dense ** 2, axis=0), atol=1e-12)
    ones = _reference_matrix(np.ones(weight_shape), input_shape, transpose, geometry)
    np.testing.assert_array_equal(analysis.reads, np.count_nonzero(ones, axis=0))
    # CᵀC x through the reference: the transposed convolution of the convolution
    back = (reference.conv if transpose else reference.conv_transpose)
    forward = (reference.conv_transpose if transpose else reference.conv)(x, weight, **geometry)
    if transpose:
        gram_x = back(forward, weight, **{k: v for k, v in geometry.items()
                                          if k != "output_padding"})
    else:
        output_padding = tuple(analysis.layer.T.spec.remainder) if hasattr(
            analysis.layer.T, "spec") else 0
        gram_x = back(forward, weight, output_padding=output_padding, **geometry)
    np.testing.assert_allclose(analysis.gram_x, gram_x.ravel(), atol=1e-10)
    np.testing.assert_allclose(analysis.gram_x, dense.T @ dense @ x.ravel(), atol=1e-10)
    # least squares: numpy's pseudo-inverse (an SVD) of the reference matrix
    expected = np.linalg.pinv(dense) @ (dense @ x.ravel())
    np.testing.assert_allclose(analysis.lsqr_x, expected, atol=1e-7)
    assert analysis.recovered == (rank == columns)
    assert analysis.recovered == bool(np.allclose(expected, x.ravel(), atol=1e-8))


def test_the_seed_loses_five_dimensions_and_least_squares_fails():
    conv = cm.Conv(np.ones((1, 1, 2, 2), dtype=int), (1, 3, 3))
    analysis = conv.transpose_vs_inverse(np.ones((1, 3, 3)))  # the seed's x
    assert isinstance(analysis, InverseAnalysis)
    # closed forms: a valid 2×2 convolution of 3×3 has 4 independent rows; x = ones
    assert (analysis.rows, analysis.columns, analysis.rank, analysis.lost_dimensions) == (
        4, 9, 4, 5)
    seed_t = reference.conv_transpose(reference.conv(np.ones((1, 3, 3)), np.ones((1, 1, 2, 2))),
                                      np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(analysis.gram_x, seed_t.ravel())
    assert not analysis.gram_is_identity and not analysis.recovered
    # exact C⁺ C x against numpy's pinv, and the exact null space is annihilated by C
    dense = _reference_matrix(np.ones((1, 1, 2, 2)), (1, 3, 3), False, {})
    exact = np.array([float(v) for v in analysis.exact_x])
    np.testing.assert_allclose(exact, np.linalg.pinv(dense) @ dense @ np.ones(9), atol=1e-12)
    assert analysis.lsqr_matches_exact
    basis = np.array([[float(v) for v in vector] for vector in analysis.nullspace])
    assert basis.shape == (5, 9) and np.linalg.matrix_rank(basis) == 5
    np.testing.assert_allclose(dense @ basis.T, 0, atol=1e-12)
    # the transposed layer is tall with full column rank: least squares recovers x
    transposed = conv.T.transpose_vs_inverse(seed=3)
    assert transposed.full_column_rank and transposed.recovered


def test_symbolic_gram_with_numbers_substituted_is_the_reference_gram():
    rng = _rng("gram")
    weight = rng.integers(-4, 5, (1, 1, 2, 3))
    conv = cm.Conv(np.ones((1, 1, 2, 3), dtype=int), (1, 2, 4))
    gram = conv.transpose_vs_inverse().gram
    symbols = {f"w_{{{i},{j}}}": int(weight[0, 0, i, j]) for i in range(2) for j in range(3)}
    substituted = np.array(gram.subs({s: symbols[s.name] for s in gram.free_symbols}),
                           dtype=float)
    dense = _reference_matrix(weight.astype(float), (1, 2, 4), False, {})
    np.testing.assert_allclose(substituted, dense.T @ dense)


def test_renderings_are_computed_and_short():
    analysis = cm.Conv(np.ones((1, 1, 2, 2), dtype=int), (1, 3, 3)).transpose_vs_inverse(
        np.ones((1, 3, 3)))
    assert repr(analysis) == ("InverseAnalysis(Conv(1→1, 1×3×3 → 1×2×2, kernel 2×2): C 4×9, "
                              "rank 4, 5 input dimensions lost, least squares does not "
                              "recover x)")
    text, markdown = str(analysis), analysis._repr_markdown_()
    assert "[4, 8, 4]" in text and "[4/9, 8/9, 4/9]" in text
    assert "5 of the 9 input dimensions are lost" in markdown
    assert markdown.count("$$") % 2 == 0


def test_bad_input_is_refused_with_the_parameter_named():
    conv = cm.Conv(np.ones((1, 1, 3, 3)), (1, 3, 3))
    with pytest.raises(cm.ConvMatrixError, match=r"`x` has shape \(3, 3\)"):
        conv.transpose_vs_inverse(np.ones((3, 3)))
    with pytest.raises(cm.ConvMatrixError, match="`x` or `seed`, not both"):
        conv.transpose_vs_inverse(np.ones((1, 3, 3)), seed=1)
    big = cm.Conv(np.ones((8, 8, 3, 3)), (8, 64, 64), padding=1)
    with pytest.raises(cm.ConvMatrixError, match=r"rank needs the dense matrix, allowed up to"):
        big.transpose_vs_inverse()


@pytest.mark.parametrize(("weight_shape", "input_shape", "transpose", "geometry"), CASES)
def test_explain_states_the_generic_rank_and_lost_dimensions(weight_shape, input_shape,
                                                             transpose, geometry):
    layer = _layer(np.ones(weight_shape), input_shape, transpose, geometry)
    text = layer.explain().inverse_text()
    weight = _rng("explain", weight_shape, input_shape).standard_normal(weight_shape)
    dense = _reference_matrix(weight, input_shape, transpose, geometry)
    rank = int(np.linalg.matrix_rank(dense))
    columns = dense.shape[1]
    assert f"for generic weights it is {rank}" in text
    if rank < columns:
        assert f"{columns - rank} of the {columns} input dimensions are lost" in text
    else:
        assert "no input dimension is lost" in text
    assert "Why the transpose is not the inverse" in layer.explain().to_markdown()
