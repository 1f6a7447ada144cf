"""The MIME messages core/mail.py builds: byte for byte what the standard library's compat32 writes, and read back
by a mail client's parser with every header, part and attachment as sent."""

from __future__ import annotations

import email
import email.policy
from email.generator import BytesGenerator
from email.policy import compat32
from io import BytesIO

import pytest

from core.mail import OutgoingMail, build_message

SENDER = "Finance Ops <noreply@finance.example>"
MAILS = {
    "ascii": OutgoingMail(
        to=["ana@example.com"],
        subject="Expense approved: travel: taxi (Cabs)",
        text="Hello Ana,\n\nyour expense was approved.\n",
        html="<p>Hello Ana,</p><p>your expense was <b>approved</b>.</p>",
        message_id="approval-expense-7.0123abcd@finance.example",
    ),
    "accents": OutgoingMail(
        to=["zoe@example.com"],
        subject="Dépense approuvée : café (Société Générale) =?not-encoded?=",
        text="Bonjour Zoé,\n\nvotre dépense est approuvée.\n",
        html="<p>Bonjour Zoé</p>",
        message_id="approval-expense-8.4567@finance.example",
    ),
    "long subject": OutgoingMail(to=["a@example.com", "b@example.com"], subject="x " * 600, text="plain only"),
    "attachment": OutgoingMail(
        to=["cfo@example.com"],
        subject="Monthly report",
        text="Attached.",
        html="<p>Attached.</p>",
        attachments=[("report 2026-11.csv", "text/csv", b"id,amount\n1,12.50\n" * 200)],
    ),
}


def _as_compat32_writes_it(message: email.message.Message) -> bytes:
    out = BytesIO()
    BytesGenerator(out, policy=compat32.clone(max_line_length=998)).flatten(message, linesep="\n")
    return out.getvalue()


@pytest.mark.parametrize("name", list(MAILS))
def test_the_bytes_are_what_compat32_writes(name: str) -> None:
    message = build_message(MAILS[name], SENDER)
    assert message.as_bytes() == _as_compat32_writes_it(message)


@pytest.mark.parametrize("name", list(MAILS))
def test_a_mail_client_reads_it_back(name: str) -> None:
    mail = MAILS[name]
    parsed = email.message_from_bytes(build_message(mail, SENDER).as_bytes(), policy=email.policy.default)
    assert " ".join(parsed["Subject"].split()) == " ".join(mail.subject.split())  # a long one is folded
    assert parsed["To"] == ", ".join(mail.to)
    assert parsed["From"] == SENDER
    if mail.message_id:
        assert parsed["Message-ID"] == f"<{mail.message_id}>"
    text = parsed.get_body(preferencelist=("plain",))
    assert text is not None and text.get_content() == mail.text
    if mail.html:
        html = parsed.get_body(preferencelist=("html",))
        assert html is not None and html.get_content().rstrip("\n") == mail.html
    attachments = {part.get_filename(): part.get_payload(decode=True) for part in parsed.iter_attachments()}
    assert attachments == {filename: content for filename, _, content in mail.attachments}
