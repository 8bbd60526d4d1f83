"""The explanation of a network linearised at a point: what the Jacobian is, and where it holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convmatrix.geometry.shapes import shape_text
from convmatrix.layers.linearization import Linearization, Site

__all__ = ["LinearizationExplanation", "explain_linearization"]


@dataclass(frozen=True, eq=False)
class LinearizationExplanation:
    """A :class:`~convmatrix.layers.linearization.Linearization` explained.

    Attributes
    ----------
    layer : Linearization
    residual : float
        ``max|J x + offset − f(x)| / max(|f(x)|, 1)`` (rounding only).
    validity : str
        Where the affine map is the network: the whole linear region around ``x``, its
        boundary (kinks), or first order only (smooth non-linearities).
    """

    layer: Linearization
    residual: float
    validity: str

    @property
    def sites(self) -> tuple[Site, ...]:
        """The non-linearities, in order."""
        return self.layer.sites

    def _opening(self) -> str:
        lin = self.layer
        rows, columns = lin.matrix_shape
        return (f"The exact Jacobian J of the {lin.framework} model at the point x (one sample "
                f"{shape_text(lin.input_shape)} → {shape_text(lin.output_shape)}), as a layer: "
                f"its matrix is J ({rows}×{columns}), its offset f(x) − J x, so J x + offset "
                f"= f(x) (relative residual {self.residual:.1e}).")

    def _table(self) -> list[str]:
        lines = ["| step | op | kind | input | at x | convention at kinks |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {s.name} | {s.op} | {s.kind} | {shape_text(s.shape)} | {s.pattern_text()} "
                  f"| {s.convention or '— (smooth)'} |" for s in self.sites]
        return lines

    def __repr__(self) -> str:
        return f"LinearizationExplanation({self.layer!r})"

    def __str__(self) -> str:
        lines = [repr(self.layer), self._opening(), self.validity]
        lines += [f"  {s.name}: {s.op} ({s.kind}), {s.pattern_text()}"
                  + (f"; {s.convention}" if s.convention else "") for s in self.sites]
        return "\n".join(lines)

    def to_markdown(self, level: int = 2) -> str:
        """Markdown under a heading at ``level``: the map, where it holds, the pattern."""
        h = "#" * level
        out = [f"{h} `{self.layer!r}`", "", self._opening(), "", self.validity, ""]
        if self.sites:
            out += [f"{h}# The activation pattern at x", "", *self._table(), ""]
        out += [f"{h}# The factors", "",
                "The Jacobian composes these steps (each reads the steps named after ←; "
                "`input` is x): the model's linear layers and, for each non-linearity, its "
                "Jacobian at its own input.", ""]
        out += [f"{n}. {factor.name} ← {', '.join(factor.inputs)}: " + (
                    f"`{factor.layer!r}`" if factor.layer is not None else
                    ("sum " + ", ".join(f"{c:g}" for c in factor.coefficients)
                     if factor.combine == "sum" else "concatenation"))
                for n, factor in enumerate(self.layer.output_factors())]
        return "\n".join(out).rstrip() + "\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _validity(lin: Linearization) -> str:
    stops = sorted({s.name for s in lin.sites if s.kind == "constant"})
    if stops:
        return (f"The model stops gradients ({', '.join(stops)}: detached values): as "
                f"{lin.framework}'s autograd does, J treats them as constants (their value at x "
                f"is in the offset), so J is {lin.framework}'s Jacobian (torch.func.jacrev's), "
                f"not the derivative of the forward map; J x + offset = f(x) holds at x.")
    kinks = lin.kinks
    smooth = [s.op for s in lin.sites if not s.piecewise_linear]
    if smooth:
        names = ", ".join(sorted(set(smooth)))
        text = (f"Not every non-linearity is piecewise linear ({names}): the affine map equals "
                f"the network at x and agrees with it to first order near x, not on a region.")
    elif not lin.sites:
        return "The model has no non-linearity: the map is the network everywhere."
    elif kinks == 0:
        text = ("Every non-linearity is piecewise linear and no unit sits on a kink: the "
                "network *is* this affine map on the whole (open) linear region containing x — "
                "every input with the same activation pattern and the same pooling winners.")
    else:
        text = (f"Every non-linearity is piecewise linear, but x sits on a kink: {kinks} "
                f"unit{'s' * (kinks != 1)} exactly at a kink or tied pooling windows. There the "
                f"derivative is {lin.framework}'s convention (table below), and the network is "
                f"this affine map on the closed linear region whose pattern counts those units "
                f"as the convention does (x on its boundary).")
    if kinks and smooth:
        text += (f" {kinks} unit{'s' * (kinks != 1)} sit exactly on a kink; there the derivative "
                 f"is {lin.framework}'s convention (table below).")
    return text


def explain_linearization(layer: Linearization, x: Any = None) -> LinearizationExplanation:
    """Explain a linearised network (``x`` is unused: the point is the layer's own)."""
    return LinearizationExplanation(layer, layer.residual(), _validity(layer))
