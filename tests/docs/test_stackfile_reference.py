"""The stack-file reference (docs/reference/stackfile.md) against the stack-file reader.

The page's hand-written tables are checked against the reader's own tables (its top-level keys,
its fills); the per-kind key tables, generated at build time by docs/_stackfile.py, are checked
against the constructors' signatures and the reader's behaviour (a key outside them is refused);
the page's example file is loaded by the reader.
"""

import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from convmatrix import ConvMatrixError
from convmatrix.reports import stackfile

pytest.importorskip("numpydoc")  # the per-kind tables are read from numpydoc sections (docs extra)

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = (DOCS / "reference" / "stackfile.md").read_text()
EXAMPLE = DOCS / "reference" / "stack-example.toml"
KINDS = sorted(stackfile._layer_kinds())


def generator() -> ModuleType:
    """docs/_stackfile.py, which writes the per-kind tables the page includes."""
    spec = importlib.util.spec_from_file_location("_stackfile", DOCS / "_stackfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLES = generator().kind_tables()


def section(kind: str) -> str:
    """The generated section of one kind."""
    match = re.search(rf"^### `{kind}`\n(.*?)(?=^### |\Z)", TABLES, re.M | re.S)
    assert match, f"no section for {kind}"
    return match.group(1)


def table_keys(text: str) -> list[str]:
    """The keys (first column, in backticks) of the Markdown tables in ``text``."""
    return re.findall(r"^\| `([^`]+)` \|", text, re.M)


def test_the_page_includes_the_tables_and_the_example() -> None:
    assert "{include} generated/stack-kinds.md" in PAGE
    assert "{literalinclude} stack-example.toml" in PAGE


def test_every_top_level_key_is_documented() -> None:
    top = PAGE.split("## The top level")[1].split("\n## ")[0]
    assert sorted(table_keys(top)) == sorted(stackfile._FILE_KEYS)


def test_every_fill_is_documented() -> None:
    fills = PAGE.split("## Kernel fills")[1].split("\n## ")[0]
    assert sorted(table_keys(fills)) == sorted(f'"{fill}"' for fill in stackfile.FILLS)


def test_every_kind_has_a_section() -> None:
    assert re.findall(r"^### `(\w+)`", TABLES, re.M) == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_every_constructor_keyword_is_a_documented_key(kind: str) -> None:
    reader_made = {"weight"} if kind in (*stackfile._WEIGHTED, "Linear") else set()
    keywords = [name for name in inspect.signature(stackfile._layer_kinds()[kind]).parameters
                if name != "input_shape" and name not in reader_made]
    keys = table_keys(section(kind))
    assert set(keywords) <= set(keys)
    extra = set(keys) - set(keywords)
    assert extra == ({"kernel", "icnr"} if kind in stackfile._WEIGHTED
                     else {"out_features"} if kind == "Linear" else set())


@pytest.mark.parametrize("kind", KINDS)
def test_a_key_outside_the_tables_is_refused(kind: str) -> None:
    entry = {"Conv": 'kernel = [1, 1, 1]', "ConvTranspose": 'kernel = [1, 1, 1]',
             "Linear": "out_features = 1"}.get(kind, "")
    text = f'input = [1, 4]\n[[layers]]\nkind = "{kind}"\n{entry}\nnot_a_key = 1\n'
    with pytest.raises(ConvMatrixError, match=kind):
        stackfile.parse_stack(text)


def test_the_example_file_loads() -> None:
    loaded = stackfile.load_stack(EXAMPLE)
    stack = loaded.stack
    assert loaded.title == "a sub-pixel generator head"
    assert stack.input_shape == (2, 4, 4) and stack.output_shape == (3,)
    conv, shuffle, norm = stack.layers[:3]
    weight = conv.matrix().toarray()  # icnr = 2: channels 4c..4c+3 share one kernel
    rows = weight.reshape(8, 16, -1)
    for c in range(2):
        for copy in range(1, 4):
            np.testing.assert_array_equal(rows[4 * c + copy], rows[4 * c])
    x = np.random.default_rng(0).standard_normal(shuffle.output_shape)
    expected = ((x - np.array([0.5, 0.25])[:, None, None])
                / np.sqrt(np.array([1.0, 4.0]) + 1e-5)[:, None, None]
                * np.array([2.0, 1.0])[:, None, None] + np.array([0.0, 0.1])[:, None, None])
    np.testing.assert_allclose(norm(x), expected, rtol=1e-12)
