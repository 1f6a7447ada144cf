"""The OpenAPI document's contract, completed in one place from what each route already declares.

A status or header typed by hand on each route rots: the route changes, the list does not. So the statuses every
operation may answer are derived here from its dependencies and its shape:

- an `Authorize(...)` dependency: 401 (no or a dead token) and 403 (a role without the permission);
- a path parameter: 404 (no such thing, or not one the caller may see);
- a body, or any parameter: 422 (validation), and a body also 400 (not parseable) and 413 (over the size limit);
- a write (POST, PUT, PATCH, DELETE): 409 (the state does not allow it: a closed period, a decided step, a duplicate);
- an `If-Match` header: 412 (a stale version) and 428 (none sent), and the header is required;
- a route marked `rate_limited`: 429 with Retry-After;
- a route that runs in a transaction (every route not `read_only`): 503 with Retry-After, for the serialisation
  failures and deadlocks the database resolves by aborting one transaction, and for the workflow engine being
  unreachable (no `read_only` route calls it);
- an `If-None-Match` read (api/etags.py): 304 with its ETag.

What the shape cannot tell is declared in STATUS_EXCEPTIONS below, each with its reason. Every error status refers
to the one ErrorBody schema (api/errors.py), with an example; every response declares X-Request-ID and
Cache-Control; 429 and 503 Retry-After; 401 WWW-Authenticate; a 3xx other than 304 its Location. Operations that hand
an id to others are linked (OpenAPI links), so a client, and schemathesis's stateful phase, can follow create ->
get -> update -> submit -> approve. `OPTIONS` on every path answers 204 with `Allow`: the documented methods.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route

from api.deps import Authorize, is_rate_limited, is_read_only
from api.errors import CODE_BY_STATUS, ErrorBody, error_response
from api.etags import ETAG_HEADER
from api.trailing_slash import other_form

WRITES = {"post", "put", "patch", "delete"}
_METHODS = ("get", "put", "post", "patch", "delete")

# Statuses an operation answers that its dependencies and shape cannot tell, with the reason. Keyed by operation id.
STATUS_EXCEPTIONS: dict[str, dict[int, str]] = {
    "auth-login": {401: "wrong username or password, or the account is inactive"},
    "auth-login-otp": {401: "a wrong, used or expired code or challenge"},
    "auth-generate-otp": {401: "an unknown or expired sign-in challenge"},
    "auth-refresh": {401: "an unknown, used or expired refresh token"},
    "auth-register": {403: "registration is closed (ALLOW_REGISTRATION off)"},
    "delegation-get": {404: "no delegate is set"},
    "delegation-delete": {404: "no delegate is set"},
    "invoices-create": {404: "its customer_id names no customer"},
    "delegation-set": {404: "its delegate_id names no active user"},
    "invoices-create-recurring": {404: "its template's customer_id names no customer"},
}

_DESCRIPTIONS = {
    400: "Bad Request: the body is not parseable as its content type",
    401: "Unauthorized: no bearer token, or one that is expired, revoked or of a deactivated account",
    403: "Forbidden: your role may not do this, or not to this",
    404: "Not Found: no such resource, or one outside your visibility",
    409: "Conflict: the resource's state does not allow this (a closed period, a decided step, a duplicate)",
    412: "Precondition Failed: the If-Match version is not the current one (read it again)",
    413: "Payload Too Large: the body is over the size limit",
    415: "Unsupported Media Type",
    422: "Unprocessable Content: a field, parameter or header is invalid (details name it)",
    428: "Precondition Required: send If-Match with the version (ETag) you read",
    429: "Too Many Requests: wait Retry-After seconds",
    503: "Service Unavailable: nothing was changed; try again after Retry-After seconds",
}
_EXAMPLE_MESSAGES = {
    400: "There was an error parsing the body",
    401: "missing bearer token",
    403: "your role may not approve approval",
    404: "entry 42 not found",
    409: "the entry is not a draft",
    412: "the entry changed since you read it; read it again",
    413: "request body exceeds 1048576 bytes",
    415: "unsupported media type",
    422: "amount: amount must be greater than 0",
    428: "send If-Match with the entry's version (its ETag) to change it",
    429: "too many sign-in attempts for this account; try again in 42 seconds",
    503: "the workflow engine is unreachable; nothing was changed, try again shortly",
}

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "this request's id, in the logs and the error body: the one you sent when it matched "
        f"{REQUEST_ID_PATTERN}, otherwise a new one",
        "required": True,
        "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
    },
    "Cache-Control": {
        "description": "`no-store`: finance data is not kept in shared or browser caches (revalidate with ETag)",
        "required": True,
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "required": True,
        "schema": {"type": "string", "pattern": r"^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": "`Bearer`: the scheme to authenticate with",
        "required": True,
        "schema": {"type": "string"},
    },
    "Location": {"description": "where to go", "required": True, "schema": {"type": "string"}},
    "ETag": ETAG_HEADER,
    "Idempotent-Replayed": {
        "description": "`true` on the first answer to this Idempotency-Key, sent again (nothing was done twice)",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    },
}
REQUEST_ID_PARAMETER: dict[str, Any] = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "description": "your id for this request, echoed in X-Request-ID and the logs when it matches "
    f"{REQUEST_ID_PATTERN} (any other value is replaced by a new id, not refused)",
    "schema": {"type": "string"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _calls(dependant: Any) -> Iterator[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                yield path, method, item[method]


def _has_header(operation: dict[str, Any], name: str) -> bool:
    return any(p["in"] == "header" and p["name"].lower() == name.lower() for p in operation.get("parameters", []))


def derived_statuses(route: Any, method: str, operation: dict[str, Any]) -> dict[int, str]:
    """The error statuses one operation may answer, derived from its route's dependencies and its shape."""
    calls = list(_calls(route.dependant))
    parameters = operation.get("parameters", [])
    statuses: dict[int, str] = {}
    if any(isinstance(call, Authorize) for call in calls):
        statuses |= {401: _DESCRIPTIONS[401], 403: _DESCRIPTIONS[403]}
    if any(p["in"] == "path" for p in parameters):
        statuses[404] = _DESCRIPTIONS[404]
    if "requestBody" in operation:
        statuses |= {400: _DESCRIPTIONS[400], 413: _DESCRIPTIONS[413], 422: _DESCRIPTIONS[422]}
    if parameters:
        statuses[422] = _DESCRIPTIONS[422]
    if method in WRITES:
        statuses[409] = _DESCRIPTIONS[409]
    if _has_header(operation, "If-Match"):
        statuses |= {412: _DESCRIPTIONS[412], 428: _DESCRIPTIONS[428]}
    if is_rate_limited(route.endpoint):
        statuses[429] = _DESCRIPTIONS[429]
    if not is_read_only(route.endpoint) and calls:
        statuses[503] = _DESCRIPTIONS[503]
    statuses |= STATUS_EXCEPTIONS.get(operation.get("operationId", ""), {})
    return statuses


