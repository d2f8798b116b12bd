"""Ruff and mypy, run as subprocesses with the project's config, their JSON output turned into findings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tools.checks_ast import Finding

TYPED_PACKAGES = ("core", "policies", "gateway")
TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step of the check: ``ok``, ``failed`` or ``skipped``, and what it found."""

    status: str
    findings: tuple[Finding, ...] = ()


SKIPPED = StepResult("skipped")


def tool_command(name: str) -> list[str]:
    """The command that runs ``name``: the executable beside this Python, else ``python -m name``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-m", name]


def run_ruff(root: Path, targets: Sequence[str] = ()) -> StepResult:
    """``ruff check`` over ``targets`` (paths relative to ``root``; default the whole tree)."""
    args = ["check", "--output-format=json", "--force-exclude", *(targets or ["."])]
    return _run("ruff", args, root, lambda output: parse_ruff(output, root))


def run_mypy(root: Path, targets: Sequence[str]) -> StepResult:
    """``mypy`` over ``targets`` (paths relative to ``root``), with the config found at ``root``."""
    return _run("mypy", ["-O", "json", *targets], root, parse_mypy)


def mypy_targets(root: Path, targets: Sequence[PurePosixPath] = ()) -> list[str]:
    """The typed packages that exist under ``root``, narrowed to the parts of them inside ``targets`` if given."""
    existing = [name for name in TYPED_PACKAGES if (root / name).is_dir()]
    if not targets:
        return existing
    chosen: list[str] = []
    for target in targets:
        if not target.parts:
            picked = existing
        else:
            typed = target.parts[0] in existing and (target.suffix == ".py" or (root / target).is_dir())
            picked = [target.as_posix()] if typed else []
        chosen.extend(path for path in picked if path not in chosen)
    return chosen


def parse_ruff(output: str, root: Path) -> list[Finding]:
    """Findings from ``ruff check --output-format=json``; file names made relative to ``root``."""
    try:
        items = json.loads(output or "[]")
    except ValueError:
        return []
    findings = []
    for item in items:
        line = (item.get("location") or {}).get("row") or 1
        rule = f"ruff:{item.get('code') or 'error'}"
        findings.append(Finding(_relative(item["filename"], root), line, rule, item["message"]))
    return sorted(findings)


def parse_mypy(output: str) -> list[Finding]:
    """Findings from ``mypy -O json`` (one object a line); notes are dropped."""
    findings = []
    for text in output.splitlines():
        if not text.startswith("{"):
            continue
        item = json.loads(text)
        if item.get("severity") == "note":
            continue
        path = PurePosixPath(item["file"].replace("\\", "/")).as_posix()
        rule = f"mypy:{item.get('code') or 'error'}"
        findings.append(Finding(path, max(item.get("line") or 1, 1), rule, item["message"]))
    return sorted(findings)


def _relative(filename: str, root: Path) -> str:
    return Path(os.path.relpath(filename, root.resolve())).as_posix()


def _run(name: str, args: list[str], root: Path, parse: Callable[[str], list[Finding]]) -> StepResult:
    command = [*tool_command(name), *args]
    try:
        # Trusted input: the command is this interpreter's own ruff/mypy and paths the user named.
        done = subprocess.run(  # noqa: S603
            command, cwd=root, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return StepResult("failed", (Finding(".", 1, name, f"{name} timed out after {TIMEOUT_SECONDS}s"),))
    findings = parse(done.stdout)
    if done.returncode != 0 and not findings:
        detail = " ".join((done.stderr.strip() or done.stdout.strip() or "no output").split())[:500]
        findings = [Finding(".", 1, name, f"{name} exited with status {done.returncode}: {detail}")]
    return StepResult("failed" if findings else "ok", tuple(findings))
