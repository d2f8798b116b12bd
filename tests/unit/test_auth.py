"""Gateway auth over a real SQLite database: keys, their cache, and what happens when the database is away."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from core.db import create_engine
from core.errors import AuthenticationFailed, ServiceUnavailable, TenantSuspended
from core.settings import Settings
from core.tenants import list_keys, revoke_key
from gateway.auth import KeyAuthenticator, Principal
from tests.unit.conftest import Database
from tests.unit.helpers import Clock, assert_envelope, tenant_with_key

TTL = 5.0


class KeyQueries:
    """Counts the key lookups the engine runs (the listener runs on the event loop, just before the query)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_keys" in statement and statement.lstrip().upper().startswith("SELECT"):
            self.count += 1


@pytest.fixture
def queries(database: Database) -> Iterator[KeyQueries]:
    counter = KeyQueries()
    event.listen(database.engine.sync_engine, "before_cursor_execute", counter)
    yield counter
    event.remove(database.engine.sync_engine, "before_cursor_execute", counter)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(database: Database, clock: Clock) -> KeyAuthenticator:
    return KeyAuthenticator(database.sessions, ttl=TTL, clock=clock)


async def test_valid_key_gives_its_principal(database: Database, auth: KeyAuthenticator) -> None:
    key = await tenant_with_key(database.sessions, "acme", tier="mid", models=["gpt-4o-mini", "gpt-4o"])
    principal = await auth.authenticate(f"Bearer {key}")
    async with database.sessions() as session:
        (stored,) = await list_keys(session, "acme")
    assert isinstance(principal, Principal)
    assert (principal.key_id, principal.tenant_name, principal.tier) == (stored.id, "acme", "mid")
    assert principal.tenant_id == stored.tenant_id
    assert principal.allowed_models == frozenset({"gpt-4o-mini", "gpt-4o"})
    assert principal.may_use("gpt-4o") and not principal.may_use("o3")


async def test_key_without_a_model_list_may_use_every_model(database: Database, auth: KeyAuthenticator) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    assert (await auth.authenticate(f"Bearer {key}")).may_use("anything")


async def test_scheme_is_case_insensitive_and_spaces_tolerated(database: Database, auth: KeyAuthenticator) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    assert (await auth.authenticate(f"  bearer   {key} ")).tenant_name == "acme"


@pytest.mark.parametrize("header", [None, ""])
async def test_missing_header_is_missing_api_key(auth: KeyAuthenticator, header: str | None) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate(header)
    assert caught.value.status_code == 401
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code="missing_api_key")


@pytest.mark.parametrize("scheme", ["Basic", "Token", "nk-"])
async def test_wrong_scheme_is_invalid_api_key(database: Database, auth: KeyAuthenticator, scheme: str) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate(f"{scheme} {key}")
    assert (caught.value.status_code, caught.value.code) == (401, "invalid_api_key")


async def test_bearer_without_a_key_is_invalid(auth: KeyAuthenticator) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate("Bearer ")
    assert caught.value.code == "invalid_api_key"


async def test_unknown_key_is_invalid(database: Database, auth: KeyAuthenticator) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate(f"Bearer {key[:-1]}x")
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code="invalid_api_key")
    assert key[5:] not in caught.value.message


async def test_revoked_key_is_served_from_cache_until_the_ttl_ends(
    database: Database, auth: KeyAuthenticator, clock: Clock
) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    await auth.authenticate(f"Bearer {key}")
    async with database.sessions() as session:
        (stored,) = await list_keys(session, "acme")
        await revoke_key(session, stored.id)

    clock.advance(TTL - 0.1)
    assert (await auth.authenticate(f"Bearer {key}")).key_id == stored.id

    clock.advance(0.2)
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate(f"Bearer {key}")
    assert (caught.value.status_code, caught.value.code) == (401, "invalid_api_key")


async def test_revoked_key_is_refused_by_a_fresh_authenticator(database: Database, auth: KeyAuthenticator) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    async with database.sessions() as session:
        (stored,) = await list_keys(session, "acme")
        await revoke_key(session, stored.prefix)
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate(f"Bearer {key}")
    assert caught.value.code == "invalid_api_key"


async def test_expired_key_is_refused(database: Database, auth: KeyAuthenticator) -> None:
    key = await tenant_with_key(database.sessions, "acme", expires_in=timedelta(seconds=-1))
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate(f"Bearer {key}")
    assert (caught.value.status_code, caught.value.code) == (401, "invalid_api_key")


async def test_key_expiring_later_works_now(database: Database, auth: KeyAuthenticator) -> None:
    key = await tenant_with_key(database.sessions, "acme", expires_in=timedelta(days=30))
    assert (await auth.authenticate(f"Bearer {key}")).tenant_name == "acme"


async def test_suspended_tenant_is_403(database: Database, auth: KeyAuthenticator) -> None:
    key = await tenant_with_key(database.sessions, "acme", suspended=True)
    with pytest.raises(TenantSuspended) as caught:
        await auth.authenticate(f"Bearer {key}")
    assert caught.value.status_code == 403
    assert_envelope(caught.value.envelope(), type="permission_error", code="tenant_suspended")


# --- the cache ----------------------------------------------------------------------------------------------------


