"""The send_email activity against a real SMTP server (aiosmtpd): recipients, content, retries, preferences."""

from __future__ import annotations

import smtplib
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.deps import ActivityDeps
from activities.notifications import NotificationActivities
from core.mail import OutgoingMail, SmtpTransport
from domain.mail.rendering import EmailRenderer
from domain.models import SentEmail
from tests.services import SmtpSink
from workflows.contracts import EMAIL_RETRY, EmailJob, EmailResult

pytestmark = pytest.mark.usefixtures("database_url")


def _parts(message) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


async def test_approval_mail_reaches_the_approver_over_smtp(
    mailer: NotificationActivities, smtp: SmtpSink, make_user, activity_deps: ActivityDeps
) -> None:
    approver = await make_user("manager", full_name="Maria Approver")
    owner = await make_user("employee", manager=approver)
    job = EmailJob(
        message_key=f"approval-expense-{uuid.uuid4().hex[:6]}/step-1/submitted",
        template="entry_submitted",
        to_user_ids=[approver.id],
        event_type="entry_submitted",
        context={
            "title": "Expense #42: Taxi to airport",
            "body": "An expense waits for your decision.",
            "link": "/approvals/42",
            "amount": "84.50",
            "currency": "USD",
            "owner_name": owner.username,
        },
    )

    result = await ActivityEnvironment().run(mailer.send_email, job)

    assert len(result.sent) == 1 and not result.skipped
    assert len(smtp.messages) == 1
    (mail_from, rcpt_tos), message = smtp.envelopes[0], smtp.messages[0]
    assert rcpt_tos == [approver.email]
    assert mail_from == "finance@example.test"
    assert message["To"] == approver.email
    assert message["Subject"] == "Approval needed: Expense #42: Taxi to airport"
    assert message["Message-ID"] == f"<{result.sent[0]}>"
    text, html = _parts(message)
    for part in (text, html):
        assert "Hello Maria Approver" in part
        assert "An expense waits for your decision." in part
        assert "84.50 USD" in part
        assert "https://finance.example.test/approvals/42" in part  # relative links become absolute
    assert '<a href="https://finance.example.test/approvals/42"' in html
    async with activity_deps.db.transaction() as tx:
        ledger = (await tx.session.scalars(select(SentEmail))).all()
    assert [row.message_id for row in ledger] == result.sent
    assert ledger[0].recipients == approver.email


async def test_escalation_mails_each_recipient_separately(mailer: NotificationActivities, smtp: SmtpSink, make_user):
    old_approver = await make_user("manager")
    new_approver = await make_user("admin")
    job = EmailJob(
        message_key="approval-expense-7/escalated",
        template="approval_escalated",
        to_user_ids=[old_approver.id, new_approver.id, old_approver.id],
        event_type="approval_escalated",
        context={"title": "Expense #7", "escalated_to_name": "The Admin"},
    )
    result = await ActivityEnvironment().run(mailer.send_email, job)
    assert len(result.sent) == 2
    assert sorted(rcpt for _, (rcpt,) in smtp.envelopes) == sorted([old_approver.email, new_approver.email])
    assert all("Now with: The Admin" in _parts(message)[0] for message in smtp.messages)


class FlakyTransport:
    """The real SMTP transport, but the first `failures` sends fail as if the server were down."""

    def __init__(self, inner: SmtpTransport, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    def send(self, mail: OutgoingMail) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")
        self.inner.send(mail)


@workflow.defn(sandboxed=False)
class SendOneEmail:
    @workflow.run
    async def run(self, job: EmailJob) -> EmailResult:
        policy = RetryPolicy(
            initial_interval=timedelta(milliseconds=100),
            backoff_coefficient=EMAIL_RETRY.backoff_coefficient,
            maximum_attempts=5,
            non_retryable_error_types=EMAIL_RETRY.non_retryable_error_types,
        )
        return await workflow.execute_activity(
            "send_email",
            job,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=policy,
            result_type=EmailResult,
        )


def _approved_mail(owner_id: int, key: str) -> EmailJob:
    return EmailJob(
        message_key=key,
        template="entry_approved",
        to_user_ids=[owner_id],
        event_type="entry_approved",
        context={"title": key, "approver_name": "Boss"},
    )


async def _send_twice(client: Client, mailer: NotificationActivities, job: EmailJob) -> tuple[EmailResult, EmailResult]:
    """Run the job through a real worker, then once more (as a retry whose first result was lost would)."""
    queue = f"email-test-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[SendOneEmail], activities=[mailer.send_email]):
        first = await client.execute_workflow(SendOneEmail.run, job, id=f"send-{uuid.uuid4().hex}", task_queue=queue)
        again = await client.execute_workflow(SendOneEmail.run, job, id=f"send-{uuid.uuid4().hex}", task_queue=queue)
    return first, again


async def test_retried_after_a_failure_the_mail_goes_out_once(
    temporal_client: Client, smtp_deps: ActivityDeps, smtp: SmtpSink, make_user
) -> None:
    owner = await make_user("employee")
    assert isinstance(smtp_deps.mail, SmtpTransport)
    flaky = FlakyTransport(smtp_deps.mail, failures=2)
    mailer = NotificationActivities(
        ActivityDeps(smtp_deps.settings, smtp_deps.db, smtp_deps.authorizer, smtp_deps.storage, flaky)
    )
    result, again = await _send_twice(temporal_client, mailer, _approved_mail(owner.id, "approval-revenue-9/approved"))
    assert len(result.sent) == 1
    assert [rcpt for _, rcpt in smtp.envelopes] == [[owner.email]]
    assert flaky.calls == 3  # two failed attempts, then the one that went through
    # The second run stands for a retry whose first result was lost: it finds the ledger row and sends nothing.
    assert again.sent == [] and again.already_sent == result.sent
    assert len(smtp.messages) == 1


class ConnectionDroppingTransport:
    """The real SMTP transport, but the first send first kills the database connection whose transaction holds the
    ledger row (as a restarting database or a network cut would), so the COMMIT after the send fails."""

    def __init__(self, inner: SmtpTransport, database_url: str) -> None:
        self.inner = inner
        self.database_url = database_url
        self.calls = 0

    def send(self, mail: OutgoingMail) -> None:
        self.calls += 1
        if self.calls == 1:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND state = 'idle in transaction'"
                )
        self.inner.send(mail)


