"""Outgoing mail: SMTP when a host is configured, else `.eml` files in a local folder (development)."""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from core.settings import SmtpSettings


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


def build_message(mail: OutgoingMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(mail.to)
    message["Subject"] = mail.subject
    if mail.message_id:
        message["Message-ID"] = f"<{mail.message_id}>"
    message.set_content(mail.text)
    if mail.html:
        message.add_alternative(mail.html, subtype="html")
    for filename, mime_type, content in mail.attachments:
        maintype, _, subtype = mime_type.partition("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
    return message


class SmtpTransport:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, mail: OutgoingMail) -> None:
        message = build_message(mail, self.settings.sender)
        with smtplib.SMTP(self.settings.host, self.settings.port, timeout=30) as smtp:
            if self.settings.starttls and smtp.has_extn("starttls"):
                smtp.starttls()
            if self.settings.user:
                smtp.login(self.settings.user, self.settings.password)
            smtp.send_message(message)


class FileTransport:
    """Writes each message as an `.eml` file, named by its message id so a retry overwrites, never doubles."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    def send(self, mail: OutgoingMail) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", mail.message_id or mail.subject)[:150]
        path = self.folder / f"{name}.eml"
        partial = path.with_suffix(".partial")
        partial.write_bytes(bytes(build_message(mail, self.sender)))
        partial.replace(path)


def create_transport(settings: SmtpSettings) -> MailTransport:
    if settings.uses_smtp:
        return SmtpTransport(settings)
    return FileTransport(settings.mail_dir, settings.sender)
