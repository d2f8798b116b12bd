"""Provider keys sealed at rest: they open with the same master secret and provider, and with nothing else."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from core.credential_crypto import CredentialUnreadable, credential_key, seal, unseal
from core.secret_key import load_secret
from core.settings import Settings

KEY = "sk-proj-Zx81_k3yMaterial-ABCD"


def test_a_sealed_key_opens_again() -> None:
    key = credential_key(b"s" * 40)
    assert unseal(key, "openai", seal(key, "openai", KEY)) == KEY


def test_the_sealed_text_holds_no_part_of_the_key() -> None:
    key = credential_key(b"s" * 40)
    sealed = seal(key, "openai", KEY)
    raw = base64.urlsafe_b64decode(sealed.removeprefix("v1."))
    for text in (sealed.encode(), raw):
        assert KEY.encode() not in text and KEY[-8:].encode() not in text
        assert base64.b64encode(KEY.encode()) not in text


def test_each_seal_differs() -> None:
    key = credential_key(b"s" * 40)
    assert seal(key, "openai", KEY) != seal(key, "openai", KEY)  # a fresh nonce each time


@pytest.mark.parametrize("secret, provider", [(b"t" * 40, "openai"), (b"s" * 40, "other")])
def test_another_secret_or_another_provider_does_not_open_it(secret: bytes, provider: str) -> None:
    sealed = seal(credential_key(b"s" * 40), "openai", KEY)
    with pytest.raises(CredentialUnreadable) as raised:
        unseal(credential_key(secret), provider, sealed)
    assert KEY not in str(raised.value) and KEY[-4:] not in str(raised.value)


@pytest.mark.parametrize("damaged", ["v2.abcd", "v1.", "v1.!!!!", "v1." + "A" * 40])
def test_damaged_text_is_unreadable(damaged: str) -> None:
    with pytest.raises(CredentialUnreadable):
        unseal(credential_key(b"s" * 40), "openai", damaged)


def test_the_key_comes_from_netra_secret_key_else_the_data_dir(settings: Settings) -> None:
    configured = settings.model_copy(update={"secret_key": SecretStr("q" * 40)})
    assert credential_key(load_secret(configured)) == credential_key(b"q" * 40)
    from_file = credential_key(load_secret(settings))
    assert from_file == credential_key(load_secret(settings)) != credential_key(load_secret(configured))
