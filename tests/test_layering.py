"""The import graph of the repository: no cycle, and every import points down the layers.

Every .py file of the project is parsed with `ast`; every `import` and `from ... import` counts,
at module level and inside functions alike. Importing a submodule also imports its parent
packages' `__init__` (Python runs them first), except the packages the importing module is
itself inside, which are already running. Cycles are the strongly connected components of that
graph. `LAYERS` is the allowed-direction table (also in docs/design.md, 'Layering').

    python -m tests.test_layering      # prints every cycle and layering violation, or none
"""

import ast
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"log", "runs", "synthetic_data", "env", "imgs", "docs"}  # run output, no project code

# Lowest layer first. A module belongs to the longest package name that prefixes it; it may
# import its own package, the packages listed beside it (each further up this table; '*':
# anything) and the parent packages of those, which Python runs first. Nothing else.
LAYERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("data", ()),
    ("models", ()),
    ("utils", ()),  # the package docstring
    ("utils.labels", ()),
    ("utils.loss", ("utils.labels",)),
    ("utils.ot_loss", ("utils.loss",)),
    ("utils.methods", ("data", "models", "utils.loss")),
    ("utils.config", ("data", "utils.methods")),
    ("utils.runtime", ()),
    ("utils.checkpoint", ("utils.runtime",)),
    ("utils.build", ("data", "utils.methods", "utils.config", "utils.runtime")),
    ("utils.evaluation", ("data", "utils.labels", "utils.config", "utils.runtime",
                          "utils.build")),
    ("utils.metrics", ("utils.labels", "utils.evaluation")),
    ("utils.reports", ("data", "utils.labels", "utils.methods", "utils.config", "utils.runtime",
                       "utils.build", "utils.evaluation")),
    ("utils.training", ("data", "models", "utils.labels", "utils.loss", "utils.methods",
                        "utils.config", "utils.runtime", "utils.build", "utils.evaluation",
                        "utils.reports")),
    ("experiments", ()),
    ("main", ("utils.config", "utils.runtime", "utils.build", "utils.evaluation",
              "utils.reports", "utils.training")),
    ("mose", ("data", "models", "utils.labels", "utils.config", "utils.runtime", "utils.build",
              "utils.evaluation")),
    ("conftest", ("*",)),
    ("tests", ("*",)),
    ("benchmarks", ("*",)),
    ("research", ("*",)),
)


def module_files() -> Dict[str, Path]:
    """Dotted module name -> file, for every .py file of the project."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in SKIP or any(p.startswith(".") or p in ("__pycache__", "site-packages")
                                   for p in parts):
            continue
        names = list(parts[:-1]) + ([] if path.name == "__init__.py" else [path.stem])
        modules[".".join(names)] = path
    return modules


def _ancestors(name: str) -> List[str]:
    """'a.b.c' -> ['a', 'a.b']."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imported(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement names (modules, or module.attribute candidates)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the importing module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            anchor = package[:len(package) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        yield base
        yield from (f"{base}.{alias.name}" for alias in node.names)


def imports_of(module: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """The project modules that importing `module` can run: what it imports anywhere in its
    body, and the parent packages of each (except its own)."""
    own = set(_ancestors(module))
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        for name in _imported(node, module, path.name == "__init__.py"):
            if name in modules:
                found.update([name, *_ancestors(name)])
    return {m for m in found if m in modules and m != module and m not in own}


def import_graph() -> Dict[str, Set[str]]:
    """module -> the project modules it imports (`imports_of`)."""
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle through every strongly connected component of more than one module (Tarjan),
    each as the list of modules in import order, the first repeated at the end."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    components: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(component, graph) for component in components]


def _cycle_in(component: List[str], graph: Dict[str, Set[str]]) -> List[str]:
    """A shortest cycle through the component's first module (breadth-first)."""
    start, members = component[0], set(component)
    parents = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def layer_of(module: str) -> str:
    """The `LAYERS` package a module belongs to (the longest matching name)."""
    matches = [name for name, _ in LAYERS if module == name or module.startswith(name + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no layer of LAYERS: add its package to the table")
    return max(matches, key=len)


def violations(graph: Dict[str, Set[str]]) -> List[str]:
    """Every import that `LAYERS` does not allow, as 'importer -> imported (layer -> layer)'."""
    allowed = dict(LAYERS)
    found = []
    for module in sorted(graph):
        mine = layer_of(module)
        for target in sorted(graph[module]):
            theirs = layer_of(target)
            parent = any(name.startswith(theirs + ".") for name in allowed[mine])
            if theirs != mine and "*" not in allowed[mine] and theirs not in allowed[mine] \
                    and not parent:
                found.append(f"{module} -> {target} ({mine} may not import {theirs})")
    return found


def test_the_layer_table_points_down():
    order = [name for name, _ in LAYERS]
    assert len(set(order)) == len(order)
    for position, (name, allowed) in enumerate(LAYERS):
        for target in allowed:
            assert target == "*" or target in order[:position], f"{name} -> {target}"


def test_the_graph_sees_imports_inside_functions_and_parent_packages():
    graph = import_graph()
    assert "utils.build" in graph["main"]  # imported inside a function of main.py
    assert "utils.evaluation" in graph["utils.metrics"]  # the parent package of the module
    assert "utils.evaluation.metrics" in graph["utils.metrics"]
    assert "models" not in graph["models.mose"]  # its own package is already running


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_a_cycle_is_found_and_listed():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_imports_point_down_the_layers():
    found = violations(import_graph())
    assert not found, "imports against the layers:\n" + "\n".join(found)


def main() -> int:
    """Print every import cycle and layering violation; exit 1 if there is any."""
    graph = import_graph()
    found, against = cycles(graph), violations(graph)
    edges = sum(len(targets) for targets in graph.values())
    print(f"{len(graph)} modules, {edges} imports")
    for cycle in found:
        print("cycle: " + " -> ".join(cycle))
    for line in against:
        print("against the layers: " + line)
    if not found:
        print("no import cycles")
    if not against:
        print("every import points down the layers")
    return 1 if found or against else 0


if __name__ == "__main__":
    sys.exit(main())
