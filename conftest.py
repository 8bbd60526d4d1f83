"""Doctest collection skips the deprecated alias modules (importing them warns, by design).

Live Keras tests run Keras 3 on the torch backend (set before anything imports keras).

Doctests (docstrings, README.md, docs/**/*.md) run through scipy-doctest's pytest plugin
(installed with the ``test`` extra) so printed floats may differ in the last bits, but only
that: see ``pytest_configure``.
"""

import ast
import contextlib
import functools
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

_ROOT = Path(__file__).parent
_PACKAGE = _ROOT / "convmatrix"

collect_ignore = [
    str(path)
    for path in _PACKAGE.rglob("*.py")
    if "alias_module(__name__" in path.read_text() or path.parent.name == "frameworks"
]
# docs/: the Markdown pages are doctested; its Python files are Sphinx's (conf.py, its helpers,
# the gallery scripts, which importing would execute) and the build output is generated
collect_ignore_glob = ["docs/*.py", "docs/auto_examples/*", "docs/_build/*", "docs/api/generated/*"]


def pytest_configure(config):
    """Make scipy-doctest check at least what the stdlib doctest checked, plus float tolerance.

    scipy-doctest's defaults are loose for this project: ``rtol=1e-2``,
    ``IGNORE_EXCEPTION_DETAIL`` and ``ELLIPSIS``, no check of the output of examples mentioning
    ``plt.``, ``.title`` or ``.text(`` (and more), any output accepted when it shows an address
    (``at 0x…>``) or starts with ``#``, named tuples compared by their values only,
    ``np.allclose`` broadcasting (``[1., 1.]`` equal to ``1.0``), and docstrings run in an
    empty namespace. Here an example runs in its module's globals and passes when pytest's own
    checker accepts it (with ``doctest_optionflags`` from pyproject.toml) or when want and got
    evaluate to values of the same type, dtype and shape that agree within
    ``rtol = atol = 1e-12``; exception messages are compared in full.
    """
    try:
        import numpy as np
        from _pytest.doctest import _get_checker, get_optionflags
        from scipy_doctest.conftest import dt_config
        from scipy_doctest.impl import DTChecker
    except ImportError:  # without scipy-doctest, pytest's own (exact) doctest runs
        return

    class TightChecker(DTChecker):
        """pytest's checker first; then scipy-doctest's, for float tolerance only."""

        obj_pattern = re.compile(r"(?!)")  # never accept an output because it shows an address
        literal = _get_checker()

        def check_output(self, want, got, optionflags):
            if self.literal.check_output(want, got, optionflags):
                return True
            if want.lstrip().startswith("#"):  # scipy-doctest accepts anything here
                return False
            return super().check_output(want, got, optionflags)

        def _do_check(self, want, got, strict_check):
            if np.shape(want) != np.shape(got):  # np.allclose would broadcast
                return False
            return super()._do_check(want, got, strict_check)

    dt_config.CheckerKlass = TightChecker
    dt_config.optionflags = get_optionflags(config)  # no IGNORE_EXCEPTION_DETAIL, no ELLIPSIS
    dt_config.rtol = dt_config.atol = 1e-12
    dt_config.strict_check = True  # 1 is not 1.0, True is not 1
    dt_config.parse_namedtuples = False  # A(x=1) is not B(x=1)
    dt_config.stopwords = set()  # check every output
    dt_config.rndm_markers = set()  # no '# may vary': check an output, or skip it explicitly
    dt_config.user_context_mgr = _module_globals


@contextlib.contextmanager
def _module_globals(test):
    """Run a docstring's examples in its module's globals, as the stdlib doctest does.

    scipy-doctest starts every docstring in an empty namespace (``DTConfig.default_namespace``);
    the docstrings here use their module's names, as ``doctest.testmod`` allows.
    """
    module = _module_of(test)
    if module is not None:
        own = {name: value for name, value in test.globs.items() if name != "__name__"}
        test.globs.update(vars(module))
        test.globs.update(own)
    yield


def _module_of(test):
    """The module whose docstrings hold ``test`` (None for a text file such as README.md)."""
    parts = test.name.split(".")
    for end in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:end]))
        if module is not None and getattr(module, "__file__", None) == test.filename:
            return module
    return None


def pytest_collection_modifyitems(config, items):
    """Skip a doctest that imports an optional package which is not installed, naming it.

    The guides use torch, ONNX, Hypothesis, dask or IPython; with only the ``test`` extra their
    doctests skip with the reason (``pytest -ra`` lists it) instead of failing.
    """
    for item in items:
        dtest = getattr(item, "dtest", None)
        if dtest is None:
            continue
        missing = sorted({name for example in dtest.examples
                          for name in _imported(example.source) if not _installed(name)})
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)} (not installed)"))


def _imported(source):
    """The top-level packages an example imports."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


@functools.cache
def _installed(name):
    return importlib.util.find_spec(name) is not None
