"""The compliance checker (tools.check) on tiny trees built in a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path, PurePosixPath

import pytest

from tools.check import REPO_ROOT, main, run_checks
from tools.checks_ast import Finding, run_ast_checks
from tools.linters import mypy_targets, parse_mypy, run_ruff, tool_command


def write(root: Path, rel: str, text: str) -> Path:
    """Write ``text`` to ``root/rel``, creating folders."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def function_source(name: str, lines: int) -> str:
    """A function of exactly ``lines`` lines, ``def`` line included."""
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 2))
    return f"def {name}() -> int:\n{body}    return 0\n"


def rules(findings: list[Finding]) -> list[tuple[str, int, str]]:
    """(path, line, rule) of each finding, for compact comparisons."""
    return [(f.path, f.line, f.rule) for f in findings]


# --- sizes -----------------------------------------------------------------------------------------------------------


def test_file_over_300_lines_is_flagged(tmp_path: Path) -> None:
    write(tmp_path, "core/big.py", "x = 1\n" * 301)
    write(tmp_path, "core/ok.py", "x = 1\n" * 300)
    assert rules(run_ast_checks(tmp_path)) == [("core/big.py", 1, "file-length")]


def test_function_over_25_lines_is_flagged(tmp_path: Path) -> None:
    write(tmp_path, "core/f.py", "\n\n" + function_source("long", 26) + "\n" + function_source("fine", 25))
    findings = run_ast_checks(tmp_path)
    assert rules(findings) == [("core/f.py", 3, "function-length")]
    assert "long has 26 lines" in findings[0].message


def test_methods_async_and_nested_functions_are_measured(tmp_path: Path) -> None:
    method = textwrap.indent("async " + function_source("method", 26), "    ")  # lines 2-27
    inner = textwrap.indent(function_source("inner", 26), "    ")  # lines 31-56, inside outer at line 30
    write(tmp_path, "gateway/m.py", f"class C:\n{method}\n\ndef outer() -> None:\n{inner}")
    findings = run_ast_checks(tmp_path)
    assert [(f.line, f.rule) for f in findings] == [
        (2, "function-length"),
        (30, "function-length"),
        (31, "function-length"),
    ]
    assert "outer has 27 lines" in findings[1].message


def test_decorators_do_not_count_towards_function_length(tmp_path: Path) -> None:
    write(
        tmp_path,
        "core/d.py",
        "import functools\n\n\n@functools.cache\n@functools.wraps(print)\n" + function_source("f", 25),
    )
    assert run_ast_checks(tmp_path) == []


@pytest.mark.parametrize("rel", ["tests/unit/test_big.py", "tests/helpers.py", "migrations/versions/0001_big.py"])
def test_tests_and_migration_versions_are_exempt_from_length(tmp_path: Path, rel: str) -> None:
    write(tmp_path, rel, "def test_f() -> None:\n" + "    assert True\n" * 400)
    assert run_ast_checks(tmp_path) == []


def test_migrations_outside_versions_are_measured(tmp_path: Path) -> None:
    write(tmp_path, "migrations/env.py", function_source("run", 26))
    assert rules(run_ast_checks(tmp_path)) == [("migrations/env.py", 1, "function-length")]


# --- layers ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "source", "line"),
    [
        ("core/a.py", "import os\nimport gateway.app\n", 2),
        ("core/a.py", "from policies.engine import decide\n", 1),
        ("policies/a.py", "from gateway import app\n", 1),
        ("gateway/a.py", "from admin.app import create_app\n", 1),
        ("gateway/a.py", "import optimizer\n", 1),
        ("admin/a.py", "from gateway.app import create_app\n", 1),
        ("optimizer/a.py", "import admin.pages\n", 1),
        ("migrations/env.py", "from core.models import Base\n", 1),
        ("gateway/a.py", "def f() -> None:\n    from admin import app\n", 2),
        ("gateway/a.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from admin import app\n", 3),
        ("admin/a.py", "import cli.main\n", 1),
        ("gateway/a.py", "from tests.fake_upstream import serve\n", 1),
        ("core/a.py", "import tools.check\n", 1),
        ("cli/main.py", "import tests.unit\n", 1),
        ("cli/main.py", "from bench import run\n", 1),
        ("setup.py", "import tests\n", 1),
    ],
)
def test_forbidden_imports_are_flagged(tmp_path: Path, rel: str, source: str, line: int) -> None:
    write(tmp_path, rel, source)
    assert rules(run_ast_checks(tmp_path)) == [(rel, line, "layer")]


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("gateway/a.py", "import core.settings\nfrom policies.engine import decide\nimport gateway.app\n"),
        ("admin/a.py", "from optimizer.agents import run\nfrom core import db\nfrom policies import store\n"),
        ("optimizer/a.py", "from policies.simulate import simulate\n"),
        ("core/a.py", "from . import errors\nfrom .db import session\nfrom core.errors import NetraError\n"),
        ("core/a.py", "import os\nimport sqlalchemy\nfrom pydantic import BaseModel\nimport coreutils\n"),
        ("cli/main.py", "import admin.app\nimport gateway.app\nfrom migrations import env\nfrom cli import run\n"),
        ("tests/unit/test_a.py", "import bench\nimport tools.check\nfrom cli.main import main\nimport admin\n"),
        ("bench/run.py", "from tests.fake_upstream import serve\nimport gateway\n"),
        ("tools/check.py", "import tests\nimport cli\n"),
    ],
)
def test_allowed_imports_are_not_flagged(tmp_path: Path, rel: str, source: str) -> None:
    write(tmp_path, rel, source)
    assert run_ast_checks(tmp_path) == []


