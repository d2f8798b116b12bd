"""The versioned price table: USD per token for each model, as exact Decimals, with local overrides."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

from core.config import PriceOverride

CURRENCY = "USD"
UNIT = "per_token"
PRICE_FIELDS = ("input", "output", "cached_input", "cache_write", "batch_input", "batch_output")
# A snapshot suffix: OpenAI writes -2024-07-18, Anthropic -20250929.
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
_PER_MILLION = Decimal(1_000_000)


class PriceTableError(ValueError):
    """A price table document is malformed."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's prices in USD per token; None means the table has no such price."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    batch_input: Decimal | None = None
    batch_output: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceTable:
    """An immutable, versioned set of model prices; ledger rows name the version they were priced with."""

    version: str
    effective_from: str
    source: str
    models: Mapping[str, ModelPrice]
    providers: Mapping[str, str] = field(default_factory=dict)
    _aliases: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built once so a lookup on the request path is a few dict reads.
        object.__setattr__(self, "_aliases", _alias_index(self.models))

    def resolve(self, model: str) -> str | None:
        """The table entry that prices `model`: exact, then without a date suffix, then its latest snapshot."""
        if model in self.models:
            return model
        undated = _DATE_SUFFIX.sub("", model)
        if undated in self.models:
            return undated
        # Only the same name plus a date suffix can match, so "gpt-4o" never lands on "gpt-4o-mini".
        return self._aliases.get(undated)

    def price_for(self, model: str) -> ModelPrice | None:
        """The price of `model`, or None when the table does not know it (never a guess from another family)."""
        name = self.resolve(model)
        return None if name is None else self.models[name]

    def call_price(self, served: str, requested: str) -> ModelPrice | None:
        """The served model's price, else the requested name's (Azure deployments carry names of their own)."""
        return self.price_for(served) or self.price_for(requested)

    def to_json(self) -> str:
        """The whole table as canonical JSON (sorted keys, exact decimal strings), as shipped and as stored."""
        return json.dumps(_document(self), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PriceTable:
        """Read a table written by `to_json` (the shipped seed or a stored version)."""
        try:
            doc = json.loads(text)
            if (doc["currency"], doc["unit"]) != (CURRENCY, UNIT):
                raise PriceTableError(f"unsupported currency/unit {doc['currency']}/{doc['unit']}")
            entries: Mapping[str, Mapping[str, Any]] = doc["models"]
            models = {name: _price_from_entry(entry) for name, entry in entries.items()}
            providers = {name: str(e["provider"]) for name, e in entries.items() if e.get("provider")}
            return cls(str(doc["version"]), str(doc["effective_from"]), str(doc["source"]), models, providers)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, InvalidOperation) as exc:
            raise PriceTableError(f"malformed price table: {exc!r}") from exc

    def with_overrides(self, overrides: Mapping[str, PriceOverride], effective_from: str) -> PriceTable:
        """A new version with netra.yaml's per-million prices applied; self when there are none."""
        if not overrides:
            return self
        models = dict(self.models)
        for name, override in overrides.items():
            models[name] = _apply_override(override, self.price_for(name))
        return PriceTable(
            version=f"{self.version}+local.{overrides_digest(overrides)}",
            effective_from=effective_from,
            source=f"{self.source}; local overrides from netra.yaml",
            models=models,
            providers=dict(self.providers),
        )


def decimal_string(value: Decimal) -> str:
    """A Decimal as a plain (never scientific) string without trailing zeros, e.g. 0.0000025."""
    return format(value.normalize(), "f")


def overrides_digest(overrides: Mapping[str, PriceOverride]) -> str:
    """The first 10 hex digits of the sha256 of the overrides' canonical JSON: same overrides, same version."""
    canonical = json.dumps(
        {name: override.model_dump() for name, override in overrides.items()},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]


def load_seed() -> PriceTable:
    """The price table shipped with Netra (seed.json beside this module)."""
    text = resources.files(__package__ or "core.prices").joinpath("seed.json").read_text(encoding="utf-8")
    return PriceTable.from_json(text)


def load_table(overrides: Mapping[str, PriceOverride], effective_from: str) -> PriceTable:
    """The shipped table with netra.yaml's overrides applied (the seed itself when there are none)."""
    return load_seed().with_overrides(overrides, effective_from)


def _alias_index(models: Mapping[str, ModelPrice]) -> dict[str, str]:
    """Undated name → its latest dated snapshot, e.g. claude-sonnet-4-5 → claude-sonnet-4-5-20250929."""
    latest: dict[str, tuple[str, str]] = {}
    for name in models:
        match = _DATE_SUFFIX.search(name)
        if match is None:
            continue
        base, stamp = name[: match.start()], match.group(1).replace("-", "")
        if base not in latest or (stamp, name) > latest[base]:
            latest[base] = (stamp, name)
    return {base: name for base, (_, name) in latest.items()}


def _per_token(per_million: float) -> Decimal:
    # Through str() so 0.15 stays 0.15 rather than the float's binary expansion.
    return Decimal(str(per_million)) / _PER_MILLION


def _apply_override(override: PriceOverride, base: ModelPrice | None) -> ModelPrice:
    """The override converted to per token; unset optional prices come from the base entry, if any."""

    def pick(value: float | None, fallback: Decimal | None) -> Decimal | None:
        return fallback if value is None else _per_token(value)

    return ModelPrice(
        input=_per_token(override.input),
        output=_per_token(override.output),
        cached_input=pick(override.cached_input, base.cached_input if base else None),
        cache_write=pick(override.cache_write, base.cache_write if base else None),
        batch_input=pick(override.batch_input, base.batch_input if base else None),
        batch_output=pick(override.batch_output, base.batch_output if base else None),
    )


def _price_from_entry(entry: Mapping[str, Any]) -> ModelPrice:
    """A ModelPrice from one `models` entry of the JSON document."""
    input_price, output_price = _read_price(entry, "input"), _read_price(entry, "output")
    if input_price is None or output_price is None:
        raise PriceTableError("every model needs an input and an output price")
    return ModelPrice(
        input=input_price,
        output=output_price,
        cached_input=_read_price(entry, "cached_input"),
        cache_write=_read_price(entry, "cache_write"),
        batch_input=_read_price(entry, "batch_input"),
        batch_output=_read_price(entry, "batch_output"),
    )


def _read_price(entry: Mapping[str, Any], key: str) -> Decimal | None:
    """One price of an entry: a decimal string, or null for a price the table does not have."""
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        # Prices are decimal strings on purpose: a JSON number would be read as a float.
        raise PriceTableError(f"price {key} must be a decimal string, got {value!r}")
    price = Decimal(value)
    if not price.is_finite() or price < 0:
        raise PriceTableError(f"price {key} must be a finite non-negative number, got {value!r}")
    return price


def _document(table: PriceTable) -> dict[str, Any]:
    """The JSON document of a table."""
    models: dict[str, dict[str, str | None]] = {}
    for name, price in table.models.items():
        entry: dict[str, str | None] = {"provider": table.providers.get(name)}
        for key in PRICE_FIELDS:
            value: Decimal | None = getattr(price, key)
            entry[key] = None if value is None else decimal_string(value)
        models[name] = entry
    return {
        "version": table.version,
        "effective_from": table.effective_from,
        "source": table.source,
        "currency": CURRENCY,
        "unit": UNIT,
        "models": models,
    }
