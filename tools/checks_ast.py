"""The checker's own rules over Python syntax trees: sizes, layer imports and tests that assert nothing."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tools.checks_tests import empty_tests, is_test_module

MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 25
SKIP_DIRS = frozenset(
    {".venv", ".git", "__pycache__", ".netra", "build", "dist", "node_modules", ".mypy_cache", ".ruff_cache"}
)
LENGTH_EXEMPT = (("tests",), ("migrations", "versions"))

_LIBRARIES = ("core", "policies", "gateway", "optimizer", "admin", "migrations")
_PRIVATE = ("cli", "tests", "bench", "tools")
_EVERYTHING = frozenset(_LIBRARIES + _PRIVATE)
# Which project packages each top-level package may import besides itself; stdlib and third-party are always fine.
LAYERS: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "policies": frozenset({"core"}),
    "gateway": frozenset({"core", "policies"}),
    "optimizer": frozenset({"core", "policies"}),
    "admin": frozenset({"core", "policies", "optimizer"}),
    "migrations": frozenset(),
    "cli": frozenset(_LIBRARIES),
    "tests": _EVERYTHING,
    "bench": _EVERYTHING,
    "tools": _EVERYTHING,
}
# Files outside the table (root-level scripts, unknown folders) get what a composition root gets.
_UNLISTED = frozenset(_LIBRARIES)

_Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one place, printed as ``path:line: [rule] message``."""

    path: str
    line: int
    rule: str
    message: str

    def render(self) -> str:
        """The finding as one line of text."""
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


def run_ast_checks(root: Path, targets: Iterable[Path] | None = None) -> list[Finding]:
    """All AST findings for the Python files under ``targets`` (default: the whole tree at ``root``)."""
    findings: list[Finding] = []
    for path in python_files(targets or [root]):
        rel = PurePosixPath(path.relative_to(root).as_posix())
        findings.extend(check_source(rel, path.read_bytes()))
    return sorted(findings)


def python_files(targets: Iterable[Path]) -> list[Path]:
    """The *.py files named by or found under ``targets``, skipping tool and build folders, sorted."""
    found: set[Path] = set()
    for target in targets:
        if target.is_file():
            if target.suffix == ".py":
                found.add(target)
            continue
        for dirpath, dirnames, filenames in os.walk(target):
            dirnames[:] = [name for name in dirnames if name not in SKIP_DIRS]
            found.update(Path(dirpath, name) for name in filenames if name.endswith(".py"))
    return sorted(found)


def check_source(rel: PurePosixPath, source: bytes) -> list[Finding]:
    """Every AST finding for one file, given its path relative to the repo root."""
    path = rel.as_posix()
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as exc:
        line = exc.lineno if isinstance(exc, SyntaxError) and exc.lineno else 1
        return [Finding(path, line, "parse-error", str(exc))]
    findings = list(layer_findings(rel, tree))
    if not _length_exempt(rel):
        findings.extend(length_findings(path, len(source.splitlines()), tree))
    if is_test_module(rel):
        findings.extend(
            Finding(path, test.lineno, "empty-test", f"test {test.name} asserts nothing") for test in empty_tests(tree)
        )
    return findings


def _length_exempt(rel: PurePosixPath) -> bool:
    return any(rel.parts[: len(prefix)] == prefix for prefix in LENGTH_EXEMPT)


def length_findings(path: str, line_count: int, tree: ast.Module) -> Iterator[Finding]:
    """``file-length`` and ``function-length`` findings; a function's length excludes its decorators."""
    if line_count > MAX_FILE_LINES:
        yield Finding(path, 1, "file-length", f"file has {line_count} lines (limit {MAX_FILE_LINES})")
    for node in ast.walk(tree):
        if isinstance(node, _Function):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                message = f"function {node.name} has {length} lines (limit {MAX_FUNCTION_LINES})"
                yield Finding(path, node.lineno, "function-length", message)


def layer_findings(rel: PurePosixPath, tree: ast.Module) -> Iterator[Finding]:
    """``layer`` findings: absolute imports of project packages this file's package may not use."""
    package = rel.parts[0] if len(rel.parts) > 1 else None
    allowed = LAYERS.get(package, _UNLISTED) if package else _UNLISTED
    for line, target in imported_packages(tree):
        if target in _EVERYTHING and target != package and target not in allowed:
            may = ", ".join(sorted(allowed)) or "no project package"
            message = f"{package or rel.as_posix()} may not import {target} (it may import: {may})"
            yield Finding(rel.as_posix(), line, "layer", message)


def imported_packages(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, top-level package) for every absolute import anywhere in the module, functions included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]
