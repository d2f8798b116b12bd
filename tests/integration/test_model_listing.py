"""GET /v1/models and /v1/models/{id}: a listing needs a valid key but is not a billable call."""

from __future__ import annotations

from tests.integration.harness import Gateway
from tests.unit.helpers import assert_envelope


async def test_listing_models_does_not_use_up_the_hourly_limit(gateway: Gateway) -> None:
    for number in range(150):  # the free tier allows 100 calls an hour
        path = "/v1/models" if number % 2 else "/v1/models/gpt-4o-mini"
        assert (await gateway.http.get(path, headers=gateway.auth("tiny"))).status_code == 200
    call = await gateway.chat(who="tiny")
    assert call.status_code == 200
    assert call.headers["x-ratelimit-remaining-requests"] == "99"  # only the billable call was counted


async def test_listing_models_still_needs_a_valid_key_of_an_active_tenant(gateway: Gateway) -> None:
    for path in ("/v1/models", "/v1/models/gpt-4o-mini"):
        anonymous = await gateway.http.get(path)
        assert anonymous.status_code == 401
        assert_envelope(anonymous.json(), type="invalid_request_error", code="missing_api_key")
        wrong = await gateway.http.get(path, headers={"authorization": "Bearer nk-not-a-key-0000"})
        assert wrong.status_code == 401
        assert_envelope(wrong.json(), type="invalid_request_error", code="invalid_api_key")
        suspended = await gateway.http.get(path, headers=gateway.auth("frozen"))
        assert suspended.status_code == 403
        assert_envelope(suspended.json(), type="permission_error", code="tenant_suspended")
