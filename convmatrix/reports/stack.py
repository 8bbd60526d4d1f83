"""Reports of stacks: one stack's overlap and inverse, side-by-side comparisons, and two built-ins.

Pure like :mod:`convmatrix.reports.layer`: Markdown plus PNG bytes, deterministic (fixed seeds, no
timing, numbers formatted to fixed digits), so ``reports/`` regenerates byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from convmatrix._errors import ConvMatrixError
from convmatrix.analysis.checkerboard import Checkerboard, checkerboard, spatial_axes
from convmatrix.analysis.inverse import InverseAnalysis, transpose_vs_inverse
from convmatrix.layers.base import Layer, shape_text
from convmatrix.layers.conv import ConvLayer
from convmatrix.layers.sequential import Sequential
from convmatrix.reports.figures import figures_available, overlap_maps_png
from convmatrix.reports.layer import Report

__all__ = ["builtin_stack_reports", "checkerboard_generator_report", "compare_report",
           "inverse_report", "layers_table", "stack_report", "verification_section"]

INVERSE_MAX_ENTRIES = 250_000  # stacks up to this many matrix entries get the inverse section
_NO_FIGURES = ("_Figures skipped: matplotlib is not installed (`pip install "
               "\"convmatrix[figures]\"`)._")


def _leaves(layer: Layer) -> list[Layer]:
    if isinstance(layer, Sequential):
        return [leaf for item in layer.layers for leaf in _leaves(item)]
    return [layer]


def _all_ones(layer: Layer) -> bool:
    """Every learnable weight of the stack is 1 (then the actual response is the path count)."""
    return all(not isinstance(leaf, ConvLayer) or bool(np.all(leaf.weight == 1))
               for leaf in _leaves(layer))


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


def _matrix_line(layer: Layer) -> str:
    rows, columns = layer.matrix_shape
    try:
        nnz = layer.matrix().nnz
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
    convs: list[ConvLayer] = []
    for layer in layers:
        for leaf in _leaves(layer):
            if isinstance(leaf, ConvLayer) and all(leaf is not seen for seen in convs):
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
                 intro: str = "", figures: bool = True) -> Report:
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

    Returns
    -------
    Report
    """
    heading = title or f"{layer!r}"
    out = [f"# {heading}", ""]
    if intro:
        out += [intro, ""]
    out += ["## The layers", "", layers_table(layer), "", _matrix_line(layer), ""]
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
            period = "×".join("?" if p is None else str(p) for p in verdict.period)
            cells.append(f"**{verdict.verdict}**: values "
                         + ", ".join(_short(v) for v in verdict.interior_values)
                         + f"; imbalance {verdict.ratio_text()}; period {period}")
        row(label, cells)
    return rows


def _short(value: object) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.4g}"  # type: ignore[arg-type]


def compare_report(named: Sequence[tuple[str, Layer]], *, name: str = "compare",
                   title: str | None = None, intro: str = "", figures: bool = True) -> Report:
    """A side-by-side comparison of stacks: verdict table, overlap maps, per-stack details.

    Parameters
    ----------
    named : sequence of (str, Layer)
        A title and a stack (or layer) each; at least two.
    name, title, intro, figures
        As in :func:`stack_report`.

    Returns
    -------
    Report
    """
    if len(named) < 2:
        raise ConvMatrixError(f"`named` has {len(named)} stack(s); a comparison needs at "
                              f"least two")
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


# --------------------------------------------------------------------------------------------
# the built-in reports


def _k_s2_stack(kernel: int, padding: int, output_padding: int, size: int, layers: int
                ) -> Sequential:
    from convmatrix.layers.conv import ConvTranspose

    stack: list[Layer] = []
    shape: tuple[int, ...] = (1, size, size)
    for _ in range(layers):
        layer = ConvTranspose(np.ones((1, 1, kernel, kernel), dtype=np.int64), shape, stride=2,
                              padding=padding, output_padding=output_padding)
        stack.append(layer)
        shape = layer.output_shape
    return Sequential(stack)


_SIZE = 6  # the generators' input size (output 4× larger): room for two periods inside


