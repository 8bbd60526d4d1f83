"""Reports of stacks: one stack's overlap and inverse, and side-by-side comparisons.

Pure like :mod:`convmatrix.reports.layer`: Markdown plus PNG bytes, deterministic (fixed seeds, no
timing, numbers formatted to fixed digits), so ``reports/`` regenerates byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.analysis.checkerboard import Checkerboard, checkerboard, spatial_axes
from convmatrix.analysis.inverse import transpose_vs_inverse
from convmatrix.builder.budget import check_budget, stack_report_nbytes
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES
from convmatrix.geometry.shapes import shape_text
from convmatrix.layers.base import Layer
from convmatrix.layers.sequential import Sequential
from convmatrix.reports.document import Report
from convmatrix.reports.figures import figures_available, overlap_maps_png

__all__ = ["compare_report", "layers_table", "stack_report", "verification_section"]

INVERSE_MAX_ENTRIES = 250_000  # stacks up to this many matrix entries get the inverse section
_NO_FIGURES = ("_Figures skipped: matplotlib is not installed (`pip install "
               "\"convmatrix[figures]\"`)._")


def _leaves(layer: Layer) -> list[Layer]:
    if isinstance(layer, Sequential):
        return [leaf for item in layer.layers for leaf in _leaves(item)]
    return [layer]


def _all_ones(layer: Layer) -> bool:
    """Every learnable weight of the stack is 1 (then the actual response is the path count)."""
    views = [leaf.conv_view() for leaf in _leaves(layer)]
    return all(view is None or bool(np.all(view.weight == 1)) for view in views)


def _channel0(layer: Layer, values: np.ndarray) -> np.ndarray:
    """The spatial map of the first output channel."""
    axes = spatial_axes(layer)
    return np.moveaxis(values, -1, 0)[0] if axes and axes[0] == 0 else values[0]


def layers_table(layer: Layer) -> str:
    """A Markdown table of a stack's layers with their shapes."""
    rows = ["| # | layer | input | output |", "|---|---|---|---|"]
    rows += [f"| {n} | `{leaf!r}` | {shape_text(leaf.input_shape)} | "
             f"{shape_text(leaf.output_shape)} |" for n, leaf in enumerate(_leaves(layer))]
    return "\n".join(rows)


def _matrix_line(layer: Layer, max_bytes: int | None = DEFAULT_MAX_BYTES) -> str:
    rows, columns = layer.matrix_shape
    try:
        nnz = layer.matrix(max_bytes=max_bytes).nnz
    except ConvMatrixError as error:
        return f"Its matrix is {rows}×{columns}; not formed here ({error})."
    return (f"Its matrix (the exact sparse product of the layers' matrices) is "
            f"{rows}×{columns} with {nnz:,} stored entries "
            f"({nnz / max(1, rows * columns):.2%} dense).")


def _verdicts(layer: Layer) -> list[tuple[str, Checkerboard]]:
    """The all-ones verdict, and the actual-weights one when the weights are not all ones."""
    found = [("weight paths, all-ones weights", checkerboard(layer))]
    if not _all_ones(layer):
        found.append(("response to a constant input, the stack's own weights",
                      checkerboard(layer, "actual")))
    return found


def verification_section(layers: Sequence[Layer], level: int = 2) -> list[str]:
    """Each convolution layer's matrix checked against the dense reference (pass/fail table).

    Only the verdicts are printed (float errors would vary in their last digits between
    machines, and the report must regenerate byte for byte).
    """
    convs: list[Layer] = []
    for layer in layers:
        for leaf in _leaves(layer):
            if leaf.conv_view() is not None and all(leaf is not seen for seen in convs):
                convs.append(leaf)
    out = [f"{'#' * level} Numerical verification", ""]
    if not convs:
        return [*out, "No convolution layers to verify.", ""]
    out += ["Every convolution's matrix against the dense loop reference in "
            "`convmatrix.reference` (which shares no code with the matrix builder) and the "
            "adjoint test, on random data (seed 0):", "",
            "| layer | checks | result |", "|---|---|---|"]
    passed = True
    for conv in convs:
        result = conv.verify(seed=0)
        passed = passed and result.passed
        out.append(f"| `{conv!r}` | {len(result.checks)} ("
                   + ", ".join(check.name for check in result.checks) + ") | "
                   + ("pass" if result.passed else "FAIL") + " |")
    out += ["", f"**{'All checks passed.' if passed else 'A CHECK FAILED.'}**", ""]
    return out


def _inverse_section(layer: Layer, level: int) -> list[str]:
    rows, columns = layer.matrix_shape
    h = "#" * level
    if rows * columns > INVERSE_MAX_ENTRIES:
        return [f"{h} Why the transpose is not the inverse", "",
                f"Skipped: the matrix has {rows * columns:,} entries, more than "
                f"{INVERSE_MAX_ENTRIES:,} (the rank needs a dense SVD).", ""]
    analysis = transpose_vs_inverse(layer)
    body = analysis.to_markdown(level=level + 1).split("\n", 2)[2]  # drop its heading
    return [f"{h} Why the transpose is not the inverse", "", body, ""]


