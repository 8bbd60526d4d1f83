"""The API reference (docs/api/*.rst) lists every public name and nothing that does not exist.

The pages are read as text (no Sphinx build): an ``.. autosummary::`` entry, an
``.. automodule::`` or a ``.. data::`` directive documents ``<current module>.<name>``. Every
name in the ``__all__`` of convmatrix and of its public subpackages must be documented (under
its own module, or as the same object under another documented name), and every documented
name must import.
"""

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

API = Path(__file__).resolve().parents[2] / "docs" / "api"

#: the modules whose ``__all__`` the reference must cover
PUBLIC_MODULES = ["convmatrix", "convmatrix.symbolic", "convmatrix.testing",
                  "convmatrix.testing.strategies", "convmatrix.lax", "convmatrix.adapters",
                  "convmatrix.cache", "convmatrix.reference", "convmatrix.reports",
                  "convmatrix.cli"]


def documented_names() -> set[str]:
    """Every fully qualified name the reference pages document."""
    names: set[str] = set()
    for page in sorted(API.glob("*.rst")):
        module = ""
        block = ""  # the directive whose indented content is being read
        for line in page.read_text().splitlines():
            directive = re.match(r"\.\. (?:py:)?(\w+)::\s*(\S*)", line)
            if directive:
                block, target = directive.groups()
                if block in ("currentmodule", "automodule", "module"):
                    module = target
                    if block != "currentmodule":
                        names.add(target)
                elif block == "data":
                    names.add(f"{module}.{target}")
            elif block == "autosummary" and re.match(r"   ~?[\w.]+$", line):
                names.add(f"{module}.{line.strip().lstrip('~')}")
            elif block == "data" and re.match(r" +\w+$", line):
                names.add(f"{module}.{line.strip()}")  # a further signature line
            elif block == "data" and not line:
                block = "data content"
            elif line and not line.startswith(" "):
                block = ""
    return names


def resolve(name: str) -> Any:
    """The object a fully qualified name stands for: attributes first, then submodules (so
    ``convmatrix.checkerboard`` is the function, not the deprecated module alias)."""
    parts = name.split(".")
    obj: Any = importlib.import_module(parts[0])
    for i, attr in enumerate(parts[1:], start=2):
        obj = (getattr(obj, attr) if hasattr(obj, attr)
               else importlib.import_module(".".join(parts[:i])))
    return obj


def resolved() -> dict[str, Any]:
    """The documented names that import, with their objects."""
    found = {}
    for name in DOCUMENTED:
        try:
            found[name] = resolve(name)
        except (ImportError, AttributeError):
            pass  # reported by test_every_entry_exists
    return found


#: a module documented under its public path: ``convmatrix.lax`` re-exports the functions of
#: ``convmatrix.adapters.lax`` (where the code lives, with helpers the public path leaves out)
MODULE_PATHS = {"convmatrix.adapters.lax": "convmatrix.lax"}


DOCUMENTED = documented_names()
PUBLIC = [(module, name) for module in PUBLIC_MODULES
          for name in importlib.import_module(module).__all__]


def test_the_pages_are_read() -> None:
    assert "convmatrix.Conv" in DOCUMENTED and "convmatrix.symbolic.k" in DOCUMENTED
    assert "convmatrix.testing.strategies.conv_layers" in DOCUMENTED


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_every_public_name_is_documented(module: str, name: str) -> None:
    if f"{module}.{name}" in DOCUMENTED:
        return
    obj = getattr(importlib.import_module(module), name)
    if isinstance(obj, ModuleType):
        public = MODULE_PATHS.get(obj.__name__, obj.__name__)
        assert public in DOCUMENTED, f"{module}.{name}: no automodule of {public}"
        return
    assert any(obj is found for found in resolved().values()), (
        f"{module}.{name} has no entry in docs/api/*.rst")


@pytest.mark.parametrize(("module", "public"), MODULE_PATHS.items())
def test_a_public_path_exports_its_module(module: str, public: str) -> None:
    code, path = importlib.import_module(module), importlib.import_module(public)
    assert path.__all__ and all(getattr(path, n) is getattr(code, n) for n in path.__all__)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_entry_exists(name: str) -> None:
    resolve(name)
