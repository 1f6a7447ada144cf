"""The email activity ("send_email"): a thin wrapper over the mail delivery in domain/mail/delivery.py, which resolves
the recipients, honours their preferences, renders and sends each message once. Its permanent failures become
non-retryable ApplicationErrors of the types EMAIL_RETRY lists."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from domain.mail import delivery
from workflows.contracts import SEND_EMAIL, EmailJob, EmailResult

_PERMANENT: dict[type[Exception], str] = {
    delivery.MailTemplateBroken: "EmailTemplateError",
    delivery.AttachmentMissing: "EmailAttachmentMissing",
}


def _heartbeat(*details: object) -> None:
    # Approval workflows run this activity locally (inside their workflow task), where heartbeats do not apply.
    if not activity.info().is_local:
        activity.heartbeat(*details)


class NotificationActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps
        self.mailer = delivery.Mailer(deps.db, deps.mail, deps.storage, deps.settings, heartbeat=_heartbeat)

    @activity.defn(name=SEND_EMAIL)
    async def send_email(self, job: EmailJob) -> EmailResult:
        """Send the job's templated email to each recipient once, however often the activity is retried."""
        result = EmailResult()
        async with self.deps.db.transaction(autocommit=True) as tx:  # one read
            recipients = await self.mailer.recipients(tx.sql, job, result)
        try:
            return await self.mailer.deliver(job, recipients, result)
        except tuple(_PERMANENT) as error:
            raise ApplicationError(str(error), type=_PERMANENT[type(error)], non_retryable=True) from error