def test_layer_message_names_both_packages(tmp_path: Path) -> None:
    write(tmp_path, "gateway/a.py", "import admin\n")
    [finding] = run_ast_checks(tmp_path)
    assert finding.message == "gateway may not import admin (it may import: core, policies)"


# --- tests that assert nothing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "    with pytest.raises(ValueError):\n        int('x')\n",
        "    pytest.fail('never')\n",
        "    with pytest.warns(UserWarning):\n        pass\n",
        "    assert_rows([])\n",
        "    expect_status(200)\n",
        "    mock.assert_called_once_with(1)\n",
        "    await verify(client)\n",
        "    checker.check_all()\n",
        "    helper()\n",
        "    indirect()\n",
        "    x = 1\n    assert x == 1\n",
    ],
)
def test_tests_that_assert_are_not_flagged(tmp_path: Path, body: str) -> None:
    helpers = "def helper() -> None:\n    assert True\n\n\ndef indirect() -> None:\n    helper()\n\n\n"
    write(tmp_path, "tests/unit/test_a.py", f"import pytest\n\n\n{helpers}async def test_a() -> None:\n{body}")
    assert run_ast_checks(tmp_path) == []


@pytest.mark.parametrize(
    "body",
    [
        "    x = 1\n",
        "    pass\n",
        "    quiet()\n",
        "    looping()\n",
        "    pytest.skip('later')\n",
        "    client.get('/')\n",
    ],
)
def test_tests_that_assert_nothing_are_flagged(tmp_path: Path, body: str) -> None:
    helpers = "def quiet() -> None:\n    print(1)\n\n\ndef looping() -> None:\n    looping()\n    quiet()\n\n\n"
    write(tmp_path, "tests/unit/test_a.py", f"import pytest\n\n\n{helpers}def test_a() -> None:\n{body}")
    findings = run_ast_checks(tmp_path)
    assert rules(findings) == [("tests/unit/test_a.py", 13, "empty-test")]
    assert findings[0].message == "test test_a asserts nothing"


def test_methods_of_test_classes_are_checked(tmp_path: Path) -> None:
    source = (
        "class TestThing:\n"
        "    def test_ok(self) -> None:\n        self.assertEqual(1, 1)\n\n"
        "    def test_empty(self) -> None:\n        self.thing = 1\n\n"
        "    def helper(self) -> None:\n        pass\n\n\n"
        "class Helper:\n    def test_not_a_test(self) -> None:\n        pass\n"
    )
    write(tmp_path, "tests/test_thing.py", source)
    assert rules(run_ast_checks(tmp_path)) == [("tests/test_thing.py", 5, "empty-test")]


def test_mutually_recursive_helpers_that_assert_count(tmp_path: Path) -> None:
    helpers = (
        "def a(n: int) -> None:\n    b(n)\n\n\ndef b(n: int) -> None:\n    if n:\n        a(n - 1)\n    assert n >= 0\n"
    )
    write(tmp_path, "tests/test_r.py", helpers + "\n\ndef test_r() -> None:\n    a(3)\n")
    assert run_ast_checks(tmp_path) == []


def test_pytest_aliases_are_understood(tmp_path: Path) -> None:
    source = (
        "import pytest as pt\nfrom pytest import raises as r\n\n\n"
        "def test_a() -> None:\n    with pt.raises(KeyError):\n        {}['x']\n\n\n"
        "def test_b() -> None:\n    with r(KeyError):\n        {}['x']\n"
    )
    write(tmp_path, "tests/test_alias.py", source)
    assert run_ast_checks(tmp_path) == []


@pytest.mark.parametrize("rel", ["tests/helpers.py", "tests/unit/conftest.py", "core/test_core.py", "bench/test_b.py"])
def test_only_test_modules_under_tests_are_checked_for_asserts(tmp_path: Path, rel: str) -> None:
    write(tmp_path, rel, "def test_nothing() -> None:\n    pass\n")
    assert run_ast_checks(tmp_path) == []


# --- files, paths and the command line -------------------------------------------------------------------------------


