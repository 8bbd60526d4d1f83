"""Derivation reports: a layer's definition, matrix, transpose, outputs, overlap and proof.

Everything here is pure: reports come back as Markdown text plus PNG bytes keyed by file name,
and only the command line writes them to disk. The Markdown renders on GitHub (``$…$`` and
``$$…$$`` math) and is deterministic, so ``reports/`` regenerates byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.keras import from_keras, keras_output_shape
from convmatrix.build.budget import check_budget, report_nbytes
from convmatrix.build.sparse import DEFAULT_MAX_BYTES, spec_matrix
from convmatrix.build.weights import make_weight
from convmatrix.geometry.indices import stored_entries
from convmatrix.geometry.spec import ConvSpec
from convmatrix.layers.base import shape_text
from convmatrix.layers.channels_last import KerasConv
from convmatrix.layers.conv import Conv, ConvLayer, ConvTranspose
from convmatrix.reports.figures import figures_available, overlap_png, sparsity_png

if TYPE_CHECKING:
    from convmatrix.symbolic.explain import Explanation

__all__ = ["Report", "ReportLayer", "builtin_reports", "check_report_budget", "index_markdown",
           "keras_conv", "layer_report", "layer_title", "seed_report"]

FIGURE_MATRIX_MAX_NNZ = 200_000  # larger matrices are pictured by one channel pair's block

ReportLayer = ConvLayer | KerasConv
"""The layers a report explains: :class:`~convmatrix.Conv`, :class:`~convmatrix.ConvTranspose`
and Keras convolutions (:func:`~convmatrix.from_keras`)."""


@dataclass(frozen=True)
class Report:
    """A generated report: Markdown plus the figures it links to (PNG bytes by file name)."""

    name: str
    title: str
    summary: str
    markdown: str
    figures: dict[str, bytes] = field(default_factory=dict, repr=False)


_SUBSCRIPTS = ("Subscripts of `x` and `y` are the channel, then one index per spatial axis; a "
               "tensor with a single channel leaves its channel index out. `w` is indexed in "
               "the weight layout above (channel indices left out when both are 1).")


def keras_conv(serialized: dict[str, Any], kernel: Any, input_shape: Sequence[int]) -> KerasConv:
    """:func:`~convmatrix.from_keras` of one serialized Keras convolution layer."""
    layer = from_keras(serialized, kernel, input_shape)
    if not isinstance(layer, KerasConv):  # pragma: no cover - the class names are checked
        raise ConvMatrixError(f"{serialized.get('class_name')!r} is not a Keras convolution")
    return layer


def _core(layer: ReportLayer) -> ConvLayer:
    """The channels-first torch-semantics layer (a Keras layer's :attr:`KerasConv.torch`)."""
    return layer.torch if isinstance(layer, KerasConv) else layer


def _transposed(layer: ReportLayer) -> bool:
    return isinstance(_core(layer), ConvTranspose)


def _label(layer: ReportLayer) -> str:
    """``Conv2d``, ``ConvTranspose1d`` or ``Keras Conv2DTranspose``."""
    if isinstance(layer, KerasConv):
        return f"Keras {layer.class_name}"
    return layer._title()


def _geometry(layer: ReportLayer) -> str:
    """``kernel 3×3, stride 2, padding 1``: kernel and stride always, the rest when set."""
    core = _core(layer)
    parts = core._geometry_text()
    if not any(part.startswith("stride ") for part in parts):
        parts.insert(1, "stride 1")
    if isinstance(core, Conv) and core.padding_mode != "zeros":  # "reflect padding 2"
        parts = [f"{core.padding_mode} {part}" if part.startswith("padding ") else part
                 for part in parts if part != core.padding_mode]
    return ", ".join(parts)


def layer_title(layer: ReportLayer) -> str:
    """The heading of a layer's section: its kind, kernel and stride (and what else is set).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> layer_title(cm.ConvTranspose(np.ones((1, 1, 3, 3)), (1, 4, 4), stride=2))
    'ConvTranspose2d: kernel 3×3, stride 2'
    """
    return f"{_label(layer)}: {_geometry(layer)}"


def _conventions(layer: ReportLayer) -> str:
    core = _core(layer)
    if isinstance(layer, KerasConv):
        layout = "(*spatial, C)" if layer.data_format == "channels_last" else "(C, *spatial)"
        kernel = ("(*k, C_out, C_in)" if _transposed(layer) else
                  "(*k, C_in, depth_multiplier)" if "Depthwise" in layer.class_name else
                  "(*k, C_in/groups, C_out)")
        return (f"Keras `{layer.class_name}`, `data_format={layer.data_format!r}`: one sample "
                f"is `{layout}` = `{layer.input_shape}`, the kernel is `{kernel}`. convmatrix "
                f"derives in torch's channels-first terms (weight "
                f"`{shape_text(core.spec.weight_shape)}`); `cm.keras_matrix` returns the same "
                f"matrix re-indexed for Keras' flattening. Like every deep-learning framework it "
                f"computes a cross-correlation (no kernel flip). {_SUBSCRIPTS}")
    kind = "`conv_transposeNd`" if _transposed(layer) else "`convNd`"
    weight = "(C_in, C_out/groups, *k)" if _transposed(layer) else "(C_out, C_in/groups, *k)"
    return (f"torch {kind} semantics: one sample is `(C, *spatial)`, the weight is `{weight}` = "
            f"`{shape_text(core.weight.shape)}`, values {_weight_note(core.weight)}. "
            f"Cross-correlation (no kernel flip), as every deep-learning framework computes it. "
            f"{_SUBSCRIPTS}")


def _weight_note(weight: np.ndarray) -> str:
    flat = weight.ravel()
    if np.all(flat == 1):
        return "all ones"
    if np.array_equal(flat, np.arange(1, flat.size + 1)):
        return "1, 2, 3, … in C order (so every tap is recognisable)"
    return f"of dtype {weight.dtype}"


def _keras_prints(layer: KerasConv, x_keras: np.ndarray, label: str) -> str:
    """The lines the seed's Keras script printed, computed here as ``C @ x``."""
    y = (layer.matrix() @ x_keras.reshape(-1)).reshape(layer.output_shape)
    lines = [*label.splitlines(), f"input shape: {(1, *x_keras.shape)}",
             f"output shape: {(1, *layer.output_shape)}",
             f"input tensor: {np.squeeze(x_keras.astype(float)).tolist()}",
             f"output tensor: {np.around(np.squeeze(y.astype(float))).tolist()}"]
    return "```text\n" + "\n".join(lines) + "\n```"


def _matrix_figure(layer: ReportLayer, title: str) -> tuple[str, bytes]:
    core, transpose = _core(layer), _transposed(layer)
    name = "Cᵀ" if transpose else "C"
    spec = core.spec
    if spec.nnz_upper_bound() <= FIGURE_MATRIX_MAX_NNZ:
        matrix = core.matrix("csr")
        heading = f"Sparsity of {name} ({title})"
        caption = (f"Sparsity pattern of ${'C^T' if transpose else 'C'}$: rows are output "
                   f"pixels, columns input pixels (channels first, C order).")
    else:  # one channel pair's block: the spatial pattern every block repeats
        one = spec_matrix(_one_pair(spec), np.ones((1, 1, *spec.kernel_size)),
                          direction="adjoint" if transpose else "forward", format="csr")
        matrix = sp.csr_array(one)
        heading = f"One channel pair's block of {name} ({title})"
        caption = (f"The full matrix has {stored_entries(spec):,} stored entries; pictured is one "
                   f"(output channel, "
                   f"input channel) block, the spatial pattern every block repeats.")
    png = sparsity_png(matrix, heading, xlabel="column: input pixel",
                       ylabel="row: output pixel")
    return caption, png


def _one_pair(spec: ConvSpec) -> ConvSpec:
    return replace(spec, in_channels=1, out_channels=1, groups=1)


def _explanation_markdown(layer: ReportLayer, title: str,
                          x: np.ndarray | None) -> tuple[Explanation, str]:
    from convmatrix.symbolic.explain import explain_spec

    core = _core(layer)
    explanation = explain_spec(core.spec, direction=core.conv_view().direction,
                               title=_label(layer),
                               weight=None if x is None else core.weight, x=x)
    # the section heading names the geometry; the line under it keeps the short kind
    _, rest = explanation.to_markdown(level=2).split("\n", 1)
    return explanation, f"## {title}\n{rest}"


def _section(layer: ReportLayer, *, key: str, x: np.ndarray | None = None,
             x_keras: np.ndarray | None = None, keras_label: str = "",
             figures: bool = True) -> tuple[str, dict[str, bytes]]:
    title = layer_title(layer)
    transpose = _transposed(layer)
    explanation, markdown = _explanation_markdown(layer, title, x)
    parts = [markdown, "", "### Conventions", "", _conventions(layer)]
    if x_keras is not None and isinstance(layer, KerasConv):
        parts += ["", "### What Keras prints, computed as a matrix product", "",
                  "The seed's script printed these lines; here each output is the matrix row "
                  "times the flattened input:", "", _keras_prints(layer, x_keras, keras_label)]
    files: dict[str, bytes] = {}
    parts += ["", "### Figures", ""]
    if figures and figures_available():
        caption, png = _matrix_figure(layer, title)
        files[f"{key}-matrix.png"] = png
        kind = ("Overlap counts (terms per output pixel)" if transpose
                else "Reads per input pixel (overlap of the transpose)")
        files[f"{key}-overlap.png"] = overlap_png(
            explanation.overlap, f"{kind}, {title}",
            pixels="output" if transpose else "input")
        parts += [f"![sparsity pattern]({key}-matrix.png)", "", caption, "",
                  f"![overlap heat map]({key}-overlap.png)", "",
                  f"{kind}: the heat map of the table above."]
    else:
        parts += ["_Figures skipped: matplotlib is not installed (`pip install "
                  "\"convmatrix[figures]\"`)._"]
    result = layer.verify(seed=0)
    parts += ["", "### Numerical verification", "",
              f"{result.layer}, random data (seed 0) in the weight's dtype; the reference is the "
              "dense loop implementation in `convmatrix.reference`, which shares no code with "
              "the matrix builder.", "", result.to_markdown(), "",
              f"**{'All checks passed.' if result.passed else 'A CHECK FAILED.'}**"]
    return "\n".join(parts), files


def _channels_first(layer: ReportLayer, x: Any) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(layer, KerasConv):
        return layer._channels_first(np.asarray(x))
    return np.asarray(x)


def layer_report(layer: ReportLayer, *, name: str = "report", title: str | None = None,
                 intro: str = "", x: Any = None, figures: bool = True,
                 max_bytes: int | None = DEFAULT_MAX_BYTES) -> Report:
    """The derivation report of one layer.

    Parameters
    ----------
    layer : Conv, ConvTranspose or KerasConv
        The layer object.
    name : str
        File stem of the report and prefix of its figures.
    title, intro : str
        Heading (default: the layer's kind, shapes, kernel and stride) and an opening
        paragraph.
    x : array_like, optional
        An input sample in the layer's own layout, substituted into the shown outputs.
    figures : bool
        Make the PNG figures (needs matplotlib).
    max_bytes : int or None
        Refuse a layer whose report is estimated (:func:`convmatrix.build.budget.report_nbytes`) to
        need more memory than this, before computing anything; None disables the guard.

    Returns
    -------
    Report

    Raises
    ------
    ConvMatrixError
        Over ``max_bytes``.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> built = layer_report(cm.Conv(np.ones((1, 1, 2)), (1, 3)), figures=False)
    >>> built.title
    'Conv1d 1×3 → 1×2: kernel 2, stride 1'
    """
    check_report_budget(layer, max_bytes, figures=figures)
    heading = title or (f"{_label(layer)} {shape_text(layer.input_shape)} → "
                        f"{shape_text(layer.output_shape)}: {_geometry(layer)}")
    body, files = _section(layer, key=name, x=_channels_first(layer, x), figures=figures)
    markdown = "\n".join([f"# {heading}", "", intro, "", body, ""]) if intro else "\n".join(
        [f"# {heading}", "", body, ""])
    return Report(name, heading, intro.split(". ")[0] if intro else heading, markdown, files)


def check_report_budget(layer: ReportLayer, max_bytes: int | None, *, figures: bool = True,
                        flag: str = "max_bytes") -> None:
    """Refuse (one :class:`~convmatrix.ConvMatrixError`) a report that needs over ``max_bytes``."""
    core = _core(layer)
    nbytes = report_nbytes(core.spec, core.dtype, figures=figures,
                           direction="adjoint" if _transposed(layer) else "forward")
    check_budget(f"the report of {_label(layer)} {shape_text(layer.input_shape)} → "
                 f"{shape_text(layer.output_shape)}", nbytes, max_bytes, flag=flag)


def _multi_report(name: str, title: str, summary: str, intro: str,
                  sections: list[tuple[ReportLayer, np.ndarray | None]],
                  figures: bool = True) -> Report:
    parts, files = [f"# {title}", "", intro], {}
    for number, (layer, x) in enumerate(sections, start=1):
        body, section_files = _section(layer, key=f"{name}-{number}", x=x, figures=figures)
        parts += ["", body]
        files.update(section_files)
    return Report(name, title, summary, "\n".join(parts) + "\n", files)


# --------------------------------------------------------------------------------------------
# the built-in examples


def _keras(class_name: str, **config: Any) -> dict[str, Any]:
    return {"class_name": class_name,
            "config": {"filters": 1, "kernel_size": [2, 2], "strides": [1, 1],
                       "padding": "valid", "data_format": "channels_last",
                       "dilation_rate": [1, 1], **config}}


def seed_report(figures: bool = True) -> Report:
    """The seed example: Keras ``Conv2D(1, 2)`` and ``Conv2DTranspose(1, 2)``, all ones."""
    conv_cfg = _keras("Conv2D", groups=1)
    transpose_cfg = _keras("Conv2DTranspose", output_padding=None)
    kernel = np.ones((2, 2, 1, 1), dtype=np.int64)
    conv = keras_conv(conv_cfg, kernel, (3, 3, 1))
    deconv = keras_conv(transpose_cfg, kernel, (2, 2, 1))
    snippet_conv = keras_output_shape(conv_cfg, (3, 3, 1))
    snippet_deconv = keras_output_shape(transpose_cfg, (3, 3, 1))
    x3, x2 = np.ones((3, 3, 1), dtype=np.int64), np.ones((2, 2, 1), dtype=np.int64)
    intro = "\n".join([
        "The example this project started from compares Keras' `Conv2D` (it may shrink its "
        "input) with `Conv2DTranspose` (it enlarges it), and asks *why* a 2×2 all-ones input "
        "through a 2×2 all-ones transposed kernel gives `[[1, 2, 1], [2, 4, 2], [1, 2, 1]]` "
        "while a 3×3 all-ones input through the convolution gives `[[4, 4], [4, 4]]`. Below, "
        "every number is computed by convmatrix (`cm.keras_matrix`, `C @ x`), not pasted.",
        "",
        "## The first snippet: shapes",
        "",
        "`x = tf.random.uniform((1, 3, 3, 1))` through `Conv2D(1, 2)` and "
        "`Conv2DTranspose(1, 2)`:",
        "",
        "```text",
        "print(conv2d.shape)",
        f"# {(1, *snippet_conv)}",
        "print(conv2dTranspose.shape)",
        f"# {(1, *snippet_deconv)}",
        "```",
        "",
        "The convolution slides a 2-wide window over 3 pixels: $o = n - k + 1 = 3 - 2 + 1 = 2$ "
        "per axis. The transposed convolution (Keras `padding=\"valid\"`, "
        "`output_padding=None`) places a 2-wide kernel at each of 3 pixels: "
        "$o' = n\\,s + \\max(k - s, 0) = 3 + 1 = 4$ per axis.",
        "",
        "## What the seed printed, recomputed",
        "",
        _keras_prints(conv, x3, "Convolution\n---------"),
        "",
        _keras_prints(deconv, x2, "De-Convolution\n------------"),
        "",
        "**Why.** Each output of the convolution is one row of $C$ times the input: four ones "
        "under the window, so 4 everywhere. Each output of the transposed convolution is one "
        "row of $C^T$: it sums the kernel taps that *land* on that pixel — one at a corner, "
        "two on an edge, four in the centre. That count is the overlap map, and the "
        "transposed convolution's matrix is exactly the transpose of the convolution's "
        "(compare the two matrices below).",
    ])
    return _multi_report(
        "seed", "The seed example: Keras Conv2D and Conv2DTranspose as matrices",
        "Keras Conv2D 3×3→2×2 gives [[4, 4], [4, 4]]; Conv2DTranspose 2×2→3×3 gives "
        "[[1, 2, 1], [2, 4, 2], [1, 2, 1]]", intro,
        [(conv, np.moveaxis(x3, -1, 0)), (deconv, np.moveaxis(x2, -1, 0))], figures)


def builtin_reports(figures: bool = True) -> list[Report]:
    """Every report kept in ``reports/`` (regenerated by ``convmatrix reports``)."""
    reports = [seed_report(figures)]
    k3 = ConvTranspose(make_weight((1, 1, 3, 3), "ones"), (1, 4, 4), stride=2)
    k4 = ConvTranspose(make_weight((1, 1, 4, 4), "ones"), (1, 4, 4), stride=2, padding=1)
    reports.append(_multi_report(
        "overlap-k3-vs-k4-stride2", "Uneven vs even overlap: kernel 3 vs kernel 4 at stride 2",
        "k=3, s=2 overlaps unevenly (checkerboard, counts 1, 2, 4); k=4, s=2 evenly",
        "A transposed convolution with stride 2 places one copy of the kernel every second "
        "output pixel. With a 3-wide kernel the copies overlap on every other pixel only, so "
        "interior pixels receive alternately 1 and 2 terms per axis — 1, 2 or 4 in 2-D: the "
        "checkerboard artifacts of Odena, Dumoulin & Olah (2016). With a 4-wide kernel every "
        "interior pixel receives exactly 2 per axis. Both layers have all-ones weights and a "
        "4×4 input, so the numbers are the overlap counts themselves.",
        [(k3, np.ones((1, 4, 4), dtype=np.int64)), (k4, np.ones((1, 4, 4), dtype=np.int64))],
        figures))
    grouped = Conv(make_weight((4, 1, 3, 3), "arange"), (2, 6, 6), padding=1, dilation=2,
                   groups=2)
    reflect = Conv(make_weight((1, 1, 3), "arange"), (1, 4), padding=2, padding_mode="reflect")
    reports.append(_multi_report(
        "padding-dilation-groups", "Padding, dilation, groups and padding modes",
        "groups split the matrix into blocks; dilation spreads the taps; reflect padding "
        "merges taps",
        "Two layers whose matrices show the less common parts of the geometry. The grouped, "
        "dilated convolution's matrix is block-diagonal by groups (each output channel reads "
        "only its group's input channels) and each block's rows have taps two pixels apart. "
        "The 1-D convolution with reflect padding is still an exact linear map: near the "
        "border two taps read the same input pixel, so their weights add in one entry.",
        [(grouped, None), (reflect, np.arange(1, 5, dtype=np.int64).reshape(1, 4))], figures))
    conv1d = Conv(make_weight((2, 1, 3), "arange"), (1, 8), stride=2, padding=1)
    conv3d = ConvTranspose(make_weight((1, 1, 2, 2, 2), "ones"), (1, 2, 2, 2), stride=2)
    reports.append(_multi_report(
        "one-and-three-dimensional", "A 1-D convolution and a 3-D transposed convolution",
        "the same index arithmetic in 1-D and 3-D; kernel 2, stride 2 tiles without overlap",
        "The index table is N-dimensional: per axis the same formula, combined by the outer "
        "product. The 3-D transposed convolution with kernel 2 and stride 2 tiles its output "
        "with non-overlapping copies of the kernel, so every output pixel receives exactly "
        "one term.", [(conv1d, np.arange(1, 9, dtype=np.int64).reshape(1, 8)), (conv3d, None)],
        figures))
    from convmatrix.reports.stack import builtin_stack_reports

    reports += builtin_stack_reports(figures)
    return reports


def index_markdown(reports: Sequence[Report]) -> str:
    """``reports/README.md``: what each report shows and how to regenerate them."""
    lines = ["# Derivation reports", "",
             "Generated by convmatrix; do not edit by hand. Regenerate every report (Markdown "
             "byte for byte, figures anew) with:", "", "```bash",
             "convmatrix reports --out reports", "```", "",
             "| report | what it shows |", "|---|---|"]
    lines += [f"| [{r.title}]({r.name}.md) | {r.summary} |" for r in reports]
    lines += ["", "Each report walks from the layer's definition to its shapes, its matrix "
              "($C$ or $C^T$, in weight symbols when small), every output as a sum of "
              "$w \\cdot x$ products, the overlap counts with the checkerboard verdict, "
              "figures of the sparsity pattern and the overlap map, and the numerical "
              "verification against the independent dense reference.", ""]
    return "\n".join(lines)
