"""The access-token signing key: from NETRA_SECRET_KEY, else a random file made once and reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from admin.secret import SecretProblem, load_signing_key
from core.settings import Settings


def test_key_file_is_made_private_and_reused(settings: Settings) -> None:
    first = load_signing_key(settings)
    path = settings.data_dir / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    assert load_signing_key(settings) == first
    assert first != path.read_bytes()  # the file holds the secret; tokens are signed with a key derived from it


def test_a_new_data_dir_gets_a_new_key(settings: Settings, tmp_path: Path) -> None:
    other = settings.model_copy(update={"data_dir": tmp_path / "elsewhere"})
    assert load_signing_key(settings) != load_signing_key(other)


def test_configured_secret_wins_and_writes_no_file(settings: Settings) -> None:
    configured = settings.model_copy(update={"secret_key": SecretStr("s" * 40)})
    assert load_signing_key(configured) == load_signing_key(configured)
    assert load_signing_key(configured) != load_signing_key(settings.model_copy(
        update={"secret_key": SecretStr("t" * 40)}))
    assert not (settings.data_dir / "secret_key").exists()


def test_short_configured_secret_is_refused(settings: Settings) -> None:
    with pytest.raises(SecretProblem, match="NETRA_SECRET_KEY is too short"):
        load_signing_key(settings.model_copy(update={"secret_key": SecretStr("hunter2")}))


def test_key_file_readable_by_others_is_refused(settings: Settings) -> None:
    load_signing_key(settings)
    (settings.data_dir / "secret_key").chmod(0o644)
    with pytest.raises(SecretProblem, match="chmod 600"):
        load_signing_key(settings)
