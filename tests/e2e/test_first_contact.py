"""What a newcomer meets first: one clear line for every start-up mistake, the version, defaults in --help."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import NETRA, ROOT, make_netra

UNREACHABLE = "http://127.0.0.1:9/v1"
BROKEN = [
    pytest.param(
        "providers:\n  - {name: a, kind: openai}\n  - {name: b, kind: opnai}\n",
        "netra.yaml:3: providers[1].kind: 'opnai' is not one of openai, azure, anthropic",
        id="unknown-kind",
    ),
    pytest.param(
        "providers:\n  - name: a\n    kind: openai\n   base_url: x\n",
        "netra.yaml:4:4: YAML syntax error: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection that starts at line 2)",
        id="yaml-syntax",
    ),
    pytest.param(
        f"providers:\n  - name: a\n    kind: openai\n    base: {UNREACHABLE}\n",
        "netra.yaml:4: providers[0].base: unknown field; did you mean base_url?",
        id="mistyped-field",
    ),
    pytest.param(
        "providers:\n  - {name: a, kind: openai, base_url: '${NO_SUCH_URL}'}\n",
        "netra.yaml:2: providers[0].base_url: ${NO_SUCH_URL} is not set in the environment (or is empty); "
        "export NO_SUCH_URL, or write ${NO_SUCH_URL:-} for an empty value",
        id="unset-variable",
    ),
]


def _netra(tmp_path: Path, *args: str, config: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    netra = make_netra(tmp_path, UNREACHABLE.removesuffix("/v1"), **env)
    if config is not None:
        (tmp_path / "netra.yaml").write_text(config)
    return subprocess.run([*NETRA, *args], cwd=ROOT, env=netra.env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", ["run", "gateway"])
@pytest.mark.parametrize(("config", "message"), BROKEN)
def test_a_broken_config_stops_the_server_with_one_line(
    tmp_path: Path, command: str, config: str, message: str
) -> None:
    done = _netra(tmp_path, command, "--port", "9", config=config)
    assert done.returncode == 1
    assert done.stderr == f"netra: {tmp_path}/{message}\n"
    assert not (tmp_path / "data").exists()


def test_gateway_on_a_fresh_data_dir_says_to_migrate(tmp_path: Path) -> None:
    done = _netra(tmp_path, "gateway", "--port", "9")
    db = tmp_path / "data" / "netra.db"
    assert done.returncode == 1
    expected = f"netra: no database yet at {db}: run `netra migrate` first (or `netra run`, which migrates)\n"
    assert done.stderr == expected


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    done = _netra(tmp_path, "run", NETRA_PORT="eighty")
    assert done.returncode == 1
    assert done.stderr == (
        "netra: NETRA_PORT: Input should be a valid integer, unable to parse string as an integer (got 'eighty')\n"
    )


def test_version_is_the_installed_one(tmp_path: Path) -> None:
    done = _netra(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout == f"netra {version('netra')}\n"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("gateway", ["(default: 1)", "(default: $NETRA_PORT, else 8080)", "(default: $NETRA_HOST, else 127.0.0.1)"]),
        ("tenants create", ["(default: free)"]),
        ("keys create", ["(default: every model)", "(default: never expires)"]),
        ("ledger summary", ["(default: every tenant)", "(default: now)"]),
    ],
)
def test_help_shows_defaults(tmp_path: Path, command: str, shown: list[str]) -> None:
    done = _netra(tmp_path, *command.split(), "--help")
    text = " ".join(done.stdout.split())
    assert done.returncode == 0 and all(s in text for s in shown), done.stdout


@pytest.mark.parametrize("command", ["run", "migrate", "tenants list", "keys list --tenant acme"])
def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path, command: str) -> None:
    url = "postgresql+asyncpg://netra:hunter2@127.0.0.1:9/netra"
    done = _netra(tmp_path, *command.split(), NETRA_DATABASE_URL=url)
    assert done.returncode == 1
    assert done.stderr.startswith("netra: cannot use the database postgresql+asyncpg://netra:***@127.0.0.1:9/netra: ")
    assert done.stderr.count("\n") == 1 and "hunter2" not in done.stderr


def test_a_provider_without_its_key_is_not_served_and_says_why(tmp_path: Path) -> None:
    netra = make_netra(tmp_path, UNREACHABLE.removesuffix("/v1"))
    (tmp_path / "netra.yaml").write_text(
        f"providers:\n  - {{name: up, kind: openai, base_url: '{UNREACHABLE}', api_key: sk-some-key-123}}\n"
        "  - {name: nokey, kind: anthropic, base_url: 'http://127.0.0.1:9', api_key: '${NO_SUCH_KEY}'}\n"
        "models:\n  - {name: served, provider: up}\n  - {name: withheld, provider: nokey}\n"
    )
    netra.cli("migrate")
    netra.cli("tenants", "create", "t")
    auth = {"Authorization": f"Bearer {netra.cli('keys', 'create', '--tenant', 't').stdout.strip()}"}
    netra.start()
    try:
        listed = httpx.get(f"{netra.url}/models", headers=auth, timeout=10).json()
        call = {"model": "withheld", "messages": [{"role": "user", "content": "hi"}]}
        refused = httpx.post(f"{netra.url}/chat/completions", json=call, headers=auth, timeout=10)
    finally:
        netra.stop()
    assert [m["id"] for m in listed["data"]] == ["served"]
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    assert "credential is not set" in refused.json()["error"]["message"]
    assert "NO_SUCH_KEY" not in refused.text  # the variable's name stays in the operator's log
    lines = [json.loads(line) for line in netra.log.read_text().splitlines() if line.startswith("{")]
    assert [(line["level"], line["msg"]) for line in lines if line["logger"] == "netra.config"] == [(
        "warning",
        f"{tmp_path}/netra.yaml:3: providers[1].api_key: ${{NO_SUCH_KEY}} is not set in the environment (or is "
        "empty), so provider nokey and its models (withheld) are not served; set it and restart, or write "
        "${NO_SUCH_KEY:-} if it needs no key",
    )]
