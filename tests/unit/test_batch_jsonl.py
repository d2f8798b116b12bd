"""Batch input files: every line is checked before upload, and its model rewritten to the name the provider serves."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from core.errors import InvalidParameter
from gateway.batch_api.jsonl import LineProblem, check_batch_file

SERVED = {("gpt-4o-mini", "chat/completions"): "gpt-4o-mini-2024-07-18", ("emb", "embeddings"): "text-emb-3"}


def resolve(name: str, endpoint: str) -> str:
    served = SERVED.get((name, endpoint))
    if served is None:
        raise LineProblem(f"the model `{name}` does not exist or you do not have access to it.")
    return served


def line(custom_id: str = "a", model: str = "gpt-4o-mini", url: str = "/v1/chat/completions", **extra: Any) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body, **extra})


def keep(url: str) -> str:
    return url


def test_lines_are_rewritten_to_the_served_model_and_keep_what_was_asked() -> None:
    data = b"\xef\xbb\xbf" + line("a") + b"\r\n\n" + line("b", "emb", "/v1/embeddings") + b"\n"
    checked = check_batch_file(data, resolve, keep)
    sent = [orjson.loads(raw) for raw in checked.content.splitlines()]
    assert [s["body"]["model"] for s in sent] == ["gpt-4o-mini-2024-07-18", "text-emb-3"]
    assert sent[0]["body"]["messages"] == [{"role": "user", "content": "hi"}]  # the rest untouched
    assert checked.lines == {
        "a": ["chat/completions", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"],
        "b": ["embeddings", "emb", "text-emb-3"],
    }


def test_azure_urls_are_renamed_for_the_provider() -> None:
    checked = check_batch_file(line("a"), resolve, lambda url: url.removeprefix("/v1"))
    assert orjson.loads(checked.content)["url"] == "/chat/completions"
    assert checked.lines["a"][0] == "chat/completions"


@pytest.mark.parametrize(("bad", "says"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (line(""), "custom_id"),
    (line("a"), "used by an earlier line"),
    (line("z", method="GET"), 'method must be "POST"'),
    (line("z", url="/v1/images/generations"), "url must be one of"),
    (orjson.dumps({"custom_id": "z", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}), "`model`"),
    (line("z", "gpt-4o"), "the model `gpt-4o` does not exist"),
    (line("z", "emb"), "the model `emb` does not exist"),  # served, but not on this endpoint
])
def test_a_bad_line_is_refused_naming_its_number(bad: bytes, says: str) -> None:
    data = line("a") + b"\n" + bad + b"\n"
    with pytest.raises(InvalidParameter) as caught:
        check_batch_file(data, resolve, keep)
    error = caught.value.envelope()["error"]
    assert error["message"].startswith("Line 2 of the batch input file:")
    assert says in error["message"]
    assert error["param"] == "file" and caught.value.status_code == 400


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="no lines"):
        check_batch_file(b"\n \n", resolve, keep)
