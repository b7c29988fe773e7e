"""The house rules that a machine can check: no file over 400 lines and no function
over 60 lines (the fast start is tested in test_config.py)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for folder in ("models", "data", "utils", "benchmarks", "research", "tests",
                                  "experiments")
                 for p in (ROOT / folder).rglob("*.py")) + [ROOT / "main.py"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_files_and_functions_stay_small(path):
    source = path.read_text()
    assert source.count("\n") <= 400, f"{path.name}: {source.count(chr(10))} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > 60]
    assert not long, long
