"""The project's compliance check: ruff, mypy, then the house rules over syntax trees (``python -m tools.check``).

Exit status: 0 when clean, 1 when anything was found, 2 on a bad command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from tools.checks_ast import Finding, run_ast_checks
from tools.linters import SKIPPED, StepResult, mypy_targets, run_mypy, run_ruff

REPO_ROOT = Path(__file__).resolve().parents[1]


class UsageError(Exception):
    """A bad command line, reported with exit status 2."""


@dataclass(frozen=True)
class Report:
    """Every step's outcome, in the order the steps ran."""

    steps: dict[str, StepResult]

    @property
    def ok(self) -> bool:
        """Whether no step failed."""
        return all(step.status != "failed" for step in self.steps.values())

    @property
    def findings(self) -> list[Finding]:
        """All findings, step by step."""
        return [finding for step in self.steps.values() for finding in step.findings]

    def as_json(self) -> str:
        """The report as one JSON object: ``ok``, ``findings`` and each step's status."""
        steps = {name: step.status for name, step in self.steps.items()}
        findings = [asdict(finding) for finding in self.findings]
        return json.dumps({"ok": self.ok, "findings": findings, "steps": steps}, indent=2)

    def summary(self) -> str:
        """One line saying how each step went."""
        steps = ", ".join(f"{name} {step.status}" for name, step in self.steps.items())
        return f"check: {'ok' if self.ok else 'FAILED'} ({steps}; {len(self.findings)} finding(s))"


def run_checks(root: Path, paths: Sequence[Path] = (), *, tools: bool = True) -> Report:
    """Run ruff, mypy and the AST rules over ``paths`` (inside ``root``; default the whole tree)."""
    root = root.resolve()
    relative = [PurePosixPath(path.resolve().relative_to(root).as_posix()) for path in paths]
    steps = {"ruff": SKIPPED, "mypy": SKIPPED}
    if tools:
        steps["ruff"] = run_ruff(root, [path.as_posix() for path in relative])
        typed = mypy_targets(root, relative)
        if typed:
            steps["mypy"] = run_mypy(root, typed)
    findings = run_ast_checks(root, [path.resolve() for path in paths] or None)
    steps["ast"] = StepResult("failed" if findings else "ok", tuple(findings))
    return Report(steps)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check from the command line and return the exit status."""
    args = _parser().parse_args(argv)
    try:
        root = _resolve_root(args.root)
        paths = [_resolve_path(root, path) for path in args.path]
    except UsageError as exc:
        print(f"check: {exc}", file=sys.stderr)
        return 2
    report = run_checks(root, paths, tools=not args.no_tools)
    if args.json:
        print(report.as_json())
    else:
        for finding in report.findings:
            print(finding.render())
        print(report.summary(), file=sys.stderr)
    return 0 if report.ok else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.check", description="Run ruff, mypy and the house rules.")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        help="check only this file or folder (repeatable; relative paths are taken from the root)",
    )
    parser.add_argument("--no-tools", action="store_true", help="skip ruff and mypy, run only the AST rules")
    parser.add_argument("--root", default=str(REPO_ROOT), help="the repository root (default: this checkout)")
    return parser


def _resolve_root(value: str) -> Path:
    root = Path(value).resolve()
    if not root.is_dir():
        raise UsageError(f"root {value!r} is not a directory")
    return root


def _resolve_path(root: Path, value: str) -> Path:
    path = (root / value).resolve()
    if not path.exists():
        raise UsageError(f"path {value!r} does not exist")
    if not path.is_relative_to(root):
        raise UsageError(f"path {value!r} is outside the root {root}")
    return path


if __name__ == "__main__":
    sys.exit(main())
