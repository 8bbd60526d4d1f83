"""The architecture, measured from the code's own imports (including imports inside functions
and under ``TYPE_CHECKING``): no circles, imports run one way, nothing imports the top package.

``lint-imports`` (the contract in ``pyproject.toml``) checks the layer order between packages;
these tests add what it does not: circles between single modules, and the top-level
``convmatrix/__init__.py`` being imported by nothing inside the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "convmatrix"

#: the layer order of docs/architecture.md, lowest first; a module's layer is its longest match
LAYERS = [
    ("convmatrix._errors", "convmatrix._arrays", "convmatrix.typing", "convmatrix._deprecated",
     "convmatrix._files", "convmatrix._progress", "convmatrix._hooks"),
    ("convmatrix.cache",),
    ("convmatrix.geometry",),
    ("convmatrix.builder",),
    ("convmatrix.reference",),
    ("convmatrix.verification",),
    ("convmatrix.symbolic",),
    ("convmatrix.analysis",),
    ("convmatrix.layers",),
    ("convmatrix.adapters",),
    ("convmatrix.testing",),
    ("convmatrix.reports",),
    ("convmatrix.cli",),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_alias(path: Path) -> bool:
    """A deprecated alias of a moved module (it forwards to the new path at import time)."""
    text = path.read_text()
    return "alias_module(__name__" in text or path.parent.name == "frameworks"


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if not _is_alias(p)}


def _imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """Modules of the package that ``name`` imports, with line numbers."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{module}.{alias.name}"
                found.append((sub if sub in known else module, node.lineno))
    return [(m, line) for m, line in found if m.split(".")[0] == "convmatrix"]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: {m for m, _ in _imports(name, path, known) if m in known and m != name}
            for name, path in modules.items()}


def _layer(module: str) -> int:
    best, index = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    return index


def test_the_import_graph_has_no_circles():
    graph = _graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt):], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_imports_run_one_way():
    """At most two imports run back up a layer (the issue's budget); today none should."""
    upward = []
    for name, targets in _graph().items():
        if name in ("convmatrix", "convmatrix.__main__"):
            continue  # the top package re-exports every layer's public names; __main__ runs the CLI
        upward += [f"{name} -> {t}" for t in targets
                   if t != "convmatrix" and _layer(t) > _layer(name)]
    assert len(upward) <= 2, "imports that run back up:\n" + "\n".join(sorted(upward))


def test_nothing_inside_the_package_imports_the_top_package():
    offenders = [f"{name} -> convmatrix" for name, targets in _graph().items()
                 if name != "convmatrix" and "convmatrix" in targets]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("layer", ["analysis", "symbolic"])
def test_analyses_never_import_layer_kinds_or_adapters(layer):
    graph = _graph()
    offenders = [f"{name} -> {t}" for name, targets in graph.items()
                 if name.startswith(f"convmatrix.{layer}") for t in targets
                 if t.startswith(("convmatrix.layers", "convmatrix.adapters"))]
    assert not offenders, "\n".join(offenders)
