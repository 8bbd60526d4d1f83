"""The layers' presenter: what :meth:`Layer.explain` and :meth:`Layer.report` delegate to.

``import convmatrix`` registers this module with :func:`convmatrix.layers.base.set_presenter`
(imported on the first call), so presentation stays above the layers: a layer never imports
:mod:`convmatrix.reports` itself.
"""

from __future__ import annotations

from typing import Any

from convmatrix.layers.base import Layer
from convmatrix.layers.channels_last import KerasConv
from convmatrix.layers.conv import ConvLayer
from convmatrix.layers.graph import Graph
from convmatrix.layers.linearization import Linearization
from convmatrix.layers.sequential import Sequential
from convmatrix.reports.explain import explain_matrix, explain_stack
from convmatrix.reports.graph import explain_graph
from convmatrix.reports.layer import layer_report
from convmatrix.reports.linearization import explain_linearization
from convmatrix.reports.stack import stack_report

__all__ = ["explain", "report"]


def explain(layer: Layer, x: Any = None) -> Any:
    """The explanation of a layer kind without its own ``explain()``.

    A layer that is a convolution seen another way (:meth:`~convmatrix.Layer.conv_view`, e.g.
    the adjoint of a reflect-padded convolution) gets the symbolic derivation; a stack its
    factors and product (:func:`~convmatrix.reports.explain.explain_stack`); a network
    linearised at a point what its Jacobian is and where it holds
    (:func:`~convmatrix.reports.linearization.explain_linearization`); every other kind
    the explanation read from its matrix (:func:`~convmatrix.reports.explain.explain_matrix`).
    """
    if isinstance(layer, Linearization):
        return explain_linearization(layer, x)
    view = layer.conv_view()
    if view is not None and view.layout == "channels_first":
        from convmatrix.symbolic.explain import explain_spec

        return explain_spec(view.spec, direction=view.direction, title=view.title,
                            weight=None if x is None else view.weight, x=x)
    if isinstance(layer, Graph) and x is None:
        return explain_graph(layer)
    if isinstance(layer, Sequential):
        if x is not None:
            return explain_matrix(layer, x)
        return explain_stack(layer)
    return explain_matrix(layer, x)


def report(layer: Layer, x: Any = None) -> str:
    """A Markdown report of a layer (text only).

    Convolutions (and Keras convolutions) get their derivation report, stacks the stack report
    (layers, overlap verdicts with laws, transpose vs inverse, verification), every other kind
    its summary and explanation.
    """
    if isinstance(layer, ConvLayer | KerasConv):
        return layer_report(layer, x=x, figures=False).markdown
    if isinstance(layer, Sequential) and x is None:
        return stack_report(layer, figures=False).markdown
    explanation = layer.explain(x)
    table = layer.summary_markdown().split("\n", 2)[2]  # the repr is the heading
    body = explanation.to_markdown(level=2).split("\n", 1)[1]
    return "\n".join([f"# {layer!r}", "", table, "", "## Explanation", body])
