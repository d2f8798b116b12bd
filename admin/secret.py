"""The key that signs access tokens: derived from Netra's master secret (core/secret_key.py)."""

from __future__ import annotations

import hashlib
import hmac

from core.secret_key import SECRET_FILE, SecretProblem, load_secret
from core.settings import Settings

__all__ = ["SECRET_FILE", "SecretProblem", "load_signing_key"]
# Derived keys are bound to their purpose, so the same secret can sign other things later without overlap.
PURPOSE = b"netra/admin/access-token/v1"


def load_signing_key(settings: Settings) -> bytes:
    """The HS256 key for access tokens (blocking file I/O: call it at start-up, off the event loop)."""
    return hmac.new(load_secret(settings), PURPOSE, hashlib.sha256).digest()
