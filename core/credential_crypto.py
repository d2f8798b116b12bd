"""Provider keys encrypted at rest: AES-256-GCM under a key derived (HKDF-SHA256) from Netra's master secret.

A sealed key is text: ``v1.`` + URL-safe base64 of a random 96-bit nonce followed by the ciphertext and its tag.
The provider's name is the associated data, so a sealed key copied onto another provider's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Bound to its purpose: the same master secret signs admin tokens under another label.
PURPOSE = b"netra/provider-credentials/aes-256-gcm/v1"
PREFIX = "v1."
NONCE_BYTES = 12
KEY_BYTES = 32


class CredentialUnreadable(ValueError):
    """A sealed key that does not open: another master secret, another provider's row, or damaged text."""


def credential_key(secret: bytes) -> bytes:
    """The encryption key for provider credentials, derived from the master secret."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=PURPOSE).derive(secret)


def seal(key: bytes, provider: str, plaintext: str) -> str:
    """The provider's key, encrypted for storage."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), provider.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def unseal(key: bytes, provider: str, token: str) -> str:
    """The provider's key back in clear, or CredentialUnreadable (whose message never holds key material)."""
    if not token.startswith(PREFIX):
        raise CredentialUnreadable("unknown sealed-key format")
    try:
        raw = base64.urlsafe_b64decode(token[len(PREFIX):].encode("ascii"))
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], provider.encode())
        return plain.decode()
    except (InvalidTag, binascii.Error, ValueError, UnicodeError) as exc:
        raise CredentialUnreadable("the sealed key does not open with this NETRA_SECRET_KEY") from exc
