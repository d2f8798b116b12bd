"""The fake's Files and Batches (OpenAI) and Message Batches (Anthropic) work as the official clients expect."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.fake_upstream import WIRES, FakeUpstream

REPLY = "Hello from the fake upstream."
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-fake-key", "anthropic-version": "2023-06-01"}


def chat_line(custom_id: str, model: str = "gpt-4o-mini", text: str = "Hi") -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


async def upload(client: openai.AsyncOpenAI, lines: list[dict[str, Any]], purpose: str = "batch") -> str:
    created = await client.files.create(file=("input.jsonl", jsonl(lines)), purpose=purpose)  # type: ignore[arg-type]
    return created.id


async def start(client: openai.AsyncOpenAI, lines: list[dict[str, Any]], endpoint: str = "/v1/chat/completions") -> str:
    file_id = await upload(client, lines)
    batch = await client.batches.create(
        input_file_id=file_id, endpoint=endpoint, completion_window="24h", metadata={"job": "nightly"}  # type: ignore[arg-type]
    )
    assert (batch.status, batch.input_file_id, batch.endpoint) == ("validating", file_id, endpoint)
    return batch.id


async def records(client: openai.AsyncOpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    assert file_id is not None
    content = await client.files.content(file_id)
    return {record["custom_id"]: record for record in map(orjson.loads, content.content.splitlines())}


async def test_files_upload_list_retrieve_content_and_delete(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    data = b'{"a":1}\r\n{"b":"\xc3\xa9"}\n'
    first = await client.files.create(file=("one.jsonl", data), purpose="batch")
    second = await client.files.create(file=("two.pdf", b"%PDF"), purpose="user_data")
    assert (first.object, first.bytes, first.filename, first.purpose, first.status) == (
        "file", len(data), "one.jsonl", "batch", "processed"
    )
    assert first.id.startswith("file-") and isinstance(first.created_at, int)
    assert (await client.files.content(first.id)).content == data
    assert (await client.files.retrieve(second.id)).filename == "two.pdf"
    assert [listed.id async for listed in client.files.list()] == [second.id, first.id]
    assert [listed.id async for listed in client.files.list(purpose="batch")] == [first.id]
    page = await client.files.list(limit=1, order="asc")
    assert [listed.id for listed in page.data] == [first.id] and page.has_more
    deleted = await client.files.delete(first.id)
    assert (deleted.id, deleted.deleted) == (first.id, True)
    assert list(fake.files) == [second.id]
    with pytest.raises(openai.NotFoundError) as raised:
        await client.files.content(first.id)
    assert raised.value.param == "id" and raised.value.type == "invalid_request_error"
    assert fake.requests[0].path == "/v1/files" and fake.requests[0].headers["content-type"].startswith("multipart/")


async def test_an_upload_without_purpose_or_file_is_refused(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await client.files.create(file=("x.jsonl", b"{}"), purpose="nonsense")  # type: ignore[arg-type]
    assert raised.value.param == "purpose"
    headers = {"authorization": f"Bearer {fake.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        form = aiohttp.FormData({"purpose": "batch"})
        async with http.post(fake.url + "/v1/files", data=form()) as response:
            assert response.status == 400 and (await response.json())["error"]["param"] == "file"
        async with http.post(fake.url + "/v1/files", json={"purpose": "batch"}) as response:
            assert response.status == 400 and (await response.json())["error"]["type"] == "invalid_request_error"
    assert fake.files == {}


async def test_azure_files_need_the_api_key_and_version(fake: FakeUpstream) -> None:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake.url, api_key=fake.api_key, api_version="2024-10-21", max_retries=0
    ) as azure:
        created = await azure.files.create(file=("in.jsonl", b"{}\n"), purpose="batch")
        assert (await azure.files.retrieve(created.id)).bytes == 3
    assert fake.requests[0].path == "/openai/files" and fake.requests[0].query["api-version"] == "2024-10-21"


async def test_a_batch_runs_every_line_and_writes_the_output_file(
    client: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    batch_id = await start(client, [chat_line("first", text="echo: one"), chat_line("second", text="echo: two")])
    batch = await client.batches.retrieve(batch_id)
    assert batch.status == "completed" and batch.error_file_id is None and batch.metadata == {"job": "nightly"}
    assert batch.request_counts and (batch.request_counts.total, batch.request_counts.completed) == (2, 2)
    assert batch.completed_at and batch.in_progress_at and batch.expires_at == batch.created_at + 86400
    output = await records(client, batch.output_file_id)
    assert set(output) == {"first", "second"}
    response = output["second"]["response"]
    assert response["status_code"] == 200 and response["body"]["choices"][0]["message"]["content"] == "two"
    assert output["first"]["id"].startswith("batch_req_") and output["first"]["error"] is None
    assert fake.files[batch.output_file_id or ""].purpose == "batch_output" and batch_id in fake.batches


async def test_a_line_whose_model_fails_goes_to_the_error_file(client: openai.AsyncOpenAI) -> None:
    batch_id = await start(client, [chat_line("good"), chat_line("bad", model="gpt-4o-mini-error-400")])
    batch = await client.batches.retrieve(batch_id)
    assert batch.request_counts and (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    assert set(await records(client, batch.output_file_id)) == {"good"}
    failed = (await records(client, batch.error_file_id))["bad"]["response"]
    assert failed["status_code"] == 400 and failed["body"]["error"]["type"] == "invalid_request_error"


async def test_embeddings_batches_use_the_embeddings_answer(client: openai.AsyncOpenAI) -> None:
    line = {"custom_id": "e1", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": "hi"}}
    batch = await client.batches.retrieve(await start(client, [line], "/v1/embeddings"))
    body = (await records(client, batch.output_file_id))["e1"]["response"]["body"]
    assert body["object"] == "list" and len(body["data"][0]["embedding"]) == 8


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ({**chat_line("x"), "url": "/v1/embeddings"}, "invalid_url"),
        ({**chat_line("x"), "method": "GET"}, "invalid_method"),
        ({"method": "POST", "url": "/v1/chat/completions", "body": {}}, "missing_required_parameter"),
        (chat_line("first"), "duplicate_custom_id"),
    ],
)
async def test_a_malformed_input_file_fails_the_batch(
    client: openai.AsyncOpenAI, line: dict[str, Any], code: str
) -> None:
    batch = await client.batches.retrieve(await start(client, [chat_line("first"), line]))
    assert batch.status == "failed" and batch.failed_at and batch.output_file_id is None
    assert batch.errors and batch.errors.data and (batch.errors.data[0].code, batch.errors.data[0].line) == (code, 2)


async def test_a_batch_waits_for_its_delay_or_a_forced_completion(
    client: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    fake.batch_delay = 3600
    batch_id = await start(client, [chat_line("only")])
    assert (await client.batches.retrieve(batch_id)).status == "in_progress"
    fake.complete_batches()
    assert (await client.batches.retrieve(batch_id)).status == "completed"


async def test_held_batches_stay_in_progress_until_completed(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.hold_batches()
    batch_id = await start(client, [chat_line("only")])
    assert [batch.status async for batch in client.batches.list()] == ["in_progress"]
    fake.complete_batches()
    assert (await client.batches.retrieve(batch_id)).status == "completed"


async def test_cancelling_a_running_batch(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.hold_batches()
    batch_id = await start(client, [chat_line("only")])
    cancelling = await client.batches.cancel(batch_id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    fake.hold_batches(False)
    cancelled = await client.batches.retrieve(batch_id)
    assert cancelled.status == "cancelled" and cancelled.output_file_id is None and cancelled.cancelled_at
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        await client.batches.cancel(batch_id)


async def test_unknown_batches_and_files_are_404s(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        await client.batches.cancel("batch_nope")
    with pytest.raises(openai.NotFoundError) as raised:
        await client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    assert raised.value.param == "input_file_id"
    user_file = await upload(client, [chat_line("x")], purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        await client.batches.create(input_file_id=user_file, endpoint="/v1/chat/completions", completion_window="24h")


@pytest.mark.parametrize("wire", WIRES)
async def test_output_files_vary_on_the_wire(wire: str) -> None:
    async with FakeUpstream(wire=wire) as fake, openai.AsyncOpenAI(
        base_url=fake.url + "/v1", api_key=fake.api_key, max_retries=0
    ) as client:
        batch = await client.batches.retrieve(await start(client, [chat_line("a"), chat_line("b")]))
        assert batch.output_file_id is not None
        raw = (await client.files.content(batch.output_file_id)).content
    assert raw.count(b"\r\n") == (2 if wire in ("crlf", "split") else 0) and raw.endswith(b"\n")
    assert (b'", "' in raw) == (wire in ("spaced", "split", "multiline"))
    assert [orjson.loads(line)["custom_id"] for line in raw.splitlines()] == ["b", "a"]


async def test_azure_batches_name_endpoints_without_v1(fake: FakeUpstream) -> None:
    line = {**chat_line("az", model="prod-gpt4o"), "url": "/chat/completions"}
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake.url, api_key=fake.api_key, api_version="2024-10-21", max_retries=0
    ) as azure:
        file_id = await upload(azure, [line])
        created = await azure.batches.create(
            input_file_id=file_id, endpoint="/chat/completions", completion_window="24h"  # type: ignore[arg-type]
        )
        batch = await azure.batches.retrieve(created.id)
        output = await records(azure, batch.output_file_id)
    assert output["az"]["response"]["body"]["model"] == "prod-gpt4o"
    assert [request.path for request in fake.requests][-1].startswith("/openai/files/")


async def test_files_and_batches_endpoints_fail_when_switched_by_path(
    client: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    file_id = await upload(client, [chat_line("x")])
    fake.fail("/v1/batches", 503, times=1, retry_after=2)
    with pytest.raises(openai.InternalServerError) as raised:
        await client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    assert raised.value.response.headers["retry-after"] == "2" and fake.batches == {}
    await client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    assert (fake.calls("/v1/batches"), fake.calls("/v1/files")) == (2, 1)


async def test_the_batch_clock_is_steered_over_http(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    async with aiohttp.ClientSession(base_url=fake.url) as http:
        async with http.post("/_fake/batches", json={"hold": True}) as response:
            assert await response.json() == {"ok": True, "delay": 0.0, "hold": True}
        batch_id = await start(client, [chat_line("only")])
        assert (await client.batches.retrieve(batch_id)).status == "in_progress"
        async with http.post("/_fake/batches", json={"complete": True, "hold": False}) as response:
            assert response.status == 200
        async with http.post("/_fake/batches", json={"delay": "soon"}) as response:
            assert response.status == 400
    assert (await client.batches.retrieve(batch_id)).status == "completed"
