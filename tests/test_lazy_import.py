"""``import convmatrix`` and ``convmatrix --help`` load only what they need (issue 19).

Behaviour, not timing: fresh interpreters report which modules an import pulled in, and every
public name still resolves, lazily, to the object its module defines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import convmatrix as cm

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sympy", "torch", "keras", "matplotlib")


def _modules_after(code: str) -> set[str]:
    """The top-level names of ``sys.modules`` after running ``code`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_convmatrix_imports_no_heavy_package():
    loaded = _modules_after("import convmatrix")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    # nor the package's own heavy parts: the reports, the adapters, the symbolic layer
    assert not {m for m in loaded if m.startswith(("convmatrix.reports", "convmatrix.adapters",
                                                   "convmatrix.symbolic", "convmatrix.layers"))}


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_cli_version_and_help_import_no_command_module(flag):
    loaded = _modules_after("import contextlib, io\nfrom convmatrix.cli import main\n"
                            f"with contextlib.redirect_stdout(io.StringIO()):\n"
                            f"    main([{flag!r}])")
    assert not {m for m in loaded if m.split(".")[0] in (*HEAVY, "numpy", "scipy")}
    commands = {f"convmatrix.cli.{name}" for name in
                ("report", "reports", "verify", "shape", "matrix", "norm", "compare")}
    assert not loaded & commands


def test_a_command_imports_only_its_own_module():
    loaded = _modules_after("import contextlib, io\nfrom convmatrix.cli import main\n"
                            "with contextlib.redirect_stdout(io.StringIO()):\n"
                            "    main(['verify', '--input', '1x4x4', '--kernel', '1x1x3x3'])")
    assert "convmatrix.cli.verify" in loaded
    assert not {"convmatrix.cli.report", "convmatrix.cli.shape", "convmatrix.symbolic"} & loaded
    assert "sympy" not in loaded


def test_lazy_help_lists_every_command_as_the_full_parser_does():
    from convmatrix.cli import build_parser

    full = build_parser().format_help()  # imports every command module
    assert build_parser("").format_help() == full
    for name in ("report", "reports", "verify", "shape", "matrix", "norm", "compare"):
        assert f"\n    {name} " in full


def test_a_command_parser_is_the_same_built_lazily_or_in_full():
    from convmatrix.cli import build_parser

    for command in ("report", "verify", "norm", "compare"):
        full = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
        lazy = build_parser(command)._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
        assert lazy.format_help() == full.format_help()


def test_every_public_name_resolves_to_its_module_object():
    # in a fresh interpreter: importing a deprecated alias module elsewhere in the test run
    # (convmatrix.checkerboard) rebinds its name on the package, as it always did
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = """
import importlib
import convmatrix as cm
wrong = []
for name in cm.__all__:
    namespace = {}
    exec(f"from convmatrix import {name}", namespace)  # the `from convmatrix import X` form
    module = importlib.import_module(cm._LAZY[name])
    expected = module if cm._LAZY[name] == f"convmatrix.{name}" else getattr(module, name)
    if not (namespace[name] is expected is getattr(cm, name)):
        wrong.append(name)
print(wrong)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300, check=True)
    assert done.stdout.strip() == "[]"


def test_every_public_name_is_in_the_lazy_table_and_in_dir():
    assert set(cm.__all__) == set(cm._LAZY)
    assert set(cm.__all__) <= set(dir(cm))
    assert "__version__" in dir(cm)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Convolution'"):
        cm.Convolution  # noqa: B018
    assert not hasattr(cm, "not_a_name")


def test_layers_find_the_presenter_without_the_top_package_names():
    # a fresh interpreter that uses the layers directly: explain() still reaches the reports
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = ("import numpy as np\nfrom convmatrix.layers import Conv\n"
            "text = Conv(np.ones((1, 1, 3)), (1, 5)).explain().to_markdown()\n"
            "print(len(text) > 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120, check=True)
    assert done.stdout.strip() == "True"
