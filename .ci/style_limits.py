"""The size limits of the house style that ruff does not check: no Python file over 400 lines
and no function over 60 lines. Run by .ci/run next to `ruff check .`; exits 1 listing every
file or function over its limit.

    python .ci/style_limits.py
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("models", "data", "utils", "benchmarks", "research", "tests", "experiments", ".ci")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def sources() -> list:
    """Every Python file of the project's folders, main.py and the API module mose.py."""
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")) + [
        ROOT / "main.py", ROOT / "mose.py"]


def problems(path: Path) -> list:
    """One line per limit `path` exceeds."""
    source = path.read_text()
    name = path.relative_to(ROOT)
    found = []
    if source.count("\n") > MAX_FILE_LINES:
        found.append(f"{name}: {source.count(chr(10))} lines (limit {MAX_FILE_LINES})")
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno}: function {node.name} has {length} lines "
                             f"(limit {MAX_FUNCTION_LINES})")
    return found


def main() -> int:
    found = [line for path in sources() for line in problems(path)]
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
