"""Mail over TLS against real SMTP servers (aiosmtpd) started here with a throw-away CA (trustme): STARTTLS
negotiated after EHLO, implicit TLS, certificates verified, and credentials never sent in clear."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import ValidationError

from core.mail import InsecureMailConnection, OutgoingMail, SmtpTransport
from core.settings import SmtpSettings, SmtpTls
from tests.services import free_port

USER, PASSWORD = "mailer", "s3cret-smtp-password"
LOGIN = {"user": USER, "password": PASSWORD}
OTP_MAIL = OutgoingMail(to=["ana@example.test"], subject="Your sign-in code", text="Your code is 493817")


@dataclass
class TlsMailServer:
    """What an aiosmtpd server saw: the logins tried (user, whether inside TLS) and the messages taken."""

    port: int
    logins: list[tuple[str, bool]] = field(default_factory=list)
    messages: list[tuple[str, bool]] = field(default_factory=list)  # (subject, whether inside TLS)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        with self._lock:
            self.logins.append((auth_data.login.decode(), _encrypted(server)))
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD)
        return AuthResult(success=ok)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[arg-type]
        with self._lock:
            self.messages.append((str(message["Subject"]), _encrypted(server)))
        return "250 OK"


def _encrypted(server) -> bool:  # type: ignore[no-untyped-def]
    """Whether the server's side of this SMTP session is inside TLS (implicit, or after STARTTLS)."""
    return server.transport.get_extra_info("ssl_object") is not None


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("smtp-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@contextlib.contextmanager
def mail_server(ca: trustme.CA | None, mode: str, names: tuple[str, ...] = ("127.0.0.1",)) -> Iterator[TlsMailServer]:
    """An SMTP server that takes AUTH LOGIN/PLAIN. `starttls`: it offers STARTTLS and refuses MAIL and AUTH before
    it; `implicit`: TLS from the first byte; `plain`: no TLS at all, and AUTH accepted in clear (an old relay, or
    someone in the middle who stripped STARTTLS)."""
    sink = TlsMailServer(free_port())
    # aiosmtpd counts only STARTTLS as TLS for AUTH, so the implicit server must not require it (`logins` records
    # whether each login came inside TLS).
    options: dict[str, object] = {"authenticator": sink.authenticate, "auth_require_tls": mode == "starttls"}
    if mode == "starttls":
        assert ca is not None
        options |= {"tls_context": _server_context(ca, *names), "require_starttls": True}
    elif mode == "implicit":
        assert ca is not None
        options["ssl_context"] = _server_context(ca, *names)
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port, **options)  # type: ignore[arg-type]
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def _send(port: int, **fields: object) -> None:
    """The sign-in code mailed by the transport the settings (`fields`) make, to 127.0.0.1:`port`."""
    settings = SmtpSettings(host="127.0.0.1", port=port, sender="finance@example.test", **fields)  # type: ignore[arg-type]
    SmtpTransport(settings).send(OTP_MAIL)


def test_starttls_is_negotiated_after_ehlo_before_the_password_and_the_code(ca: trustme.CA, ca_file: Path) -> None:
    with mail_server(ca, "starttls") as server:
        _send(server.port, tls_mode="starttls", ca_file=ca_file, **LOGIN)
    assert server.logins == [(USER, True)]  # the password went inside TLS
    assert server.messages == [("Your sign-in code", True)]  # and so did the code


def test_the_seed_setting_smtp_starttls_true_negotiates_tls_too(ca: trustme.CA, ca_file: Path) -> None:
    """Before, SMTP_STARTTLS=true asked for STARTTLS before EHLO, so it never happened; now it does."""
    with mail_server(ca, "starttls") as server:
        _send(server.port, starttls=True, ca_file=ca_file, **LOGIN)
    assert server.logins == [(USER, True)] and server.messages == [("Your sign-in code", True)]


def test_implicit_tls_as_on_port_465(ca: trustme.CA, ca_file: Path) -> None:
    with mail_server(ca, "implicit") as server:
        _send(server.port, tls_mode="implicit", ca_file=ca_file, **LOGIN)
    assert server.logins == [(USER, True)] and server.messages == [("Your sign-in code", True)]


def test_a_server_without_starttls_gets_neither_the_password_nor_the_mail() -> None:
    with mail_server(None, "plain") as server:
        with pytest.raises(InsecureMailConnection, match="does not offer STARTTLS"):
            _send(server.port, **LOGIN)
        # Without credentials either: the code in the mail is as secret as a password.
        with pytest.raises(InsecureMailConnection, match="does not offer STARTTLS"):
            _send(server.port)
    assert server.logins == [] and server.messages == []


def test_smtp_tls_none_without_credentials_sends_in_clear_to_a_local_relay() -> None:
    with mail_server(None, "plain") as server:
        _send(server.port, tls_mode="none")
    assert server.logins == [] and server.messages == [("Your sign-in code", False)]


def test_a_certificate_from_an_unknown_ca_is_refused(ca_file: Path) -> None:
    impostor = trustme.CA()  # someone in the middle with a certificate of their own
    for mode in ("starttls", "implicit"):
        with mail_server(impostor, mode) as server:
            with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
                _send(server.port, tls_mode=mode, ca_file=ca_file, **LOGIN)
            # The system's trust store does not know the test CA either.
            with pytest.raises(ssl.SSLCertVerificationError):
                _send(server.port, tls_mode=mode, **LOGIN)
        assert server.logins == [] and server.messages == [], mode


def test_a_certificate_for_another_host_is_refused(ca: trustme.CA, ca_file: Path) -> None:
    with mail_server(ca, "starttls", names=("mail.example.test",)) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            _send(server.port, ca_file=ca_file, **LOGIN)
    assert server.logins == [] and server.messages == []


# --- the settings -------------------------------------------------------------------------------------------------


def test_the_mode_follows_smtp_tls_then_the_seed_switch_then_the_port() -> None:
    assert SmtpSettings(host="mx", port=587).tls == SmtpTls.STARTTLS
    assert SmtpSettings(host="mx", port=465).tls == SmtpTls.IMPLICIT
    assert SmtpSettings(host="mx", port=1025, starttls=False).tls == SmtpTls.NONE
    assert SmtpSettings(host="mx", port=465, starttls=True).tls == SmtpTls.STARTTLS
    assert SmtpSettings(host="mx", port=2525, tls_mode="implicit").tls == SmtpTls.IMPLICIT


def test_settings_refuse_credentials_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("SMTP_USER", "mailer")
    monkeypatch.setenv("SMTP_PASSWORD", "pw")
    for name, value in (("SMTP_TLS", "none"), ("SMTP_STARTTLS", "false")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValidationError, match="password would cross the network in clear"):
            SmtpSettings()
        monkeypatch.delenv(name)
    monkeypatch.setenv("SMTP_TLS", "starttls")
    monkeypatch.setenv("SMTP_STARTTLS", "false")
    with pytest.raises(ValidationError, match="contradicts SMTP_STARTTLS=false"):
        SmtpSettings()
    monkeypatch.setenv("SMTP_TLS", "plaintext")
    with pytest.raises(ValidationError, match="SMTP_TLS"):
        SmtpSettings()


def test_settings_refuse_a_missing_ca_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("SMTP_CA_FILE", str(tmp_path / "nowhere.pem"))
    with pytest.raises(ValidationError, match="nowhere.pem is not a readable file"):
        SmtpSettings()
