"""Analyses work on the AffineMap hooks only: new kinds plug in without touching them."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

import convmatrix as cm
import convmatrix.analysis as analysis
import convmatrix.analysis.checkerboard as checkerboard_module
from convmatrix.analysis.blocks import matrix_blocks, row_view
from convmatrix.analysis.linop import LayerOperator
from convmatrix.geometry.view import AffineMap, ConvView, is_affine_map
from convmatrix.layers.base import Layer
from convmatrix.symbolic.composed import AxisStep

ANALYSIS = Path(__file__).resolve().parents[2] / "convmatrix" / "analysis"


class Repeat2:
    """A 1-D nearest upsampling by 2, ``(C, n) → (C, 2n)``, written from the protocol alone.

    No base class: every member the analyses use is implemented here.
    """

    def __init__(self, channels: int, n: int) -> None:
        self.input_shape = (channels, n)
        self.output_shape = (channels, 2 * n)
        self.dtype = np.dtype(np.float64)
        self.layout = "channels_first"

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return math.prod(self.output_shape), math.prod(self.input_shape)

    @property
    def T(self) -> Any:
        raise NotImplementedError

    def _axis(self) -> sp.csr_array:
        n = self.input_shape[1]
        rows = np.arange(2 * n)
        return sp.csr_array((np.ones(2 * n), (rows, rows // 2)), shape=(2 * n, n))

    def matrix(self, format: str = "csr", *, max_bytes: int | None = None) -> sp.sparray:
        channels = sp.identity(self.input_shape[0], format="csr")
        return sp.csr_array(sp.kron(channels, self._axis(), format="csr")).asformat(format)

    def offset(self) -> np.ndarray:
        return np.zeros(self.matrix_shape[0])

    def conv_view(self) -> ConvView | None:
        return None

    def apply_forward(self, batch: np.ndarray) -> np.ndarray:
        return np.repeat(batch, 2, axis=-1)

    def apply_adjoint(self, batch: np.ndarray) -> np.ndarray:
        return batch[..., 0::2] + batch[..., 1::2]

    def chain(self) -> tuple[Repeat2, ...]:
        return (self,)

    def path_matrix(self) -> sp.csr_array:
        return sp.csr_array(self.matrix().astype(np.int64))

    def own_interior(self) -> np.ndarray:
        return np.ones(self.matrix_shape[0], dtype=bool)

    def axis_steps(self) -> Any:
        return [[AxisStep(2, 2, label="Repeat2")]], 1


class Conv1dInDisguise(Layer):
    """A new layer kind that is a convolution: it says so through ``conv_view`` only."""

    def __init__(self, weight: np.ndarray, n: int) -> None:
        self.core = cm.ConvTranspose(weight, (weight.shape[0], n), stride=2)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.core.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.core.output_shape

    def _build_matrix(self, format: Any, max_bytes: int | None) -> sp.sparray:
        return self.core.matrix(format, max_bytes=max_bytes)

    def conv_view(self) -> ConvView:
        view = self.core.conv_view()
        return ConvView(view.spec, view.weight, view.direction, "Disguised")


def test_a_kind_from_the_protocol_alone_gets_the_analyses(tmp_path):
    up = Repeat2(2, 5)
    assert is_affine_map(up)
    counts = analysis.path_counts(up)
    np.testing.assert_array_equal(counts, np.ones((2, 10), dtype=np.int64))
    verdict = checkerboard_module.checkerboard(up)
    assert verdict.verdict == "even" and verdict.law_agrees
    assert verdict.predicted_values == (1,)
    np.testing.assert_allclose(analysis.singular_values(up), np.full(10, math.sqrt(2)))
    assert analysis.operator_norm(up, method="iterative") == pytest.approx(math.sqrt(2))
    assert analysis.operator_norm_bound(up) >= math.sqrt(2)
    blocks = list(matrix_blocks(up, rows_per_block=7))
    assert (sp.vstack(blocks) != up.matrix()).nnz == 0
    op = LayerOperator(up)
    x = np.arange(10.0)
    np.testing.assert_allclose(op @ x, up.matrix() @ x)
    np.testing.assert_allclose(op.rmatvec(np.arange(20.0)), up.matrix().T @ np.arange(20.0))
    path = analysis.save_matrix(up, tmp_path / "up.npz")
    assert (sp.load_npz(path) != up.matrix()).nnz == 0
    inverse = analysis.transpose_vs_inverse(up)
    assert inverse.full_column_rank and inverse.recovered


def test_a_layer_kind_that_is_a_convolution_answers_through_conv_view():
    weight = np.ones((1, 1, 3))
    disguised, plain = Conv1dInDisguise(weight, 6), cm.ConvTranspose(weight, (1, 6), stride=2)
    np.testing.assert_array_equal(cm.Layer.overlap_counts(disguised), plain.overlap_counts())
    np.testing.assert_array_equal(analysis.path_counts(disguised), analysis.path_counts(plain))
    ours, theirs = disguised.checkerboard(), plain.checkerboard()
    assert ours.interior_values == theirs.interior_values == (1, 2)
    assert ours.law_agrees and ours.laws[0] is not None
    assert analysis.operator_norm_bound(disguised) == analysis.operator_norm_bound(plain)
    assert row_view(disguised) is not None  # built channel range by channel range
    assert (sp.vstack(list(disguised.matrix_blocks(3))) != plain.matrix()).nnz == 0


def test_default_hooks_of_layer_kinds():
    conv = cm.Conv(np.ones((2, 1, 3)), (1, 6), padding=1, padding_mode="reflect")
    assert conv.layout == "channels_first" and conv.chain() == (conv,)
    assert conv.T.layout == "channels_first"
    np.testing.assert_array_equal(conv.T.path_matrix().toarray(),
                                  conv.path_matrix().toarray().T)
    stack = cm.Sequential([conv, cm.Conv(np.ones((1, 2, 3)), (2, 6), padding=1)])
    assert stack.chain() == stack.layers
    assert cm.Sequential([stack, conv.T.T]).chain() == (*stack.layers, conv)
    np.testing.assert_array_equal(stack.own_interior(), analysis.paths.interior_mask(stack).ravel())
    pool = cm.AvgPool((1, 4, 4), 2)
    assert pool.conv_view() is None and pool.axis_steps() is not None
    batch = np.arange(32.0).reshape(2, 1, 4, 4)
    np.testing.assert_allclose(pool.apply_forward(batch).reshape(2, -1),
                               (pool.matrix() @ batch.reshape(2, -1).T).T)


def test_conv_kinds_know_their_direction():
    assert cm.Conv.direction == "forward" and cm.ConvTranspose.direction == "adjoint"
    up = cm.ConvTranspose(np.ones((1, 1, 3)), (1, 4), stride=2)
    assert up.conv_view().direction == "adjoint" and up.T.conv_view().direction == "forward"


@pytest.mark.parametrize("direction", ["forward", "adjoint"])
def test_from_spec_rebuilds_the_layer(direction):
    from convmatrix.layers.conv import ConvLayer

    conv = cm.Conv(np.arange(12.0).reshape(2, 2, 3), (2, 9), stride=2, padding=1)
    layer = ConvLayer.from_spec(conv.spec, conv.weight, direction=direction, bias=[1.0, 2.0])
    assert layer.spec == conv.spec and layer.direction == direction
    expected = conv.matrix() if direction == "forward" else conv.matrix().T
    assert abs(layer.matrix() - expected).max() == 0


def test_from_spec_refuses_what_no_layer_is():
    from convmatrix.layers.conv import ConvLayer

    reflect = cm.Conv(np.ones((1, 1, 3)), (1, 5), padding=1, padding_mode="reflect")
    with pytest.raises(cm.ConvMatrixError, match="zero padding only"):
        ConvLayer.from_spec(reflect.spec, reflect.weight, direction="adjoint")
    cropped = cm.ConvTranspose(np.ones((1, 1, 3)), (1, 4), stride=1, dilation=2,
                               output_padding=1)
    with pytest.raises(cm.ConvMatrixError, match="no Conv has exactly the spec"):
        ConvLayer.from_spec(cropped.spec, cropped.weight)
    with pytest.raises(cm.ConvMatrixError, match="`direction`"):
        ConvLayer.from_spec(reflect.spec, reflect.weight, direction=True)  # type: ignore[arg-type]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, with its line: top level, in functions, under TYPE_CHECKING."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            found.append((node.lineno, node.module or ""))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_analysis_never_imports_layers_or_adapters():
    files = sorted(ANALYSIS.rglob("*.py"))
    assert len(files) >= 9
    offending = [f"{path.relative_to(ANALYSIS)}:{line} imports {module}"
                 for path in files for line, module in _imports(path)
                 if module.startswith(("convmatrix.layers", "convmatrix.adapters"))
                 or module in ("convmatrix.Layer", "convmatrix.Conv", "convmatrix.ConvTranspose")]
    assert offending == []


def test_the_protocol_names_every_hook_layers_implement():
    members = {name for name in dir(AffineMap) if not name.startswith("_")}
    assert {"conv_view", "apply_forward", "apply_adjoint", "chain", "layout", "path_matrix",
            "own_interior", "axis_steps"} <= members
    assert all(hasattr(Layer, name) for name in members)


def test_kinds_written_for_0_1_keep_working_with_a_warning():
    with pytest.deprecated_call(match="implement the public hook apply_forward"):
        class Old(Layer):
            input_shape = (1, 3)
            output_shape = (1, 3)

            def _build_matrix(self, format: Any, max_bytes: int | None) -> sp.sparray:
                return sp.eye_array(3, format=format) * 2.0

            def _apply(self, x: np.ndarray) -> np.ndarray:
                return 2.0 * x

    old = Old()
    assert Old.apply_forward is Old.__dict__["_apply"]
    np.testing.assert_allclose(old(np.ones((1, 3))), 2.0 * np.ones((1, 3)))

    with pytest.deprecated_call(match=r"implement the hook method Old.path_matrix\(\)"):
        @analysis.paths.path_matrix.register(Old)
        def _(layer: Old) -> sp.csr_array:
            return sp.csr_array(sp.eye_array(3, dtype=np.int64, format="csr") * 5)
    np.testing.assert_array_equal(analysis.path_counts(old), [[5, 5, 5]])
    with pytest.deprecated_call(match="Old.axis_steps"):
        checkerboard_module.axis_steps.register(Old, lambda layer: None)
    assert old.axis_steps() is None
