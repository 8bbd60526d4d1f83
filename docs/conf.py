"""Sphinx configuration of the convmatrix documentation site.

Build (warnings are errors)::

    python -m sphinx -W -b html docs docs/_build/html

Layout: ``index.md`` (front page), ``guides/`` (how-to pages per kind of user, run as doctests
by the test suite), ``examples/`` (sphinx-gallery sources, executed at build time into
``auto_examples/``), ``api/`` (the API reference, generated from the docstrings by
autosummary), ``reference/`` (the CLI, generated from its argparse parser, and the stack-file
format) and ``reports.md`` (every built-in report).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import convmatrix

sys.path.insert(0, os.path.dirname(__file__))  # _cli.py (sphinx-argparse), _stackfile.py

import _stackfile  # from docs/, on the path just above

os.environ.setdefault("MPLBACKEND", "Agg")  # the gallery draws without a screen

project = "convmatrix"
author = "the convmatrix developers"
copyright = "2026, the convmatrix developers"
release = convmatrix.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "sphinxarg.ext",
]

# no typographic quotes or dashes: the pages quote code and command lines (``--padding``,
# ``data_format='channels_first'`` in the CLI's help texts), which must read as typed
smartquotes = False
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "reference/generated", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# --- API reference -------------------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False


def _defined_docstring(app: Any, what: str, name: str, obj: Any, options: Any,
                       lines: list[str]) -> None:
    """Give a re-exported constant the docstring written where it is defined.

    autodoc reads a constant's docstring (the string after its assignment) from the module it
    is documented under; ``convmatrix.DEFAULT_MAX_BYTES`` is defined in
    ``convmatrix.builder.budget``, so autodoc would fall back to ``int``'s docstring.
    """
    from sphinx.pycode import ModuleAnalyzer

    if what != "data":
        return
    attr = name.rpartition(".")[2]
    for modname, module in sorted(sys.modules.items()):
        if modname.startswith("convmatrix") and getattr(module, attr, None) is obj:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", attr))
            if docs:
                lines[:] = [line for line in docs]
                return


def setup(app: Any) -> None:
    """Connect the constant docstring hook before numpydoc parses the docstrings."""
    app.connect("autodoc-process-docstring", _defined_docstring, priority=400)


# --- stack-file reference ----------------------------------------------------------------------
_stackfile.write()  # reference/generated/stack-kinds.md, the per-kind key tables

# --- Markdown pages (MyST) -------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# --- gallery ---------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}

# --- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"convmatrix {release}"
html_theme_options = {"navigation_with_keys": False}
html_static_path: list[str] = []
