"""The package's architecture, checked on its source (an AST scan; nothing is imported).

Complements the import-linter ``layers`` contract (``lint-imports``): a map's direction is a
literal (``direction="forward" | "adjoint"``), never a boolean parameter, and no module
imports another module's private (``_x``) name — what is shared has a public name in its home.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "convmatrix"
SOURCES = sorted(PACKAGE.rglob("*.py"))
BOOLEAN_DIRECTIONS = {"transpose", "transposed", "forward", "adjoint"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_bool(annotation: ast.expr | None) -> bool:
    """``bool``, ``bool | None``, ``Optional[bool]``, ``"bool"`` …: any annotation naming bool."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return False
    return any(isinstance(node, ast.Name) and node.id == "bool" for node in ast.walk(annotation))


def _documented_as_deprecated(function: ast.AST, name: str) -> bool:
    """Whether a function is deprecated, or its docstring calls parameter ``name`` deprecated.

    A deprecated keyword keeps the old boolean for one release (``transpose=True`` maps onto
    ``direction="adjoint"``); its docstring must say so.
    """
    if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    lines = (ast.get_docstring(function) or "").splitlines()
    if lines and lines[0].lower().startswith("deprecated"):
        return True
    return any(line.strip().lstrip("`*").startswith(name)
               and "deprecated" in (line + after).lower()
               for line, after in zip(lines, [*lines[1:], ""], strict=False))


def boolean_directions(tree: ast.AST) -> list[str]:
    """``transpose: bool``-like parameters and class fields (``line name``).

    Only a documented deprecated keyword, or a deprecated function, may keep one.
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
                if (arg.arg in BOOLEAN_DIRECTIONS and _is_bool(arg.annotation)
                        and not _documented_as_deprecated(node, arg.arg)):
                    found.append(f"{arg.lineno} {arg.arg}")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                        and item.target.id in BOOLEAN_DIRECTIONS and _is_bool(item.annotation)):
                    found.append(f"{item.lineno} {node.name}.{item.target.id}")
    return found


def private_imports(tree: ast.AST, module: str, *, is_package: bool = False) -> list[str]:
    """Private names (``_x``, not dunders) imported from another convmatrix module."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:  # relative: resolve against this module's package
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        if source.split(".")[0] != "convmatrix" or source == module:
            continue
        for alias in node.names:
            name = alias.name
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                found.append(f"{node.lineno} {name} from {source}")
    return found


def _scan(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_the_scan_sees_the_package():
    assert len(SOURCES) > 50
    assert PACKAGE / "builder" / "sparse.py" in SOURCES
    assert _module_name(PACKAGE / "builder" / "__init__.py") == "convmatrix.builder"


def test_the_scans_find_what_they_look_for():
    tree = ast.parse(
        "from convmatrix.builder.sparse import _hidden, spec_matrix\n"
        "from .weights import _other\n"
        "from convmatrix._errors import ConvMatrixError, __doc__\n"
        "from convmatrix.builder.budget import _own\n"
        "def f(x, *, transpose: bool = False, forward: 'bool | None' = None,\n"
        "      direction: str = 'forward', transposed=None): ...\n"
        "class K:\n"
        "    transposed: bool\n"
        "    adjoint: int\n"
        "def g(transpose: bool | None = None):\n"
        "    \"\"\"G.\n\n    transpose : bool, optional\n"
        "        Deprecated: direction.\n    \"\"\"\n"
        "def h(transpose: bool = True):\n"
        "    \"\"\"Deprecated: use k.\"\"\"\n"
        "def k(transpose: bool = True):\n"
        "    \"\"\"K (not deprecated).\"\"\"\n"
    )
    assert [e.split()[1] for e in boolean_directions(tree)] == ["transpose", "forward",
                                                                 "K.transposed", "transpose"]
    assert private_imports(tree, "convmatrix.builder.budget") == [
        "1 _hidden from convmatrix.builder.sparse", "2 _other from convmatrix.builder.weights"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_boolean_direction_parameters(path):
    found = boolean_directions(_scan(path))
    assert not found, (f"{path.name}: a map's direction is a keyword `direction: Direction` "
                       f"(\"forward\" / \"adjoint\"), not a bool:\n" + "\n".join(found))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_private_name_imported_across_modules(path):
    found = private_imports(_scan(path), _module_name(path), is_package=path.name == "__init__.py")
    assert not found, (f"{path.name}: give a shared name a public name in its home (not in the "
                       f"package's __all__) instead of importing a private one:\n"
                       + "\n".join(found))


def top_level_imports(tree: ast.AST) -> list[str]:
    """Names taken from the package's ``__init__`` (``from convmatrix import X``, X no module).

    ``convmatrix/__init__.py`` re-exports the public names and is imported by nothing inside
    the package; importing a submodule through it (``from convmatrix import reference``) is
    fine.
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "convmatrix":
            found += [f"{node.lineno} {alias.name}" for alias in node.names
                      if not ((PACKAGE / f"{alias.name}.py").exists()
                              or (PACKAGE / alias.name / "__init__.py").exists())]
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno} import {alias.name}" for alias in node.names
                      if alias.name == "convmatrix"]
    return found


def test_the_top_level_scan_finds_what_it_looks_for():
    tree = ast.parse("from convmatrix import reference, __version__, Conv\nimport convmatrix\n"
                     "import convmatrix.builder.sparse\n")
    assert top_level_imports(tree) == ["1 __version__", "1 Conv", "2 import convmatrix"]


@pytest.mark.parametrize("path", [p for p in SOURCES if p != PACKAGE / "__init__.py"],
                         ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_nothing_inside_the_package_imports_its_init(path):
    found = top_level_imports(_scan(path))
    assert not found, (f"{path.name}: import the name from its home module, not from the "
                       f"package's __init__:\n" + "\n".join(found))
