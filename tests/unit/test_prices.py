"""The shipped price table, its lookups and overrides, and the cost formula, checked against hand arithmetic."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from core.config import PriceOverride
from core.prices import (
    UNPRICED,
    Cost,
    ModelPrice,
    PriceTable,
    PriceTableError,
    compute_cost,
    load_seed,
    load_table,
)
from core.usage import Usage
from tools import derive_prices

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_PATH = REPO_ROOT / "core" / "prices" / "seed.json"
LITELLM_FILE = REPO_ROOT.parent / "shared" / "data" / "pricing" / "litellm_model_prices_and_context_window.json"


@pytest.fixture(scope="module")
def seed() -> PriceTable:
    """The shipped table, loaded once."""
    return load_seed()


def price(table: PriceTable, model: str) -> ModelPrice:
    """A price the test expects to exist."""
    found = table.price_for(model)
    assert found is not None, model
    return found


# --- the shipped seed -------------------------------------------------------------------------------------------


def test_seed_loads_with_a_dated_version(seed: PriceTable) -> None:
    assert seed.version == f"litellm-{seed.effective_from}"
    assert seed.source.startswith("BerriAI/litellm")
    assert set(seed.providers.values()) == {"openai", "anthropic"}


def prices(*values: str | None) -> ModelPrice:
    """A ModelPrice from decimal strings in field order (input, output, cached, cache write, batch in, batch out)."""
    d = [None if v is None else Decimal(v) for v in values]
    assert d[0] is not None and d[1] is not None
    return ModelPrice(d[0], d[1], d[2], d[3], d[4], d[5])


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini", prices("0.00000015", "0.0000006", "0.000000075", None, "0.000000075", "0.0000003")),
        ("gpt-4o", prices("0.0000025", "0.00001", "0.00000125", None, "0.00000125", "0.000005")),
        ("claude-sonnet-4-5", prices("0.000003", "0.000015", "0.0000003", "0.00000375", "0.0000015", "0.0000075")),
        ("text-embedding-3-small", prices("0.00000002", "0", None, None, "0.00000001", "0")),
    ],
)
def test_seed_has_litellm_values(seed: PriceTable, model: str, expected: ModelPrice) -> None:
    # litellm: gpt-4o-mini 1.5e-07 / 6e-07 / cache read 7.5e-08 / batch 7.5e-08, 3e-07, and so on.
    assert seed.models[model] == expected


def test_every_seed_price_is_a_positive_decimal(seed: PriceTable) -> None:
    for name, entry in seed.models.items():
        assert isinstance(entry.input, Decimal) and entry.input > 0, name
        # Embeddings produce no output tokens, so litellm lists their output price as 0.
        assert entry.output > 0 or "embedding" in name, name
        for value in (entry.cached_input, entry.cache_write, entry.batch_input, entry.batch_output):
            assert value is None or (isinstance(value, Decimal) and (value > 0 or "embedding" in name)), name


def test_seed_file_stores_prices_as_plain_decimal_strings() -> None:
    doc = json.loads(SEED_PATH.read_text(encoding="utf-8"))
    assert (doc["currency"], doc["unit"]) == ("USD", "per_token")
    for entry in doc["models"].values():
        for key in ("input", "output", "cached_input", "cache_write", "batch_input", "batch_output"):
            value = entry[key]
            assert value is None or (isinstance(value, str) and "e" not in value.lower()), entry


# --- lookups ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o-mini-2030-01-01", "gpt-4o-mini"),  # an unknown OpenAI snapshot → its undated name
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # a known snapshot keeps its own (older, dearer) price
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
        ("claude-sonnet-4-5-20991231", "claude-sonnet-4-5"),  # an unknown Anthropic snapshot → its alias
        ("text-embedding-3-small", "text-embedding-3-small"),
    ],
)
def test_resolution_of_dated_and_undated_names(seed: PriceTable, asked: str, resolved: str) -> None:
    assert seed.resolve(asked) == resolved
    assert seed.price_for(asked) == seed.models[resolved]


def test_undated_anthropic_alias_finds_its_latest_snapshot() -> None:
    base = ModelPrice(Decimal("0.000001"), Decimal("0.000002"))
    newer = ModelPrice(Decimal("0.000003"), Decimal("0.000004"))
    table = PriceTable("t", "2026-01-01", "test", {"claude-x-1-20250101": base, "claude-x-1-20250601": newer})
    assert table.resolve("claude-x-1") == "claude-x-1-20250601"
    assert table.resolve("claude-x-1-20240101") == "claude-x-1-20250601"
    assert table.resolve("claude-x") is None


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-2030-01-01", "gpt-4o"),
        ("gpt-4o-mini-2030-01-01", "gpt-4o-mini"),
        ("gpt-9", None),
        ("gpt-4", "gpt-4"),
        ("gpt-4o-nano", None),
        ("claude-sonnet-4", None),
        ("claude-sonnet-4-5-latest", None),
        ("", None),
    ],
)
def test_no_guessing_across_model_families(seed: PriceTable, asked: str, expected: str | None) -> None:
    assert seed.resolve(asked) == expected


def test_unknown_model_has_no_price_and_no_cost(seed: PriceTable) -> None:
    assert seed.price_for("gpt-9") is None
    cost = compute_cost(Usage(prompt_tokens=100, completion_tokens=10), seed.price_for("gpt-9"))
    assert cost == Cost(usd=None, priced=False) == UNPRICED


# --- the cost formula, by hand ----------------------------------------------------------------------------------


def test_openai_cached_prompt_cost(seed: PriceTable) -> None:
    # gpt-4o-mini: input 0.00000015, cached 0.000000075, output 0.0000006 per token.
    #   (1000 - 400) * 0.00000015  = 0.00009
    #   400          * 0.000000075 = 0.00003
    #   200          * 0.0000006   = 0.00012
    #   total                      = 0.00024
    usage = Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    assert compute_cost(usage, price(seed, "gpt-4o-mini")) == Cost(usd=Decimal("0.000240000"), priced=True)


def test_anthropic_cache_read_and_write_cost(seed: PriceTable) -> None:
    # claude-sonnet-4-5: input 0.000003, cache read 0.0000003, cache write 0.00000375, output 0.000015.
    # Anthropic reports input 50, cache_read 100, cache_creation 20; the adapter makes prompt_tokens 170.
    #   50  * 0.000003   = 0.00015
    #   100 * 0.0000003  = 0.00003
    #   20  * 0.00000375 = 0.000075
    #   30  * 0.000015   = 0.00045
    #   total            = 0.000705
    usage = Usage(prompt_tokens=170, completion_tokens=30, cached_tokens=100, cache_write_tokens=20)
    assert compute_cost(usage, price(seed, "claude-sonnet-4-5")).usd == Decimal("0.000705")


def test_embedding_cost(seed: PriceTable) -> None:
    # text-embedding-3-small: 1000 * 0.00000002 = 0.00002; no completion tokens, no output cost.
    usage = Usage(prompt_tokens=1000)
    assert compute_cost(usage, price(seed, "text-embedding-3-small")).usd == Decimal("0.00002")


def test_batch_uses_batch_prices(seed: PriceTable) -> None:
    # gpt-4o-mini batch: 1000 * 0.000000075 + 200 * 0.0000003 = 0.000075 + 0.00006 = 0.000135
    usage = Usage(prompt_tokens=1000, completion_tokens=200)
    assert compute_cost(usage, price(seed, "gpt-4o-mini"), batch=True).usd == Decimal("0.000135")


def test_batch_discounts_cache_reads_and_writes_like_input(seed: PriceTable) -> None:
    # claude-sonnet-4-5 batch: batch_input / input = 0.0000015 / 0.000003 = 0.5, applied to the cache prices.
    #   50  * 0.0000015   = 0.000075
    #   100 * 0.00000015  = 0.000015
    #   20  * 0.000001875 = 0.0000375
    #   30  * 0.0000075   = 0.000225
    #   total             = 0.0003525 (litellm lists 1.5e-07 and 1.875e-06 as its batch cache prices)
    usage = Usage(prompt_tokens=170, completion_tokens=30, cached_tokens=100, cache_write_tokens=20)
    assert compute_cost(usage, price(seed, "claude-sonnet-4-5"), batch=True).usd == Decimal("0.0003525")


def test_batch_without_batch_prices_is_half_price() -> None:
    # No batch price in the table: half of 0.00003 and 0.00006 → 1000 * 0.000015 + 100 * 0.00003 = 0.018
    no_batch = ModelPrice(Decimal("0.00003"), Decimal("0.00006"))
    usage = Usage(prompt_tokens=1000, completion_tokens=100)
    assert compute_cost(usage, no_batch, batch=True).usd == Decimal("0.018")
    assert compute_cost(usage, no_batch).usd == Decimal("0.036")


def test_missing_cache_prices_fall_back_to_input_and_zero_is_a_price() -> None:
    # 600 * 0.000001 + 400 * 0.000001 (no cached price) = 0.001; with a free cache: 600 * 0.000001 = 0.0006
    usage = Usage(prompt_tokens=1000, cached_tokens=300, cache_write_tokens=100)
    assert compute_cost(usage, ModelPrice(Decimal("0.000001"), Decimal(0))).usd == Decimal("0.001")
    free = ModelPrice(Decimal("0.000001"), Decimal(0), cached_input=Decimal(0), cache_write=Decimal(0))
    assert compute_cost(usage, free).usd == Decimal("0.0006")


@pytest.mark.parametrize(("tokens", "expected"), [(1, "0.000000000"), (3, "0.000000002"), (5, "0.000000002")])
def test_cost_rounds_half_even_to_nine_places(tokens: int, expected: str) -> None:
    # 0.0000000005 per token: 1 → 0.5e-9 → 0; 3 → 1.5e-9 → 2e-9; 5 → 2.5e-9 → 2e-9 (half to even)
    tiny = ModelPrice(Decimal("0.0000000005"), Decimal(0))
    usd = compute_cost(Usage(prompt_tokens=tokens), tiny).usd
    assert usd is not None and str(usd) == str(Decimal(expected)) and usd.as_tuple().exponent == -9


# --- overrides and versions -------------------------------------------------------------------------------------


def test_no_overrides_keep_the_seed_version(seed: PriceTable) -> None:
    assert seed.with_overrides({}, "2026-12-01") is seed
    assert load_table({}, "2026-12-01").version == seed.version


def test_overrides_make_a_new_deterministic_version(seed: PriceTable) -> None:
    cheap = {"gpt-4o-mini": PriceOverride(input=0.1, output=0.4)}
    first = seed.with_overrides(cheap, "2026-12-01")
    again = load_table({"gpt-4o-mini": PriceOverride(input=0.1, output=0.4)}, "2026-12-01")
    other = seed.with_overrides({"gpt-4o-mini": PriceOverride(input=0.1, output=0.5)}, "2026-12-01")
    assert first.version == again.version
    assert first.version.startswith(f"{seed.version}+local.") and len(first.version) == len(seed.version) + 17
    assert other.version != first.version
    assert first.effective_from == "2026-12-01"
    assert seed.models["gpt-4o-mini"].input == Decimal("0.00000015")  # the base is untouched
    assert first.models["gpt-4o"] == seed.models["gpt-4o"]


def test_override_converts_per_million_exactly_and_falls_back(seed: PriceTable) -> None:
    table = seed.with_overrides(
        {"gpt-4o-mini": PriceOverride(input=0.15, output=0.6, batch_input=0.05), "house-model": PriceOverride(input=2)},
        "2026-12-01",
    )
    mini = price(table, "gpt-4o-mini")
    assert (mini.input, mini.output, mini.batch_input) == (Decimal("0.00000015"), Decimal("0.0000006"), Decimal("5E-8"))
    # Unset optional prices come from the seed entry of the same model.
    assert (mini.cached_input, mini.batch_output) == (Decimal("0.000000075"), Decimal("0.0000003"))
    assert price(table, "house-model") == ModelPrice(Decimal("0.000002"), Decimal(0))


# --- serialisation ----------------------------------------------------------------------------------------------


def test_to_json_round_trips(seed: PriceTable) -> None:
    overridden = seed.with_overrides({"house-model": PriceOverride(input=1.25, output=5)}, "2026-12-01")
    for table in (seed, overridden):
        again = PriceTable.from_json(table.to_json())
        assert again == table
        assert again.to_json() == table.to_json()
    assert seed.to_json() == SEED_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"version": "v"}',
        '{"version": "v", "effective_from": "d", "source": "s", "currency": "EUR", "unit": "per_token", "models": {}}',
        '{"version": "v", "effective_from": "d", "source": "s", "currency": "USD", "unit": "per_token",'
        ' "models": {"m": {"input": 0.000001, "output": "0"}}}',
        '{"version": "v", "effective_from": "d", "source": "s", "currency": "USD", "unit": "per_token",'
        ' "models": {"m": {"input": "-1", "output": "0"}}}',
    ],
)
def test_malformed_tables_are_rejected(text: str) -> None:
    with pytest.raises(PriceTableError):
        PriceTable.from_json(text)


def test_derive_prices_regenerates_the_committed_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not LITELLM_FILE.exists():
        pytest.skip(f"shared data not present at {LITELLM_FILE} (it is in CI, at ../shared/data)")
    committed = SEED_PATH.read_bytes()
    effective_from = json.loads(committed)["effective_from"]
    out = tmp_path / "seed.json"
    args = ["--source", str(LITELLM_FILE), "--out", str(out), "--effective-from", effective_from]
    assert derive_prices.main(args) == 0
    assert out.read_bytes() == committed
    assert "anthropic" in capsys.readouterr().out
