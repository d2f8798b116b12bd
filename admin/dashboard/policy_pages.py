"""The Policies pages: proposed policies (with their estimates) first, versions and diffs, activate and retire.

Changes go through policies.store (the CLI's store and rules) with an audit entry in the same transaction, and are
announced on Redis when one is configured; gateways also poll the change counter, so they apply it either way.
"""

from __future__ import annotations

import difflib
import logging
from itertools import pairwise
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin.api_params import actor_of
from admin.dashboard.web import page
from admin.errors import Conflict
from admin.services import policies as policy_service
from admin.state import get_state
from core.errors import NotFound
from core.models import PolicyVersion
from policies.store import PolicyStoreError, list_policies, policy_history

log = logging.getLogger("netra.admin")
ORDER = {"proposed": 0, "active": 1, "retired": 2}
CHANGES = {"activate": policy_service.activate, "retire": policy_service.retire}


def _given(value: Any) -> Any:
    """A document without its unset (null) fields, as one would write it."""
    if isinstance(value, dict):
        return {k: _given(v) for k, v in value.items() if v is not None and _given(v) != {}}
    return value


def _yaml(row: PolicyVersion) -> str:
    return yaml.safe_dump(_given(row.document), sort_keys=True, allow_unicode=True)


async def policies_list(request: Request) -> Response:
    """Every policy's newest version: proposed ones first, with the saving their author estimated."""
    async with get_state(request).sessions() as session:
        rows = await list_policies(session)
    rows.sort(key=lambda r: (ORDER.get(r.status, 3), r.created_at))
    return page(request, "policies.html", title="Policies", policies=rows)


def _diff(older: PolicyVersion, newer: PolicyVersion) -> list[str]:
    return list(difflib.unified_diff(_yaml(older).splitlines(), _yaml(newer).splitlines(),
                                     f"version {older.version}", f"version {newer.version}", lineterm=""))


async def policy_detail(request: Request) -> Response:
    """One policy: every version as YAML, the diff between consecutive versions, and its events."""
    policy_id = request.path_params["policy_id"]
    async with get_state(request).sessions() as session:
        try:
            history = await policy_history(session, policy_id)
        except PolicyStoreError as exc:
            raise NotFound("No such policy.", code="policy_not_found") from exc
    versions = history.versions
    diffs = {newer.version: _diff(older, newer) for older, newer in pairwise(versions)}
    return page(request, "policy.html", title=f"Policy {versions[-1].name}", policy=versions[-1],
                versions=[(v, _yaml(v), diffs.get(v.version)) for v in reversed(versions)], events=history.events)


async def policy_change(request: Request) -> Response:
    """Activate or retire a policy from its page (the API's service: audited, announced), then show it."""
    policy_id, action = request.path_params["policy_id"], request.path_params["action"]
    change = CHANGES.get(action)
    if change is None:
        raise NotFound("Not found.")
    state = get_state(request)
    try:
        await change(state.sessions, state.redis, actor_of(request), policy_id)
    except Conflict as exc:
        return page(request, "refused.html", status=409, title="Policies", message=exc.message)
    return RedirectResponse(f"/policies/{policy_id}", status_code=303)