def stack_report(layer: Layer, *, name: str = "report", title: str | None = None,
                 intro: str = "", figures: bool = True,
                 max_bytes: int | None = DEFAULT_MAX_BYTES) -> Report:
    """The report of one layer or stack: layers, overlap verdicts with laws, figure, inverse.

    Parameters
    ----------
    layer : Layer
        A stack (:class:`~convmatrix.Sequential`) or any layer object.
    name : str
        File stem of the report and prefix of its figure.
    title, intro : str
        Heading and an opening paragraph.
    figures : bool
        Make the PNG figure (needs matplotlib).
    max_bytes : int or None, optional
        The budget: a report estimated to need more (:func:`~convmatrix.builder.budget.
        stack_report_nbytes`) is refused before anything is computed; a stack matrix over it is
        not formed (the report says so). None disables both.

    Returns
    -------
    Report
    """
    check_budget(f"the report of {layer!r}", stack_report_nbytes([layer], figures=figures),
                 max_bytes)
    heading = title or f"{layer!r}"
    out = [f"# {heading}", ""]
    if intro:
        out += [intro, ""]
    out += ["## The layers", "", layers_table(layer), "",
            _matrix_line(layer, max_bytes), ""]
    verdicts = _verdicts(layer)
    for what, verdict in verdicts:
        out += [f"## Overlap: {what}", "", verdict.summary_markdown(), ""]
    files: dict[str, bytes] = {}
    out += ["## Figure", ""]
    if figures and figures_available():
        key = f"{name}-overlap.png"
        files[key] = overlap_maps_png(
            [_channel0(layer, v.counts) for _, v in verdicts], [what for what, _ in verdicts])
        out += [f"![overlap maps]({key})", "",
                "The maps of the first output channel, side by side.", ""]
    else:
        out += [_NO_FIGURES, ""]
    out += _inverse_section(layer, 2)
    out += verification_section([layer])
    return Report(name, heading, heading, "\n".join(out).rstrip("\n") + "\n", files)


def _summary_rows(named: Sequence[tuple[str, Layer]],
                  verdicts: Sequence[list[tuple[str, Checkerboard]]]) -> list[str]:
    header = "| | " + " | ".join(title for title, _ in named) + " |"
    rows = [header, "|---|" + "---|" * len(named)]

    def row(label: str, cells: Sequence[str]) -> None:
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    row("layers", [" → ".join(type(leaf).__name__ for leaf in _leaves(layer))
                   for _, layer in named])
    row("shape", [f"{shape_text(layer.input_shape)} → {shape_text(layer.output_shape)}"
                  for _, layer in named])
    for index, label in enumerate(["all-ones weights", "own weights, constant input"]):
        cells = []
        for found in verdicts:
            if index >= len(found):
                cells.append("(all weights are 1: as above)")
                continue
            verdict = found[index][1]
            cells.append(f"**{verdict.verdict}**: values "
                         + ", ".join(_short(v) for v in verdict.interior_values)
                         + f"; imbalance {verdict.ratio_text()}; period {verdict.period_text()}")
        row(label, cells)
    return rows


def _short(value: object) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.4g}"  # type: ignore[arg-type]


def compare_report(named: Sequence[tuple[str, Layer]], *, name: str = "compare",
                   title: str | None = None, intro: str = "", figures: bool = True,
                   max_bytes: int | None = DEFAULT_MAX_BYTES) -> Report:
    """A side-by-side comparison of stacks: verdict table, overlap maps, per-stack details.

    Parameters
    ----------
    named : sequence of (str, Layer)
        A title and a stack (or layer) each; at least two.
    name, title, intro, figures
        As in :func:`stack_report`.
    max_bytes : int or None, optional
        A comparison estimated to need more bytes than this (every stack's maps are kept at
        once) is refused before anything is computed; None disables the check.

    Returns
    -------
    Report
    """
    if len(named) < 2:
        raise ConvMatrixError(f"`named` has {len(named)} stack(s); a comparison needs at "
                              f"least two")
    check_budget("the comparison of " + ", ".join(t for t, _ in named),
                 stack_report_nbytes([layer for _, layer in named], figures=figures), max_bytes)
    heading = title or "Comparison: " + " vs ".join(t for t, _ in named)
    verdicts = [_verdicts(layer) for _, layer in named]
    out = [f"# {heading}", ""]
    if intro:
        out += [intro, ""]
    out += ["## Side by side", "", *_summary_rows(named, verdicts), ""]
    files: dict[str, bytes] = {}
    if figures and figures_available():
        key = f"{name}-overlap.png"
        files[key] = overlap_maps_png([_channel0(layer, found[0][1].counts)
                                       for (_, layer), found in zip(named, verdicts,
                                                                    strict=True)],
                                      [t for t, _ in named])
        out += [f"![overlap maps side by side]({key})", "",
                "Weight paths per output pixel with all-ones weights (first output channel), "
                "side by side.", ""]
        actual = [(t, layer, found[1][1]) for (t, layer), found in zip(named, verdicts,
                                                                      strict=True)
                  if len(found) > 1]
        if actual:
            key = f"{name}-response.png"
            files[key] = overlap_maps_png([_channel0(layer, v.counts) for _, layer, v in actual],
                                          [t for t, _, _ in actual], label="response")
            out += [f"![constant-input responses side by side]({key})", "",
                    "The response of each stack's own weights to a constant input (first "
                    "output channel).", ""]
    else:
        out += [_NO_FIGURES, ""]
    for (stack_title, layer), found in zip(named, verdicts, strict=True):
        out += [f"## {stack_title}", "", layers_table(layer), ""]
        for what, verdict in found:
            out += [f"### Overlap: {what}", "", verdict.summary_markdown(), ""]
    out += verification_section([layer for _, layer in named])
    return Report(name, heading, heading, "\n".join(out).rstrip("\n") + "\n", files)
