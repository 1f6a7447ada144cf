"""The approval lifecycle's own mail, end to end: an API and a worker whose email activity talks SMTP to a real
server (aiosmtpd). Submitting mails the approver, approving mails the owner, each with what the decision needs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from activities.deps import ActivityDeps
from core.mail import SmtpTransport
from core.settings import Settings
from tests.approvals.conftest import Team, ended_status, eventually, expense_body
from tests.conftest import own_api
from tests.fx.test_entries import ECB, store_rates, working_day
from tests.services import SmtpSink
from worker import build_workers, worker_plan


@dataclass
class MailingStack:
    http: httpx.AsyncClient
    smtp: SmtpSink


@pytest.fixture
async def mailing_stack(
    smtp_settings: Settings, smtp: SmtpSink, temporal_client: Client, activity_deps: ActivityDeps
) -> AsyncIterator[MailingStack]:
    """Its own task queues, so only its worker (the project's, with the SMTP transport) runs these workflows."""
    temporal = smtp_settings.temporal.model_copy(update={"task_queue_prefix": f"mail-{uuid.uuid4().hex[:8]}"})
    settings = smtp_settings.model_copy(update={"temporal": temporal})
    deps = ActivityDeps(
        settings, activity_deps.db, activity_deps.authorizer, activity_deps.storage, SmtpTransport(settings.smtp)
    )
    workers = build_workers(temporal_client, worker_plan(deps))
    running = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        async with own_api(settings, temporal_client, ("203.0.113.31", 50000)) as http:
            yield MailingStack(http, smtp)
    finally:
        await asyncio.gather(*(worker.shutdown() for worker in workers))
        await asyncio.gather(*running, return_exceptions=True)


def _text(message) -> str:  # type: ignore[no-untyped-def]
    return str(message.get_body(preferencelist=("plain",)).get_content())


async def test_submission_mails_the_approver_and_approval_mails_the_owner(
    mailing_stack: MailingStack, team: Team
) -> None:
    http, smtp = mailing_stack.http, mailing_stack.smtp
    created = await http.post("/api/v1/expenses/", json=expense_body("84.50"), headers=team.employee.headers)
    assert created.status_code == 201, created.text
    entry_id = created.json()["id"]
    submitted = await http.post(f"/api/v1/expenses/{entry_id}/submit", headers=team.employee.headers)
    assert submitted.status_code == 200, submitted.text

    async def mailed(count: int) -> bool:
        return len(smtp.messages) >= count

    assert await eventually(lambda: mailed(1))
    (_, approver_rcpt), to_approver = smtp.envelopes[0], smtp.messages[0]
    assert approver_rcpt == [team.manager.email]
    assert to_approver["Subject"].startswith("Approval needed: ")
    text = _text(to_approver)
    assert "84.50 USD" in text
    assert "Submitted by: Employee " in text  # the owner's full name (make_user: "Employee <n>")
    assert f"/api/v1/expenses/{entry_id}" in text

    approved = await http.post(
        f"/api/v1/expenses/{entry_id}/approve", json={"comment": "receipt checked"}, headers=team.manager.headers
    )
    assert approved.status_code == 200, approved.text
    assert await eventually(lambda: mailed(2))
    (_, owner_rcpt), to_owner = smtp.envelopes[1], smtp.messages[1]
    assert owner_rcpt == [team.employee.email]
    assert to_owner["Subject"].startswith("Approved: ")
    text = _text(to_owner)
    assert "Approved by: Manager" in text and "Comment: receipt checked" in text and "84.50 USD" in text
    await asyncio.sleep(0.5)
    assert len(smtp.messages) == 2  # one mail per event, nothing twice


async def test_a_foreign_entrys_mail_shows_its_own_amount_and_the_base_amount(
    mailing_stack: MailingStack, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    http, smtp = mailing_stack.http, mailing_stack.smtp
    friday = working_day()
    await store_rates(activity_deps, friday, ECB)
    body = expense_body("100.00", currency="GBP", entry_date=friday.isoformat())
    created = await http.post("/api/v1/expenses/", json=body, headers=team.employee.headers)
    submitted = await http.post(f"/api/v1/expenses/{created.json()['id']}/submit", headers=team.employee.headers)
    assert submitted.status_code == 200, submitted.text
    base = submitted.json()["base_amount"]

    async def mailed() -> bool:
        return len(smtp.messages) >= 1

    assert await eventually(mailed)
    to_approver = smtp.messages[0]
    assert f"100.00 GBP ({base} USD)" in _text(to_approver)
    assert "(100.00 GBP)" in to_approver["Subject"]  # the title names what the requester wrote
    # Ended here, on this stack's own queues: a workflow left waiting would hold its id (approval-expense-1) for the
    # next test's entry 1.
    entry_id = submitted.json()["id"]
    approved = await http.post(f"/api/v1/expenses/{entry_id}/approve", json={}, headers=team.manager.headers)
    assert approved.status_code == 200, approved.text
    assert await ended_status(temporal_client, approved.json()["workflow_id"]) == WorkflowExecutionStatus.COMPLETED
