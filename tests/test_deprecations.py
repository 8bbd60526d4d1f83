"""Names and deep imports that moved in 0.2.0 keep working for one release, with a warning."""

import importlib
import sys

import numpy as np
import pytest

import convmatrix as cm

# old deep module -> the module it now is
MOVED_MODULES = {
    "convmatrix.shapes": "convmatrix.geometry.shapes",
    "convmatrix.spec": "convmatrix.geometry.spec",
    "convmatrix.indices": "convmatrix.geometry.indices",
    "convmatrix.layout": "convmatrix.builder.layout",
    "convmatrix.sparse": "convmatrix.builder.sparse",
    "convmatrix.apply": "convmatrix.builder.apply",
    "convmatrix.budget": "convmatrix.builder.budget",
    "convmatrix.weights": "convmatrix.builder.weights",
    "convmatrix.paths": "convmatrix.analysis.paths",
    "convmatrix.checkerboard": "convmatrix.analysis.checkerboard",
    "convmatrix.inverse": "convmatrix.analysis.inverse",
    "convmatrix.spectra": "convmatrix.analysis.spectra",
    "convmatrix.blocks": "convmatrix.analysis.blocks",
    "convmatrix.save": "convmatrix.analysis.save",
    "convmatrix.distributed": "convmatrix.analysis.distributed",
    "convmatrix.linop": "convmatrix.analysis.linop",
    "convmatrix.figures": "convmatrix.reports.figures",
    "convmatrix.stackfile": "convmatrix.reports.stackfile",
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_old_deep_import_warns_and_is_the_new_module(old, new):
    sys.modules.pop(old, None)
    with pytest.deprecated_call(match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    target = importlib.import_module(new)
    if old == "convmatrix.checkerboard":  # also stands for the function cm.checkerboard
        assert module.__dict__ is not target.__dict__ and module.Checkerboard is target.Checkerboard
    else:
        assert module is target


def test_frameworks_package_warns_and_forwards():
    for name in [m for m in sys.modules if m.startswith("convmatrix.frameworks")]:
        sys.modules.pop(name)
    with pytest.deprecated_call(match="convmatrix.adapters"):
        frameworks = importlib.import_module("convmatrix.frameworks")
    assert frameworks.torch_matrix is cm.torch_matrix
    assert frameworks.keras_matrix is cm.keras_matrix


@pytest.mark.parametrize("name", ["clear_cache", "cache_nbytes", "set_cache_budget"])
def test_cache_administration_moved_to_convmatrix_cache(name):
    with pytest.deprecated_call(match=f"convmatrix.cache.{name}"):
        old = getattr(cm, name)
    assert old is getattr(cm.cache, name)


def test_cache_functions_still_work_through_the_old_names():
    with pytest.deprecated_call():
        cm.clear_cache()
    cm.Conv(np.ones((1, 1, 3, 3)), (1, 6, 6)).matrix()
    assert cm.cache.cache_nbytes() > 0


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    assert cm.__version__ == version("convmatrix")


def _k3_s2():
    return cm.ConvTranspose(np.ones((1, 1, 3, 3)), (1, 4, 4), stride=2)


def test_free_analysis_functions_sit_next_to_the_methods():
    layer = _k3_s2()
    # the path count of an all-ones transposed convolution is the number of taps per output:
    # the row sums of its 0/1 matrix, counted here from the dense matrix
    brute = (layer.matrix().toarray() != 0).sum(axis=1).reshape(layer.output_shape)
    assert np.array_equal(cm.path_counts(layer), brute)
    assert np.array_equal(cm.path_counts(layer), layer.overlap_counts())
    board = cm.checkerboard(layer)
    assert np.array_equal(board.counts, brute) and not board.even
    assert repr(board) == repr(layer.checkerboard())
    analysis = cm.transpose_vs_inverse(layer, seed=0)
    assert analysis.rank == np.linalg.matrix_rank(layer.matrix().toarray())


def test_old_checkerboard_module_path_does_not_shadow_the_function():
    sys.modules.pop("convmatrix.checkerboard", None)
    with pytest.deprecated_call(match="convmatrix.analysis.checkerboard"):
        old = importlib.import_module("convmatrix.checkerboard")
    new = importlib.import_module("convmatrix.analysis.checkerboard")
    assert old.Checkerboard is new.Checkerboard
    # importing the old path rebinds cm.checkerboard to it: it must still be the function
    assert repr(cm.checkerboard(_k3_s2())) == repr(_k3_s2().checkerboard())
