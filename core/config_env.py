"""`${VAR}` expansion over a parsed netra.yaml: an unset credential withholds its provider, any other is a mistake."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.config_messages import ConfigProblem, Loc

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A provider's fields that carry its credential: unset, the provider is not served rather than called without one.
CREDENTIAL_FIELDS = frozenset({"api_key", "headers"})


@dataclass(frozen=True, slots=True)
class UnsetCredential:
    """A `${NAME}` in a provider's credential with NAME unset (or empty)."""

    loc: Loc
    name: str

    @property
    def provider_index(self) -> int:
        """Which entry of `providers:` it is in."""
        return int(self.loc[1])


def is_credential(loc: Loc) -> bool:
    """Whether this place of the file holds a provider's credential."""
    return len(loc) >= 3 and loc[0] == "providers" and isinstance(loc[1], int) and loc[2] in CREDENTIAL_FIELDS


def expand_env(value: Any, env: Mapping[str, str], unset: list[UnsetCredential], loc: Loc = ()) -> Any:
    """Replace ${NAME} and ${NAME:-default} in every string; unset credentials are appended to `unset`."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda match: _env_value(match, env, unset, loc), value)
    if isinstance(value, dict):
        return {key: expand_env(item, env, unset, (*loc, str(key))) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, env, unset, (*loc, i)) for i, item in enumerate(value)]
    return value


def _env_value(match: re.Match[str], env: Mapping[str, str], unset: list[UnsetCredential], loc: Loc) -> str:
    name, default = match.group(1), match.group(2)
    # As in the shell, an empty variable counts as unset for `:-`.
    value = env.get(name) or default
    if value is not None:
        return value
    if is_credential(loc):
        unset.append(UnsetCredential(loc, name))
        return ""
    raise ConfigProblem(loc, f"${{{name}}} is not set in the environment (or is empty); "
                             f"export {name}, or write ${{{name}:-}} for an empty value")
