"""`make dev` refuses ports held by other programs (naming the port and its setting) before it starts anything,
and `make reset` wipes the development data together, only after a yes, and never under a running system."""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from tests.foundation.test_devstack import dev_env
from tests.services import free_port

DEV_DATA = ["pgdata/PG_VERSION", "temporal.db", "temporal.db-wal", "storage/reports/1/pnl.pdf", "mail/1.eml"]
DEV_DATA += ["dev.env", "secret_key", "temporal.log", "fx-rates.xml"]


@contextlib.contextmanager
def http_server(port: int) -> Iterator[None]:
    """Another program on the port, one that even answers 200 to /health."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _devstack(var: Path, ports: dict[str, int], *args: str, answer: str = "", **extra: str):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "core.devstack", *args],
        cwd=PROJECT_ROOT,
        env={**dev_env(var, ports), **extra},
        input=answer,
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("api", "temporal", "ui", "metrics")}


@pytest.mark.parametrize(
    ("taken", "setting"),
    [("api", "API_PORT"), ("metrics", "WORKER_METRICS_PORT"), ("ui", "TEMPORAL_UI_PORT")],
)
def test_a_port_held_by_another_program_stops_make_dev_at_once(
    tmp_path: Path, ports: dict[str, int], taken: str, setting: str
) -> None:
    with http_server(ports[taken]):
        run = _devstack(tmp_path, ports)
    assert run.returncode != 0
    assert f"port {ports[taken]} ({setting})" in run.stderr and f"set {setting}" in run.stderr
    assert "ready" not in run.stdout
    assert not (tmp_path / "pgdata").exists(), "nothing may start before the ports are checked"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", ports["temporal"])) != 0, "no Temporal server was left behind"


def test_a_program_on_the_temporal_port_must_be_temporal(tmp_path: Path, ports: dict[str, int]) -> None:
    with http_server(ports["temporal"]):
        run = _devstack(tmp_path, ports)
    assert run.returncode != 0
    assert f"port {ports['temporal']} (TEMPORAL_PORT)" in run.stderr and "not a Temporal server" in run.stderr
    assert not (tmp_path / "pgdata").exists()


def _dev_data(var: Path) -> list[str]:
    for name in DEV_DATA:
        (var / name).parent.mkdir(parents=True, exist_ok=True)
        (var / name).write_text("x")
    (var / "notes.txt").write_text("not make dev's: stays")  # DEV_VAR_DIR may hold other things
    return [name for name in DEV_DATA if (var / name).exists()]


def test_reset_asks_first(tmp_path: Path, ports: dict[str, int]) -> None:
    present = _dev_data(tmp_path)
    declined = _devstack(tmp_path, ports, "reset", answer="no\n")
    assert declined.returncode != 0 and "nothing deleted" in declined.stdout
    assert [name for name in DEV_DATA if (tmp_path / name).exists()] == present

    confirmed = _devstack(tmp_path, ports, "reset", answer="yes\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert not [name for name in DEV_DATA if (tmp_path / name).exists()]
    assert not (tmp_path / "pgdata").exists() and not (tmp_path / "storage").exists()
    assert (tmp_path / "notes.txt").exists()


def test_reset_with_force_does_not_ask(tmp_path: Path, ports: dict[str, int]) -> None:
    _dev_data(tmp_path)
    make = subprocess.run(
        ["make", "-s", f"BIN={Path(sys.executable).parent}", "STAMP=", "reset", "FORCE=1"],
        cwd=PROJECT_ROOT,
        env=dev_env(tmp_path, ports),
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert make.returncode == 0, make.stdout + make.stderr
    assert not [name for name in DEV_DATA if (tmp_path / name).exists()]


def test_reset_refuses_while_make_dev_runs(tmp_path: Path, ports: dict[str, int]) -> None:
    _dev_data(tmp_path)
    with (tmp_path / "dev.lock").open("a+") as lock:  # held as a running make dev holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = _devstack(tmp_path, ports, "reset", "--yes")
    assert refused.returncode != 0 and "make dev is running" in refused.stderr
    assert all((tmp_path / name).exists() for name in DEV_DATA)


def test_reset_refuses_while_a_temporal_it_would_reuse_runs(tmp_path: Path, ports: dict[str, int]) -> None:
    _dev_data(tmp_path)
    with http_server(ports["temporal"]):
        refused = _devstack(tmp_path, ports, "reset", "--yes")
    assert refused.returncode != 0 and "TEMPORAL_PORT" in refused.stderr
    assert all((tmp_path / name).exists() for name in DEV_DATA)


def test_reset_refuses_a_configured_database(tmp_path: Path, ports: dict[str, int]) -> None:
    _dev_data(tmp_path)
    refused = _devstack(tmp_path, ports, "reset", "--yes", DATABASE_URL="postgresql://elsewhere/finance")
    assert refused.returncode != 0 and "DATABASE_URL" in refused.stderr
    assert all((tmp_path / name).exists() for name in DEV_DATA)
