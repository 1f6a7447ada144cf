"""Every response and every log line carries the request id, an unexpected failure (500) included, and the
server's own loggers (uvicorn's) write the same JSON lines as the app."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import APIRouter, Depends

from api.app import create_app
from api.deps import AppServices, Public
from core.logging import UVICORN_LOGGERS, JsonFormatter, configure_logging


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything logged during the test, formatted by the app's JSON formatter as it is written."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


@pytest.fixture
async def failing_client(app_services: AppServices) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=app_services)
    boom = APIRouter()

    @boom.get("/boom", dependencies=[Depends(Public("a test route that fails"))])
    async def fail() -> None:
        raise RuntimeError("a bug")

    app.include_router(boom)
    async with app.router.lifespan_context(app):
        # raise_app_exceptions stays on: the app must answer the 500 itself, not leave it to the server.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_a_500_carries_the_request_id_in_header_body_and_log(
    failing_client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    response = await failing_client.get("/boom", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-500"
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error", "details": None},
        "request_id": "trace-500",
    }
    assert response.headers["x-content-type-options"] == "nosniff"  # the security headers too
    lines = _parsed(log_lines)
    failures = [line for line in lines if line["message"] == "unhandled error"]
    assert len(failures) == 1, "the failure is logged exactly once"
    assert failures[0]["request_id"] == "trace-500" and "RuntimeError: a bug" in failures[0]["exception"]
    access = [line for line in lines if line["logger"] == "api.access" and line.get("path") == "/boom"]
    assert access and access[0]["status"] == 500 and access[0]["request_id"] == "trace-500"


async def test_a_500_without_a_client_id_gets_a_generated_one(failing_client: httpx.AsyncClient) -> None:
    response = await failing_client.get("/boom")
    assert response.status_code == 500
    generated = response.headers["x-request-id"]
    assert len(generated) == 32 and response.json()["request_id"] == generated


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    root_handlers, root_level = root.handlers[:], root.level
    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate, logging.getLogger(name).level)
        for name in UVICORN_LOGGERS
    }
    try:
        yield
    finally:
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
        for name, (handlers, propagate, level) in saved.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate
            logging.getLogger(name).setLevel(level)


def test_uvicorn_loggers_write_json_lines(restored_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    # What uvicorn does before it loads the app: plain-text handlers that do not propagate, at its log level (an
    # earlier test's server may have left another level on these process-wide loggers).
    for name in UVICORN_LOGGERS:
        plain = logging.StreamHandler()
        plain.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logging.getLogger(name).handlers[:] = [plain]
        logging.getLogger(name).propagate = False
        logging.getLogger(name).setLevel(logging.INFO)
    configure_logging("INFO")
    capsys.readouterr()

    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("uvicorn").warning("shutting down")
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("uvicorn.error", "Started server process [42]"),
        ("uvicorn", "shutting down"),
    ]
    assert all("request_id" in line and "time" in line for line in lines)
    assert "INFO: Started" not in out.err + out.out
