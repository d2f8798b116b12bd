"""`netra policies …` end to end, while Netra runs, as an operator scripts it."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
from pathlib import Path

import pytest
from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError

from tests.e2e.conftest import Deployment
from tests.e2e.harness import NETRA, ROOT
from tests.unit.helpers import closed_port

IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("NETRA_TEST_REDIS", "redis://127.0.0.1:6379/0")
TWO = """
kind: cache
name: deterministic chat for acme
priority: 10
match: {tenants: [acme], models: [gpt-4o-mini], endpoints: [chat/completions], temperature: {max: 0}}
ttl: 1h                      # 30s, 15m, 1h, 7d
cache_nondeterministic: false  # true: also cache requests with temperature > 0 and no seed
---
kind: route
name: cheaper summaries
match: {tags: [summary]}
targets: [{model: gpt-4o-mini}]
"""


def write(tmp_path: Path, text: str, name: str = "policies.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def policies(deployment: Deployment, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`netra policies ARGS` with the running instance's settings (plus `env`)."""
    return subprocess.run(
        [*NETRA, "policies", *args], cwd=ROOT, env={**deployment.netra.env, **(env or {})},
        capture_output=True, text=True, timeout=120,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def listed(deployment: Deployment, *args: str) -> dict[str, dict[str, object]]:
    return {p["id"]: p for p in json.loads(ok(policies(deployment, "list", "--json", *args)))}


def test_a_policy_goes_from_file_to_active_to_retired_with_its_history(deployment: Deployment, tmp_path: Path) -> None:
    out = ok(policies(deployment, "add", write(tmp_path, TWO)))
    cache_id, route_id = out.splitlines()
    assert out == f"{cache_id}\n{route_id}\n" and cache_id != route_id
    assert {listed(deployment)[i]["status"] for i in (cache_id, route_id)} == {"proposed"}

    assert f"{cache_id} v1" in ok(policies(deployment, "activate", cache_id, "--by", "agent:run-9"))
    assert list(listed(deployment, "--status", "active")) == [cache_id]
    edited = write(tmp_path, TWO.split("---")[0].replace("ttl: 1h", "ttl: 15m"), "edit.yaml")
    assert "v2" in ok(policies(deployment, "edit", cache_id, edited)) and "active" in ok(policies(deployment, "list"))
    ok(policies(deployment, "retire", cache_id))

    shown = json.loads(ok(policies(deployment, "show", cache_id, "--json")))
    me = f"human:{getpass.getuser()}"
    assert [(v["version"], v["status"], v["document"]["ttl"]) for v in shown["versions"]] == [
        (1, "superseded", 3600), (2, "retired", 900),
    ]
    assert [(e["version"], e["action"], e["actor"]) for e in shown["events"]] == [
        (1, "added", me), (1, "activated", "agent:run-9"), (2, "edited", me), (2, "activated", me), (2, "retired", me),
    ]
    assert listed(deployment, "--status", "retired")[cache_id]["version"] == 2
    text = ok(policies(deployment, "show", cache_id))
    assert "# version 1: superseded" in text and "ttl: 900" in text and "agent:run-9" in text


def test_show_prints_each_version_as_a_file_edit_accepts(deployment: Deployment, tmp_path: Path) -> None:
    (pid,) = ok(policies(deployment, "add", write(tmp_path, TWO.split("---")[1]))).split()
    version_one = ok(policies(deployment, "show", pid)).split("\nVERSION")[0].split("\n", 1)[1]
    assert "cheaper summaries" in ok(policies(deployment, "edit", pid, write(tmp_path, version_one, "again.yaml")))
    assert listed(deployment)[pid]["version"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "FILE:kind: cache\nname: x\nttl: 1h\nttel: 2\n"), "policies.yaml:4: ttel: unknown field"),
        (("add", "/nonexistent/policies.yaml"), "cannot read /nonexistent/policies.yaml"),
        (("activate", "pol_nope"), "no policy with id 'pol_nope'"),
        (("retire", "pol_nope", "--by", "alice"), "--by 'alice': use human:<name> or agent:<run id>"),
        (("show", "pol_nope"), "no policy with id 'pol_nope'"),
        (("edit", "pol_nope", "FILE:" + TWO), "an edit takes exactly one"),
    ],
)
def test_mistakes_are_one_line_and_status_1(
    deployment: Deployment, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    args = tuple(write(tmp_path, a.removeprefix("FILE:")) if a.startswith("FILE:") else a for a in args)
    done = policies(deployment, *args)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr and done.stderr.startswith("netra: ")


def test_a_kind_never_changes_in_an_edit(deployment: Deployment, tmp_path: Path) -> None:
    cache_id, _ = ok(policies(deployment, "add", write(tmp_path, TWO))).split()
    done = policies(deployment, "edit", cache_id, write(tmp_path, TWO.split("---")[1], "route.yaml"))
    assert done.returncode == 1 and "keeps its kind" in done.stderr
    assert listed(deployment)[cache_id]["version"] == 1


def received(pubsub: PubSub, count: int) -> list[int]:
    """The first `count` notices' payloads (a subscribe confirmation reads as None and is skipped)."""
    payloads: list[int] = []
    for _ in range(count + 5):
        message = pubsub.get_message(timeout=5)
        if message is not None:
            payloads.append(int(message["data"]))
        if len(payloads) == count:
            break
    return payloads


def test_every_change_is_announced_on_redis(deployment: Deployment, tmp_path: Path) -> None:
    client = Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=3)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        client.close()
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc} (CI=true: services are required)")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("netra:policies")
    try:
        env = {"NETRA_REDIS_URL": REDIS_URL}
        (pid,) = ok(policies(deployment, "add", write(tmp_path, TWO.split("---")[1]), env=env)).split()
        ok(policies(deployment, "activate", pid, env=env))
        counters = received(pubsub, 2)
    finally:
        pubsub.close()
        client.close()
    assert len(counters) == 2 and counters[1] == counters[0] + 1  # the store's change counter, one per change


def test_an_unreachable_redis_only_warns(deployment: Deployment, tmp_path: Path) -> None:
    env = {"NETRA_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}
    done = policies(deployment, "add", write(tmp_path, TWO.split("---")[1]), env=env)
    assert done.returncode == 0 and done.stdout.startswith("pol_")
    assert done.stderr.startswith("netra: warning: could not announce") and "database" in done.stderr
    assert listed(deployment)[done.stdout.strip()]["status"] == "proposed"
