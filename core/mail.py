"""Outgoing mail: SMTP when a host is configured, else `.eml` files in a local folder (development)."""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol

from core.settings import SmtpSettings, SmtpTls


@dataclass
class OutgoingMail:
    to: list[str]
    subject: str
    text: str
    html: str | None = None
    message_id: str | None = None  # stable across retries, so receivers and our ledger can deduplicate
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # (filename, mime type, content)


class MailTransport(Protocol):
    def send(self, mail: OutgoingMail) -> None: ...


class _Compat32Fast(Compat32):
    """compat32 that writes a header that needs no folding or encoding as it is. compat32 builds an
    `email.header.Header` for every header to fold it, which was half the cost of a message; the bytes are the same
    (tests/notifications/test_mail_format.py)."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if isinstance(value, str) and value.isascii() and value.isprintable():
            line = f"{name}: {value}"
            if self.max_line_length is None or len(line) <= self.max_line_length:
                return (line + self.linesep).encode("ascii")
        return super().fold_binary(name, value)


# Headers are never folded below the SMTP line limit, so ids and subjects read back exactly as written.
_POLICY = _Compat32Fast(max_line_length=998)


def build_message(mail: OutgoingMail, sender: str) -> Message:
    """The MIME message: text and HTML alternatives, then any attachments.

    Built with the classic `email.mime` classes: they serialise about three times faster than `EmailMessage`
    with the default policy, and every approval mails at least twice."""
    body: Message = MIMEText(mail.text, "plain", "utf-8", policy=_POLICY)
    if mail.html:
        alternatives = MIMEMultipart("alternative", boundary=_boundary(), policy=_POLICY)
        alternatives.attach(body)
        alternatives.attach(MIMEText(mail.html, "html", "utf-8", policy=_POLICY))
        body = alternatives
    message = body
    if mail.attachments:
        message = MIMEMultipart("mixed", boundary=_boundary(), policy=_POLICY)
        message.attach(body)
        for filename, mime_type, content in mail.attachments:
            maintype, _, subtype = mime_type.partition("/")
            part = MIMEBase(maintype, subtype or "octet-stream", policy=_POLICY)
            part.set_payload(content)
            encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=filename)
            message.attach(part)
    message["From"] = sender
    message["To"] = ", ".join(mail.to)
    message["Subject"] = _subject(mail.subject)
    message["Date"] = formatdate(usegmt=True)
    if mail.message_id:
        message["Message-ID"] = f"<{mail.message_id}>"
    return message


def _boundary() -> str:
    """A multipart boundary that cannot occur in a part: every part is base64 (utf-8 text and attachments alike),
    whose alphabet has no "_" (RFC 2045). Left to the generator, each message compiled a regular expression to
    search its parts for a random boundary."""
    return f"=_{uuid.uuid4().hex}"


def _subject(subject: str) -> str:
    """The Subject header: as written when it is printable ASCII, else RFC 2047 encoded. The encoding is needed
    only for other characters, and it took half of building a message."""
    if subject.isascii() and subject.isprintable() and "=?" not in subject:
        return subject
    return Header(subject, "utf-8").encode()


class InsecureMailConnection(smtplib.SMTPException):
    """The connection to the mail server is not encrypted where the settings require it: nothing was sent."""


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Certificate and host name checked: against SMTP_CA_FILE alone when set (a private CA), else the system's
    trust store."""
    return ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)


class SmtpTransport:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._tls = tls_context(settings) if settings.tls != SmtpTls.NONE else None

    def _connect(self) -> smtplib.SMTP:
        """A connection past EHLO, encrypted as SMTP_TLS says, or an exception (and no connection left open)."""
        settings = self.settings
        if settings.tls == SmtpTls.IMPLICIT:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=30, context=self._tls)
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=30)
        try:
            # The server lists its extensions in answer to EHLO: asking for STARTTLS before it always says no.
            smtp.ehlo()
            if settings.tls == SmtpTls.STARTTLS:
                if not smtp.has_extn("starttls"):
                    # No quiet fallback to plain text: whoever sits between us and the server can strip STARTTLS.
                    raise InsecureMailConnection(
                        f"{settings.host}:{settings.port} does not offer STARTTLS, and SMTP_TLS=starttls sends "
                        "nothing in clear; for port 465 set SMTP_TLS=implicit, for a local relay without "
                        "credentials SMTP_TLS=none"
                    )
                smtp.starttls(context=self._tls)
                smtp.ehlo()  # what the server offers inside TLS (AUTH often appears only there)
            if settings.user:
                if not isinstance(smtp.sock, ssl.SSLSocket):
                    raise InsecureMailConnection("refusing to send SMTP credentials over an unencrypted connection")
                smtp.login(settings.user, settings.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, mail: OutgoingMail) -> None:
        message = build_message(mail, self.settings.sender)
        smtp = self._connect()
        try:
            smtp.send_message(message)
            # The server has taken the message. Say QUIT without waiting for its reply: the caller records the send
            # in its ledger as soon as this returns, and a crash before that record sends the message again
            # (activities/notifications.py), so that window is kept to the least it can be.
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.putcmd("quit")
        except BaseException:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.quit()
            raise
        finally:
            smtp.close()


class FileTransport:
    """Writes each message as an `.eml` file, named by its message id so a retry overwrites, never doubles."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    def send(self, mail: OutgoingMail) -> None:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", mail.message_id or mail.subject)[:150]
        path = self.folder / f"{name}.eml"
        partial = path.with_suffix(".partial")
        content = build_message(mail, self.sender).as_bytes()
        try:
            partial.write_bytes(content)
        except FileNotFoundError:  # the folder is made on first use (or again, if it was removed meanwhile)
            self.folder.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(content)
        partial.replace(path)


def create_transport(settings: SmtpSettings) -> MailTransport:
    if settings.uses_smtp:
        return SmtpTransport(settings)
    return FileTransport(settings.mail_dir, settings.sender)