def test_tool_and_build_folders_are_skipped(tmp_path: Path) -> None:
    for folder in (".venv/lib", ".git", "core/__pycache__", ".netra", "build", "dist", "node_modules/x"):
        write(tmp_path, f"{folder}/bad.py", "import gateway\n" + "x = 1\n" * 400)
    assert run_ast_checks(tmp_path) == []


def test_syntax_errors_are_reported_not_raised(tmp_path: Path) -> None:
    write(tmp_path, "core/broken.py", "x = 1\ndef f(:\n")
    assert rules(run_ast_checks(tmp_path)) == [("core/broken.py", 2, "parse-error")]


def test_paths_restrict_the_ast_checks(tmp_path: Path) -> None:
    write(tmp_path, "core/a.py", "import gateway\n")
    write(tmp_path, "core/sub/b.py", "import admin\n")
    write(tmp_path, "policies/c.py", "import gateway\n")
    report = run_checks(tmp_path, [tmp_path / "core/sub", tmp_path / "policies/c.py"], tools=False)
    assert rules(report.findings) == [("core/sub/b.py", 1, "layer"), ("policies/c.py", 1, "layer")]


def test_json_output_shape_and_exit_status_on_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "core/a.py", "import gateway\n")
    assert main(["--no-tools", "--root", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "ok": False,
        "findings": [
            {
                "path": "core/a.py",
                "line": 1,
                "rule": "layer",
                "message": "core may not import gateway (it may import: no project package)",
            }
        ],
        "steps": {"ruff": "skipped", "mypy": "skipped", "ast": "failed"},
    }


def test_text_output_and_exit_status_when_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "gateway/a.py", "import core\n")
    write(tmp_path, "core/b.py", "import gateway\n")
    assert main(["--no-tools", "--root", str(tmp_path), "--path", "gateway"]) == 0
    assert main(["--no-tools", "--root", str(tmp_path)]) == 1
    assert (
        capsys.readouterr().out
        == "core/b.py:1: [layer] core may not import gateway (it may import: no project package)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [["--path", "missing"], ["--path", "/"], ["--root", "/nonexistent-netra-root"]],
)
def test_bad_paths_are_usage_errors(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-tools", "--root", str(tmp_path), *argv]) == 2
    assert capsys.readouterr().err.startswith("check: ")


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--bogus"])
    assert exit_info.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_runs_as_a_module(tmp_path: Path) -> None:
    write(tmp_path, "tests/test_a.py", "def test_a() -> None:\n    pass\n")
    command = [sys.executable, "-m", "tools.check", "--no-tools", "--root", str(tmp_path), "--path", "tests", "--json"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert json.loads(done.stdout)["findings"][0]["rule"] == "empty-test"


# --- ruff and mypy ---------------------------------------------------------------------------------------------------


def test_tools_resolve_beside_the_interpreter_or_as_modules() -> None:
    assert tool_command("ruff")[0] in {str(Path(sys.executable).parent / "ruff"), sys.executable}
    assert tool_command("no-such-tool-netra") == [sys.executable, "-m", "no-such-tool-netra"]


def test_ruff_findings_are_relative_to_the_root(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[tool.ruff.lint]\nselect = ["F"]\n')
    write(tmp_path, "core/a.py", '"""A."""\n\nimport os\n')
    result = run_ruff(tmp_path)
    assert result.status == "failed"
    assert rules(list(result.findings)) == [("core/a.py", 3, "ruff:F401")]
    write(tmp_path, "core/a.py", '"""A."""\n')
    assert run_ruff(tmp_path, ["core"]).status == "ok"


def test_mypy_targets_follow_the_typed_packages_and_paths(tmp_path: Path) -> None:
    for name in ("core", "gateway", "admin"):
        (tmp_path / name).mkdir()
    write(tmp_path, "core/sql/schema.sql", "")
    assert mypy_targets(tmp_path) == ["core", "gateway"]
    assert mypy_targets(tmp_path, [PurePosixPath(".")]) == ["core", "gateway"]
    paths = [PurePosixPath(p) for p in ("core/a.py", "admin", "tests", "core/sql/schema.sql", "core/a.py")]
    assert mypy_targets(tmp_path, paths) == ["core/a.py"]
    assert mypy_targets(tmp_path, [PurePosixPath("admin")]) == []


def test_mypy_json_lines_become_findings_without_notes() -> None:
    output = "\n".join(
        [
            '{"file": "core/a.py", "line": 4, "message": "Bad", "code": "arg-type", "severity": "error"}',
            '{"file": "core/a.py", "line": 4, "message": "See docs", "code": null, "severity": "note"}',
            "Found 1 error in 1 file (checked 2 source files)",
        ]
    )
    assert parse_mypy(output) == [Finding("core/a.py", 4, "mypy:arg-type", "Bad")]
