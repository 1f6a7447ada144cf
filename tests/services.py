"""Start the real services the tests talk to: PostgreSQL, Temporal, S3 (moto), SMTP (aiosmtpd).

Every service listens on a free port, never on the development ones, so tests run while `make dev` is up.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core.settings import PROJECT_ROOT
from workflows.contracts import SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent
TEMPORAL_CLI = BIN / "temporal"
TEMPORAL_TEST_SERVER = BIN / "temporal-test-server"


# Below Linux's ephemeral range (32768-60999), from which the kernel hands out every port bound to 0 and every
# outgoing connection's: a port chosen here is not taken meanwhile by a server that asked for "any free port"
# (Temporal's HTTP and metrics ports, say) before the test's own server binds it.
_TEST_PORTS = range(20_000, 32_000)
_random_ports = random.Random()


async def start_temporal_dev_server(*extra_args: str) -> WorkflowEnvironment:
    """The `temporal` CLI's dev server on a free port, as the app meets it (its search attributes, the pydantic data
    converter); `extra_args` are the CLI's own (dynamic config values, say). Use it as an async context manager."""
    return await WorkflowEnvironment.start_local(
        port=free_port(),
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(TEMPORAL_CLI),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
        dev_server_extra_args=list(extra_args),
    )


def free_port() -> int:
    for _ in range(200):
        port = _random_ports.choice(_TEST_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


# --- PostgreSQL -------------------------------------------------------------------------------------


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def admin_database_url() -> str:
    """TEST_DATABASE_URL, else the local server on 127.0.0.1:5432 when it answers, else an embedded one."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        return configured
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if _answers(local):
        return local
    import pgserver

    server = pgserver.get_server(Path(tempfile.gettempdir()) / "finance-test-pgdata", cleanup_mode="stop")
    return str(server.get_uri("postgres"))


def with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    prefix = base.rsplit("/", 1)[0]
    return f"{prefix}/{name}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str = "finance_test") -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alembic_config(url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, target: str = "heads") -> None:
    command.upgrade(alembic_config(url), target)


def truncate_all(url: str) -> None:
    """Empty every table between tests (the audit log's append-only triggers are bypassed as owner)."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            conn.execute("SET session_replication_role = replica")
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


# --- SMTP -------------------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps what it receives."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # time.monotonic() of each message, in order
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # aiosmtpd hook
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.append(time.monotonic())
        return "250 OK"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.envelopes.clear()
            self.arrived.clear()


@contextlib.contextmanager
def smtp_server() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    port = free_port()
    sink = SmtpSink("127.0.0.1", port)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# --- S3 ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 over HTTP on a free port; yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