def _error_response(status: int, description: str | None) -> dict[str, Any]:
    example = {
        "error": {"code": CODE_BY_STATUS[status], "message": _EXAMPLE_MESSAGES[status], "details": None},
        "request_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    response: dict[str, Any] = {
        "description": description or _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}, "example": example}},
    }
    headers: dict[str, Any] = {}
    if status in (429, 503):
        headers["Retry-After"] = _ref("Retry-After")
    if status == 401:
        headers["WWW-Authenticate"] = _ref("WWW-Authenticate")
    if headers:
        response["headers"] = headers
    return response


def _complete_operation(route: Any, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, description in derived_statuses(route, method, operation).items():
        declared = responses.get(str(status), {})
        responses[str(status)] = _error_response(status, declared.get("description") or description)
    for code, response in list(responses.items()):
        status = int(code)
        if status >= 400:  # the route's own error statuses too: one shape for every error
            responses[code] = _error_response(status, response.get("description") or _DESCRIPTIONS.get(status))
    # Request headers: If-Match is required where declared (the routes answer 428 without it); anyone may send an id.
    parameters = operation.setdefault("parameters", [])
    for parameter in parameters:
        if parameter["in"] == "header" and parameter["name"].lower() == "if-match":
            parameter["required"] = True
            parameter["schema"] = {"type": "string", "minLength": 1}
    if not _has_header(operation, "X-Request-ID"):
        parameters.append(dict(REQUEST_ID_PARAMETER))
    tagged = _has_header(operation, "If-Match")
    replayable = _has_header(operation, "Idempotency-Key")
    for code, response in responses.items():
        headers = response.setdefault("headers", {})
        headers.setdefault("X-Request-ID", _ref("X-Request-ID"))
        headers.setdefault("Cache-Control", _ref("Cache-Control"))
        status = int(code)
        if 300 <= status < 400 and status != 304:  # a 304 is no redirect: it carries no Location
            headers.setdefault("Location", _ref("Location"))
        if 200 <= status < 300:
            if tagged:
                headers.setdefault("ETag", {**ETAG_HEADER, "required": False})
            if replayable:
                headers.setdefault("Idempotent-Replayed", _ref("Idempotent-Replayed"))


def _error_schemas(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorBody"] = body
    components["headers"] = {**components.get("headers", {}), **HEADERS}
    # FastAPI's own 422 shape is never sent: every 422 is an ErrorBody.
    text = repr(schema["paths"])
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}'" not in text:
            schemas.pop(unused, None)


# --- links ---------------------------------------------------------------------------------------------------------

# Links the path rule below cannot find: (source operation id, target operation id) -> the link's fields.
LINK_EXTRAS: dict[tuple[str, str], dict[str, Any]] = {
    ("customers-create", "invoices-create"): {"requestBody": {"customer_id": "$response.body#/id"}},
}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _success(operation: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for code in ("201", "200", "202"):
        if code in operation.get("responses", {}):
            return code, operation["responses"][code]
    return None


def _body_has_id(schema: dict[str, Any], response: dict[str, Any]) -> bool:
    body = response.get("content", {}).get("application/json", {}).get("schema")
    return body is not None and "id" in _resolve(schema, body).get("properties", {})


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _item_prefix(path: str) -> str:
    """The collection an item path belongs to: `/api/v1/expenses` for `/api/v1/expenses/{entry_id}/submit`."""
    return path[: path.index("{")].rstrip("/") if "{" in path else path.rstrip("/")


def derived_links(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(source id, target id) -> link. A collection's create hands its body's `id` to every operation on one item
    of the collection (`POST /expenses/` -> `/expenses/{entry_id}/...`); an operation on an item hands the same
    item on to the others (`submit` -> `approve`), with the ETag it answered as If-Match where the target takes it.
    Only items addressed by one id: an item under another (a receipt of an entry) needs ids no response gives."""
    operations = list(_operations(schema))
    links: dict[tuple[str, str], dict[str, Any]] = {}
    for source_path, source_method, source in operations:
        success = _success(source)
        if success is None or source_method == "delete":
            continue
        code, response = success
        source_params = _path_parameters(source_path)
        for target_path, _target_method, target in operations:
            params = _path_parameters(target_path)
            if target is source or len(params) != 1 or _item_prefix(target_path) != _item_prefix(source_path):
                continue
            if source_params == params:
                value = f"$request.path.{params[0]}"
            elif not source_params and source_method == "post" and _body_has_id(schema, response):
                value = "$response.body#/id"
            else:
                continue
            parameters = {params[0]: value}
            if _has_header(target, "If-Match") and "ETag" in response.get("headers", {}):
                parameters["header.If-Match"] = "$response.header.ETag"
            links[(source["operationId"], target["operationId"])] = {"code": code, "parameters": parameters}
    by_id = {operation["operationId"]: operation for _, _, operation in operations}
    for (source_id, target_id), fields in LINK_EXTRAS.items():
        code, _ = _success(by_id[source_id]) or ("200", {})
        links[(source_id, target_id)] = {"code": code, **fields}
    return links


def _declare_links(schema: dict[str, Any]) -> None:
    by_id = {operation["operationId"]: operation for _, _, operation in _operations(schema)}
    for (source_id, target_id), fields in sorted(derived_links(schema).items()):
        link = {key: value for key, value in fields.items() if key != "code"}
        response = by_id[source_id]["responses"][fields["code"]]
        response.setdefault("links", {})[target_id] = {"operationId": target_id, **link}


# --- OPTIONS and Allow ---------------------------------------------------------------------------------------------


def _allow_for(app: FastAPI, scope: Any) -> str | None:
    """The Allow of the documented path a request's path is (in either slash form), or None."""
    for route in app.state.contract_paths:
        for candidate in (scope, {**scope, "path": other_form(scope["path"])}):
            match, _ = route.matches({**candidate, "method": "OPTIONS"})
            if match.name == "FULL":
                return ", ".join(route.methods_allowed)
    return None


class _PathMethods(Route):
    """A documented path's OPTIONS: 204 with Allow. A plain Starlette route, as CORS preflights are (no token)."""

    def __init__(self, path: str, methods_allowed: list[str]) -> None:
        self.methods_allowed = methods_allowed

        async def options(request: Request) -> Response:
            return Response(status_code=204, headers={"Allow": ", ".join(methods_allowed)})

        super().__init__(path, options, methods=["OPTIONS"], include_in_schema=False)


def serve_options(app: FastAPI, routes: Iterable[Any]) -> None:
    """OPTIONS on every API path, and every 405's Allow naming all the path's methods (Starlette would name only
    those of the first route that matched the path)."""
    methods: dict[str, set[str]] = defaultdict(set)
    for route in routes:
        if route.include_in_schema:
            methods[route.path].update(m for m in route.methods if m.lower() in _METHODS)  # `{id:int}` as routed
    app.state.contract_paths = [
        _PathMethods(path, [*sorted(found), "OPTIONS"]) for path, found in methods.items() if found
    ]
    app.router.routes.extend(app.state.contract_paths)

    async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        allow = _allow_for(request.app, request.scope)
        if allow:
            headers["Allow"] = allow
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else "Method Not Allowed"
        return error_response(405, "method_not_allowed", str(detail), None, headers)

    app.add_exception_handler(405, method_not_allowed)


# --- the document --------------------------------------------------------------------------------------------------


def complete_contract(app: FastAPI, routes: Iterable[Any]) -> None:
    """Wrap `app.openapi` (after api/docs.py's wrapper) so the document it serves carries the derived contract."""
    by_operation = {
        (route.path_format, method.lower()): route
        for route in routes
        if route.include_in_schema
        for method in route.methods
    }
    build = app.openapi
    completed = False

    def openapi() -> dict[str, Any]:
        nonlocal completed
        schema = build()
        if not completed:
            for path, method, operation in _operations(schema):
                route = by_operation.get((path, method))
                if route is not None:
                    _complete_operation(route, method, operation)
            _error_schemas(schema)
            _declare_links(schema)
            completed = True
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
