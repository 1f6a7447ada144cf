"""Operation ids: `<resource>-<action>`, readable and unique, since every generated client names its methods so."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI

from api.app import api_routes
from api.operation_ids import OperationIdError, check_operation_ids, operation_id

READABLE = re.compile(r"^[a-z]+(-[a-z]+)+$")
METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_every_operation_has_a_readable_unique_id(document: dict[str, Any]) -> None:
    found = operations(document)
    assert len(found) > 100, "the document's operations were not found"
    ids = [operation.get("operationId", "") for operation in found.values()]
    unreadable = sorted(f"{method} {path}: {op.get('operationId')}" for (method, path), op in found.items()
                        if not READABLE.match(op.get("operationId", "")))  # fmt: skip
    assert unreadable == []
    assert sorted(name for name, count in Counter(ids).items() if count > 1) == []


def test_the_ids_clients_are_told_about(document: dict[str, Any]) -> None:
    ids = {route: operation["operationId"] for route, operation in operations(document).items()}
    expected = {
        ("POST", "/api/v1/auth/login"): "auth-login",
        ("POST", "/api/v1/expenses/"): "expenses-create",
        ("GET", "/api/v1/expenses/"): "expenses-list",
        ("POST", "/api/v1/expenses/{entry_id}/submit"): "expenses-submit",
        ("POST", "/api/v1/expenses/{entry_id}/approve"): "expenses-approve",
        ("GET", "/api/v1/revenue/"): "revenue-list",
        ("POST", "/api/v1/reports/"): "reports-generate",
        ("GET", "/api/v1/reports/{report_id}"): "reports-get",
        ("POST", "/api/v1/reports/{report_id}/download"): "reports-download",
        ("POST", "/api/v1/reports/schedules"): "report-schedules-create",
        ("GET", "/api/v1/users/me"): "users-get-me",
        ("POST", "/api/v1/recurring-invoices"): "invoices-create-recurring",
        ("GET", "/health"): "health-live",
    }
    assert {route: ids.get(route) for route in expected} == expected


def test_a_documented_route_the_rule_cannot_name_stops_the_app() -> None:
    def app_with(route_tags: list[str] | None, name: str, include_in_schema: bool = True) -> FastAPI:
        app = FastAPI(generate_unique_id_function=operation_id)
        app.add_api_route(f"/{name}", _endpoint(name), tags=route_tags, include_in_schema=include_in_schema)
        return app

    with pytest.raises(OperationIdError, match="/untagged"):
        check_operation_ids(api_routes(app_with(None, "untagged")))
    with pytest.raises(OperationIdError, match="/things"):
        check_operation_ids(api_routes(app_with(["things"], "things")))  # the action would be empty: "things-"
    check_operation_ids(api_routes(app_with(None, "hidden", include_in_schema=False)))  # not in the document
    check_operation_ids(api_routes(app_with(["things"], "list_things")))  # things-list


def _endpoint(name: str) -> Any:
    async def endpoint() -> None: ...

    endpoint.__name__ = name
    return endpoint


def test_two_routes_with_one_id_stop_the_app() -> None:
    app = FastAPI(generate_unique_id_function=operation_id)
    for prefix in ("/a", "/b"):  # one function name under one tag, twice
        router = APIRouter(prefix=prefix, tags=["widgets"])
        router.add_api_route("", _endpoint("list_widgets"))
        app.include_router(router)
    with pytest.raises(OperationIdError, match="widgets-list"):
        check_operation_ids(api_routes(app))
