"""An approved invoice goes out by itself: its PDF rendered and stored, the invoice `sent`, one email to the
customer with the PDF attached; `GET /invoices/{id}/pdf` serves that same PDF; a retried send sends nothing twice."""

from __future__ import annotations

import io
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
from pypdf import PdfReader
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.invoices import InvoiceActivities
from core.settings import Settings
from domain.invoices.reminder_policy import load_reminder_policy
from tests.approvals.conftest import Team, audit_count
from tests.invoices.captured import CapturedMail
from tests.invoices.conftest import approved_invoice, create_customer, create_invoice, eventually, invoice_of
from workflows.contracts import SendJob


def mails_to(folder: Path, address: str) -> list[EmailMessage]:
    """The messages the FileTransport wrote to `address`."""
    found = []
    for path in folder.glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] == address:
            found.append(message)
    return found


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


async def test_an_operator_finds_the_invoices_workflow_by_its_number_and_customer(
    client: httpx.AsyncClient, team: Team, temporal_client: Client
) -> None:
    began = datetime.now(UTC).isoformat(timespec="seconds")
    customer = await create_customer(client, team.accountant)
    invoice = await approved_invoice(client, team.accountant, team.admin, customer["id"])
    # Ids and numbers restart with each test's tables, on one engine: this test's run is the one started since.
    query = (f'InvoiceNumber = "{invoice["number"]}" AND CustomerId = "{customer["id"]}" '
             f'AND StartTime >= "{began}"')  # fmt: skip

    async def found() -> list[str]:
        return [execution.id async for execution in temporal_client.list_workflows(query)]

    assert await eventually(lambda: _listed(found), seconds=15)
    assert await found() == [f"invoice-{invoice['id']}"]


async def _listed(found: Callable[[], Awaitable[list[str]]]) -> bool:
    return bool(await found())


async def test_an_approved_invoice_is_sent_with_its_pdf(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    address = f"ap-{uuid.uuid4().hex[:8]}@globex.example"
    customer = await create_customer(client, team.accountant, name="Globex Corporation", billing_email=address)
    draft = await create_invoice(client, team.accountant, customer["id"])
    not_yet = await client.get(f"/api/v1/invoices/{draft['id']}/pdf", headers=team.accountant.headers)
    assert not_yet.status_code == 409 and "sent" in not_yet.json()["error"]["message"], not_yet.text

    invoice = await approved_invoice(client, team.accountant, team.admin, customer["id"])
    number, invoice_id = invoice["number"], invoice["id"]

    async def sent() -> bool:
        return (await invoice_of(client, team.accountant, invoice_id))["status"] == "sent"

    assert await eventually(sent, seconds=30)
    folder = settings.smtp.mail_dir

    async def mailed() -> bool:
        return bool(mails_to(folder, address))

    assert await eventually(mailed, seconds=15)
    [mail] = mails_to(folder, address)
    assert number in mail["Subject"]
    [attachment] = list(mail.iter_attachments())
    assert (attachment.get_content_type(), attachment.get_filename()) == ("application/pdf", f"{number}.pdf")
    pdf = attachment.get_content()
    text = pdf_text(pdf)
    # 10 x 120.00 at 19% (1,428.00) and 80.50 untaxed: 1,508.50, as the PDF prints it.
    assert number in text and "Globex Corporation" in text and "1,508.50 USD" in text, text
    assert "Due date" in text and f"Payment reference: {number}" in text

    response = await client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=team.accountant.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert f'filename="{number}.pdf"' in response.headers["content-disposition"]
    assert response.content == pdf
    # The same visibility as the invoice: a manager outside the owner's chain gets 404, an employee 403.
    assert (await client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=team.peer.headers)).status_code == 404
    assert (await client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=team.employee.headers)).status_code == 403
    assert await audit_count(activity_deps, "invoice.sent", invoice_id) == 1

    # The send activity run again (a retry after its commit): nothing rendered, recorded or mailed a second time,
    # and the schedule it answers is the policy's.
    captured = CapturedMail()
    activities = InvoiceActivities(replace(activity_deps, mail=captured))
    job = SendJob(invoice_id=invoice_id, number=number, now=datetime.now(UTC))
    again = await ActivityEnvironment().run(activities.send, job)
    assert (again.status, again.open) == ("sent", True)
    assert again.steps == load_reminder_policy(settings.reminder_policy_path)
    # ... even when it died after the mail server took the email and before the email was marked sent.
    async with activity_deps.db.transaction() as tx:
        await tx.sql.run("UPDATE invoice_emails SET sent_at = NULL WHERE invoice_id = %s", (invoice_id,))
    await ActivityEnvironment().run(activities.send, job)
    assert captured.mails == []
    async with activity_deps.db.transaction() as tx:
        unsent = await tx.sql.scalar(
            "SELECT count(*) FROM invoice_emails WHERE invoice_id = %s AND sent_at IS NULL", (invoice_id,)
        )
    assert unsent == 0
    assert await audit_count(activity_deps, "invoice.sent", invoice_id) == 1
    assert len(mails_to(folder, address)) == 1
    assert (await client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=team.accountant.headers)).content == pdf
