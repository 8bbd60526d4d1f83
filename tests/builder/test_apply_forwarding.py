"""``convmatrix.builder.apply`` forwards the kernels' tunables and test hooks to their homes.

Setting, monkeypatching, ``unittest.mock.patch``-ing or deleting a forwarded name on ``apply``
behaves as on a plain module, and the value the kernels read at call time is the one set.
"""

from __future__ import annotations

import importlib
import types
from unittest import mock

import numpy as np
import pytest

from convmatrix import reference
from convmatrix.builder import apply, forward, tuning
from convmatrix.geometry.spec import conv_spec

FORWARDED = sorted(apply._HOMES)


def _builder_code_names() -> set[str]:
    """Every global and attribute name the builder modules' functions load at call time."""
    names: set[str] = set()
    stack = []
    for module in importlib.import_module("convmatrix.builder").__dict__.values():
        if isinstance(module, types.ModuleType) and module.__name__.startswith("convmatrix."):
            stack.extend(f.__code__ for f in vars(module).values()
                         if isinstance(f, types.FunctionType) and f.__module__ == module.__name__)
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


@pytest.mark.parametrize("name", FORWARDED)
def test_a_forwarded_name_is_the_one_the_kernels_read(name):
    """Setting ``apply.NAME`` must reach the kernels: the home attribute is looked up by name
    when they run (``tuning.TILE_BYTES``, or a module global like ``forward._taps_into``), not
    bound under another name at import (``from phases import polyphases as _phases``)."""
    home, attribute = apply._HOMES[name]
    assert getattr(apply, name) is getattr(home, attribute)
    importlib.import_module("convmatrix.builder.apply")  # every builder module is loaded
    assert attribute in _builder_code_names(), f"no kernel reads {home.__name__}.{attribute}"


def test_setting_and_importing_read_the_current_value(monkeypatch):
    monkeypatch.setattr(apply, "TILE_BYTES", 12345)
    assert tuning.TILE_BYTES == 12345
    from convmatrix.builder.apply import TILE_BYTES

    assert TILE_BYTES == 12345
    assert "TILE_BYTES" not in vars(apply)  # one value, in its home
    assert "TILE_BYTES" in dir(apply) and "_taps_into" in dir(apply)


def test_monkeypatch_undo_restores_the_home():
    before = tuning.SHIFT_GAIN
    patch = pytest.MonkeyPatch()
    patch.setattr(apply, "SHIFT_GAIN", 99.0)
    assert tuning.SHIFT_GAIN == 99.0
    patch.delattr(apply, "SHIFT_GAIN")
    assert not hasattr(apply, "SHIFT_GAIN") and "SHIFT_GAIN" not in dir(apply)
    assert tuning.SHIFT_GAIN == 99.0  # deleting hides the name on apply only
    patch.undo()
    assert apply.SHIFT_GAIN == tuning.SHIFT_GAIN == before


def test_mock_patch_restores_the_home():
    """mock.patch deletes a name it did not find in ``__dict__`` and then sets it back."""
    before = tuning.TILE_BYTES
    with mock.patch("convmatrix.builder.apply.TILE_BYTES", 7):
        assert tuning.TILE_BYTES == 7
    assert apply.TILE_BYTES == tuning.TILE_BYTES == before
    taps_into = forward._taps_into
    with mock.patch.object(apply, "_taps_into", side_effect=AssertionError):
        assert forward._taps_into is not taps_into
    assert forward._taps_into is apply._taps_into is taps_into


def test_deleting_twice_raises_like_a_module():
    patch = pytest.MonkeyPatch()
    try:
        patch.delattr(apply, "FLAT_GROUPS")
        with pytest.raises(AttributeError, match="has no attribute 'FLAT_GROUPS'"):
            del apply.FLAT_GROUPS
    finally:
        patch.undo()
    assert apply.FLAT_GROUPS == tuning.FLAT_GROUPS


def test_reload_keeps_forwarding(monkeypatch):
    module = importlib.reload(apply)
    assert module is apply
    monkeypatch.setattr(apply, "TILE_BYTES", 4096)
    assert tuning.TILE_BYTES == 4096


def test_replacing_a_hook_through_apply_reaches_the_kernel(monkeypatch):
    """The padded copy of a reflect-padded forward and a strided adjoint's phases, replaced
    through apply, are what the kernels call (results against the dense reference)."""
    calls: list[str] = []
    pad, phases = apply._pad, apply._phases

    def spy_pad(*args):
        calls.append("pad")
        return pad(*args)

    def spy_phases(*args):
        calls.append("phases")
        return phases(*args)

    monkeypatch.setattr(apply, "_pad", spy_pad)
    monkeypatch.setattr(apply, "_phases", spy_phases)
    monkeypatch.setattr(apply, "_STRIDED_ADJOINT", "phases")
    rng = np.random.default_rng(19)
    # the last axis' reflected border copies a pixel no output reads inside (input 5, padding
    # 4, kernel 2, stride 6: used positions 0..7, pixel 4 only through position 0), which
    # takes the padded copy (forward._pad)
    arguments = {"stride": (2, 6), "padding": ((2, 2), (4, 4)), "padding_mode": "reflect"}
    spec = conv_spec((2, 2, 3, 2), (2, 7, 5), **arguments)
    weight = rng.standard_normal(spec.weight_shape)
    x = rng.standard_normal((2, *spec.input_shape))
    y = rng.standard_normal((2, *spec.output_shape))
    forward_result = apply.conv_apply(spec, weight, x)
    assert "pad" in calls
    adjoint_result = apply.conv_apply_adjoint(spec, weight, y)
    assert "phases" in calls
    for b in range(2):
        np.testing.assert_allclose(forward_result[b], reference.conv(x[b], weight, **arguments),
                                   atol=1e-12)
        np.testing.assert_allclose(
            adjoint_result[b],
            reference.conv_adjoint(y[b], weight, spec.input_shape, **arguments), atol=1e-12)
