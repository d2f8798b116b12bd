"""The response cache's key: one tenant's requests never meet another's; only what can change the answer counts."""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot

from gateway.cache.key import cache_key, canonical_hash, is_deterministic, key_from_hash

CHAT = "chat/completions"


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}], "temperature": 0} | fields


def test_the_same_request_of_two_tenants_never_shares_a_key() -> None:
    assert cache_key("acme", CHAT, chat()) != cache_key("globex", CHAT, chat())


def test_a_tenant_name_cannot_forge_another_tenants_key() -> None:
    # Even a name that closes the hash tag early hashes apart: the tenant is inside the digest too.
    one, two = cache_key("a}b", CHAT, chat()), cache_key("a", CHAT, chat())
    assert one.rsplit(":", 1)[1] != two.rsplit(":", 1)[1]


def test_the_key_names_the_tenant_in_a_cluster_hash_tag() -> None:
    first, second = cache_key("acme", CHAT, chat()), cache_key("acme", CHAT, chat(seed=3))
    assert first.startswith("netra:cache:{acme}:")
    assert key_slot(first.encode()) == key_slot(second.encode())


def test_endpoints_never_share_a_key() -> None:
    body = {"model": "m", "input": "x", "prompt": "x"}
    assert cache_key("acme", "completions", body) != cache_key("acme", "embeddings", body)


@pytest.mark.parametrize(
    "extra",
    [
        {"user": "u-42"},
        {"stream": True},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"metadata": {"team": "search"}},
        {"store": True},
        {"service_tier": "default"},
        {"safety_identifier": "hash-1"},
        {"prompt_cache_key": "k"},
    ],
)
def test_fields_that_cannot_change_the_answer_are_ignored(extra: dict[str, Any]) -> None:
    assert cache_key("acme", CHAT, chat(**extra)) == cache_key("acme", CHAT, chat())


@pytest.mark.parametrize(
    "explicit",
    [
        {"n": 1}, {"top_p": 1}, {"top_p": 1.0}, {"presence_penalty": 0}, {"frequency_penalty": 0.0},
        {"logprobs": False}, {"logit_bias": {}}, {"response_format": {"type": "text"}}, {"tool_choice": "none"},
        {"seed": None}, {"max_tokens": None},
    ],
)
def test_explicit_defaults_and_nulls_equal_absent_fields(explicit: dict[str, Any]) -> None:
    assert cache_key("acme", CHAT, chat(**explicit)) == cache_key("acme", CHAT, chat())


def test_the_temperature_default_and_number_forms_are_one() -> None:
    absent = {k: v for k, v in chat().items() if k != "temperature"}
    assert cache_key("acme", CHAT, chat(temperature=1)) == cache_key("acme", CHAT, absent)
    assert cache_key("acme", CHAT, chat(temperature=0.0)) == cache_key("acme", CHAT, chat(temperature=0))


def test_tool_choice_auto_is_the_default_only_with_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with_tools = chat(tools=tools)
    assert cache_key("acme", CHAT, with_tools | {"tool_choice": "auto"}) == cache_key("acme", CHAT, with_tools)
    assert cache_key("acme", CHAT, chat(tool_choice="auto")) != cache_key("acme", CHAT, chat())


def test_a_single_stop_string_is_a_one_item_list() -> None:
    assert cache_key("acme", CHAT, chat(stop="END")) == cache_key("acme", CHAT, chat(stop=["END"]))


def test_completions_defaults_are_those_of_completions() -> None:
    body = {"model": "m", "prompt": "x", "temperature": 0}
    assert cache_key("acme", "completions", body | {"max_tokens": 16, "echo": False, "best_of": 1}) == cache_key(
        "acme", "completions", body
    )
    assert cache_key("acme", "completions", body | {"max_tokens": 17}) != cache_key("acme", "completions", body)


def test_embeddings_float_format_is_the_default() -> None:
    body = {"model": "e", "input": "x"}
    plain = cache_key("acme", "embeddings", body)
    assert cache_key("acme", "embeddings", body | {"encoding_format": "float"}) == plain
    assert cache_key("acme", "embeddings", body | {"encoding_format": "base64"}) != plain


def test_key_order_is_ignored_at_every_depth() -> None:
    reordered = {
        "temperature": 0,
        "messages": [{"content": "Say hi", "role": "user"}],
        "model": "gpt-4o-mini",
    }
    assert cache_key("acme", CHAT, reordered) == cache_key("acme", CHAT, chat())


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},
        {"messages": [{"role": "user", "content": "Say hello"}]},
        {"messages": [{"role": "system", "content": "Say hi"}]},
        {"temperature": 0.2},
        {"top_p": 0.5},
        {"seed": 7},
        {"n": 2},
        {"max_tokens": 5},
        {"stop": ["\n"]},
        {"presence_penalty": 0.5},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"tool_choice": "required"},
        {"logprobs": True},
        {"reasoning_effort": "low"},  # a field Netra does not know still counts
    ],
)
def test_fields_that_change_the_answer_change_the_key(change: dict[str, Any]) -> None:
    assert cache_key("acme", CHAT, chat() | change) != cache_key("acme", CHAT, chat())


def test_the_request_is_not_modified() -> None:
    body = chat(user="u", stream=True, n=1, stop="END")
    before = dict(body)
    cache_key("acme", CHAT, body)
    assert body == before


def test_the_key_is_derived_from_the_tenant_free_request_hash() -> None:
    # The ledger can log canonical_hash as the request hash: repeats in logged traffic are the cache's own hits.
    digest = canonical_hash(CHAT, chat(user="a", stream=True))
    assert digest == canonical_hash(CHAT, chat(n=1))
    assert key_from_hash("acme", digest) == cache_key("acme", CHAT, chat())
    assert key_from_hash("acme", digest) != key_from_hash("globex", digest)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0, "n": 1}, True),
        ({"top_p": 0}, True),
        ({"seed": 42, "temperature": 0.9}, True),
        ({}, False),  # temperature 1 by default
        ({"temperature": 0.2}, False),
        ({"temperature": 0, "n": 2}, False),
        ({"seed": None}, False),
        ({"temperature": False}, False),  # wrong-typed: not a zero temperature
        ({"temperature": "0"}, False),
    ],
)
def test_deterministic_requests(body: dict[str, Any], expected: bool) -> None:
    assert is_deterministic(CHAT, chat() | {"temperature": None} | body) is expected
    assert is_deterministic("embeddings", {"model": "e", "input": "x"})
