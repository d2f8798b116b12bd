"""Regenerate core/prices/seed.json from litellm's model_prices_and_context_window.json.

    python -m tools.derive_prices --source ../shared/data/pricing/litellm_model_prices_and_context_window.json \
        --out core/prices/seed.json --effective-from 2026-11-26

Keeps the chat, completion, embedding and responses models that OpenAI and Anthropic serve directly, with their
prices turned into exact decimal strings. Same input and date, same bytes out: tests check the committed seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.prices.table import ModelPrice, PriceTable

SOURCE_LABEL = "BerriAI/litellm model_prices_and_context_window.json (copy packaged in litellm 1.110.2), MIT"
# litellm provider → the Netra provider kind whose API serves the model; text-completion-openai is
# litellm's name for OpenAI's /v1/completions models (gpt-3.5-turbo-instruct, davinci-002, babbage-002).
PROVIDERS = {"openai": "openai", "text-completion-openai": "openai", "anthropic": "anthropic"}
MODES = frozenset({"chat", "completion", "embedding", "responses"})
# Audio, speech and image models bill per second, per image or per audio token: this table cannot price them.
_EXCLUDED_NAME = re.compile(r"audio|realtime|image|tts|whisper|transcribe|speech")
# litellm field for each of our price fields.
FIELDS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cached_input": "cache_read_input_token_cost",
    "cache_write": "cache_creation_input_token_cost",
    "batch_input": "input_cost_per_token_batches",
    "batch_output": "output_cost_per_token_batches",
}


def provider_of(name: str, entry: Mapping[str, Any]) -> str | None:
    """The Netra provider for a litellm entry we keep, or None to skip it."""
    provider = PROVIDERS.get(str(entry.get("litellm_provider")))
    if provider is None or entry.get("mode") not in MODES:
        return None
    # ft: entries price fine-tunes of a base model; a "/" marks a routing prefix (openai/container), not a model.
    if name.startswith("ft:") or "/" in name or _EXCLUDED_NAME.search(name):
        return None
    if entry.get(FIELDS["input"]) is None:
        return None
    return provider


def exact(value: float | int | None) -> Decimal | None:
    """A litellm float as the decimal it was written as (2.5e-06 → 0.0000025), never its binary expansion."""
    return None if value is None else Decimal(repr(value))


def model_price(entry: Mapping[str, Any]) -> ModelPrice:
    """Our per-token prices from one litellm entry; an absent output price is zero (embeddings)."""
    prices = {ours: exact(entry.get(theirs)) for ours, theirs in FIELDS.items()}
    input_price = prices.pop("input")
    assert input_price is not None  # provider_of() skipped entries without one
    output_price = prices.pop("output") or Decimal(0)
    return ModelPrice(input=input_price, output=output_price, **prices)


def derive(raw: Mapping[str, Any], effective_from: str, source: str) -> PriceTable:
    """The price table for the kept entries of a parsed litellm file."""
    models: dict[str, ModelPrice] = {}
    providers: dict[str, str] = {}
    for name, entry in raw.items():
        provider = provider_of(name, entry) if isinstance(entry, Mapping) else None
        if provider is not None:
            models[name] = model_price(entry)
            providers[name] = provider
    return PriceTable(f"litellm-{effective_from}", effective_from, source, models, providers)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, required=True, help="litellm model_prices_and_context_window.json")
    parser.add_argument("--out", type=Path, required=True, help="where to write the seed table")
    parser.add_argument("--effective-from", required=True, type=_iso_date, help="YYYY-MM-DD; also names the version")
    parser.add_argument("--source-label", default=SOURCE_LABEL, help="provenance recorded in the table")
    return parser.parse_args(argv)


def _iso_date(text: str) -> str:
    # Round-tripping through date() rejects 2026-13-01 and non-padded forms, so version ids stay uniform.
    if date.fromisoformat(text).isoformat() != text:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text}")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Read the litellm file, write the seed table, print a one-line summary."""
    args = parse_args(argv)
    data = args.source.read_bytes()
    # The digest pins exactly which copy of the litellm file the seed came from.
    source = f"{args.source_label}; sha256 {hashlib.sha256(data).hexdigest()[:12]}"
    table = derive(json.loads(data), args.effective_from, source)
    args.out.write_text(table.to_json(), encoding="utf-8", newline="\n")
    counts = {p: sum(1 for v in table.providers.values() if v == p) for p in sorted(set(PROVIDERS.values()))}
    print(f"wrote {args.out}: version {table.version}, {len(table.models)} models {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
