"""The pure side of embeddings micro-batching: input shapes, who may share a call, and splitting the answer back."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from core.errors import UpstreamFailed
from gateway.embed_inputs import OPENAI_MAX_INPUTS, group_key, inputs_of, max_inputs, merged_body
from gateway.embed_split import apportion, split_answer

DEPLOYMENT = ("fake", "text-embedding-3-small")


def key(body: dict[str, Any], tenant: str = "t1", deployment: tuple[str, ...] = DEPLOYMENT) -> tuple[str, ...]:
    inputs = inputs_of(body["input"])
    assert inputs is not None
    return group_key(tenant, deployment, "p@1", body, inputs.kind)


# --- inputs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "items"),
    [
        ("hello", "strings", ("hello",)),
        (["a", "bb"], "strings", ("a", "bb")),
        ([1, 2, 3], "tokens", ([1, 2, 3],)),  # a list of token ids is ONE input
        ([[1, 2], [3]], "tokens", ([1, 2], [3])),
    ],
)
def test_every_openai_input_shape_is_a_list_of_inputs(value: Any, kind: str, items: tuple[Any, ...]) -> None:
    inputs = inputs_of(value)
    assert inputs is not None
    assert (inputs.kind, inputs.items) == (kind, items)


@pytest.mark.parametrize("value", [[], ["a", 1], [[1], "a"], [[]], [True, 1], {"text": "a"}, 3, [1.5]])
def test_shapes_batching_does_not_know_are_left_to_the_provider(value: Any) -> None:
    assert inputs_of(value) is None


def test_input_sizes_are_token_estimates_per_input() -> None:
    inputs = inputs_of(["abcd" * 10, "", [7] * 5][:2])
    assert inputs is not None and inputs.sizes == (10, 0)
    tokens = inputs_of([[7] * 5, [8] * 2])
    assert tokens is not None and tokens.sizes == (5, 2) and tokens.tokens == 7


# --- grouping -----------------------------------------------------------------------------------------------------


def test_requests_differing_only_in_input_and_requested_model_share_a_key() -> None:
    a = {"model": "small", "input": "x", "dimensions": 256, "encoding_format": "base64"}
    b = {"encoding_format": "base64", "input": ["y", "z"], "model": "alias-of-small", "dimensions": 256}
    assert key(a) == key(b)


@pytest.mark.parametrize(
    "other",
    [
        {"dimensions": 512},
        {"encoding_format": "float"},
        {"user": "someone"},
        {"some_new_field": True},  # an unknown field is never merged with its absence
        {"dimensions": None},  # even a null is a field the provider sees
    ],
)
def test_any_other_field_keeps_requests_apart(other: dict[str, Any]) -> None:
    base = {"model": "m", "input": "x", "encoding_format": "base64"}
    assert key(base) != key({**base, **other})


def test_tenants_deployments_and_input_kinds_never_share_a_key() -> None:
    body = {"model": "m", "input": "x"}
    assert key(body, tenant="t1") != key(body, tenant="t2")
    assert key(body) != key(body, deployment=("other-provider", DEPLOYMENT[1]))
    assert key(body) != key(body, deployment=(DEPLOYMENT[0], "text-embedding-3-large"))
    assert key(body) != key({"model": "m", "input": [1, 2]})
    # A longer destination (a route with a fallback) is another destination, whatever its names.
    assert key(body) != key(body, deployment=(*DEPLOYMENT, "fallback-model"))


def test_a_batch_never_holds_more_inputs_than_openai_takes() -> None:
    assert max_inputs(512) == 512
    assert max_inputs(100_000) == OPENAI_MAX_INPUTS == 2048


def test_the_merged_body_keeps_the_fields_and_every_input_in_order() -> None:
    first = {"model": "m", "input": "a", "dimensions": 8}
    parts = [inputs_of("a"), inputs_of(["b", "c"]), inputs_of("d")]
    assert merged_body(first, [p for p in parts if p is not None]) == {"model": "m", "input": ["a", "b", "c", "d"],
                                                                      "dimensions": 8}
    assert first["input"] == "a"  # the member's own body is untouched


# --- apportioning -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "shares"),
    [
        (10, [1, 1, 1], [4, 3, 3]),  # one unit left: the earliest of equal remainders
        (10, [5, 3, 2], [5, 3, 2]),  # exact quotas stay exact
        (7, [0, 0], [4, 3]),  # no sizes known: equal shares
        (0, [3, 4], [0, 0]),
        (100, [1, 1, 998], [0, 0, 100]),
        (5, [2, 3, 1], [2, 2, 1]),  # quotas 1.67 2.5 0.83: floors 1 2 0, the two largest remainders get the units
        (3, [], []),
    ],
)
def test_largest_remainder_shares(total: int, weights: list[int], shares: list[int]) -> None:
    assert apportion(total, weights) == shares


def test_shares_always_add_up_to_the_total() -> None:
    rng = random.Random(7)
    for _ in range(500):
        weights = [rng.randrange(0, 50) for _ in range(rng.randrange(1, 12))]
        total = rng.randrange(0, 5000)
        shares = apportion(total, weights)
        assert sum(shares) == total and all(share >= 0 for share in shares)


# --- splitting ----------------------------------------------------------------------------------------------------


def answer(vectors: list[Any], usage: dict[str, int] | None, *, reverse: bool = False, **extra: Any) -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    body: dict[str, Any] = {"object": "list", "data": data[::-1] if reverse else data, "model": "te-3-small", **extra}
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


def test_each_member_gets_its_own_vectors_in_order_renumbered_from_zero() -> None:
    raw = answer([[0.1], [0.2], [0.3], [0.4]], {"prompt_tokens": 8, "total_tokens": 8}, reverse=True)
    parts = split_answer(raw, [1, 2, 1], [2, 2, 2, 2])
    bodies = [orjson.loads(part.body) for part in parts]
    assert [[item["embedding"] for item in body["data"]] for body in bodies] == [[[0.1]], [[0.2], [0.3]], [[0.4]]]
    assert [[item["index"] for item in body["data"]] for body in bodies] == [[0], [0, 1], [0]]
    assert all(body["model"] == "te-3-small" and body["object"] == "list" for body in bodies)
    assert [body["usage"] for body in bodies] == [
        {"prompt_tokens": 2, "total_tokens": 2}, {"prompt_tokens": 4, "total_tokens": 4},
        {"prompt_tokens": 2, "total_tokens": 2},
    ]
    assert [part.usage.prompt_tokens for part in parts if part.usage] == [2, 4, 2]


def test_apportioned_usage_follows_input_sizes_and_adds_up_to_the_provider_total() -> None:
    raw = answer([[0.1], [0.2], [0.3]], {"prompt_tokens": 101, "total_tokens": 101})
    parts = split_answer(raw, [1, 1, 1], [10, 30, 60])
    shares = [orjson.loads(part.body)["usage"]["prompt_tokens"] for part in parts]
    assert shares == [10, 30, 61] and sum(shares) == 101


def test_per_input_counts_on_the_data_items_are_used_exactly() -> None:
    data = [{"object": "embedding", "index": i, "embedding": [i], "usage": {"prompt_tokens": n, "total_tokens": n}}
            for i, n in enumerate([7, 1, 2])]
    raw = orjson.dumps({"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 10,
                                                                                "total_tokens": 10}})
    parts = split_answer(raw, [1, 2], [100, 1, 1])  # the estimates are way off; the reported counts win
    assert [orjson.loads(part.body)["usage"]["prompt_tokens"] for part in parts] == [7, 3]
    assert orjson.loads(parts[1].body)["data"][1]["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_base64_vectors_pass_through_as_strings() -> None:
    parts = split_answer(answer(["AAAA", "BBBB"], None), [1, 1], [1, 1])
    assert [orjson.loads(part.body)["data"][0]["embedding"] for part in parts] == ["AAAA", "BBBB"]
    assert all("usage" not in orjson.loads(part.body) and part.usage is None for part in parts)


def test_other_top_level_fields_of_the_answer_reach_every_member() -> None:
    parts = split_answer(answer([[1.0], [2.0]], {"prompt_tokens": 2, "total_tokens": 2}, id="emb-1"), [1, 1], [1, 1])
    assert all(orjson.loads(part.body)["id"] == "emb-1" for part in parts)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        orjson.dumps({"object": "list", "data": [{"index": 0, "embedding": [1]}], "model": "m"}),  # one vector short
        orjson.dumps({"object": "list", "data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [2]}]}),
        orjson.dumps({"object": "list", "data": "nope"}),
        orjson.dumps([1, 2]),
    ],
)
def test_an_answer_that_does_not_match_the_request_is_an_upstream_error(raw: bytes) -> None:
    with pytest.raises(UpstreamFailed) as caught:
        split_answer(raw, [1, 1], [1, 1])
    assert caught.value.status_code == 502
