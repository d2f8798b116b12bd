"""Single sign-on's configuration: the issuer, the client, the callback URL and the map from identities to roles.

The role map is JSON (NETRA_OIDC_ROLE_MAP):

    {"domains": {"example.com": "viewer"},
     "claims": {"groups": {"netra-admins": "admin", "finance": "finance"}}}

`domains` maps the domain of the ID token's email to a role; `claims` maps a claim's value (a string, or one of a
list of strings) to a role. Every rule that matches counts and the strongest role wins; when none matches, the
sign-in is refused (nobody becomes a viewer by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from core.settings import Settings
from core.users import ROLES, role_rank

CALLBACK_PATH = "/api/auth/oidc/callback"


class OidcConfigError(RuntimeError):
    """The OIDC settings are incomplete or malformed; the message names the setting."""


def _role(value: object, where: str) -> str:
    if value not in ROLES:
        raise OidcConfigError(f"NETRA_OIDC_ROLE_MAP: {where} maps to {value!r}; roles are {', '.join(ROLES)}")
    return str(value)


def _table(value: object, where: str) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise OidcConfigError(f"NETRA_OIDC_ROLE_MAP: {where} must be an object")
    return MappingProxyType({str(key): _role(role, f"{where}.{key}") for key, role in value.items()})


@dataclass(frozen=True, slots=True)
class RoleMap:
    """Which role an identity gets: by its email's domain, or by the values of its claims."""

    domains: Mapping[str, str]
    claims: Mapping[str, Mapping[str, str]]

    @classmethod
    def parse(cls, raw: str) -> RoleMap:
        """The map from its JSON, or OidcConfigError saying what is wrong."""
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise OidcConfigError(f"NETRA_OIDC_ROLE_MAP is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict) or set(parsed) - {"domains", "claims"}:
            raise OidcConfigError('NETRA_OIDC_ROLE_MAP must be an object with "domains" and/or "claims"')
        domains = _table(parsed.get("domains", {}), "domains")
        claims = parsed.get("claims", {})
        if not isinstance(claims, dict):
            raise OidcConfigError("NETRA_OIDC_ROLE_MAP: claims must be an object")
        return cls(
            MappingProxyType({domain.lower(): role for domain, role in domains.items()}),
            MappingProxyType({name: _table(values, f"claims.{name}") for name, values in claims.items()}),
        )

    def role_for(self, email: str, claims: Mapping[str, Any]) -> str | None:
        """The strongest role any rule grants this identity, or None when no rule matches."""
        granted = [self.domains[domain]] if (domain := email.rpartition("@")[2].lower()) in self.domains else []
        for name, values in self.claims.items():
            granted += [values[value] for value in _strings(claims.get(name)) if value in values]
        return max(granted, key=role_rank, default=None)


def _strings(value: object) -> list[str]:
    """A claim's string values: itself when a string, its strings when a list, none otherwise."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """What the admin app needs to sign users in with one OpenID Connect issuer."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: str
    role_map: RoleMap


def _required(settings: Settings) -> dict[str, str]:
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    given = {"NETRA_OIDC_CLIENT_ID": settings.oidc_client_id, "NETRA_OIDC_CLIENT_SECRET": secret,
             "NETRA_OIDC_REDIRECT_BASE_URL": settings.oidc_redirect_base_url,
             "NETRA_OIDC_ROLE_MAP": settings.oidc_role_map}
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise OidcConfigError(f"NETRA_OIDC_ISSUER is set, so set {', '.join(missing)} too")
    return {name: str(value) for name, value in given.items()}


def oidc_config(settings: Settings) -> OidcConfig | None:
    """The configuration when NETRA_OIDC_ISSUER is set (None: single sign-on is off), else OidcConfigError."""
    if not settings.oidc_issuer:
        return None
    given = _required(settings)
    base = given["NETRA_OIDC_REDIRECT_BASE_URL"].rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise OidcConfigError("NETRA_OIDC_REDIRECT_BASE_URL must be the admin app's http(s):// address")
    if "openid" not in settings.oidc_scopes.split():
        raise OidcConfigError("NETRA_OIDC_SCOPES must include openid")
    return OidcConfig(
        issuer=settings.oidc_issuer, client_id=given["NETRA_OIDC_CLIENT_ID"],
        client_secret=given["NETRA_OIDC_CLIENT_SECRET"], redirect_uri=base + CALLBACK_PATH,
        scopes=settings.oidc_scopes, role_map=RoleMap.parse(given["NETRA_OIDC_ROLE_MAP"]),
    )
