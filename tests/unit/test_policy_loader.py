"""The policy file format: the issue's example is accepted; every mistake is one line naming file, line and field."""

from __future__ import annotations

import pytest

from policies.loader import PolicyFileError, load_policies
from policies.models import BatchPolicy, CachePolicy, RoutePolicy

# Exactly the example of issue 9, comments included.
ISSUE_EXAMPLE = """\
kind: cache
name: deterministic chat for acme
priority: 10
match: {tenants: [acme], models: [gpt-4o-mini], endpoints: [chat/completions], temperature: {max: 0}}
ttl: 1h                      # 30s, 15m, 1h, 7d
cache_nondeterministic: false  # true: also cache requests with temperature > 0 and no seed
"""

# The examples of issue 10, which will be written against the same loader.
ROUTE_EXAMPLE = """\
kind: route
name: short tool-free prompts to mini
match: {models: [gpt-4o], tools: false, prompt_tokens: {max: 800}}
targets: [{model: gpt-4o-mini, weight: 90}, {model: gpt-4o, weight: 10}]   # weighted split; one target = rewrite
fallbacks: [claude-sonnet]                                                 # tried in order, see below
"""
BATCH_EXAMPLE = """\
kind: batch
name: coalesce embeddings
match: {endpoints: [embeddings]}
window_ms: 5          # how long the first request waits for company
max_inputs: 512       # flush earlier when this many inputs are gathered
defer: false          # true: allow the deferred lane below for matching requests
"""


def test_the_issue_example_is_accepted() -> None:
    [policy] = load_policies(ISSUE_EXAMPLE, "policy.yaml")
    assert isinstance(policy, CachePolicy)
    assert (policy.name, policy.priority, policy.ttl_seconds) == ("deterministic chat for acme", 10, 3600)
    assert policy.cache_nondeterministic is False
    match = policy.match
    assert (match.tenants, match.models, match.endpoints) == (("acme",), ("gpt-4o-mini",), ("chat/completions",))
    assert match.temperature is not None
    assert (match.temperature.min, match.temperature.max) == (None, 0)
    assert (policy.status, policy.id, policy.version) == ("proposed", None, 1)


def test_several_documents_make_several_policies_in_order() -> None:
    text = ISSUE_EXAMPLE + "---\n" + ROUTE_EXAMPLE + "---\n" + BATCH_EXAMPLE + "---\n"
    policies = load_policies(text, "all.yaml")
    assert [type(p) for p in policies] == [CachePolicy, RoutePolicy, BatchPolicy]
    route, batch = policies[1], policies[2]
    assert isinstance(route, RoutePolicy) and isinstance(batch, BatchPolicy)
    assert [(t.model, t.weight) for t in route.targets] == [("gpt-4o-mini", 90), ("gpt-4o", 10)]
    assert route.fallbacks == ("claude-sonnet",)
    assert route.match.tools is False
    assert (batch.window_ms, batch.max_inputs, batch.defer) == (5, 512, False)


def test_author_rationale_and_estimate_may_be_written() -> None:
    text = ISSUE_EXAMPLE + "author: agent:run-7\nrationale: 40% repeats\n"
    text += "estimate: {monthly_saving_usd: 1200.50, traffic_share: 0.4}\n"
    [policy] = load_policies(text, "p.yaml")
    assert (policy.author, policy.rationale) == ("agent:run-7", "40% repeats")
    assert policy.estimate is not None and str(policy.estimate.monthly_saving_usd) == "1200.5"


