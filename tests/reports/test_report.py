"""Derivation reports: content computed (not pasted), well-formed math, reproducible files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import reference
from convmatrix.cli import main
from convmatrix.reports import builtin
from convmatrix.reports import layer as report

REPORTS = Path(__file__).parents[2] / "reports"


def _seed_numbers():
    """The seed's printed tensors, from the dense reference (independent of the report)."""
    conv = reference.conv(np.ones((1, 3, 3)), np.ones((1, 1, 2, 2)))
    deconv = reference.conv_transpose(np.ones((1, 2, 2)), np.ones((1, 1, 2, 2)))
    return (f"output tensor: {np.around(np.squeeze(conv)).tolist()}",
            f"output tensor: {np.around(np.squeeze(deconv)).tolist()}")


def check_math(markdown: str) -> None:
    """Balanced $$ blocks and inline $, environments, and rectangular matrices."""
    blocks = markdown.split("$$")
    assert len(blocks) % 2 == 1, "unbalanced $$"
    for text in blocks[0::2]:  # outside display math: inline $ must pair up per line
        for line in text.splitlines():
            if line.startswith("```") or line.startswith("    "):
                continue
            code_free = re.sub(r"`[^`]*`", "", line)
            assert code_free.count("$") % 2 == 0, f"unbalanced inline $: {line}"
    for block in blocks[1::2]:
        begins = re.findall(r"\\begin\{(\w+\*?)\}", block)
        ends = re.findall(r"\\end\{(\w+\*?)\}", block)
        assert begins == ends[::-1] or sorted(begins) == sorted(ends), block[:200]
        assert block.count(r"\left") == block.count(r"\right")
        assert block.count("{") == block.count("}"), block[:200]
        for env in ("matrix", "bmatrix"):
            for body in re.findall(rf"\\begin\{{{env}\}}(.*?)\\end\{{{env}\}}", block, re.S):
                widths = {row.count("&") for row in body.split(r"\\")}
                assert len(widths) == 1, f"ragged {env}: {widths}"


def test_seed_report_shows_the_seed_lines_computed():
    seed = builtin.seed_report(figures=False)
    conv_line, deconv_line = _seed_numbers()
    assert conv_line == "output tensor: [[4.0, 4.0], [4.0, 4.0]]"  # what the seed printed
    for line in ["input shape: (1, 3, 3, 1)", "output shape: (1, 2, 2, 1)",
                 "input tensor: [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]",
                 conv_line, "input shape: (1, 2, 2, 1)", "output shape: (1, 3, 3, 1)",
                 "input tensor: [[1.0, 1.0], [1.0, 1.0]]", deconv_line,
                 "# (1, 2, 2, 1)", "# (1, 4, 4, 1)"]:
        assert line in seed.markdown, line
    check_math(seed.markdown)
    assert "All checks passed." in seed.markdown and "FAILED" not in seed.markdown


@pytest.mark.parametrize("built", builtin.builtin_reports(figures=False), ids=lambda r: r.name)
def test_builtin_reports_are_well_formed(built):
    check_math(built.markdown)
    assert built.markdown.count("All checks passed.") >= 1
    assert "A CHECK FAILED" not in built.markdown


def test_uneven_vs_even_report_states_the_verdicts():
    text = next(r for r in builtin.builtin_reports(figures=False)
                if r.name == "overlap-k3-vs-k4-stride2").markdown
    assert "Uneven overlap" in text and "Even overlap" in text
    # the k=3 overlap map equals the transposed convolution of ones (reference)
    counts = reference.conv_transpose(np.ones((1, 4, 4), dtype=int),
                                      np.ones((1, 1, 3, 3), dtype=int), stride=2)[0]
    row = " & ".join(map(str, counts[2]))
    assert row in text


