"""The Temporal client over TLS: mutual TLS, a server name override and an API key, through a TLS proxy started
here (a trustme CA; `temporal server start-dev` serves no TLS itself) in front of the session's dev server. The
proxy requires a client certificate and reads the gRPC headers each connection sends."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from hpack import Decoder
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from core.settings import TemporalSettings
from core.temporal import connect
from tests.services import free_port

SERVER_NAME = "temporal.finance.internal"  # the certificate's name; the proxy listens on 127.0.0.1
API_KEY = "tk-test-0123456789abcdef"
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _Http2Headers:
    """Decodes the header blocks of one HTTP/2 connection's client side (HEADERS and CONTINUATION frames)."""

    def __init__(self, seen: list[dict[str, str]]) -> None:
        self.seen = seen
        self.buffer = b""
        self.block = b""
        self.decoder = Decoder()
        self.preface = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.preface:
            if len(self.buffer) < len(_PREFACE):
                return
            assert self.buffer.startswith(_PREFACE)
            self.buffer, self.preface = self.buffer[len(_PREFACE) :], True
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                return
            kind, flags, payload = self.buffer[3], self.buffer[4], self.buffer[9 : 9 + length]
            self.buffer = self.buffer[9 + length :]
            if kind == 0x1:  # HEADERS: strip padding and priority
                pad = payload[0] if flags & 0x8 else 0
                payload = payload[(1 if flags & 0x8 else 0) + (5 if flags & 0x20 else 0) : len(payload) - pad]
            elif kind != 0x9:  # not CONTINUATION either
                continue
            self.block += payload
            if flags & 0x4:  # END_HEADERS
                self.seen.append({str(k): str(v) for k, v in self.decoder.decode(self.block)})
                self.block = b""


@dataclass
class TlsProxy:
    """A TLS server (mutual: it asks for a client certificate) that forwards the plain bytes to the dev server."""

    port: int
    upstream: tuple[str, int]
    context: ssl.SSLContext
    client_subjects: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        certificate = writer.get_extra_info("peercert") or {}
        self.client_subjects.append(
            next((value for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName"), "")
        )
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        headers = _Http2Headers(self.headers)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, inspect=None) -> None:  # type: ignore[no-untyped-def]
            with contextlib.suppress(OSError, ConnectionError):
                while data := await source.read(65536):
                    if inspect:
                        inspect(data)
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer, headers.feed), pump(up_reader, writer))


@dataclass
class Pki:
    ca_file: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("temporal-pki")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client = ca.issue_cert("finance-worker@example.test", common_name="finance-worker")
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    trustme.CA().cert_pem.write_to_path(str(folder / "other-ca.pem"))
    return Pki(folder / "ca.pem", folder / "client.pem", folder / "client.key", folder / "other-ca.pem")


@pytest.fixture
async def proxy(ca: trustme.CA, temporal_env: WorkflowEnvironment) -> AsyncIterator[TlsProxy]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(SERVER_NAME).configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate, no connection
    context.set_alpn_protocols(["h2"])  # gRPC
    host, _, port = temporal_env.client.service_client.config.target_host.rpartition(":")
    tls_proxy = TlsProxy(free_port(), (host, int(port)), context)
    server = await asyncio.start_server(tls_proxy.handle, "127.0.0.1", tls_proxy.port, ssl=context)
    async with server:
        yield tls_proxy
        server.close()


def _settings(proxy: TlsProxy, **fields: object) -> TemporalSettings:
    return TemporalSettings(address=f"127.0.0.1:{proxy.port}", **fields)  # type: ignore[arg-type]


async def _refused(settings: TemporalSettings, because: str) -> None:
    with pytest.raises(RuntimeError, match=f"Failed client connect.*{because}"):
        async with asyncio.timeout(60):
            await connect(settings)


async def test_mutual_tls_with_a_server_name_and_an_api_key(proxy: TlsProxy, pki: Pki) -> None:
    settings = _settings(
        proxy,
        tls_server_ca_cert_path=pki.ca_file,
        tls_client_cert_path=pki.client_cert,
        tls_client_key_path=pki.client_key,
        tls_server_name=SERVER_NAME,
        api_key=API_KEY,
    )
    client = await connect(settings)
    # The client works through the TLS connection: the dev server answers behind the proxy.
    assert (await client.count_workflows()).count >= 0
    assert proxy.client_subjects and set(proxy.client_subjects) == {"finance-worker"}  # it presented its certificate
    calls = [headers for headers in proxy.headers if ":path" in headers]
    assert calls, "no gRPC call went through the proxy"
    assert all(headers.get("authorization") == f"Bearer {API_KEY}" for headers in calls)
    assert all(headers[":authority"].startswith(SERVER_NAME) for headers in calls)


async def test_no_client_certificate_no_connection(proxy: TlsProxy, pki: Pki) -> None:
    await _refused(_settings(proxy, tls_server_ca_cert_path=pki.ca_file, tls_server_name=SERVER_NAME), "transport")
    assert proxy.client_subjects == [] and proxy.headers == []  # the proxy refused the handshake: nothing forwarded


async def test_a_server_certificate_from_another_ca_is_refused(proxy: TlsProxy, pki: Pki) -> None:
    mtls = {"tls_client_cert_path": pki.client_cert, "tls_client_key_path": pki.client_key}
    other_ca = _settings(proxy, tls_server_ca_cert_path=pki.other_ca_file, tls_server_name=SERVER_NAME, **mtls)
    await _refused(other_ca, "UnknownIssuer")
    # The system's trust store does not know the test CA either.
    await _refused(_settings(proxy, tls=True, tls_server_name=SERVER_NAME, **mtls), "UnknownIssuer")
    # The right CA, but the certificate names SERVER_NAME, not 127.0.0.1: without the override, refused.
    await _refused(_settings(proxy, tls_server_ca_cert_path=pki.ca_file, **mtls), "NotValidForName")
    assert not [headers for headers in proxy.headers if ":path" in headers]  # no call, so no API key, went out


# --- the settings -------------------------------------------------------------------------------------------------


def test_a_half_tls_configuration_is_refused_at_load(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(pki.client_cert))
    with pytest.raises(ValidationError, match="CLIENT_CERT_PATH is set without TEMPORAL_TLS_CLIENT_KEY_PATH"):
        TemporalSettings()
    monkeypatch.delenv("TEMPORAL_TLS_CLIENT_CERT_PATH")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(pki.client_key))
    with pytest.raises(ValidationError, match="CLIENT_KEY_PATH is set without TEMPORAL_TLS_CLIENT_CERT_PATH"):
        TemporalSettings()
    monkeypatch.delenv("TEMPORAL_TLS_CLIENT_KEY_PATH")

    monkeypatch.setenv("TEMPORAL_TLS", "false")
    monkeypatch.setenv("TEMPORAL_API_KEY", API_KEY)
    with pytest.raises(ValidationError, match="TEMPORAL_TLS=false, but TEMPORAL_API_KEY set.*in clear"):
        TemporalSettings()
    monkeypatch.delenv("TEMPORAL_TLS")
    assert TemporalSettings().uses_tls  # an API key alone turns TLS on (Temporal Cloud: the system's trust store)

    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(pki.ca_file.parent / "missing.pem"))
    with pytest.raises(ValidationError, match="TEMPORAL_TLS_SERVER_CA_CERT_PATH: cannot read .*missing.pem"):
        TemporalSettings()
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(Path(__file__)))
    with pytest.raises(ValidationError, match="is not a PEM file"):
        TemporalSettings()


def test_plain_by_default() -> None:
    assert not TemporalSettings(address="127.0.0.1:7233").uses_tls
