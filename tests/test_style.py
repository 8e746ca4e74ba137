"""
House rules of the source a maintainer follows by reading it: one naming
style for test functions and methods, and C{test-case-name} headers that
name test modules that exist (trial and editors run those).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = sorted((ROOT / "tests").glob("test_*.py"))
SOURCES = sorted([*(ROOT / "ismon").glob("*.py"), *(ROOT / "tests").glob("*.py")])
TEST_NAME = re.compile(r"^test_[a-z0-9_]+$")
HEADER = re.compile(r"-\*-\s*test-case-name:\s*(?P<names>[^*]+?)\s*-\*-")


def _test_functions(path: Path) -> list[str]:
    """Module-level test functions and test methods of classes, as C{line: name}."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    bodies = [tree.body] + [node.body for node in tree.body if isinstance(node, ast.ClassDef)]
    for body in bodies:
        for node in body:
            functions = (ast.FunctionDef, ast.AsyncFunctionDef)
            if isinstance(node, functions) and node.name.startswith("test"):
                found.append(f"{node.lineno}: {node.name}")
    return found


@pytest.mark.parametrize("path", TESTS, ids=lambda p: p.name)
def test_test_names_are_snake_case(path: Path) -> None:
    """Every test function and method is named C{test_snake_case}."""
    wrong = [f for f in _test_functions(path) if not TEST_NAME.match(f.split(": ")[1])]
    assert wrong == [], f"{path.name}: rename to test_snake_case: {wrong}"


def test_every_test_case_name_header_names_an_existing_module() -> None:
    """C{# -*- test-case-name: tests.test_x -*-} headers point at real modules."""
    missing = []
    for path in SOURCES:
        first = path.read_text().split("\n", 1)[0]
        match = HEADER.search(first)
        if match is None:
            continue
        for name in match.group("names").split(","):
            module = ROOT / (name.strip().replace(".", "/") + ".py")
            if not module.is_file():
                missing.append(f"{path.relative_to(ROOT)}: {name.strip()}")
    assert missing == []


def test_the_headers_are_found() -> None:
    """The check above reads the headers at all (a broken regex would pass it)."""
    headers = [p for p in SOURCES if HEADER.search(p.read_text().split("\n", 1)[0])]
    assert len(headers) >= 10
