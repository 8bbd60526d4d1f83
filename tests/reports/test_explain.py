"""explain() and report() of every layer kind: what the explanation lists is the matrix's."""

from __future__ import annotations

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.layers import base
from convmatrix.reports.explain import MatrixExplanation, StackExplanation
from convmatrix.reports.layer import layer_report


def _kinds():
    return {
        "avgpool": cm.AvgPool((2, 5, 4), 2),
        "avgpool-1d-padded": cm.AvgPool((1, 7), 3, stride=2, padding=1),
        "upsample-nearest": cm.Upsample((1, 3, 3), scale_factor=2, mode="nearest"),
        "upsample-bilinear": cm.Upsample((1, 3, 4), scale_factor=2, mode="bilinear"),
        "pad-reflect": cm.Pad((1, 3, 3), (1, 1, 2, 0), mode="reflect"),
        "pad-constant": cm.Pad((2, 3), (1, 2), mode="constant"),
        "pixel-shuffle": cm.PixelShuffle((4, 2, 3), 2),
        "pixel-unshuffle": cm.PixelUnshuffle((1, 4, 4), 2),
        "batch-norm": cm.BatchNorm((2, 3, 3), [0.5, 1.0], [1.0, 4.0]),
        "identity": cm.Identity((2, 3)),
    }


def _dense(layer):
    return layer.matrix().toarray()


def _brute_force_counts(dense, layer):
    rows, columns = dense.shape
    per_row = np.zeros(rows, dtype=int)
    per_column = np.zeros(columns, dtype=int)
    for r in range(rows):
        for c in range(columns):
            if dense[r, c] != 0:
                per_row[r] += 1
                per_column[c] += 1
    return per_row.reshape(layer.output_shape), per_column.reshape(layer.input_shape)


@pytest.mark.parametrize("name", sorted(_kinds()))
def test_matrix_explanation_lists_the_matrix_entries(name):
    layer = _kinds()[name]
    explanation = layer.explain()
    assert isinstance(explanation, MatrixExplanation)
    dense = _dense(layer)
    offset = layer.offset()
    assert explanation.matrix_shape == dense.shape
    assert explanation.nnz == np.count_nonzero(dense)
    assert len(explanation.reads) >= 1
    for read in explanation.reads:
        row = np.ravel_multi_index(read.output, layer.output_shape)
        expected = {np.unravel_index(c, layer.input_shape): dense[row, c]
                    for c in np.flatnonzero(dense[row])}
        listed = dict(read.terms)
        assert {tuple(map(int, k)): v for k, v in expected.items()} == listed
        assert read.offset == offset[row]
        assert read.value is None
    per_row, per_column = _brute_force_counts(dense, layer)
    np.testing.assert_array_equal(explanation.terms_per_output, per_row)
    np.testing.assert_array_equal(explanation.reads_per_input, per_column)
    verdict = layer.checkerboard()
    assert explanation.checkerboard is not None
    assert explanation.checkerboard.verdict == verdict.verdict
    assert explanation.laws == [law.law() for law in verdict.laws if law is not None]


@pytest.mark.parametrize("name", sorted(_kinds()))
def test_matrix_explanation_renders(name):
    layer = _kinds()[name]
    explanation = layer.explain()
    markdown = explanation.to_markdown()
    assert markdown.startswith(f"## `{layer!r}`")
    assert explanation._repr_markdown_() == markdown
    for heading in ("### Shapes and matrix", "### What each output reads",
                    "### Overlap and checkerboard"):
        assert heading in markdown
    for read in explanation.reads:
        assert f"`y[{', '.join(map(str, read.output))}]`" in markdown
    assert explanation.checkerboard.verdict in markdown
    short = repr(explanation)
    assert "\n" not in short and short.startswith("MatrixExplanation(") and len(short) < 160
    assert str(explanation).splitlines()[0] == repr(layer)
    # Jupyter shows the summary and the explanation
    assert layer._repr_markdown_() == f"{layer.summary_markdown()}\n\n{markdown}"
    assert layer._repr_latex_() is None
    report = layer.report()
    assert report.startswith(f"# {layer!r}\n\n| input | output | matrix | dtype |")
    assert "\n## Explanation\n\nNo symbolic derivation" in report
    assert markdown.split("\n", 1)[1] in report


def test_explanation_with_an_input_shows_the_values():
    layer = cm.BatchNorm((2, 3, 3), [0.5, 1.0], [1.0, 4.0], weight=[2.0, 1.0], bias=[0.0, 3.0])
    x = np.arange(18.0).reshape(2, 3, 3)
    explanation = layer.explain(x)
    y = layer(x).reshape(-1)
    for read in explanation.reads:
        row = np.ravel_multi_index(read.output, layer.output_shape)
        assert read.value == pytest.approx(y[row])
        assert read.offset != 0 or layer.offset()[row] == 0
    assert "| value |" in explanation.to_markdown()
    with pytest.raises(cm.ConvMatrixError, match="`x` has shape"):
        layer.explain(np.ones(3))


