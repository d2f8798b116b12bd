"""The ``empty-test`` rule: a test must assert something, directly or through a helper in its own module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import NamedTuple

ASSERTING_PREFIXES = ("assert", "check", "expect", "verify")
PYTEST_ASSERTIONS = frozenset({"raises", "warns", "fail", "deprecated_call"})

_Function = ast.FunctionDef | ast.AsyncFunctionDef


class _PytestNames(NamedTuple):
    modules: frozenset[str]  # "pytest" and its aliases, for ``pytest.raises``
    functions: frozenset[str]  # local names bound by ``from pytest import raises``


def is_test_module(rel: PurePosixPath) -> bool:
    """Whether the file at ``rel`` (relative to the repo root) is a pytest module under ``tests/``."""
    return rel.parts[:1] == ("tests",) and rel.name.startswith("test_") and rel.suffix == ".py"


def empty_tests(tree: ast.Module) -> Iterator[_Function]:
    """The test functions and ``Test*`` methods in ``tree`` that assert nothing."""
    pytest_names = _pytest_names(tree)
    helpers = {node.name: node for node in tree.body if isinstance(node, _Function)}
    asserting = _asserting_helpers(helpers, pytest_names)
    for test in _tests(tree):
        if not _asserts(test, pytest_names, asserting):
            yield test


def _tests(tree: ast.Module) -> Iterator[_Function]:
    for node in tree.body:
        if isinstance(node, _Function) and node.name.startswith("test"):
            yield node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            yield from (m for m in node.body if isinstance(m, _Function) and m.name.startswith("test"))


def _asserting_helpers(helpers: dict[str, _Function], pytest_names: _PytestNames) -> frozenset[str]:
    # A fixpoint rather than recursion: helpers that call each other in a cycle cannot loop it.
    asserting: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, helper in helpers.items():
            if name not in asserting and _asserts(helper, pytest_names, asserting):
                asserting.add(name)
                changed = True
    return frozenset(asserting)


def _asserts(func: _Function, pytest_names: _PytestNames, asserting: set[str] | frozenset[str]) -> bool:
    for node in ast.walk(func):
        if isinstance(node, ast.Assert) or _is_pytest_assertion(node, pytest_names):
            return True
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            if name.startswith(ASSERTING_PREFIXES):
                return True
            if isinstance(node.func, ast.Name) and name in asserting:
                return True
    return False


def _is_pytest_assertion(node: ast.AST, pytest_names: _PytestNames) -> bool:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id in pytest_names.modules and node.attr in PYTEST_ASSERTIONS
    return isinstance(node, ast.Name) and node.id in pytest_names.functions


def _callee_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _pytest_names(tree: ast.Module) -> _PytestNames:
    modules: set[str] = {"pytest"}
    functions: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            modules.update(alias.asname for alias in node.names if alias.name == "pytest" and alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module == "pytest" and node.level == 0:
            chosen = (alias for alias in node.names if alias.name in PYTEST_ASSERTIONS)
            functions.update(alias.asname or alias.name for alias in chosen)
    return _PytestNames(frozenset(modules), frozenset(functions))