async def test_a_connection_lost_after_the_send_does_not_send_twice(
    temporal_client: Client, smtp_deps: ActivityDeps, smtp: SmtpSink, make_user, database_url: str
) -> None:
    owner = await make_user("employee")
    assert isinstance(smtp_deps.mail, SmtpTransport)
    dropping = ConnectionDroppingTransport(smtp_deps.mail, database_url)
    mailer = NotificationActivities(
        ActivityDeps(smtp_deps.settings, smtp_deps.db, smtp_deps.authorizer, smtp_deps.storage, dropping)
    )
    result, again = await _send_twice(temporal_client, mailer, _approved_mail(owner.id, "approval-expense-11/approved"))
    assert len(result.sent) == 1
    assert [rcpt for _, rcpt in smtp.envelopes] == [[owner.email]]  # one mail, though its first COMMIT failed
    assert again.already_sent == result.sent  # the ledger row was written after all
    assert dropping.calls == 1


async def test_turning_email_off_stops_that_event_only(
    mailer: NotificationActivities, smtp: SmtpSink, make_user, client
) -> None:
    user = await make_user("employee")
    response = await client.put(
        "/api/v1/users/me/notification-preferences", json={"email": {"entry_rejected": False}}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"]["entry_rejected"] is False

    rejected = EmailJob(
        message_key="approval-expense-3/rejected",
        template="entry_rejected",
        to_user_ids=[user.id],
        event_type="entry_rejected",
        context={"title": "Expense #3"},
    )
    result = await ActivityEnvironment().run(mailer.send_email, rejected)
    assert result.sent == []
    assert result.skipped == {f"user:{user.id}": "email turned off for entry_rejected"}
    assert smtp.messages == []

    approved = rejected.model_copy(
        update={
            "message_key": "approval-expense-4/approved",
            "event_type": "entry_approved",
            "template": "entry_approved",
        }
    )
    assert len((await ActivityEnvironment().run(mailer.send_email, approved)).sent) == 1

    # Sign-in codes cannot be turned off, so they always arrive.
    response = await client.put(
        "/api/v1/users/me/notification-preferences", json={"email": {"otp_code": False}}, headers=user.headers
    )
    assert response.status_code == 422
    otp = EmailJob(
        message_key=f"otp-{uuid.uuid4().hex}",
        template="otp_code",
        to_user_ids=[user.id],
        event_type="otp_code",
        context={"title": "Your sign-in code", "code": "493817"},
    )
    assert len((await ActivityEnvironment().run(mailer.send_email, otp)).sent) == 1
    assert "493817" in _parts(smtp.messages[-1])[0]


async def test_attachment_comes_from_storage_and_raw_addresses_are_mailed(
    mailer: NotificationActivities, smtp: SmtpSink, smtp_deps: ActivityDeps, tmp_path: Path
) -> None:
    source = tmp_path / "report.csv"
    source.write_text("date,amount\n2026-01-01,10.00\n")
    smtp_deps.storage.put_file("reports/77/report.csv", source, "text/csv")
    job = EmailJob(
        message_key="schedule-3/2026-01",
        template="scheduled_report",
        to_addresses=["cfo@example.test", "not-an-address"],
        event_type="scheduled_report",
        context={"title": "Monthly ledger", "report_name": "Ledger", "attached": True},
        attachment_storage_key="reports/77/report.csv",
        attachment_filename="ledger-2026-01.csv",
    )
    result = await ActivityEnvironment().run(mailer.send_email, job)
    assert result.skipped == {"not-an-address": "not an email address"}
    (message,) = smtp.messages
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "ledger-2026-01.csv"
    assert attachment.get_content_type() == "text/csv"
    assert "2026-01-01,10.00" in attachment.get_content()


async def test_missing_attachment_fails_without_retrying(mailer: NotificationActivities, smtp: SmtpSink) -> None:
    from temporalio.exceptions import ApplicationError

    job = EmailJob(
        message_key="schedule-4/2026-02",
        template="scheduled_report",
        to_addresses=["cfo@example.test"],
        attachment_storage_key="reports/missing.pdf",
    )
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(mailer.send_email, job)
    assert failure.value.non_retryable and failure.value.type == "EmailAttachmentMissing"
    assert smtp.messages == []


def test_an_event_without_its_own_template_uses_the_generic_layout() -> None:
    rendered = EmailRenderer(base_url="https://x.test", app_name="Finance").render(
        "brand_new_event", {"title": "Something happened", "body": "Details <here>", "link": "/things/1"}
    )
    assert rendered.template == "generic"
    assert rendered.subject == "Something happened"
    assert "Details <here>" in rendered.text and "https://x.test/things/1" in rendered.text
    assert "Details &lt;here&gt;" in rendered.html