@pytest.mark.slow
def test_reports_folder_regenerates_byte_for_byte(tmp_path):
    # the committed reports embed figures, so regenerating them needs matplotlib
    pytest.importorskip("matplotlib")
    assert main(["reports", "--out", str(tmp_path)]) == 0
    committed = sorted(p.name for p in REPORTS.glob("*.md"))
    assert committed == sorted(p.name for p in tmp_path.glob("*.md"))
    for name in committed:
        assert (tmp_path / name).read_bytes() == (REPORTS / name).read_bytes(), name
    linked = set(re.findall(r"\]\(([^)]+\.png)\)", "".join(
        p.read_text() for p in tmp_path.glob("*.md"))))
    assert linked and all((tmp_path / png).stat().st_size > 1000 for png in linked)


def test_report_command_in_process_and_figures(tmp_path, capsys):
    out = tmp_path / "k3.md"
    code = main(["report", "--input", "1x4x4", "--kernel", "1x1x3x3", "--stride", "2",
                 "--transpose", "--out", str(out)])
    assert code == 0 and out.exists()
    text = out.read_text()
    check_math(text)
    assert "Uneven overlap" in text
    if report.figures_available():
        for png in re.findall(r"\]\(([^)]+\.png)\)", text):
            data = (tmp_path / png).read_bytes()
            assert data.startswith(b"\x89PNG")
    assert "wrote" in capsys.readouterr().out


def test_report_without_matplotlib_says_figures_were_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "figures_available", lambda: False)
    built = builtin.seed_report()
    assert "Figures skipped" in built.markdown and not built.figures


def test_keras_report_from_flags(tmp_path):
    code = main(["report", "--keras", "Conv2DTranspose", "--input", "4x4x1", "--kernel",
                 "3x3x1x1", "--stride", "2", "--padding", "same", "--out", str(tmp_path),
                 "--no-figures"])
    assert code == 0
    text = (tmp_path / "report.md").read_text()
    assert "Keras `Conv2DTranspose`" in text and "1×4×4 → 1×8×8" in text


def test_report_subprocess_default_is_the_seed(tmp_path):
    done = subprocess.run([sys.executable, "-m", "convmatrix", "report", "--out",
                           str(tmp_path / "seed"), "--no-figures"], capture_output=True,
                          text=True, check=True)
    assert "The seed example" in done.stdout
    text = (tmp_path / "seed" / "report.md").read_text()
    assert "output tensor: [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]" in text


