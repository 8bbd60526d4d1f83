"""Derivation reports: a layer's definition, matrix, transpose, outputs, overlap and proof.

Everything here is pure: reports come back as Markdown text plus PNG bytes keyed by file name,
and only the command line writes them to disk. The Markdown renders on GitHub (``$…$`` and
``$$…$$`` math) and is deterministic, so ``reports/`` regenerates byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.keras import from_keras
from convmatrix.builder.budget import check_budget, report_nbytes
from convmatrix.builder.sparse import DEFAULT_MAX_BYTES, spec_matrix
from convmatrix.geometry.indices import stored_entries
from convmatrix.geometry.shapes import shape_text
from convmatrix.geometry.spec import ConvSpec
from convmatrix.layers.channels_last import KerasConv
from convmatrix.layers.conv import ConvLayer
from convmatrix.reports.document import Report
from convmatrix.reports.figures import figures_available, overlap_png, sparsity_png

if TYPE_CHECKING:
    from convmatrix.geometry.view import ConvView
    from convmatrix.symbolic.explain import Explanation

__all__ = ["FIGURE_MATRIX_MAX_NNZ", "ReportLayer", "check_report_budget", "keras_conv",
           "keras_prints", "layer_report", "layer_title", "sections_report"]

FIGURE_MATRIX_MAX_NNZ = 200_000  # larger matrices are pictured by one channel pair's block

ReportLayer = ConvLayer | KerasConv
"""The layers a report explains: :class:`~convmatrix.Conv`, :class:`~convmatrix.ConvTranspose`
and Keras convolutions (:func:`~convmatrix.from_keras`)."""


_SUBSCRIPTS = ("Subscripts of `x` and `y` are the channel, then one index per spatial axis; a "
               "tensor with a single channel leaves its channel index out. `w` is indexed in "
               "the weight layout above (channel indices left out when both are 1).")


def keras_conv(serialized: dict[str, Any], kernel: Any, input_shape: Sequence[int]) -> KerasConv:
    """:func:`~convmatrix.from_keras` of one serialized Keras convolution layer."""
    layer = from_keras(serialized, kernel, input_shape)
    if not isinstance(layer, KerasConv):  # pragma: no cover - the class names are checked
        raise ConvMatrixError(f"{serialized.get('class_name')!r} is not a Keras convolution")
    return layer


def _view(layer: ReportLayer) -> ConvView:
    """The convolution behind the layer (its :meth:`~convmatrix.Layer.conv_view` hook)."""
    view = layer.conv_view()
    if view is None:
        raise ConvMatrixError(f"{layer!r} is no convolution: its derivation report needs one "
                              f"(`layer.explain()` explains any layer kind)")
    return view


def _keras(layer: ReportLayer) -> KerasConv | None:
    """The layer if it is a Keras one (its report names the Keras class and layouts)."""
    return layer if isinstance(layer, KerasConv) else None


def _core(layer: ReportLayer) -> ConvLayer:
    """The channels-first torch-semantics layer (a Keras layer's :attr:`KerasConv.torch`)."""
    keras = _keras(layer)
    return layer if keras is None else keras.torch  # type: ignore[return-value]


def _transposed(layer: ReportLayer) -> bool:
    return _view(layer).direction == "adjoint"


def _label(layer: ReportLayer) -> str:
    """``Conv2d``, ``ConvTranspose1d`` or ``Keras Conv2DTranspose``."""
    title = _view(layer).title
    return title if _keras(layer) is None else f"Keras {title}"


def _geometry(layer: ReportLayer) -> str:
    """``kernel 3×3, stride 2, padding 1``: kernel and stride always, the rest when set."""
    core = _core(layer)
    parts = core._geometry_text()
    if not any(part.startswith("stride ") for part in parts):
        parts.insert(1, "stride 1")
    mode = _view(layer).spec.padding_mode
    if mode != "zeros":  # "reflect padding 2"
        parts = [f"{mode} {part}" if part.startswith("padding ") else part
                 for part in parts if part != mode]
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
    keras = _keras(layer)
    if keras is not None:
        layout = "(*spatial, C)" if keras.data_format == "channels_last" else "(C, *spatial)"
        kernel = ("(*k, C_out, C_in)" if _transposed(layer) else
                  "(*k, C_in, depth_multiplier)" if "Depthwise" in keras.class_name else
                  "(*k, C_in/groups, C_out)")
        return (f"Keras `{keras.class_name}`, `data_format={keras.data_format!r}`: one sample "
                f"is `{layout}` = `{keras.input_shape}`, the kernel is `{kernel}`. convmatrix "
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


def keras_prints(layer: KerasConv, x_keras: np.ndarray, label: str) -> str:
    """The lines the seed's Keras script printed, computed here as ``C @ x`` (a text block)."""
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

    view = _view(layer)
    explanation = explain_spec(view.spec, direction=view.direction, title=_label(layer),
                               weight=None if x is None else view.weight, x=x)
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
    keras = _keras(layer)
    if x_keras is not None and keras is not None:
        parts += ["", "### What Keras prints, computed as a matrix product", "",
                  "The seed's script printed these lines; here each output is the matrix row "
                  "times the flattened input:", "", keras_prints(keras, x_keras, keras_label)]
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
    sample = np.asarray(x)
    if _keras(layer) is None:
        return sample
    if sample.shape != layer.input_shape:
        raise ConvMatrixError(f"`x` has shape {sample.shape}; the layer takes "
                              f"{layer.input_shape}")
    return np.moveaxis(sample, -1, 0) if _view(layer).layout == "channels_last" else sample


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
        Refuse a layer whose report is estimated
        (:func:`convmatrix.builder.budget.report_nbytes`) to need more memory than this, before
        computing anything; None disables the guard.

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
    nbytes = report_nbytes(_view(layer).spec, layer.dtype, figures=figures,
                           direction=_view(layer).direction)
    check_budget(f"the report of {_label(layer)} {shape_text(layer.input_shape)} → "
                 f"{shape_text(layer.output_shape)}", nbytes, max_bytes, flag=flag)


def sections_report(name: str, title: str, summary: str, intro: str,
                    sections: list[tuple[ReportLayer, np.ndarray | None]],
                    figures: bool = True) -> Report:
    """A report of several layers: an introduction, then one derivation section per layer.

    ``sections`` pairs each layer with an input sample (channels first) or None.
    """
    parts, files = [f"# {title}", "", intro], {}
    for number, (layer, x) in enumerate(sections, start=1):
        body, section_files = _section(layer, key=f"{name}-{number}", x=x, figures=figures)
        parts += ["", body]
        files.update(section_files)
    return Report(name, title, summary, "\n".join(parts) + "\n", files)
