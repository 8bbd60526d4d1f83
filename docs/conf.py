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

import convmatrix

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
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# --- API reference -------------------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

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
