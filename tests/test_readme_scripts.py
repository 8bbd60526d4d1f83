"""The README's plain Python blocks (those without ``>>>`` prompts, which pytest's doctest
collection does not run) are run here, so they cannot drift from the code."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = [block for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
          if ">>>" not in block]


def test_the_readme_has_plain_blocks() -> None:
    assert BLOCKS


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(block: str) -> None:
    for module in ("torch", "onnx"):
        if f"import {module}" in block or f"from {module} import" in block:
            pytest.importorskip(module)
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
