"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.deps import Public, ServicesDep

router = APIRouter(tags=["health"])
_public = Depends(Public("health and metrics are for load balancers and scrapers"))


@router.get("/health", dependencies=[_public], summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    dependencies=[_public],
    summary="Readiness: the database and Temporal answer",
    responses={503: {"description": "a dependency is down; the body names which"}},
)
async def ready(services: ServicesDep) -> Annotated[Any, JSONResponse]:
    checks: dict[str, str] = {}
    try:
        async with services.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["temporal"] = "ok" if await services.temporal.check() else "unreachable"
    healthy = all(value == "ok" for value in checks.values())
    failed = [name for name, value in checks.items() if value != "ok"]
    body = {"status": "ready" if healthy else "unavailable", "checks": checks, "failed": failed}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics", dependencies=[_public], summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
