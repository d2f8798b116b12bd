"""The Batch API through Netra with the official SDK: results, ledger rows at batch prices, and tenant scoping."""

from __future__ import annotations

import openai
import orjson
import pytest

from core.prices import compute_cost, load_seed
from core.settings import Settings
from core.usage import Usage
from gateway.batch_api.ledger import request_id_of
from tests.fake_upstream import FakeUpstream
from tests.integration.batch_gateway import (
    BatchNetra,
    questions,
    run_batch,
    running,
    upload,
)
from tests.integration.harness import stored_rows

PRICES = load_seed()


def answers(content: bytes) -> dict[str, str]:
    """custom_id -> the assistant's answer, from an output file."""
    lines = [orjson.loads(raw) for raw in content.splitlines() if raw.strip()]
    return {line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"] for line in lines}


async def test_a_completed_batch_is_ledgered_once_per_line_at_batch_prices(
    bsettings: Settings, fake_upstream: FakeUpstream
) -> None:
    async with running(bsettings, fake_upstream) as netra:
        client = netra.sdk()
        batch = await run_batch(client, fake_upstream, questions(3, "mini"))
        assert batch.status == "completed" and batch.output_file_id
        # The provider was asked for the model it serves, never the client's alias.
        sent = fake_upstream.files[batch.input_file_id].content
        assert {orjson.loads(raw)["body"]["model"] for raw in sent.splitlines()} == {"gpt-4o-mini-2024-07-18"}
        output = (await client.files.content(batch.output_file_id)).content
        assert answers(output) == {f"q-{i}": f"answer q {i}" for i in range(3)}
        again = (await client.files.content(batch.output_file_id)).content  # read twice: no second set of rows
        assert again == output
    rows = stored_rows(bsettings)
    assert sorted(row["request_id"] for row in rows) == sorted(request_id_of(batch.id, f"q-{i}") for i in range(3))
    price = PRICES.price_for("gpt-4o-mini-2024-07-18")
    for line in (orjson.loads(raw) for raw in output.splitlines()):
        row = next(r for r in rows if r["request_id"] == request_id_of(batch.id, line["custom_id"]))
        usage = line["response"]["body"]["usage"]
        tokens = Usage(prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"])
        assert row["cost_usd"] == compute_cost(tokens, price, batch=True).usd
        assert row["baseline_cost_usd"] == compute_cost(tokens, price).usd > row["cost_usd"]
        assert row["savings_usd"] == row["baseline_cost_usd"] - row["cost_usd"]
        assert (row["savings_kind"], row["status"], row["endpoint"]) == ("batch", "ok", "chat/completions")
        assert (row["requested_model"], row["served_model"]) == ("mini", "gpt-4o-mini-2024-07-18")
        assert (row["tenant_id"], row["provider"]) == (netra.tenant_ids["acme"], "fake")
        assert (row["prompt_tokens"], row["completion_tokens"]) == (tokens.prompt_tokens, tokens.completion_tokens)


async def test_another_tenant_gets_404_and_sees_none_of_it(
    batch_netra: BatchNetra, fake_upstream: FakeUpstream
) -> None:
    acme, tiny = batch_netra.sdk("acme"), batch_netra.sdk("tiny")
    batch = await run_batch(acme, fake_upstream, questions(2))
    assert batch.output_file_id
    for attempt, what in (
        (tiny.files.retrieve(batch.input_file_id), f"No such File object: {batch.input_file_id}"),
        (tiny.files.content(batch.output_file_id), f"No such File object: {batch.output_file_id}"),
        (tiny.files.delete(batch.input_file_id), f"No such File object: {batch.input_file_id}"),
        (tiny.batches.retrieve(batch.id), f"No such Batch object: {batch.id}"),
        (tiny.batches.cancel(batch.id), f"No such Batch object: {batch.id}"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            await attempt
        error = caught.value.body
        assert isinstance(error, dict)
        assert (error["message"], error["type"], error["param"]) == (what, "invalid_request_error", "id")
    with pytest.raises(openai.NotFoundError):
        await tiny.batches.create(
            input_file_id=batch.input_file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert [f.id async for f in tiny.files.list()] == []
    assert [b.id async for b in tiny.batches.list()] == []
    # The owner still has everything, its output file included.
    assert {f.id async for f in acme.files.list()} == {batch.input_file_id, batch.output_file_id}
    assert [b.id async for b in acme.batches.list()] == [batch.id]


async def test_lists_page_newest_first_with_cursors(batch_netra: BatchNetra) -> None:
    client = batch_netra.sdk()
    ids = [await upload(client, questions(1, prefix=f"f{i}")) for i in range(5)]
    first = await client.files.list(limit=2)
    assert [f.id for f in first.data] == ids[:2:-1] and first.has_more
    assert [f.id async for f in await client.files.list(limit=2)] == ids[::-1]  # the SDK follows the cursor
    oldest = await client.files.list(limit=10, order="asc")
    assert [f.id for f in oldest.data] == ids and not oldest.has_more
    batches = [
        (await client.batches.create(input_file_id=i, endpoint="/v1/chat/completions", completion_window="24h")).id
        for i in ids[:3]
    ]
    page = await client.batches.list(limit=2)
    assert [b.id for b in page.data] == batches[:0:-1] and page.has_more
    assert [b.id async for b in await client.batches.list(limit=2)] == batches[::-1]
    with pytest.raises(openai.BadRequestError):
        await client.batches.list(limit=101)


async def test_cancel_and_delete_pass_through_for_the_owner(
    batch_netra: BatchNetra, fake_upstream: FakeUpstream
) -> None:
    client = batch_netra.sdk()
    fake_upstream.hold_batches()
    file_id = await upload(client, questions(2))
    batch = await client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    cancelled = await client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    assert (await client.batches.retrieve(batch.id)).status == "cancelled"
    assert [b.status async for b in client.batches.list()] == ["cancelled"]  # the list shows what was last seen
    deleted = await client.files.delete(file_id)
    assert deleted.deleted and file_id not in fake_upstream.files
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(file_id)
    assert [f.id async for f in client.files.list()] == []


async def test_no_ledger_rows_for_the_files_and_batches_requests_themselves(
    bsettings: Settings, fake_upstream: FakeUpstream
) -> None:
    async with running(bsettings, fake_upstream) as netra:
        client = netra.sdk()
        fake_upstream.hold_batches()
        file_id = await upload(client, questions(1))
        batch = await client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        await client.batches.retrieve(batch.id)
        await client.files.retrieve(file_id)
    assert stored_rows(bsettings) == []

