"""Tenant API keys: random, shown once, stored as a SHA-256 hash with a short display prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "nk-"
_DISPLAY_LEN = len(KEY_PREFIX) + 8


def hash_key(plaintext: str) -> str:
    """The stored form of a key; keys carry 256 random bits, so a plain SHA-256 suffices."""
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def generate_key() -> tuple[str, str, str]:
    """A new key as (plaintext, display prefix, hash)."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    return plaintext, plaintext[:_DISPLAY_LEN], hash_key(plaintext)


def hashes_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two key hashes."""
    return hmac.compare_digest(a.encode(), b.encode())


def new_id(kind: str) -> str:
    """A short random identifier such as key_3f9a…."""
    return f"{kind}_{secrets.token_hex(8)}"
