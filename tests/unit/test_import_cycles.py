"""No import cycle between the project's modules, computed from the source (AST).

A cycle, even a type-only one under `if TYPE_CHECKING:`, means two modules are really
one: neither can be read, tested or moved without the other, and a runtime cycle works
only as long as the import order happens to suit it. Every `import` and `from … import`
counts, at module level or inside a function; `from pkg import name` points at the
submodule `pkg.name` when there is one, else at `pkg` itself. A package `__init__` that
is only a docstring imports nothing, so an edge to it cannot close a cycle: it is left out.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("promenade_core", "promenade_cli", "promenade_web", "promenade_hostsd")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name (a package is its __init__)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _only_docstring(tree: ast.Module) -> bool:
    body = tree.body
    return len(body) <= 1 and all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module a `from … import` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


def _targets(module: str, is_package: bool, node: ast.AST, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in known:
                yield alias.name
    elif isinstance(node, ast.ImportFrom):
        base = _base(module, is_package, node)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in known:
                yield submodule
            elif base in known:
                yield base


def import_edges(files: dict[str, Path]) -> list[Edge]:
    """Every import between the given modules, wherever it sits in the file."""
    trees = {name: ast.parse(path.read_text(encoding="utf-8"), str(path))
             for name, path in files.items()}
    silent = {name for name, path in files.items()
              if path.name == "__init__.py" and _only_docstring(trees[name])}
    known = set(files)
    edges = []
    for name, tree in trees.items():
        is_package = files[name].name == "__init__.py"
        for node in ast.walk(tree):
            for target in _targets(name, is_package, node, known):
                if target != name and target not in silent:
                    edges.append(Edge(name, target, getattr(node, "lineno", 0)))
    return edges


def strongly_connected(nodes: Iterable[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module: each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def _shortest_path(graph: dict[str, set[str]], start: str, goal: str,
                   allowed: set[str]) -> list[str] | None:
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while (prev := came_from[path[-1]]) is not None:
                path.append(prev)
            return path[::-1]
        for nxt in sorted(graph.get(node, ())):
            if nxt in allowed and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return None


def find_cycles(edges: list[Edge]) -> list[list[str]]:
    """Cycles that between them use every edge inside a cyclic component: for each such
    edge a → b, the shortest way from b back to a. Rotated to start at their smallest
    module, so each is listed once."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    nodes = {e.source for e in edges} | {e.target for e in edges}
    cycles: dict[tuple[str, ...], None] = {}
    for component in strongly_connected(nodes, graph):
        members = set(component)
        for source in component:
            for target in sorted(graph.get(source, set()) & members):
                back = _shortest_path(graph, target, source, members)
                if back is None:
                    continue
                cycle = [source, *back[:-1]]
                turn = cycle.index(min(cycle))
                cycles[tuple(cycle[turn:] + cycle[:turn])] = None
    return [list(c) for c in cycles]


def describe_cycle(cycle: list[str], edges: list[Edge]) -> str:
    """`a -> b -> a`, then where each import is (`a:12 imports b`)."""
    lines: dict[tuple[str, str], list[int]] = {}
    for edge in edges:
        lines.setdefault((edge.source, edge.target), []).append(edge.line)
    steps = list(zip(cycle, [*cycle[1:], cycle[0]], strict=True))
    where = "; ".join(
        f"{a}:{','.join(str(n) for n in sorted(set(lines[(a, b)])))} imports {b}" for a, b in steps)
    return f"{' -> '.join([*cycle, cycle[0]])}\n    ({where})"


@pytest.fixture(scope="module")
def project() -> tuple[list[Edge], list[list[str]]]:
    """The graph of all four packages at once: a cycle may cross from one to another."""
    files = module_files(ROOT, PACKAGES)
    assert len(files) > 50, sorted(files)   # the walk found the project
    edges = import_edges(files)
    return edges, find_cycles(edges)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_touches(package: str,
                                 project: tuple[list[Edge], list[list[str]]]) -> None:
    """One test per package, so the failing one names whose cycle it is."""
    edges, found = project
    cycles = [c for c in found if any(m.split(".")[0] == package for m in c)]
    report = "\n".join(describe_cycle(cycle, edges) for cycle in cycles)
    if cycles:
        print(f"{len(cycles)} import cycle(s):\n{report}")
    assert not cycles, f"{len(cycles)} import cycle(s):\n{report}"


# -- the detector itself, on a tiny package written for the test ------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(("importer", "why"), [
    ("from pkg.a import thing\n", "module level"),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import Thing\n",
     "type-only"),
    ("def late():\n    import pkg.a\n", "inside a function"),
    ("from pkg import a\n", "a submodule named by from-import"),
    ("from . import a\n", "relative"),
])
def test_the_detector_sees_every_kind_of_import(tmp_path: Path, importer: str,
                                               why: str) -> None:
    _write(tmp_path, {"pkg/__init__.py": '"""Docs only."""\n',
                      "pkg/a.py": "from pkg.b import other\n",
                      "pkg/b.py": importer})
    edges = import_edges(module_files(tmp_path, ["pkg"]))
    assert find_cycles(edges) == [["pkg.a", "pkg.b"]], why
    assert "pkg.a -> pkg.b -> pkg.a" in describe_cycle(["pkg.a", "pkg.b"], edges)


def test_the_detector_lists_each_cycle_of_a_component(tmp_path: Path) -> None:
    _write(tmp_path, {"pkg/__init__.py": "",
                      "pkg/a.py": "import pkg.b\nimport pkg.c\n",
                      "pkg/b.py": "import pkg.a\n",
                      "pkg/c.py": "from pkg.a import x\n",
                      "pkg/d.py": "import pkg.a\n"})
    cycles = find_cycles(import_edges(module_files(tmp_path, ["pkg"])))
    assert sorted(cycles) == [["pkg.a", "pkg.b"], ["pkg.a", "pkg.c"]]


def test_a_docstring_only_package_init_creates_no_edge(tmp_path: Path) -> None:
    """`from pkg import name` where name is not a module points at pkg's __init__; an
    __init__ that imports its submodules does take part."""
    _write(tmp_path, {"quiet/__init__.py": '"""Docs only."""\n',
                      "quiet/a.py": "from quiet import VERSION\n",
                      "loud/__init__.py": "from loud.a import thing\n",
                      "loud/a.py": "from loud import VERSION\n"})
    cycles = find_cycles(import_edges(module_files(tmp_path, ["quiet", "loud"])))
    assert cycles == [["loud", "loud.a"]]
