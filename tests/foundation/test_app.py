"""The API skeleton: health, readiness, docs, error shape, request ids, limits and default deny."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends

from api.app import (
    UndeclaredPermissionError,
    WritingReadOnlyRouteError,
    check_every_route_declares_permission,
    check_read_only_routes_only_read,
    create_app,
)
from api.deps import AppServices, Public, read_only
from core.engine import WorkflowEngine
from core.settings import Settings, TemporalSettings


async def test_health_and_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert (await client.get("/redoc")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["title"]


async def test_ready_names_what_failed(client: httpx.AsyncClient, app: object, settings: Settings) -> None:
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}

    services: AppServices = app.state.services  # type: ignore[attr-defined]
    working = services.engine
    services.engine = WorkflowEngine(TemporalSettings(address="127.0.0.1:1"))
    try:
        down = await client.get("/health/ready")
    finally:
        services.engine = working
    assert down.status_code == 503
    assert down.json()["failed"] == ["temporal"]


async def test_errors_have_one_shape_and_a_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-thing", headers={"X-Request-ID": "trace-123"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "trace-123"
    body = response.json()
    assert body["error"]["code"] == "not_found" and body["request_id"] == "trace-123"
    generated = await client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"


async def test_security_headers_and_metrics(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    metrics = await client.get("/metrics")
    assert "http_requests_total" in metrics.text


async def test_oversized_body_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.post("/api/v1/auth/login", content=b"x" * (settings.max_body_bytes + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_route_without_a_permission_stops_the_app(settings: Settings) -> None:
    app = create_app(settings)
    undeclared = APIRouter()

    @undeclared.get("/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    app.include_router(undeclared)
    with pytest.raises(UndeclaredPermissionError, match="/forgotten"):
        check_every_route_declares_permission(app)


def test_a_writing_route_marked_read_only_stops_the_app(settings: Settings) -> None:
    app = create_app(settings)
    writing = APIRouter()

    @writing.post("/sneaky", dependencies=[Depends(Public("a test route"))])
    @read_only
    async def sneaky() -> dict[str, str]:
        return {}

    app.include_router(writing)
    with pytest.raises(WritingReadOnlyRouteError, match="/sneaky"):
        check_read_only_routes_only_read(app)
