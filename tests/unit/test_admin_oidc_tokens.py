"""ID tokens the admin app must refuse (forged, for someone else, stale, unbound to this sign-in), the issuer's key
rotation it must follow, and an issuer that fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from core.settings import Settings
from core.user_store import list_users
from tests.fake_oidc import DROP, FakeIssuer, SigningKey
from tests.unit.conftest import Database
from tests.unit.helpers import assert_envelope, closed_port
from tests.unit.oidc_harness import Sso, running_sso


@pytest.fixture
async def sso(settings: Settings, database: Database) -> AsyncIterator[Sso]:
    async with running_sso(settings, database.sessions) as running:
        yield running


def expired(issuer: FakeIssuer) -> dict[str, Any]:
    return {"exp": int(issuer.clock().timestamp()) - 120}


REFUSED_TOKENS = {
    "tampered signature": lambda issuer: issuer.__setattr__("tamper", True),
    "wrong audience": lambda issuer: issuer.claim_changes.update(aud="another-client"),
    "wrong issuer": lambda issuer: issuer.claim_changes.update(iss=issuer.url + "-other"),
    "expired": lambda issuer: issuer.claim_changes.update(expired(issuer)),
    "issued in the future": lambda issuer: issuer.claim_changes.update(iat=int(issuer.clock().timestamp()) + 600),
    "another sign-in's nonce": lambda issuer: issuer.claim_changes.update(nonce="a-nonce-from-elsewhere"),
    "no nonce": lambda issuer: issuer.claim_changes.update(nonce=DROP),
    "unknown kid": lambda issuer: issuer.__setattr__("sign_with", SigningKey.new()),
    "alg header not RS256": lambda issuer: issuer.header_changes.update(alg="HS256"),
    "exp not a number": lambda issuer: issuer.claim_changes.update(exp="tomorrow"),
    "several audiences, not ours as azp": lambda issuer: issuer.claim_changes.update(
        aud=[issuer.client_id, "another-client"], azp="another-client"),
}
REASONS = {
    "tampered signature": "signature", "wrong audience": "another client", "wrong issuer": "another issuer",
    "expired": "expired", "issued in the future": "not valid yet", "another sign-in's nonce": "nonce",
    "no nonce": "nonce", "exp not a number": "not a number", "unknown kid": "does not publish",
    "alg header not RS256": "RS256",
    "several audiences, not ours as azp": "another party",
}


@pytest.mark.parametrize("case", sorted(REFUSED_TOKENS))
async def test_untrustworthy_id_tokens_are_refused(sso: Sso, case: str) -> None:
    REFUSED_TOKENS[case](sso.issuer)
    browser = await sso.browser()
    refused = await sso.sign_in(browser)
    assert refused.status_code == 401, refused.text
    error = assert_envelope(refused.json(), type="invalid_request_error", code="invalid_id_token")
    assert REASONS[case] in error["message"]
    assert browser.cookies.get("netra_refresh") is None and browser.cookies.get("netra_oidc") is None
    async with sso.admin.sessions() as session:
        assert await list_users(session) == []


async def test_a_token_within_the_clock_skew_allowance_is_accepted(sso: Sso) -> None:
    sso.issuer.claim_changes.update(exp=int(sso.issuer.clock().timestamp()) - 30)
    browser = await sso.browser()
    await sso.sign_in(browser)
    assert (await sso.me(browser)).status_code == 200


async def test_a_key_rotation_at_the_issuer_is_followed(sso: Sso) -> None:
    first = await sso.browser()
    await sso.sign_in(first)
    await sso.sign_in(await sso.browser())
    assert sso.issuer.jwks_fetches == 1  # the keys are cached between sign-ins
    sso.issuer.rotate()
    second = await sso.browser()
    await sso.sign_in(second)
    assert (await sso.me(second)).json()["role"] == "admin"
    assert sso.issuer.jwks_fetches == 2  # fetched again because the token named a kid not in the cache


async def test_an_unknown_kid_fetches_the_keys_once_per_sign_in(sso: Sso) -> None:
    await sso.sign_in()
    sso.issuer.sign_with = SigningKey.new()
    for _ in range(2):
        assert (await sso.sign_in()).status_code == 401
    assert sso.issuer.jwks_fetches == 3


async def test_keys_are_fetched_again_after_an_hour(sso: Sso) -> None:
    await sso.sign_in()
    sso.admin.clock.advance(3601)
    sso.issuer.keys = [SigningKey.new()]  # the old key withdrawn; this one signs from now on
    browser = await sso.browser()
    await sso.sign_in(browser)
    assert (await sso.me(browser)).status_code == 200 and sso.issuer.jwks_fetches == 2


async def test_the_secret_goes_in_the_body_when_the_issuer_only_takes_that(
    settings: Settings, database: Database
) -> None:
    async with running_sso(settings, database.sessions) as sso:
        sso.issuer.auth_methods = ["client_secret_post"]
        browser = await sso.browser()
        await sso.sign_in(browser)
        assert (await sso.me(browser)).status_code == 200


async def test_a_wrong_client_secret_is_refused(settings: Settings, database: Database) -> None:
    async with running_sso(settings, database.sessions, oidc_client_secret=SecretStr("not the secret")) as sso:
        refused = await sso.sign_in()
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "sso_code_refused"
        assert "not the secret" not in refused.text


@pytest.mark.parametrize("failure", ["500", "garbage"])
async def test_a_failing_token_endpoint_is_a_502(sso: Sso, failure: str) -> None:
    sso.issuer.fail_token = failure
    refused = await sso.sign_in()
    assert refused.status_code == 502
    assert_envelope(refused.json(), type="server_error", code="sso_unavailable")


async def test_an_unreachable_issuer_is_a_502_not_a_crash(settings: Settings, database: Database) -> None:
    async with running_sso(settings, database.sessions) as sso:
        await sso.issuer.close()
        refused = await sso.sign_in()
        assert refused.status_code == 502 and refused.json()["error"]["code"] == "sso_unavailable"


async def test_a_discovery_document_of_another_issuer_is_refused(settings: Settings, database: Database) -> None:
    async with running_sso(settings, database.sessions) as sso:
        real = sso.issuer.url
        sso.issuer.url = f"http://127.0.0.1:{closed_port()}/realms/netra"  # its document now names another
        refused = await sso.sign_in()
        sso.issuer.url = real
        assert refused.status_code == 502 and "another issuer" in refused.json()["error"]["message"]