def test_read_text_signs_and_elision():
    layer = cm.BatchNorm((1, 2), [2.0], [1.0])
    text = layer.explain().reads[0].text()
    assert "−" in text and "+ -" not in text
    wide = cm.AvgPool((1, 20), 20)
    read = wide.explain().reads[0]
    assert len(read.terms) == 20 and read.text().endswith("… (8 more)")


def test_stack_explains_each_factor_and_the_product():
    stack = cm.Sequential([cm.ConvTranspose(np.ones((1, 1, 3, 3), dtype=int), (1, 3, 3),
                                            stride=2),
                           cm.Upsample((1, 7, 7), scale_factor=2, mode="nearest"),
                           cm.AvgPool((1, 14, 14), 2)])
    explanation = stack.explain()
    assert isinstance(explanation, StackExplanation)
    assert len(explanation.factors) == len(stack.chain())
    for factor, leaf in zip(explanation.factors, stack.chain(), strict=True):
        assert factor.layer is leaf
        assert factor.nnz == np.count_nonzero(_dense(leaf))
        assert factor.verdict == leaf.checkerboard().verdict
    assert explanation.nnz == np.count_nonzero(_dense(stack))
    assert explanation.matrix_shape == stack.matrix_shape
    assert explanation.plan == str(stack.plan())
    assert explanation.checkerboard.verdict == stack.checkerboard().verdict
    markdown = explanation.to_markdown()
    assert explanation._repr_markdown_() == markdown
    for n, leaf in enumerate(stack.chain()):
        assert f"{n}. M{n} = `{leaf!r}`" in markdown
    assert "### The product" in markdown and explanation.plan in markdown
    assert "\n" not in repr(explanation)
    assert str(explanation).splitlines()[0] == repr(stack)
    report = stack.report()
    assert report.startswith(f"# {stack!r}") and "## Overlap" in report


def test_convolutions_keep_their_symbolic_explanation_and_report():
    conv = cm.ConvTranspose(np.ones((1, 1, 3, 3), dtype=int), (1, 4, 4), stride=2)
    assert type(conv.explain()).__name__ == "Explanation"
    assert conv.report() == layer_report(conv, figures=False).markdown
    reflect = cm.Conv(np.ones((1, 1, 3)), (1, 4), padding=1, padding_mode="reflect")
    adjoint = reflect.T.explain()  # a convolution seen as its adjoint: derived symbolically
    assert type(adjoint).__name__ == "Explanation" and adjoint.direction == "adjoint"
    assert "Adjoint of Conv1d" in reflect.T.report()


def test_layers_reach_the_reports_through_the_presenter_hook(monkeypatch):
    calls = []

    class Recorder:
        def explain(self, layer, x=None):
            calls.append(("explain", layer))
            return "explained"

        def report(self, layer, x=None):
            calls.append(("report", layer))
            return "# reported"

    monkeypatch.setattr(base, "_presenter", [Recorder()])
    layer = cm.Identity((1, 2))
    assert layer.explain() == "explained" and layer.report() == "# reported"
    assert calls == [("explain", layer), ("report", layer)]


def test_set_presenter_makes_the_presenter_lazily(monkeypatch):
    monkeypatch.setattr(base, "_presenter_factory", list(base._presenter_factory))
    monkeypatch.setattr(base, "_presenter", list(base._presenter))
    made = []

    def factory():
        made.append(1)
        from convmatrix.reports import presenter

        return presenter

    base.set_presenter(factory)
    assert made == []
    assert base.get_presenter() is base.get_presenter() and made == [1]


# --- the 0.1 module paths of the reports and the command line --------------------------------

OLD_NAMES = {
    "convmatrix.report": ["Report", "ReportLayer", "builtin_reports", "check_report_budget",
                          "index_markdown", "keras_conv", "layer_report", "layer_title",
                          "seed_report"],
    "convmatrix.stack_report": ["builtin_stack_reports", "checkerboard_generator_report",
                                "compare_report", "inverse_report", "layers_table",
                                "stack_report", "verification_section"],
    "convmatrix.norm_cli": ["add_norm_command", "norm_text", "run_norm", "save_streamed"],
    "convmatrix.stack_cli": ["STACK_HELP", "add_compare_command", "add_stack_argument",
                             "run_compare", "run_stack_report"],
}


@pytest.mark.parametrize("old", sorted(OLD_NAMES))
def test_old_report_and_cli_modules_keep_their_names(old):
    import importlib
    import sys

    sys.modules.pop(old, None)
    with pytest.deprecated_call(match="deprecated"):
        module = importlib.import_module(old)
    for name in OLD_NAMES[old]:
        assert hasattr(module, name), name


def test_layer_from_args_moved_with_a_warning():
    import convmatrix.cli as cli
    from convmatrix.cli._layer import layer_from_args

    with pytest.deprecated_call(match="layer_from_args"):
        assert cli.layer_from_args is layer_from_args
