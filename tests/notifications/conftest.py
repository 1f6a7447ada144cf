"""Fixtures for the notification tests: activity deps that mail through the real SMTP sink, and the API served by
uvicorn on a free port (streaming responses need a real server: httpx's ASGI transport buffers whole bodies)."""

from __future__ import annotations

import pytest

from activities.deps import ActivityDeps
from activities.notifications import NotificationActivities
from core.mail import SmtpTransport
from core.settings import Settings, SmtpSettings

# `team` (admin <- manager <- employee, with the in-process worker) for the end-to-end stream test; its teardown
# ends the test's workflows before the tables are emptied.
from tests.approvals.conftest import team  # noqa: F401
from tests.services import SmtpSink


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
        db=activity_deps.db,
        authorizer=activity_deps.authorizer,
        storage=activity_deps.storage,
        mail=SmtpTransport(smtp_settings.smtp),
    )


@pytest.fixture
def mailer(smtp_deps: ActivityDeps) -> NotificationActivities:
    return NotificationActivities(smtp_deps)
