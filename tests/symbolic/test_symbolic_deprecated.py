"""The names and keywords renamed in 0.2 keep working for one release, with a warning."""

import numpy as np
import pytest

import convmatrix as cm
from convmatrix import symbolic as sym
from convmatrix.geometry.spec import conv_spec, conv_transpose_spec
from convmatrix.geometry.view import ConvView


@pytest.mark.parametrize("old, new", [
    ("conv_matrix", "symbolic_conv_matrix"),
    ("conv_transpose_matrix", "symbolic_conv_transpose_matrix"),
    ("Checkerboard", "CheckerboardLaw"),
])
def test_old_names_are_deprecated_aliases(old, new):
    with pytest.deprecated_call(match=f"symbolic.{old} is deprecated.*symbolic.{new}"):
        value = getattr(sym, old)
    assert value is getattr(sym, new)


def test_old_matrix_names_in_their_module_too():
    from convmatrix.symbolic import matrices

    with pytest.deprecated_call(match="matrices.conv_matrix is deprecated"):
        assert matrices.conv_matrix is sym.symbolic_conv_matrix


def test_old_checkerboard_maps_transpose_onto_direction():
    with pytest.deprecated_call(match="checkerboard_law"):
        old = sym.checkerboard
    wshape, ishape = (1, 1, 3, 3), (1, 8, 8)
    assert repr(old(wshape, ishape, stride=2)) == repr(sym.checkerboard_law(wshape, ishape,
                                                                            stride=2))
    forward = old(wshape, ishape, False, stride=2, padding=1)
    assert forward == sym.checkerboard_law(wshape, ishape, direction="forward", stride=2,
                                           padding=1)
    with pytest.deprecated_call(match="direction == 'forward'"):
        assert forward.forward


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        sym.not_a_name  # noqa: B018


def test_the_overlap_module_is_a_deprecated_alias_of_counts_and_laws():
    from convmatrix.symbolic import overlap

    with pytest.deprecated_call(match=r"overlap.Checkerboard is deprecated.*CheckerboardLaw"):
        assert overlap.Checkerboard is sym.CheckerboardLaw
    with pytest.deprecated_call(match="use convmatrix.symbolic.counts.overlap_counts"):
        counts = overlap.overlap_counts
    assert counts is sym.overlap_counts
    spec = conv_spec((1, 1, 3), (1, 8), stride=2)
    with pytest.deprecated_call(match="spec_checkerboard_law"):
        assert overlap.spec_checkerboard(spec, False).direction == "forward"
    with pytest.deprecated_call(match="checkerboard_law"):
        assert overlap.checkerboard((1, 1, 3), (1, 4), stride=2).direction == "adjoint"
    with pytest.deprecated_call():
        names = {}
        exec("from convmatrix.symbolic.overlap import *", names)
    assert set(overlap.__all__) <= set(names)
    with pytest.raises(AttributeError):
        overlap.not_a_name  # noqa: B018


def test_explain_transpose_keyword_is_deprecated():
    new = sym.explain((1, 1, 2, 2), (1, 2, 2), direction="adjoint")
    with pytest.deprecated_call(match=r"`transpose=` is deprecated.*direction='adjoint'"):
        old = sym.explain((1, 1, 2, 2), (1, 2, 2), transpose=True)
    assert str(old) == str(new) and old.direction == "adjoint"
    with pytest.deprecated_call(match="use .direction == 'adjoint'"):
        assert old.transpose
    spec = conv_transpose_spec((1, 1, 2, 2), (1, 2, 2))
    with pytest.deprecated_call(match=r"`transpose=` is deprecated"):
        positional = sym.explain_spec(spec, True)
    assert str(positional) == str(new)


def test_relationship_transposed_is_deprecated():
    rel = next(r for r in sym.RELATIONSHIPS if r.number == 14)
    assert rel.direction == "adjoint"
    with pytest.deprecated_call(match="use .direction == 'adjoint'"):
        assert rel.transposed


@pytest.mark.parametrize("bad", [True, "transpose", None])
def test_direction_is_a_literal(bad):
    with pytest.raises(cm.ConvMatrixError, match="must be 'forward' or 'adjoint'"):
        sym.explain((1, 1, 2), (1, 3), direction=bad)
    with pytest.raises(cm.ConvMatrixError, match="must be 'forward' or 'adjoint'"):
        sym.checkerboard_law((1, 1, 2), (1, 3), direction=bad)


class _Duck:
    """Not a convmatrix layer class: only the conv_view() hook."""

    def __init__(self, view):
        self.view = view

    def conv_view(self):
        return self.view


def test_a_layer_is_recognised_by_its_conv_view_hook():
    weight = np.arange(1, 7).reshape(2, 1, 3)  # Conv1d 1 -> 2 channels, kernel 3
    spec = conv_spec(weight.shape, (1, 5))
    conv = cm.Conv(weight, (1, 5))
    x = np.arange(5).reshape(1, 5)
    duck = sym.explain(_Duck(ConvView(spec, weight, "forward", "Conv1d")), x=x)
    assert str(duck) == str(sym.explain(conv, x=x))
    # channels last: the sample is moved to channels first, (5, 1) -> (1, 5)
    last = sym.explain(_Duck(ConvView(spec, weight, "forward", "Conv1D", "channels_last")),
                       x=x.T)
    assert last.numeric_outputs == duck.numeric_outputs and last.title == "Conv1D"
    with pytest.raises(cm.ConvMatrixError, match=r"`x` has shape \(1, 5\); the layer takes"):
        sym.explain(_Duck(ConvView(spec, weight, "forward", "Conv1D", "channels_last")), x=x)
    assert sym.checkerboard_law(_Duck(ConvView(spec, weight, "adjoint", "T"))) == (
        sym.checkerboard_law(conv.T))
    with pytest.raises(cm.ConvMatrixError, match="explain a stack layer by layer"):
        sym.explain(_Duck(None))