async def test_database_is_read_once_per_key_per_ttl(
    database: Database, auth: KeyAuthenticator, clock: Clock, queries: KeyQueries
) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    other = await tenant_with_key(database.sessions, "globex")
    for _ in range(5):
        await auth.authenticate(f"Bearer {key}")
        clock.advance(0.5)
    assert queries.count == 1

    await auth.authenticate(f"Bearer {other}")
    assert queries.count == 2

    clock.advance(TTL)
    await auth.authenticate(f"Bearer {key}")
    await auth.authenticate(f"Bearer {key}")
    assert queries.count == 3


async def test_unknown_keys_are_cached_briefly(
    database: Database, auth: KeyAuthenticator, clock: Clock, queries: KeyQueries
) -> None:
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("Bearer nk-not-a-key-at-all")
    assert queries.count == 1
    clock.advance(TTL)
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate("Bearer nk-not-a-key-at-all")
    assert queries.count == 2


async def test_a_key_created_after_a_miss_works_within_seconds(
    database: Database, auth: KeyAuthenticator, clock: Clock
) -> None:
    # The negative cache must not lock out a key for the full TTL; one second at most.
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate("Bearer nk-missing")
    key = await tenant_with_key(database.sessions, "acme")
    clock.advance(1.01)
    assert (await auth.authenticate(f"Bearer {key}")).tenant_name == "acme"


async def test_concurrent_authentications_share_one_lookup(
    database: Database, auth: KeyAuthenticator, queries: KeyQueries
) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    principals = await asyncio.gather(*(auth.authenticate(f"Bearer {key}") for _ in range(20)))
    assert {p.tenant_name for p in principals} == {"acme"}
    assert queries.count == 1


async def test_concurrent_unknown_keys_all_fail_with_one_lookup(
    auth: KeyAuthenticator, queries: KeyQueries
) -> None:
    results = await asyncio.gather(*(auth.authenticate("Bearer nk-nope") for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, AuthenticationFailed) for r in results)
    assert queries.count == 1


async def test_a_cancelled_first_caller_does_not_fail_the_others(
    database: Database, auth: KeyAuthenticator, queries: KeyQueries
) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    first = asyncio.create_task(auth.authenticate(f"Bearer {key}"))
    second = asyncio.create_task(auth.authenticate(f"Bearer {key}"))
    while queries.count == 0:
        await asyncio.sleep(0)  # until the shared lookup's query has been sent
    first.cancel()  # e.g. the first caller's request was abandoned
    outcome, _ = await asyncio.gather(second, first, return_exceptions=True)
    assert first.cancelled()
    assert isinstance(outcome, Principal), f"the second caller got {outcome!r}"
    assert outcome.tenant_name == "acme"


# --- the database away --------------------------------------------------------------------------------------------


@asynccontextmanager
async def missing_database(database: Database, settings: Settings) -> AsyncIterator[None]:
    """Bind the session maker to a file in a directory that does not exist, for the duration of the block."""
    await database.engine.dispose()
    before = set(threading.enumerate())
    broken = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{settings.data_dir / 'missing' / 'dir' / 'netra.db'}"}
    )
    engine = create_engine(broken)
    database.sessions.configure(bind=engine)
    try:
        yield
    finally:
        await engine.dispose()
        # aiosqlite stops a failed connection's worker thread without waiting for it; if the test's loop closed
        # first, that thread would raise "Event loop is closed" into whichever test runs next.
        for worker in set(threading.enumerate()) - before:
            if worker.name.endswith("(_connection_worker_thread)"):
                await asyncio.to_thread(worker.join, 10)


async def test_database_down_serves_known_keys_and_refuses_unknown_ones(
    database: Database, auth: KeyAuthenticator, clock: Clock, settings: Settings
) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    await auth.authenticate(f"Bearer {key}")
    clock.advance(TTL + 1)  # the cached entry has expired
    async with missing_database(database, settings):
        assert (await auth.authenticate(f"Bearer {key}")).tenant_name == "acme"
        with pytest.raises(ServiceUnavailable) as caught:
            await auth.authenticate("Bearer nk-never-seen-before")
    assert caught.value.status_code == 503
    assert_envelope(caught.value.envelope(), type="server_error", code="auth_unavailable")
    assert int(caught.value.headers["retry-after"]) >= 1


async def test_dropped_tables_serve_known_keys_and_refuse_unknown_ones(
    database: Database, auth: KeyAuthenticator, clock: Clock
) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    await auth.authenticate(f"Bearer {key}")
    async with database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE api_keys"))
    clock.advance(TTL + 1)
    assert (await auth.authenticate(f"Bearer {key}")).tenant_name == "acme"
    with pytest.raises(ServiceUnavailable) as caught:
        await auth.authenticate("Bearer nk-never-seen-before")
    assert caught.value.code == "auth_unavailable"


async def test_database_down_still_refuses_a_key_known_to_be_unknown(
    database: Database, auth: KeyAuthenticator, clock: Clock, settings: Settings
) -> None:
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate("Bearer nk-bogus")
    clock.advance(TTL)
    async with missing_database(database, settings):
        with pytest.raises(ServiceUnavailable) as caught:
            await auth.authenticate("Bearer nk-bogus")
    assert caught.value.code == "auth_unavailable"


async def test_database_down_refuses_a_stale_key_presented_with_a_different_secret(
    database: Database, auth: KeyAuthenticator, clock: Clock, settings: Settings
) -> None:
    key = await tenant_with_key(database.sessions, "acme")
    await auth.authenticate(f"Bearer {key}")
    clock.advance(TTL + 1)
    async with missing_database(database, settings):
        with pytest.raises(ServiceUnavailable):
            await auth.authenticate(f"Bearer {key}zz")

