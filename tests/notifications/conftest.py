"""Fixtures for the notification tests: activity deps that mail through the real SMTP sink, and the API served by
uvicorn on a free port (streaming responses need a real server: httpx's ASGI transport buffers whole bodies)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn

from activities.deps import ActivityDeps
from activities.notifications import NotificationActivities
from core.mail import SmtpTransport
from core.settings import Settings, SmtpSettings

# `team` (admin <- manager <- employee, with the in-process worker) for the end-to-end stream test; its teardown
# ends the test's workflows before the tables are emptied.
from tests.approvals.conftest import team  # noqa: F401
from tests.services import SmtpSink, free_port


@pytest.fixture
def smtp_settings(settings: Settings, smtp: SmtpSink) -> Settings:
    smtp.clear()
    return settings.model_copy(
        update={
            "smtp": SmtpSettings(host=smtp.host, port=smtp.port, starttls=False, sender="finance@example.test"),
            "public_base_url": "https://finance.example.test",
        }
    )


@pytest.fixture
def smtp_deps(activity_deps: ActivityDeps, smtp_settings: Settings) -> ActivityDeps:
    return ActivityDeps(
        settings=smtp_settings,
        sessions=activity_deps.sessions,
        authorizer=activity_deps.authorizer,
        storage=activity_deps.storage,
        mail=SmtpTransport(smtp_settings.smtp),
    )


@pytest.fixture
def mailer(smtp_deps: ActivityDeps) -> NotificationActivities:
    return NotificationActivities(smtp_deps)


@pytest.fixture
async def api_url(app: object) -> AsyncIterator[str]:
    """The session's app (lifespan already running) served over real HTTP."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    server.force_exit = True
    async with asyncio.timeout(10):
        await task
