"""/health/ready answers in bounded time: a dependency that accepts connections but never replies is a 503
naming it, not a hung probe."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from api.deps import AppServices
from api.routes import health
from core.db import Database
from core.engine import WorkflowEngine
from core.settings import DatabaseSettings, TemporalSettings


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that completes the TCP handshake (the kernel's backlog) and then never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


async def test_silent_dependencies_answer_503_naming_both_within_the_timeout(
    client: httpx.AsyncClient, app: object, silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "PROBE_TIMEOUT_SECONDS", 0.5)
    services: AppServices = app.state.services  # type: ignore[attr-defined]
    database = Database.connect(DatabaseSettings(url=f"postgresql://u:p@{silent_server}/finance"))
    monkeypatch.setattr(services, "db", database)
    monkeypatch.setattr(services, "engine", WorkflowEngine(TemporalSettings(address=silent_server)))
    started = time.monotonic()
    try:
        async with asyncio.timeout(10):  # an unbounded probe fails here instead of hanging the suite
            response = await client.get("/health/ready")
    finally:
        await database.dispose()
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["failed"] == ["database", "temporal"]
    assert body["checks"]["database"] == "no answer within 0.5s"
    assert body["checks"]["temporal"] != "ok"
    assert elapsed < 3, f"the probes ran one after the other or unbounded: {elapsed:.1f}s"


async def test_a_slow_database_alone_is_named(
    client: httpx.AsyncClient, app: object, silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "PROBE_TIMEOUT_SECONDS", 0.5)
    services: AppServices = app.state.services  # type: ignore[attr-defined]
    database = Database.connect(DatabaseSettings(url=f"postgresql://u:p@{silent_server}/finance"))
    monkeypatch.setattr(services, "db", database)
    try:
        async with asyncio.timeout(10):
            response = await client.get("/health/ready")
    finally:
        await database.dispose()
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"] and response.json()["checks"]["temporal"] == "ok"
