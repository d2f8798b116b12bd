"""The Batch API through Netra at its edges: refused lines, Azure, choosing the provider, limits, failed lines."""

from __future__ import annotations

import asyncio

import httpx
import openai
import orjson
import pytest

from core.settings import Settings
from gateway.batch_api.ledger import request_id_of
from tests.fake_upstream import FakeUpstream
from tests.integration.batch_gateway import (
    MAX_FILE_BYTES,
    BatchNetra,
    chat_line,
    jsonl,
    questions,
    run_batch,
    running,
    upload,
)
from tests.integration.harness import stored_rows


def error_of(exc: openai.APIStatusError) -> dict[str, str]:
    assert isinstance(exc.body, dict)
    return exc.body


async def test_a_line_naming_a_model_the_key_may_not_use_is_refused_at_upload(
    batch_netra: BatchNetra, fake_upstream: FakeUpstream
) -> None:
    client = batch_netra.sdk("limited")  # this key may use gpt-4o-mini only
    content = jsonl([chat_line("a", "gpt-4o-mini", "x"), chat_line("b", "gpt-4o", "y")])
    with pytest.raises(openai.BadRequestError) as caught:
        await upload(client, content)
    error = error_of(caught.value)
    assert error["message"].startswith("Line 2 of the batch input file: the model `gpt-4o` does not exist")
    assert error["param"] == "file"
    with pytest.raises(openai.BadRequestError) as caught:
        await upload(batch_netra.sdk(), jsonl([chat_line("a", "claude", "x")]))  # served, but not by this provider
    assert "not served by provider `fake`" in error_of(caught.value)["message"]
    assert fake_upstream.files == {}  # nothing reached the provider
    assert [f async for f in client.files.list()] == []


async def test_azure_gets_its_own_paths_names_and_key(batch_netra: BatchNetra, fake_upstream: FakeUpstream) -> None:
    client = batch_netra.sdk(**{"x-netra-provider": "fakeazure"})
    file_id = await upload(client, jsonl([chat_line("a", "azure-4o", "hello azure")]))
    sent = orjson.loads(fake_upstream.files[file_id].content)
    assert (sent["url"], sent["body"]["model"]) == ("/chat/completions", "gpt-4o-deployment")
    upload_request = next(r for r in fake_upstream.requests if r.path == "/openai/files")
    assert upload_request.headers.get("api-key") == fake_upstream.api_key
    assert "authorization" not in {k.lower() for k in upload_request.headers}
    batch = await client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    fake_upstream.complete_batches()
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id
    output = orjson.loads((await client.files.content(done.output_file_id)).content)
    assert output["response"]["body"]["choices"][0]["message"]["content"] == "hello azure"
    # Objects are found at the provider that holds them, whichever provider the caller names later; a list
    # narrowed to a provider shows only what that provider holds.
    assert (await batch_netra.sdk().files.retrieve(file_id)).id == file_id
    assert {f.id async for f in client.files.list()} == {file_id, done.output_file_id}
    assert [f.id async for f in batch_netra.sdk(**{"x-netra-provider": "fake"}).files.list()] == []


async def test_the_provider_header_must_name_an_openai_or_azure_provider(batch_netra: BatchNetra) -> None:
    for name, says in (("fakeant", "is not of kind openai or azure"), ("nope", "is not configured")):
        client = batch_netra.sdk(**{"x-netra-provider": name})
        for attempt in (client.files.list(), upload(client, questions(1))):
            with pytest.raises(openai.BadRequestError) as caught:
                await attempt
            error = error_of(caught.value)
            assert says in error["message"] and error["param"] == "x-netra-provider"


async def test_uploads_over_the_limit_and_malformed_forms_are_refused(batch_netra: BatchNetra) -> None:
    client = batch_netra.sdk()
    with pytest.raises(openai.APIStatusError) as caught:
        await upload(client, questions(1) * (MAX_FILE_BYTES // 100))
    assert caught.value.status_code == 413
    with pytest.raises(openai.BadRequestError) as refused:
        await client.post("/files", body={"purpose": "batch"}, cast_to=object)  # JSON, not a multipart upload
    assert error_of(refused.value)["param"] == "file"


async def test_failed_lines_are_ledgered_from_the_error_file_at_no_cost(
    bsettings: Settings, fake_upstream: FakeUpstream
) -> None:
    async with running(bsettings, fake_upstream) as netra:
        client = netra.sdk()
        content = jsonl([chat_line("good", "gpt-4o-mini", "fine"), chat_line("bad", "rejected", "x")])
        batch = await client.batches.create(
            input_file_id=await upload(client, content), endpoint="/v1/chat/completions", completion_window="24h"
        )
        fake_upstream.complete_batches()
        done = await client.batches.retrieve(batch.id)
        assert done.output_file_id and done.error_file_id
        await client.files.content(done.output_file_id)
        failed = orjson.loads((await client.files.content(done.error_file_id)).content)
    rows = {row["request_id"]: row for row in stored_rows(bsettings)}
    good, bad = rows.pop(request_id_of(batch.id, "good")), rows.pop(request_id_of(batch.id, "bad"))
    assert rows == {}
    assert (good["status"], good["savings_kind"]) == ("ok", "batch") and good["cost_usd"] > 0
    code = failed["response"]["body"]["error"]["code"]  # the provider's own code for the line
    assert (bad["status"], bad["http_status"], bad["error_code"]) == ("upstream_rejected", 400, code)
    assert (bad["cost_usd"], bad["baseline_cost_usd"], bad["savings_kind"]) == (0, 0, "")
    assert (bad["requested_model"], bad["served_model"]) == ("rejected", "gpt-4o-mini-error-400")


async def test_results_that_cannot_be_recorded_are_refused_then_recorded_on_a_later_read(
    bsettings: Settings, fake_upstream: FakeUpstream
) -> None:
    bsettings.spill_dir.parent.mkdir(parents=True, exist_ok=True)
    bsettings.spill_dir.write_text("a file where the spill directory should be")
    async with running(bsettings, fake_upstream) as netra:
        client = netra.sdk()
        batch = await run_batch(client, fake_upstream, questions(2))  # not billable: served while the spill is down
        assert batch.output_file_id
        with pytest.raises(openai.InternalServerError) as refused:
            await client.files.content(batch.output_file_id)
        assert refused.value.status_code == 503 and error_of(refused.value)["code"] == "logging_unavailable"
        bsettings.spill_dir.unlink()  # the disk is back: the writer heals on a fresh segment
        async with httpx.AsyncClient(base_url=netra.url) as http:
            assert await wait_for_ready(http)
        assert (await client.files.content(batch.output_file_id)).content
    assert sorted(row["request_id"] for row in stored_rows(bsettings)) == sorted(
        request_id_of(batch.id, f"q-{i}") for i in range(2)
    )


async def wait_for_ready(http: httpx.AsyncClient) -> bool:
    for _ in range(500):
        if (await http.get("/health/ready")).status_code == 200:
            return True
        await asyncio.sleep(0.02)
    return False