def _generator_cases() -> list[tuple[str, Layer]]:
    """The four generators of the checkerboard report (and the sub-pixel one, randomised)."""
    import convmatrix as cm

    k3 = _k_s2_stack(3, 1, 1, _SIZE, 2)
    k4 = _k_s2_stack(4, 1, 0, _SIZE, 2)
    resize: list[Layer] = []
    shape: tuple[int, ...] = (1, _SIZE, _SIZE)
    for _ in range(2):
        up = cm.Upsample(shape, scale_factor=2, mode="nearest")
        conv = cm.Conv(np.ones((1, 1, 3, 3), dtype=np.int64), up.output_shape, padding=1)
        resize += [up, conv]
        shape = conv.output_shape

    def subpixel(fill: str) -> Sequential:
        from convmatrix.reports.stackfile import kernel_values

        layers: list[Layer] = []
        current: tuple[int, ...] = (1, _SIZE, _SIZE)
        for round_ in range(2):
            weight = kernel_values((4, 1, 3, 3), fill, seed=7 + round_, icnr=2)
            conv = cm.Conv(weight, current, padding=1)
            shuffle = cm.PixelShuffle(conv.output_shape, 2)
            layers += [conv, shuffle]
            current = shuffle.output_shape
        return Sequential(layers)

    return [("two k3/s2 transposed convolutions", k3),
            ("two k4/s2 transposed convolutions", k4),
            ("resize-convolution: nearest ×2 + conv k3, twice", Sequential(resize)),
            ("sub-pixel: conv → pixel shuffle ×2, twice, ICNR init", subpixel("icnr")),
            ("sub-pixel: conv → pixel shuffle ×2, twice, random init", subpixel("uniform"))]


def checkerboard_generator_report(figures: bool = True) -> Report:
    """``reports/checkerboard-in-a-generator.md``: four upsampling generators compared."""
    cases = _generator_cases()
    k3 = checkerboard(cases[0][1])
    intro = (
        "Odena, Dumoulin & Olah (Distill, 2016) traced the checkerboard artifacts of image "
        "generators to the uneven overlap of transposed convolutions, and showed that it "
        f"compounds through a stack. Here each generator upsamples a {_SIZE}×{_SIZE} input to "
        f"{4 * _SIZE}×{4 * _SIZE} in two steps, and every number is counted by convmatrix "
        "(`layer.overlap_counts()`, "
        "`layer.checkerboard()`), not pasted. The count is the number of weight paths landing "
        "on each output pixel when every learnable weight is 1; fixed-weight layers (nearest "
        "upsampling, pixel shuffle) count their structural paths. Borders always receive "
        "less, so the verdicts read the *interior* (pixels no border effect reaches).\n\n"
        f"Two k3/s2 transposed convolutions: a single one gives interior counts 1, 2, 4; two "
        f"give {', '.join(map(str, k3.interior_values))} — a {k3.ratio_text()}× imbalance "
        "with period "
        + "×".join(str(p) for p in k3.period) + ". Two k4/s2 layers stay even (the kernel "
        "size is a multiple of the stride at every step), and so does resize-convolution "
        "(nearest upsampling, then a stride-1 convolution). Sub-pixel convolution (a "
        "convolution to r² channels, then a pixel shuffle) has an even path structure, but "
        "what a flat image turns into depends on the weights: with ICNR initialisation "
        "(Aitken et al. 2017: each of the r² sub-pixel kernels a copy of one) the response "
        "to a constant input is even at initialisation; with independent random kernels it "
        "is not. That last pair is judged with `layer.checkerboard(weights=\"actual\")`, the "
        "stack's own weights applied to a constant input.\n\n"
        "Where every layer of a stack is a per-axis step (transposed convolutions, stride-1 "
        "convolutions, nearest upsampling), the interior counts follow a closed form per axis, "
        "derived with SymPy: the stack sends input pixel $i$ to $S i + e - P$ for every "
        "exponent $e$ of $H(z) = \\prod_l \\sum_{t<k_l} z^{t d_l S_l}$, with $S_l$ the product "
        "of the strides after layer $l$, so the count at output $j$ is the sum of the "
        "coefficients of $H$ at exponents $e \\equiv j + P \\pmod S$: the coefficients of "
        "$R(z) = H(z) \\bmod (z^S - 1)$. Each verdict below states that law and checks it "
        "against the count.")
    report = compare_report(cases, name="checkerboard-in-a-generator",
                            title="Checkerboard artifacts in a generator: four ways to upsample",
                            intro=intro, figures=figures)
    summary = (f"two k3/s2 transposed convolutions: interior counts "
               f"{', '.join(map(str, k3.interior_values))} ({k3.ratio_text()}×); k4/s2, "
               f"resize-convolution and ICNR sub-pixel convolution are even")
    return replace(report, summary=summary)


