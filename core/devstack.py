"""`make dev`: the whole system on embedded defaults, in the foreground, stopped cleanly by Ctrl-C/SIGTERM.

PostgreSQL is DATABASE_URL when set, else an embedded server (pgserver) with its data in var/pgdata.
Temporal is TEMPORAL_ADDRESS when set, else `temporal server start-dev` persisting to var/temporal.db,
with the Web UI on 8233 and the project's search attributes registered. Then migrations, the first
superadmin, the worker and the API.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dotenv import dotenv_values

from core.settings import PROJECT_ROOT
from core.temporal import search_attribute_flags

# Read by the dev runner only (the app never sees them); like every setting, from the environment or `.env`.
DEV_RUNNER_SETTINGS = ("DEV_VAR_DIR", "API_PORT", "TEMPORAL_PORT", "TEMPORAL_UI_PORT")


def _runner_setting(name: str, default: str) -> str:
    """The environment wins over `.env`, as in the app's own settings; an empty value means the default."""
    value = os.environ.get(name) or dotenv_values(PROJECT_ROOT / ".env").get(name)
    return value or default


VAR = Path(_runner_setting("DEV_VAR_DIR", str(PROJECT_ROOT / "var")))
BIN = Path(sys.executable).parent
API_PORT = int(_runner_setting("API_PORT", "8000"))
TEMPORAL_PORT = int(_runner_setting("TEMPORAL_PORT", "7233"))
TEMPORAL_UI_PORT = int(_runner_setting("TEMPORAL_UI_PORT", "8233"))


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def wait_for_port(
    host: str, port: int, timeout: float, what: str, process: subprocess.Popen[bytes], log: Path | None = None
) -> None:
    """Wait until `process` listens on the port; fail at once, with the end of its log, when it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode} before opening {host}:{port}{_tail(log)}")
        time.sleep(0.3)
    raise SystemExit(f"{what} did not open {host}:{port} within {timeout:.0f}s{_tail(log)}")


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    last = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; the end of {log}:\n" + "\n".join(last)


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def secret_key() -> str:
    """A persistent random key for development, so tokens survive a restart; never a fixed default."""
    path = VAR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def embedded_database() -> str:
    import pgserver  # imported here: only needed when no DATABASE_URL is given

    say("starting embedded PostgreSQL (data in var/pgdata)")
    server = pgserver.get_server(VAR / "pgdata", cleanup_mode="stop")
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'finance';")
    if "1 row" not in exists:
        server.psql("CREATE DATABASE finance;")
    return str(server.get_uri("finance"))


def register_search_attributes(address: str, namespace: str = "default") -> None:
    """Register the project's search attributes on a running server (one we did not start, so they may be
    missing: workflows that upsert them would then fail). One that already exists with its type is fine."""
    pairs = search_attribute_flags()[1::2]  # ["EntryKind=Keyword", ...]
    for pair in pairs:
        name, kind = pair.split("=", 1)
        command = [str(BIN / "temporal"), "operator", "search-attribute", "create"]
        command += ["--address", address, "--namespace", namespace, "--name", name, "--type", kind]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired as exc:
            raise SystemExit(f"Temporal at {address} did not answer while registering search attributes") from exc
        output = (result.stdout + result.stderr).strip()
        if result.returncode == 0:
            continue
        if "already exists" in output and "different type" not in output:
            continue  # older CLIs report an existing attribute as an error
        raise SystemExit(f"could not register the search attribute {name} ({kind}) on {address}: {output}")


def start_temporal(children: list[subprocess.Popen[bytes]], namespace: str = "default") -> str:
    address = f"127.0.0.1:{TEMPORAL_PORT}"
    if port_in_use(TEMPORAL_PORT):
        say(f"a Temporal server already listens on {address}; using it and registering the search attributes")
        register_search_attributes(address, namespace)
        return address
    say(f"starting Temporal dev server on {address}, Web UI on http://127.0.0.1:{TEMPORAL_UI_PORT}")
    log_path = VAR / "temporal.log"
    log = log_path.open("ab")
    command = [
        str(BIN / "temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(TEMPORAL_PORT),
        "--ui-port",
        str(TEMPORAL_UI_PORT),
        "--db-filename",
        str(VAR / "temporal.db"),
        "--log-level",
        "warn",
        *search_attribute_flags(),
    ]
    temporal = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    children.append(temporal)
    wait_for_port("127.0.0.1", TEMPORAL_PORT, 60, "Temporal", temporal, log_path)
    return address


def dev_environment() -> dict[str, str]:
    """The children's environment: `.env` under the process environment (which wins, as in the app's own
    settings), then the dev defaults for whatever is still unset. An empty value counts as unset everywhere, as
    it does for the app (a `.env` copied from `.env.example` leaves many blank)."""
    env = {key: value for key, value in dotenv_values(PROJECT_ROOT / ".env").items() if value}
    env.update({key: value for key, value in os.environ.items() if value})
    defaults = {
        "APP_ENV": "dev",
        "TEMPORAL_UI_URL": f"http://127.0.0.1:{TEMPORAL_UI_PORT}",
        "STORAGE_DIR": str(VAR / "storage"),
        "MAIL_DIR": str(VAR / "mail"),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{API_PORT}",
    }
    for name, value in defaults.items():
        env.setdefault(name, value)
    if not env.get("SECRET_KEY"):
        env["SECRET_KEY"] = secret_key()
    return env


def stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in reversed(children):
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def main() -> int:
    VAR.mkdir(exist_ok=True)
    (VAR / "mail").mkdir(exist_ok=True)
    (VAR / "storage").mkdir(exist_ok=True)
    env = dev_environment()
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = embedded_database()

    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if not env.get("TEMPORAL_ADDRESS"):
            env["TEMPORAL_ADDRESS"] = start_temporal(children, env.get("TEMPORAL_NAMESPACE") or "default")
        say("applying migrations")
        subprocess.run([str(BIN / "alembic"), "upgrade", "heads"], env=env, check=True, cwd=PROJECT_ROOT)
        subprocess.run([sys.executable, "cli.py", "create-superadmin"], env=env, check=True, cwd=PROJECT_ROOT)
        say("starting the worker")
        children.append(subprocess.Popen([sys.executable, "worker.py"], env=env, cwd=PROJECT_ROOT))
        say("starting the API")
        api = subprocess.Popen(
            [
                str(BIN / "uvicorn"),
                "api.app:app_factory",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(API_PORT),
                "--no-access-log",
            ],
            env=env,
            cwd=PROJECT_ROOT,
        )
        children.append(api)
        wait_for_port("127.0.0.1", API_PORT, 60, "the API", api)
        say("ready:")
        say(f"  API          http://127.0.0.1:{API_PORT}/api/v1")
        say(f"  Health       http://127.0.0.1:{API_PORT}/health")
        say(f"  Swagger UI   http://127.0.0.1:{API_PORT}/docs  (ReDoc at /redoc)")
        say(f"  Temporal UI  {env['TEMPORAL_UI_URL']}")
        say(f"  Mail         {VAR / 'mail'} (.eml files)" if not env.get("SMTP_HOST") else "  Mail         SMTP")
        say("Ctrl-C stops everything; data stays in var/")
        while not stopping:
            if any(child.poll() is not None for child in children):
                say("a process exited; stopping the rest")
                break
            time.sleep(0.5)
    finally:
        say("stopping")
        stop(children)
    return 0


if __name__ == "__main__":
    sys.exit(main())
