"""REST API: policies through the same store and rules as `netra policies`; a change reaches every gateway."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin.api_params import actor_of, choice, optional_whole, page_of, paged
from admin.api_schemas import POLICY_DIFF, POLICY_HISTORY
from admin.apispec import PAGING, Endpoint, Operation, Param, ok, path_param, query_enum, ref
from admin.apispec import page_of as page_schema
from admin.body import read_object
from admin.services import policies
from admin.state import get_state
from policies.json_forms import event_dict, version_dict

TAG = "policies"
POLICY_ID = path_param("policy_id", "the policy's id (pol_…), the same for all its versions")


async def policies_list(request: Request) -> Response:
    """The newest version of each policy, filtered by kind, status and tenant."""
    kind = choice(request, "kind", policies.KINDS)
    status = choice(request, "status", policies.STATUSES)
    tenant = request.query_params.get("tenant")
    rows = await policies.list_policies(get_state(request).sessions, kind=kind, status=status, tenant=tenant)
    return JSONResponse(paged(rows, page_of(request), version_dict))


async def policies_create(request: Request) -> Response:
    """Store a policy document (the JSON form of a policy file's YAML document) as proposed."""
    state, document = get_state(request), await read_object(request)
    row = await policies.create(state.sessions, state.redis, actor_of(request), document)
    return JSONResponse(version_dict(row), status_code=201)


async def policies_get(request: Request) -> Response:
    """A policy's every version and every status change."""
    found = await policies.history(get_state(request).sessions, request.path_params["policy_id"])
    return JSONResponse({
        "id": request.path_params["policy_id"], "current": version_dict(found.versions[-1]),
        "versions": [version_dict(v) for v in found.versions], "events": [event_dict(e) for e in found.events],
    })


async def policies_diff(request: Request) -> Response:
    """What changed between two versions (default: the newest and the one before)."""
    older, newer = optional_whole(request, "from"), optional_whole(request, "to")
    return JSONResponse(await policies.version_diff(get_state(request).sessions, request.path_params["policy_id"],
                                                    older, newer))


async def policies_edit(request: Request) -> Response:
    """Store a document as the policy's next version (active at once if the policy was active)."""
    state, document = get_state(request), await read_object(request)
    row = await policies.edit(state.sessions, state.redis, actor_of(request), request.path_params["policy_id"],
                              document)
    return JSONResponse(version_dict(row))


async def policies_activate(request: Request) -> Response:
    """Activate a policy's newest version."""
    state = get_state(request)
    row = await policies.activate(state.sessions, state.redis, actor_of(request), request.path_params["policy_id"])
    return JSONResponse(version_dict(row))


async def policies_retire(request: Request) -> Response:
    """Retire a policy."""
    state = get_state(request)
    row = await policies.retire(state.sessions, state.redis, actor_of(request), request.path_params["policy_id"])
    return JSONResponse(version_dict(row))


FILTERS = (
    query_enum("kind", policies.KINDS, "only policies of this kind"),
    query_enum("status", policies.STATUSES, "only policies whose newest version has this status"),
    Param("tenant", "query", {"type": "string"}, "only policies applying to this tenant name (naming it or none)"),
)
VERSIONS = (
    Param("from", "query", {"type": "integer", "minimum": 1}, "the older version (default: the one before `to`)"),
    Param("to", "query", {"type": "integer", "minimum": 1}, "the newer version (default: the newest)"),
)
ENDPOINTS = [
    Endpoint("GET", "/api/policies", policies_list, "viewer", Operation(
        "List policies", TAG, (*FILTERS, *PAGING), responses=ok(page_schema(ref("PolicyVersion"))))),
    Endpoint("POST", "/api/policies", policies_create, "admin", Operation(
        "Create a policy (proposed)", TAG, body=ref("PolicyDocument"), responses=ok(ref("PolicyVersion"), 201))),
    Endpoint("GET", "/api/policies/{policy_id}", policies_get, "viewer", Operation(
        "Show a policy with its version history", TAG, (POLICY_ID,), responses=ok(POLICY_HISTORY))),
    Endpoint("GET", "/api/policies/{policy_id}/diff", policies_diff, "viewer", Operation(
        "Diff two versions of a policy", TAG, (POLICY_ID, *VERSIONS), responses=ok(POLICY_DIFF))),
    Endpoint("PUT", "/api/policies/{policy_id}", policies_edit, "admin", Operation(
        "Edit a policy (a new version)", TAG, (POLICY_ID,), body=ref("PolicyDocument"),
        responses=ok(ref("PolicyVersion")))),
    Endpoint("POST", "/api/policies/{policy_id}/activate", policies_activate, "admin", Operation(
        "Activate a policy", TAG, (POLICY_ID,), responses=ok(ref("PolicyVersion")))),
    Endpoint("POST", "/api/policies/{policy_id}/retire", policies_retire, "admin", Operation(
        "Retire a policy", TAG, (POLICY_ID,), responses=ok(ref("PolicyVersion")))),
]
