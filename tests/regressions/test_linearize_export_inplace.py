"""cm.linearize of torch.export programs whose in-place ops write into a product's operands or
result, of a product before a decomposed Softshrink, and of binary torch.max / torch.min.

Found by an adversarial fuzz against torch.func.jacrev: the export's in-place aten overloads
(``mul_.Tensor``, ``add_.Tensor``) were not seen as writes, so the values a product, quotient,
``where`` or ``maximum`` node kept were changed by a later ``mul_``/``add_`` — a Jacobian off
by 13 % and offsets off by up to 200 %, with no error; ``lipschitz_summary`` of a product
before a decomposed Softshrink gave ``nan`` (0·inf) instead of ``inf``; ``torch.max(a, b)`` was
refused ("of its first argument only") and ``torch.min(a, b)`` was an unknown op.
"""

from __future__ import annotations

import math
import warnings

import pytest

import convmatrix as cm
from tests.helpers import assert_linearizes

torch = pytest.importorskip("torch")


class _ScaledSwish(torch.nn.Module):
    def forward(self, x):
        y = x * torch.sigmoid(x)
        y.mul_(2.0)
        return y


class _InPlaceProduct(torch.nn.Module):
    def forward(self, x):
        y = x * 1.0
        y *= torch.sigmoid(x)
        return y


class _ShiftedQuotient(torch.nn.Module):
    def forward(self, x):
        return (x / (2 + x.abs())).add_(1.0)


class _ShiftedMaximum(torch.nn.Module):
    def forward(self, x):
        return torch.maximum(x, 3 * x).add_(1.0)


class _ScaledWhere(torch.nn.Module):
    def forward(self, x):
        return torch.where(x > 0, 2 * x, 0.0).mul_(3.0)


class _MutatedOperand(torch.nn.Module):
    def forward(self, x):
        a = x * 2.0
        y = torch.where(x > 0, a, torch.sigmoid(x))
        a.add_(1.0)
        return y + a


class _Extrema(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 2, 3, padding=1)

    def forward(self, x):
        h = self.conv(x)
        return torch.max(h, torch.sigmoid(h)) + h.min(2 * h) + torch.min(h, 0.5 * h)


X = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
FORMS = ("export", "decomposed")


def _program(model, x, form):
    with warnings.catch_warnings():  # torch's own deprecation notes while exporting
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (x,))
        return program if form == "export" else program.run_decompositions()


def _check(model, x, program):
    assert_linearizes(cm.linearize(program, x), model, x)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("model", [_ScaledSwish, _InPlaceProduct, _ShiftedQuotient,
                                   _ShiftedMaximum, _ScaledWhere, _MutatedOperand],
                         ids=lambda m: m.__name__.strip("_"))
def test_in_place_writes_after_branch_ops_in_exports(model, form):
    _check(model(), X, _program(model(), X, form))


@pytest.mark.parametrize("form", ("module", *FORMS))
def test_binary_max_and_min_are_maximum_and_minimum(form):
    torch.manual_seed(0)
    model = _Extrema().double()
    x = torch.tensor([[[0.5, -1.0, 2.0, 0.0]]], dtype=torch.float64)
    _check(model, x, model if form == "module" else _program(model, x, form))


def test_product_before_decomposed_softshrink_has_an_infinite_bound():
    class Gated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.shrink = torch.nn.Softshrink(0.3)

        def forward(self, x):
            return self.shrink(x * torch.sigmoid(x))

    program = _program(Gated(), X, "decomposed")
    summary = cm.lipschitz_summary(program, X)
    assert summary.upper_bound == math.inf
    assert summary.local > 0 and not math.isnan(summary.local_product)
