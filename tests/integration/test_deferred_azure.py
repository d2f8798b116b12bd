"""The deferred lane on an Azure OpenAI deployment: files and batches at Azure's paths, the result by GET."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from tests.fake_upstream import FakeUpstream
from tests.integration.harness import CONFIG, make_tenants
from tests.integration.test_cache_gateway import activate_policies
from tests.integration.test_deferred_gateway import (
    DEFER_POLICY,
    batch_paths,
    check_accepted,
    defer,
    lane_settings,
    started,
    until,
)

AZURE = (
    '  - {{name: az, kind: azure, base_url: "{fake}/openai", api_key: "sk-fake-upstream-key"}}\n'
)


async def test_an_azure_deployment_completes_through_azure_batches(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = lane_settings(settings, tmp_path, fake_upstream)
    assert configured.config is not None
    text = CONFIG.replace("models:\n", AZURE + "models:\n  - {{name: az-mini, provider: az, upstream: gpt-4o-mini}}\n")
    configured.config.write_text(text.format(fake=fake_upstream.url, closed=1), encoding="utf-8")
    keys, ids = await make_tenants(configured)
    await activate_policies(configured, DEFER_POLICY)
    async with started(configured, fake_upstream, keys, ids) as gateway:
        deferred_id = check_accepted(await defer(gateway, model="az-mini"))
        done = await until(gateway, deferred_id, {"completed", "failed", "expired"})
    assert done["status"] == "completed", done
    assert done["response"]["object"] == "chat.completion" and done["response"]["choices"][0]["message"]["content"]
    paths = batch_paths(fake_upstream)
    assert "/openai/files" in paths and "/openai/batches" in paths  # Azure's own paths, not /v1/
    uploads = [r for r in fake_upstream.requests if r.path == "/openai/files"]
    assert uploads and uploads[0].headers.get("api-key") == fake_upstream.api_key
