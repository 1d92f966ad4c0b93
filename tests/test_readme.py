"""README.md's Python samples run verbatim (top-level await included)."""

from __future__ import annotations

import ast
import asyncio
import os
from pathlib import Path
import re
import sys

from conftest import ROOT


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_api_sample(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2, "README lost its Python API sample"
    source = "\n".join(blocks)
    assert "from plugboard_beam" in source and "await process.run()" in source
    code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace: dict[str, object] = {"__name__": "readme_sample"}
        sys.modules.pop("readme_sample", None)
        result = eval(code, namespace)  # noqa: S307 - our own README
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    finally:
        os.chdir(cwd)
    assert (tmp_path / "b.txt").read_text().split() == ["0", "2", "4", "6", "8"]
    assert namespace["result"] == {"out_1": 4}
