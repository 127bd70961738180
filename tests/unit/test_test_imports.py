"""Test modules share helpers through tests/support only, never through each other.

Importing a helper from another test module re-collects that module's tests under a new
name in some runners and ties unrelated tests together; the issue found
`from tests.test_web_api import Dashboard` and three signatures of `wait_for`.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def _imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def _is_test_module(name: str) -> bool:
    return any(part.startswith("test_") for part in name.split("."))


def test_no_test_module_imports_another_test_module() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)} imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in _imported_modules(ast.parse(path.read_text(), str(path)))
        if name.startswith("tests.") and _is_test_module(name)
    ]
    assert offenders == []


def test_one_wait_for_and_one_free_port_in_the_suite() -> None:
    defined: dict[str, list[str]] = {"wait_for": [], "free_port": []}
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and node.name in defined:
                defined[node.name].append(str(path.relative_to(TESTS.parent)))
    assert defined == {"wait_for": ["tests/support/waits.py"],
                       "free_port": ["tests/support/net.py"]}
