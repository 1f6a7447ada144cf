"""Mail delivery: resolve a job's recipients, honour their preferences, render, and send each message once.

Exactly-once, as far as SMTP allows. Each recipient gets its own message whose Message-ID is derived from
`job.message_key` (the workflow and step) and the address, and the `sent_emails` ledger has that id as its
primary key. Per message, in ONE database transaction:

    INSERT the ledger row (ON CONFLICT DO NOTHING)  ->  send over SMTP  ->  COMMIT

- A retry after a committed send finds the row and skips the message: no second mail.
- A send that fails rolls the row back, so the retry sends it.
- Two attempts running at once (a retry started while a timed-out attempt still runs) cannot both send: the
  second INSERT waits on the first one's uncommitted row, then sees the conflict.
- The database connection dies while the server takes the message (the send can take a while; the
  transaction is open all along): the COMMIT fails, but this process knows the mail went out, so it writes the
  ledger row again in a fresh transaction, retrying until the database answers, and never sends twice.
- The one window left: the process dies after the SMTP server accepted the message and before COMMIT returns
  (about a millisecond). The row is then gone and the retry sends again (at-least-once). We prefer a rare
  duplicate to a lost approval mail; the duplicate carries the same Message-ID, which mail clients use to
  collapse it. (A two-phase "sending" marker would turn this into at-most-once: a lost mail instead.)

Permanent failures are the exceptions below (a retry cannot heal them); any other exception is worth a retry.
A mail server's permanent refusal of one recipient is not raised: it is that recipient's skip reason, and the
others still get theirs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import re
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from core.db import Database
from core.mail import MailTransport, OutgoingMail
from core.settings import Settings
from core.sql import Sql
from core.storage import ObjectStorage
from domain.mail.rendering import EmailRenderer, TemplateError
from domain.metrics import events
from domain.notifications.service import email_users
from workflows.contracts import EmailJob, EmailResult

log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_LEDGER_REWRITE_ATTEMPTS = 12  # back-off capped at 5 s: ~40 s, inside the 60-second EMAIL_TIMEOUT

# The ledger row that claims a message; ON CONFLICT: another attempt holds it (or sent it already).
_CLAIM = (
    "INSERT INTO sent_emails (message_id, recipients, subject, sent_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
)
# A transaction fails with either: SQLAlchemy checks its connection out and commits, psycopg runs the statements.
_DATABASE_ERRORS = (SQLAlchemyError, psycopg.Error)

Heartbeat = Callable[..., None]


class MailTemplateBroken(Exception):
    """The job's template cannot be rendered."""


class AttachmentMissing(Exception):
    """The job's attachment is not in storage."""


@dataclass(frozen=True)
class Recipient:
    key: str  # "user:<id>" or the address, for the result's skip list
    address: str
    name: str | None = None


def message_id_for(message_key: str, address: str, sender: str) -> str:
    """Stable across retries: the same job and recipient always give the same Message-ID (without <>)."""
    readable = _UNSAFE_ID_CHARS.sub("-", message_key).strip("-")[:120] or "mail"
    digest = hashlib.sha256(f"{message_key}\n{address.lower()}".encode()).hexdigest()[:24]
    domain = sender.rpartition("@")[2].strip("> ") or "localhost"
    return f"{readable}.{digest}@{domain}"


