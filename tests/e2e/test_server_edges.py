"""The real `netra run` / `netra gateway` process: served with the connection limits, told apart from a base URL
without /v1, and ended cleanly (exit status 0) by SIGTERM."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.harness import make_netra

MESSAGES = [{"role": "user", "content": "Hello there!"}]


@pytest.mark.parametrize("command", ["run", "gateway"])
def test_the_process_serves_with_limits_and_exits_0_on_sigterm(tmp_path: Path, fake_url: str, command: str) -> None:
    netra = make_netra(tmp_path, fake_url)
    netra.cli("migrate")
    netra.cli("tenants", "create", "acme", "--tier", "enterprise")
    key = netra.cli("keys", "create", "--tenant", "acme").stdout.strip()
    netra.start(command)
    try:
        root = f"http://127.0.0.1:{netra.port}"
        oversized = httpx.get(f"{root}/health", headers={"x-big": "a" * (70 * 1024)}, timeout=10)
        assert oversized.status_code == 431
        assert oversized.json()["error"]["code"] == "headers_too_large"
        with openai.OpenAI(base_url=root, api_key=key, max_retries=0) as client:  # the /v1 left out
            with pytest.raises(openai.NotFoundError) as missing_v1:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        assert f"set the base URL to {root}/v1" in str(missing_v1.value)
        with openai.OpenAI(base_url=f"{root}/v1/", api_key=key, max_retries=0) as client:
            assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices  # type: ignore[arg-type]
    finally:
        status = netra.stop()
    assert status == 0, netra.log.read_text()[-3000:]
