"""The adapters' place in the package: layers never import adapters; old paths still work."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import convmatrix as cm
from convmatrix.adapters.keras import KerasLayer, keras_layer
from convmatrix.layers.channels_last import ChannelsLast, KerasConv
from tests import oracle

PACKAGE = Path(cm.__file__).parent

# what each area may not import (its upper neighbours), by the package's layers contract
FORBIDDEN = {
    "layers": ("convmatrix.adapters", "convmatrix.testing", "convmatrix.cli"),
    "adapters": ("convmatrix.testing", "convmatrix.reports", "convmatrix.cli"),
}


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """Every import in a module (top level, in functions, under TYPE_CHECKING): line, module,
    names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _modules(area: str) -> list[Path]:
    return sorted((PACKAGE / area).rglob("*.py"))


@pytest.mark.parametrize("area", sorted(FORBIDDEN))
def test_imports_run_one_way(area):
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
             for path in _modules(area) for line, module, _ in _imports(path)
             if module.startswith(FORBIDDEN[area])]
    assert not wrong, "\n".join(wrong)


def test_the_scan_sees_imports_inside_functions_and_type_checking(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from convmatrix.adapters import keras\n"
                      "def f():\n    import convmatrix.adapters.torch\n")
    assert [m for _, m, _ in _imports(module)] == ["typing", "convmatrix.adapters",
                                                   "convmatrix.adapters.torch"]


@pytest.mark.parametrize("area", ["adapters", "layers/channels_last.py", "layers/repeat.py",
                                  "layers/__init__.py"])
def test_no_private_name_is_imported_from_another_module(area):
    paths = _modules(area) if (PACKAGE / area).is_dir() else [PACKAGE / area]
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}.{name}"
             for path in paths for line, module, names in _imports(path)
             if module.startswith("convmatrix") for name in names if name.startswith("_")]
    assert not wrong, "\n".join(wrong)


# --- deprecated paths and names ----------------------------------------------------------------

MOVED = {
    "convmatrix.layers.torch": "convmatrix.adapters.torch",
    "convmatrix.layers.keras": "convmatrix.adapters.keras",
    "convmatrix.layers.keras_stack": "convmatrix.adapters.keras",
    "convmatrix.frameworks.torch": "convmatrix.adapters.torch",
    "convmatrix.frameworks.keras": "convmatrix.adapters.keras",
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_module_paths_warn_and_are_the_adapter(old, new):
    if old.startswith("convmatrix.frameworks."):  # the package warns once on its own
        with pytest.deprecated_call(match="convmatrix.adapters"):
            sys.modules.pop("convmatrix.frameworks", None)
            importlib.import_module("convmatrix.frameworks")
    sys.modules.pop(old, None)
    with pytest.deprecated_call(match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_old_names_on_the_old_paths_are_the_new_objects():
    with pytest.deprecated_call():
        sys.modules.pop("convmatrix.layers.keras", None)
        from convmatrix.layers.keras import KerasConv as OldKerasConv
        from convmatrix.layers.keras import from_keras
        sys.modules.pop("convmatrix.layers.keras_stack", None)
        from convmatrix.layers.keras_stack import (
            KERAS_READERS,
            Repeat,
            from_keras_sequential,
            is_other_keras,
            read_keras_layer,
        )
        from convmatrix.layers.keras_stack import (
            ChannelsLast as OldChannelsLast,
        )
        sys.modules.pop("convmatrix.layers.torch", None)
        from convmatrix.layers.torch import TORCH_READERS, from_torch
    assert OldKerasConv is KerasConv and OldChannelsLast is ChannelsLast
    assert from_keras is cm.from_keras and from_torch is cm.from_torch
    assert Repeat is cm.layers.Repeat and "Conv2D" in KERAS_READERS and "Conv2d" in TORCH_READERS
    assert callable(from_keras_sequential) and callable(is_other_keras)
    assert callable(read_keras_layer)


@pytest.mark.parametrize("name", ["from_torch", "from_keras"])
def test_readers_on_convmatrix_layers_warn_and_forward(name):
    with pytest.deprecated_call(match=f"convmatrix.{name}"):
        old = getattr(cm.layers, name)
    assert old is getattr(cm, name)
    with pytest.raises(AttributeError):
        cm.layers.no_such_name  # noqa: B018


def _transpose_case():
    case = oracle.cases()[1]
    return case, oracle.arrays(case)["kernel"]


def test_keras_layer_transpose_flag_is_deprecated_for_direction():
    case, kernel = _transpose_case()
    converted = keras_layer(case["layer"], kernel, case["input_shape"])
    assert converted.direction == "adjoint"
    with pytest.deprecated_call(match="direction"):
        assert converted.transpose is True
    with pytest.deprecated_call(match="direction"):
        old = KerasLayer(converted.class_name, converted.spec, converted.weight, True,
                         converted.data_format, converted.input_shape, converted.output_shape)
    assert old == converted
    with pytest.raises(cm.ConvMatrixError, match="'forward' or 'adjoint'"):
        KerasLayer(converted.class_name, converted.spec, converted.weight, "backward",  # type: ignore[arg-type]
                   converted.data_format, converted.input_shape, converted.output_shape)


def test_keras_conv_from_a_translation_record_is_deprecated_but_the_same_layer():
    case, kernel = _transpose_case()
    bias = np.array([0.25])
    new = cm.from_keras(case["layer"], kernel, case["input_shape"], bias=bias)
    with pytest.deprecated_call(match="KerasConv"):
        old = KerasConv(keras_layer(case["layer"], kernel, case["input_shape"]), bias)
    assert repr(old) == repr(new) and old.class_name == new.class_name
    assert (old.matrix() != new.matrix()).nnz == 0
    np.testing.assert_array_equal(old.offset(), new.offset())


# --- the channels-last kinds know no framework ---------------------------------------------------

def test_keras_conv_is_built_from_a_channels_first_core_or_a_spec():
    weight = np.arange(8.0).reshape(2, 1, 2, 2)
    core = cm.ConvTranspose(weight, (2, 3, 3), stride=2, bias=[1.0])
    layer = KerasConv(core, "Conv2DTranspose")
    assert layer.torch is core and layer.data_format == "channels_last"
    assert layer.input_shape == (3, 3, 2) and layer.output_shape == (6, 6, 1)
    view = core.conv_view()
    same = KerasConv.from_spec(view.spec, view.weight, class_name="Conv2DTranspose",
                               direction=view.direction, bias=[1.0])
    assert repr(same) == repr(layer)
    assert (same.matrix() != layer.matrix()).nnz == 0
    x = np.random.default_rng(0).standard_normal((3, 3, 2))
    np.testing.assert_allclose(layer(x), np.moveaxis(core(np.moveaxis(x, -1, 0)), 0, -1))
    first = KerasConv(core, "Conv2DTranspose", "channels_first")
    assert (first.matrix() != core.matrix()).nnz == 0 and first.input_shape == (2, 3, 3)
    assert layer.conv_view().layout == "channels_last"


@pytest.mark.parametrize(("args", "match"), [
    ((cm.Identity((1, 3)), "Conv1D"), "must be a channels-first convolution"),
    ((cm.Conv(np.ones((1, 1, 2)), (1, 3)), 3), "`class_name`"),
    ((cm.Conv(np.ones((1, 1, 2)), (1, 3)), "Conv1D", "nhwc"), "`data_format`"),
])
def test_keras_conv_refuses_what_it_cannot_be(args, match):
    with pytest.raises(cm.ConvMatrixError, match=match):
        KerasConv(*args)
