"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Public, ServicesDep

router = APIRouter(tags=["health"])
_public = Depends(Public("health and metrics are for load balancers and scrapers"))
PROBE_TIMEOUT_SECONDS = 3.0  # each readiness probe; both run at once, so /health/ready answers within this


@router.get("/health", dependencies=[_public], summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def _probe(check: Callable[[], Awaitable[object]]) -> str:
    """ "ok", or why not. Bounded: a dependency that accepts connections but never answers must not hang the
    probe (and with it the load balancer's health check)."""
    try:
        result = await asyncio.wait_for(check(), timeout=PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT_SECONDS:g}s"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok" if result is not False else "unreachable"


@router.get(
    "/health/ready",
    dependencies=[_public],
    summary="Readiness: the database and Temporal answer",
    responses={503: {"description": "a dependency is down or too slow; the body names which"}},
)
async def ready(services: ServicesDep) -> Annotated[Any, JSONResponse]:
    async def database() -> None:
        async with services.db.transaction(autocommit=True) as tx:
            await tx.sql.one("SELECT 1")

    database_check, temporal_check = await asyncio.gather(_probe(database), _probe(services.engine.check))
    checks = {"database": database_check, "temporal": temporal_check}
    failed = [name for name, value in checks.items() if value != "ok"]
    body = {"status": "unavailable" if failed else "ready", "checks": checks, "failed": failed}
    return JSONResponse(body, status_code=503 if failed else 200)


@router.get("/metrics", dependencies=[_public], summary="Prometheus metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    # The database gauges are read here, at most once per their cache's lifetime (domain/metrics/gauges.py).
    await services.database_gauges.refresh()
    return Response(generate_latest(services.metrics), media_type=CONTENT_TYPE_LATEST)