def inverse_report(figures: bool = True) -> Report:
    """``reports/transpose-is-not-inverse.md``: ``CᵀC``, rank, null space, least squares."""
    import convmatrix as cm

    del figures  # text only: every number is in the tables
    seed = cm.Conv(np.ones((1, 1, 2, 2), dtype=np.int64), (1, 3, 3))
    same = cm.Conv(np.ones((1, 1, 3, 3), dtype=np.int64), (1, 4, 4), padding=1)
    up = cm.ConvTranspose(np.ones((1, 1, 3, 3), dtype=np.int64), (1, 3, 3), stride=2)
    analyses: list[tuple[str, InverseAnalysis]] = [
        ("The seed's Conv2D(1, 2) on a 3×3 input", seed.transpose_vs_inverse()),
        ("The seed's Conv2DTranspose(1, 2): its transpose", seed.T.transpose_vs_inverse()),
        ("A square 'same' convolution (3×3 kernel of ones, padding 1, 4×4)",
         same.transpose_vs_inverse()),
        ("A k3/s2 transposed convolution, 3×3 → 7×7", up.transpose_vs_inverse()),
    ]
    first = analyses[0][1]
    intro = (
        "The seed calls the transposed layer \"De-Convolution\" and asks why a 2×2 input of ones "
        "comes back as `1-2-1 / 2-4-2 / 1-2-1` instead of being undone. A layer is a matrix "
        "$C$; the transposed layer is $C^T$, and $C^T C$ is not the identity: its diagonal sums "
        "the squared weights that read each input pixel (for all-ones weights, the number of "
        "outputs reading it), and its off-diagonal entries mix neighbouring pixels. Worse, "
        f"the seed's convolution is {first.rows}×{first.columns} with rank {first.rank}: "
        f"{first.lost_dimensions} dimensions of the input are lost, so *no* matrix can undo "
        "it. The least-squares inverse $C^+ y$ (LSQR on the sparse matrix, which from "
        "$\\hat x = 0$ converges to the minimum-norm solution) recovers $x$ exactly when $C$ "
        "has full column rank and otherwise returns only the part of $x$ that $C$ sees. Every "
        "number below is computed by `layer.transpose_vs_inverse()` when this report is "
        "generated; ranks come from the singular values, exact values from SymPy's rational "
        "arithmetic.")
    out = ["# Why the transpose is not the inverse", "", intro, ""]
    rows = ["| layer | matrix | rank | input dimensions lost | least squares recovers x |",
            "|---|---|---|---|---|"]
    for title, analysis in analyses:
        rows.append(f"| {title} | {analysis.rows}×{analysis.columns} | {analysis.rank} | "
                    f"{analysis.lost_dimensions} | {'yes' if analysis.recovered else 'no'} |")
    out += ["## Summary", "", *rows, ""]
    for title, analysis in analyses:
        body = analysis.to_markdown(level=3).split("\n", 2)[2]
        out += [f"## {title}", "", f"`{analysis.layer!r}`", "", body, ""]
    out += verification_section([analysis.layer for _, analysis in analyses])
    heading = "Why the transpose is not the inverse"
    summary = (f"CᵀC ≠ I; the seed's Conv2D loses {first.lost_dimensions} of "
               f"{first.columns} input dimensions; least squares recovers x only at full "
               f"column rank")
    return Report("transpose-is-not-inverse", heading, summary,
                  "\n".join(out).rstrip("\n") + "\n", {})


def builtin_stack_reports(figures: bool = True) -> list[Report]:
    """The built-in reports of this module (appended to ``convmatrix reports``)."""
    return [inverse_report(figures), checkerboard_generator_report(figures)]