def _permanent_refusal(exc: Exception) -> str | None:
    """The server's reason when it refused the message for good (5xx); None when a retry may succeed."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            return "; ".join(f"{code} {reply.decode(errors='replace')}" for code, reply in exc.recipients.values())
        return None
    if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500:
        error = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{exc.smtp_code} {error}"
    return None


def _no_heartbeat(*_details: object) -> None:
    pass


class Mailer:
    """Recipients, rendering and the send-once ledger: for the "send_email" activity, and for approval transitions
    that deliver their notices' emails themselves right after their commit.

    `heartbeat`, when given, is called with the progress (messages settled so far) while a delivery runs long: the
    caller decides what keeps it alive."""

    def __init__(
        self,
        db: Database,
        transport: MailTransport,
        storage: ObjectStorage,
        settings: Settings,
        *,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.db = db
        self.transport = transport
        self.storage = storage
        self.sender = settings.smtp.sender
        self.renderer = EmailRenderer(base_url=settings.public_base_url, app_name=settings.app_name)
        self.heartbeat = heartbeat or _no_heartbeat

    async def recipients(self, sql: Sql, job: EmailJob, result: EmailResult) -> list[Recipient]:
        """Who gets the job's email (read in `sql`'s transaction); who does not, and why, goes to `result.skipped`."""
        recipients: list[Recipient] = []
        seen: set[str] = set()
        if job.to_user_ids:
            users = await email_users(sql, job.to_user_ids, job.event_type)
            for user_id in dict.fromkeys(job.to_user_ids):
                key = f"user:{user_id}"
                user = users.get(user_id)
                if user is None:
                    result.skipped[key] = "no such user"
                elif not user.is_active:
                    result.skipped[key] = "user is deactivated"
                elif not user.wants_email:
                    result.skipped[key] = f"email turned off for {job.event_type}"
                elif user.email.lower() not in seen:
                    seen.add(user.email.lower())
                    recipients.append(Recipient(key, user.email, user.full_name))
        for address in job.to_addresses:
            address = address.strip()
            if not _ADDRESS.match(address):
                result.skipped[address] = "not an email address"
            elif address.lower() not in seen:
                seen.add(address.lower())
                recipients.append(Recipient(address, address))
        return recipients

    async def _attachment(self, job: EmailJob) -> list[tuple[str, str, bytes]]:
        key = job.attachment_storage_key
        if not key:
            return []
        storage = self.storage
        if not await asyncio.to_thread(storage.exists, key):
            raise AttachmentMissing(f"attachment {key} is not in storage")

        def read() -> bytes:
            with storage.open(key) as handle:
                return handle.read()

        content = await asyncio.to_thread(read)
        filename = job.attachment_filename or PurePosixPath(key).name
        mime_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return [(filename, mime_type, content)]

    async def send_once(self, mail: OutgoingMail, address: str) -> bool:
        """Send `mail` unless the ledger says it went out already. True when this call sent it."""
        assert mail.message_id is not None
        ledger_row = (mail.message_id, address, mail.subject[:300], datetime.now(UTC))
        sent = False
        try:
            async with self.db.transaction() as tx:
                claimed = await tx.sql.scalar(_CLAIM, ledger_row)
                if claimed is None:
                    return False
                # Still inside the transaction: the ledger row commits only if the server accepted the message.
                try:
                    await asyncio.to_thread(self.transport.send, mail)
                except Exception:
                    events.email_handed_over(sent=False)
                    raise
                events.email_handed_over(sent=True)
                sent = True
        except _DATABASE_ERRORS:
            if not sent:
                raise  # nothing went out: the caller retries
            # Shielded: an attempt that times out meanwhile must still record what it sent, or a retry resends it.
            await asyncio.shield(self._record_after_lost_commit(ledger_row, mail.message_id))
        return True

    async def _record_after_lost_commit(self, ledger_row: tuple[object, ...], message_id: str) -> None:
        """The server accepted the mail but the ledger's COMMIT failed (the connection dropped): write the row again,
        here and not in a retry, which would send a second copy."""
        delay = 0.2
        for _ in range(_LEDGER_REWRITE_ATTEMPTS):
            try:
                async with self.db.transaction() as tx:
                    await tx.sql.run(_CLAIM, ledger_row)
                return
            except _DATABASE_ERRORS:
                self.heartbeat()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        log.error("sent %s but could not record it; a retry of this delivery may send it again", message_id)

    async def deliver(self, job: EmailJob, recipients: list[Recipient], result: EmailResult) -> EmailResult:
        """Render and send the job's email to each recipient once, however often this is called for the same job."""
        if not recipients:
            return result
        attachments = await self._attachment(job)
        for recipient in recipients:
            try:
                rendered = self.renderer.render(job.template, {**job.context, "recipient_name": recipient.name})
            except TemplateError as exc:
                raise MailTemplateBroken(str(exc)) from exc
            mail = OutgoingMail(
                to=[recipient.address],
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                message_id=message_id_for(job.message_key, recipient.address, self.sender),
                attachments=attachments,
            )
            assert mail.message_id is not None
            try:
                sent = await self.send_once(mail, recipient.address)
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as exc:
                refusal = _permanent_refusal(exc)
                if refusal is None:
                    raise  # a temporary failure (4xx): the caller retries; what went out already is in the ledger
                log.warning("mail server refused %s: %s", recipient.key, refusal)
                result.skipped[recipient.key] = f"refused by the mail server: {refusal}"
                continue
            (result.sent if sent else result.already_sent).append(mail.message_id)
            self.heartbeat(len(result.sent) + len(result.already_sent))
        return result
