"""Tier rules the gateway enforces."""

from __future__ import annotations

from core.models import TIER_HOURLY_LIMITS


def hourly_limit(tier: str) -> int | None:
    """Requests per hour allowed for a tier; None means unlimited (unknown tiers get the free limit)."""
    if tier in TIER_HOURLY_LIMITS:
        return TIER_HOURLY_LIMITS[tier]
    return TIER_HOURLY_LIMITS["free"]