MISTAKES = [
    pytest.param(
        "kind: cache\nname: a\nttl: 1h\nmatch:\n  tenant: [acme]\n",
        "p.yaml:5: match.tenant: unknown field; did you mean tenants?",
        id="misspelled-match-field",
    ),
    pytest.param(
        "kind: cache\nnme: a\nttl: 1h\n",
        "p.yaml:2: nme: unknown field; did you mean name? (and 1 more)",
        id="misspelled-name-reported-before-missing-name",
    ),
    pytest.param(
        ISSUE_EXAMPLE.replace("tenants:", "tenant:"),
        "p.yaml:4: match.tenant: unknown field; did you mean tenants?",
        id="issue-example-flow-mapping",
    ),
    pytest.param(
        "kind: route\nname: r\ntargets:\n  - {model: a}\n  - {model: b, wieght: 3}\n",
        "p.yaml:5: targets[1].wieght: unknown field; did you mean weight?",
        id="misspelled-in-second-target",
    ),
    pytest.param(
        "kind: cache\nname: a\nttl: 1x\n",
        "p.yaml:3: ttl: should be a duration such as 30s, 15m, 1h or 7d (got '1x')",
        id="bad-duration",
    ),
    pytest.param("kind: cache\nname: a\n", "p.yaml:1: ttl is required", id="missing-ttl"),
    pytest.param("name: a\nttl: 1h\n", "p.yaml:1: kind is required (one of cache, route, batch)", id="no-kind"),
    pytest.param(
        "name: a\nkind: semantic\n",
        "p.yaml:2: kind: 'semantic' is not one of cache, route, batch",
        id="unknown-kind",
    ),
    pytest.param(
        "kind: cache\nname: a\nttl: 1h\nmatch:\n  endpoints: [chat]\n",
        "p.yaml:5: match.endpoints[0]: 'chat' is not one of chat/completions, completions, embeddings, responses",
        id="unknown-endpoint",
    ),
    pytest.param(
        "kind: cache\nname: a\nttl: 1h\nmatch:\n  stream: maybe\n",
        "p.yaml:5: match.stream: should be a valid boolean (got 'maybe')",
        id="wrong-type",
    ),
    pytest.param(
        "kind: cache\nname: a\nttl: 1h\nmatch:\n  tenants: []\n",
        "p.yaml:5: match.tenants: should not be empty (omit a match field to mean any) (got [])",
        id="empty-match-list",
    ),
    pytest.param(
        "kind: cache\nname: a\nttl: 1h\nmatch:\n  prompt_tokens: {min: 900, max: 800}\n",
        "p.yaml:5: match.prompt_tokens: min (900) is greater than max (800) (got {'min': 900, 'max': 800})",
        id="inverted-range",
    ),
    pytest.param(
        "kind: cache\nname: a\nttl: 1h\nauthor: bob\n",
        "p.yaml:4: author: should be human:<name> or agent:<run id> (got 'bob')",
        id="bad-author",
    ),
    pytest.param(
        "kind: cache\nname: a\nttl: 1h\n---\nkind: cache\nname: b\nttl: 1h\ncolour: red\n",
        "p.yaml:8: colour: unknown field; the fields here are id, version, name, status, author, rationale, "
        "estimate, priority, created_at, match, kind, ttl, cache_nondeterministic",
        id="mistake-in-second-document",
    ),
    pytest.param("- kind: cache\n", "p.yaml:1: a policy should be a mapping of fields (kind, name, match, …)",
                 id="not-a-mapping"),
    pytest.param(
        "kind: cache\n  name: a\n", "p.yaml:2:7: YAML syntax error: mapping values are not allowed here",
        id="yaml-syntax",
    ),
    pytest.param("", "p.yaml: no policy in the file (expected YAML documents with `kind:` and `name:`)",
                 id="empty-file"),
]


@pytest.mark.parametrize(("text", "message"), MISTAKES)
def test_mistakes_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(PolicyFileError) as caught:
        load_policies(text, "p.yaml")
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("field", "line"), [("id: pol_1", "id"), ("version: 2", "version"), ("status: active", "status"),
                        ("created_at: 2026-12-01", "created_at")]
)
def test_store_fields_are_refused_in_a_file(field: str, line: str) -> None:
    with pytest.raises(PolicyFileError, match=rf"^p\.yaml:7: {line}: not allowed in a policy file: "):
        load_policies(ISSUE_EXAMPLE + field + "\n", "p.yaml")
