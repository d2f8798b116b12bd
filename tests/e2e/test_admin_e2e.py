"""The admin app as an operator meets it: `netra users` from a shell, `netra run` serving both apps."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import NETRA, ROOT, Netra, free_port, make_netra

pytestmark = pytest.mark.slow
PASSWORD = "a passphrase nobody guesses"


@pytest.fixture
def netra(tmp_path: Path, fake_url: str) -> Netra:
    made = make_netra(tmp_path, fake_url)
    made.cli("migrate")
    return made


def users(netra: Netra, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`netra users …` with `stdin` piped in."""
    return subprocess.run([*NETRA, "users", *args], cwd=ROOT, env=netra.env, input=stdin, capture_output=True,
                          text=True, timeout=120)


def test_users_create_reads_the_password_from_stdin(netra: Netra) -> None:
    made = users(netra, "create", "Ops@Example.com", "--role", "admin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "ops@example.com" in made.stdout and PASSWORD not in made.stdout + made.stderr
    listed = json.loads(users(netra, "list", "--json").stdout)
    assert [(u["email"], u["role"], u["disabled"]) for u in listed] == [("ops@example.com", "admin", False)]
    assert "password" not in json.dumps(listed)


@pytest.mark.parametrize("stdin, reason", [("", "empty"), ("short\n", "too short")])
def test_users_create_refuses_empty_and_short_passwords(netra: Netra, stdin: str, reason: str) -> None:
    refused = users(netra, "create", "ops@example.com", "--role", "viewer", stdin=stdin)
    assert refused.returncode == 1 and reason in refused.stderr
    assert json.loads(users(netra, "list", "--json").stdout) == []


def test_users_disable_from_the_shell(netra: Netra) -> None:
    users(netra, "create", "ops@example.com", "--role", "viewer", stdin=PASSWORD + "\n")
    assert users(netra, "disable", "OPS@example.com").returncode == 0
    assert json.loads(users(netra, "list", "--json").stdout)[0]["disabled"] is True
    missing = users(netra, "disable", "nobody@example.com")
    assert missing.returncode == 1 and "no user" in missing.stderr


@pytest.fixture
def running(netra: Netra) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    """`netra run` on free ports, its stdout in a file."""
    admin_port, out = free_port(), netra.data_dir / "run.out"
    with out.open("wb") as sink, (netra.data_dir / "run.err").open("wb") as err:
        proc = subprocess.Popen([*NETRA, "run", "--port", str(netra.port), "--admin-port", str(admin_port)],
                                cwd=ROOT, env=netra.env, stdout=sink, stderr=err)
    yield proc, out, admin_port
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    """Until the URL answers 200 (the process must stay up meanwhile)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "netra run exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_run_serves_both_apps_and_says_where(netra: Netra, running: tuple[subprocess.Popen[bytes], Path, int]) -> None:
    proc, out, admin_port = running
    wait_ready(proc, f"http://127.0.0.1:{netra.port}/health/ready")
    wait_ready(proc, f"http://127.0.0.1:{admin_port}/health")
    printed = out.read_text()
    assert f"http://127.0.0.1:{netra.port}/v1" in printed and f"http://127.0.0.1:{admin_port}/login" in printed
    assert "netra users create" in printed and "--role admin" in printed
    users(netra, "create", "ops@example.com", "--role", "admin", stdin=PASSWORD + "\n")
    with httpx.Client(base_url=f"http://127.0.0.1:{admin_port}") as admin:
        login = admin.post("/api/auth/login", json={"email": "ops@example.com", "password": PASSWORD})
        assert login.status_code == 200, login.text
        me = admin.get("/api/me", headers={"authorization": f"Bearer {login.json()['access_token']}"})
        assert me.json()["role"] == "admin"
    assert httpx.get(f"http://127.0.0.1:{netra.port}/api/me").status_code == 404  # the gateway has no admin routes
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{admin_port}/health", timeout=2)


def test_admin_process_ends_when_run_is_killed(
    netra: Netra, running: tuple[subprocess.Popen[bytes], Path, int]
) -> None:
    proc, _, admin_port = running
    wait_ready(proc, f"http://127.0.0.1:{admin_port}/health")
    proc.kill()  # no chance to stop its child: the child notices its parent's pipe close
    proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{admin_port}/health", timeout=1)
        except httpx.ConnectError:
            return
        time.sleep(0.2)
    pytest.fail("the admin process outlived a killed `netra run`")


def test_admin_alone_on_a_fresh_data_dir_says_to_migrate(tmp_path: Path, fake_url: str) -> None:
    fresh = make_netra(tmp_path, fake_url)
    done = subprocess.run([*NETRA, "admin", "--port", "9"], cwd=ROOT, env=fresh.env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "run `netra migrate` first" in done.stderr