@pytest.mark.slow
def test_large_layer_report_is_small(tmp_path):
    # its speed is measured by benchmarks, not asserted here
    assert main(["report", "--input", "64x56x56", "--kernel", "64x64x3x3", "--padding", "1",
                 "--out", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert len(text.encode()) < 50_000
    assert "a representative sample" in text and "stored entries" in text
    check_math(text)


@pytest.mark.parametrize("broken", [
    "$$\nx = 1\n",                                                   # unclosed display math
    "text $x$ and $y\n",                                             # unclosed inline math
    "$$\n\\begin{aligned} a &= b\n$$",                               # missing \end
    "$$\n\\begin{bmatrix} 1 & 2 \\\\ 3 \\end{bmatrix}\n$$",          # ragged matrix
])
def test_math_checker_catches_broken_markdown(broken):
    with pytest.raises(AssertionError):
        check_math(broken)


# ------------------------------------------------------------------------------------------
# wording (issue 8, item 7)


def _one_d_report():
    from convmatrix.builder.weights import make_weight

    layer = cm.ConvTranspose(make_weight((1, 1, 3), "ones"), (1, 5), stride=2)
    return report.layer_report(layer, figures=False)


def _reports_and_layers():
    built = builtin.builtin_reports(figures=False)
    return [*built, _one_d_report()]


@pytest.mark.parametrize("built", _reports_and_layers(), ids=lambda r: r.name)
def test_report_wording_has_no_contradictions(built):
    text = built.markdown
    assert "tap(s)" not in text
    # an even interior count is stated once with where it holds, never "everywhere, at j = 1"
    assert not re.search(r"everywhere[^.\n]*\bj\b", text), text
    for law in re.findall(r"^c_\{\d\}\(j\) = .*$", text, re.M):
        assert "everywhere" not in law, law


def test_one_dimensional_report_does_not_speak_of_n_d():
    text = _one_d_report().markdown
    assert "Uneven overlap" in text  # k=3, s=2
    assert "per-axis counts multiply" not in text and "outer product" not in text
    two_d = next(r for r in builtin.builtin_reports(figures=False)
                 if r.name == "overlap-k3-vs-k4-stride2").markdown
    assert "In N-D the per-axis counts multiply." in two_d


def _subscripts(text, name):
    return [tuple(int(v) for v in found.split(","))
            for found in re.findall(rf"\b{name}_\{{([\d,]+)\}}", text)]


@pytest.mark.parametrize(("weight_shape", "input_shape", "transpose"), [
    ((1, 1, 2, 2), (1, 3, 3), False),   # one channel in, one out
    ((2, 1, 3), (1, 6), False),         # one in, two out
    ((1, 3, 2), (3, 5), False),         # three in, one out
    ((1, 2, 2, 2), (1, 3, 3), True),    # transposed: one in, two out
    ((3, 1, 2), (3, 4), True),          # transposed: three in, one out
])
def test_x_and_y_index_channels_the_same_way(weight_shape, input_shape, transpose):
    from convmatrix.builder.weights import make_weight

    build = cm.ConvTranspose if transpose else cm.Conv
    layer = build(make_weight(weight_shape, "ones"), input_shape)
    text = report.layer_report(layer, figures=False).markdown
    outputs = text.split("### Outputs")[1].split("###")[0]
    # the same rule for both tensors: channel first, left out exactly when there is one channel
    for name, shape in (("x", layer.input_shape), ("y", layer.output_shape)):
        found = _subscripts(outputs, name)
        assert found, name
        spatial = len(shape) - 1
        width = spatial + (shape[0] > 1)
        assert {len(index) for index in found} == {width}, (name, shape, found[:3])
        for index in found:  # and every index is inside the tensor
            full = index if shape[0] > 1 else (0, *index)
            assert all(0 <= i < n for i, n in zip(full, shape, strict=True)), (name, index)


def test_layer_report_refuses_a_layer_over_its_memory_budget():
    # a 1×3×3 input through stride 99999999: the transposed output is 2·10⁸ × 2·10⁸ pixels
    huge = cm.ConvTranspose(np.ones((1, 1, 2, 2)), (1, 3, 3), stride=99_999_999)
    with pytest.raises(cm.ConvMatrixError, match=r"the report of .* over `max_bytes`"):
        report.layer_report(huge)
    with pytest.raises(cm.ConvMatrixError, match=r"over `max_bytes`"):
        huge.report()
    small = cm.Conv(np.ones((1, 1, 3, 3)), (1, 16, 16))
    with pytest.raises(cm.ConvMatrixError, match=r"over `max_bytes` \(=1 KiB\)"):
        report.layer_report(small, figures=False, max_bytes=1024)
    assert "All checks passed." in report.layer_report(small, figures=False,
                                                       max_bytes=None).markdown


def test_large_figures_are_not_drawn_one_artist_per_value(monkeypatch):
    # a 10⁶-pixel 1-D report drew 10⁶ bars (minutes); a large block drew every entry
    pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    from convmatrix.reports import figures

    def refuse(*args, **kwargs):
        raise AssertionError("one artist per value")

    monkeypatch.setattr(Axes, "bar", refuse)
    png = figures.overlap_png(np.tile([1, 2], 2000), "reads", pixels="input")
    assert png.startswith(b"\x89PNG")
    monkeypatch.setattr(figures, "MAX_MARKERS", 100)
    monkeypatch.setattr(Axes, "plot", refuse)
    matrix = cm.Conv(np.ones((1, 1, 3, 3)), (1, 30, 30), padding=1).matrix()
    assert matrix.nnz > 100
    png = figures.sparsity_png(matrix, "C", xlabel="column", ylabel="row")
    assert png.startswith(b"\x89PNG")
