"""The admin app's state: built in the lifespan, reached through get_state()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection
from starlette.types import Scope

from admin.ledger import LedgerAccess
from core.login_throttle import Throttle
from core.passwords import HashCost
from core.settings import Settings

if TYPE_CHECKING:
    from admin.dashboard.web import Pages
    from admin.oidc_provider import OidcProvider

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class AdminState:
    """Everything a handler may use; nothing of it lives at module level."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    signing_key: bytes
    clock: Clock
    throttle: Throttle
    hash_cost: HashCost
    # Verified when an email matches no user, so an unknown address costs the time a wrong password does.
    unknown_user_hash: str
    # Where invoices and analytics read the ledger.
    ledger: LedgerAccess
    # The single sign-on issuer's client; None when NETRA_OIDC_ISSUER is unset.
    oidc: OidcProvider | None = None
    # The Redis client policy changes are announced on; None when NETRA_REDIS_URL is unset.
    redis: Redis | None = None
    # The dashboard's templates, chart styles and ledger reader (None in apps built without the lifespan's help).
    pages: Pages | None = None

    @property
    def access_ttl(self) -> timedelta:
        """How long an access token lives."""
        return timedelta(seconds=self.settings.admin_access_token_ttl)

    @property
    def refresh_ttl(self) -> timedelta:
        """How long a refresh token lives unused."""
        return timedelta(seconds=self.settings.admin_refresh_token_ttl)


def state_of(scope: Scope) -> AdminState:
    """The state from an ASGI scope (the lifespan put it there)."""
    return cast(AdminState, scope["state"]["admin"])


def get_state(conn: HTTPConnection) -> AdminState:
    """The state of the app serving this request."""
    return state_of(conn.scope)
