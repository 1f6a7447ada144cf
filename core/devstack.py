"""`make dev`: the whole system on embedded defaults, in the foreground, stopped cleanly by Ctrl-C/SIGTERM.

PostgreSQL is DATABASE_URL when set, else an embedded server (pgserver) with its data in var/pgdata.
Temporal is TEMPORAL_ADDRESS when set, else `temporal server start-dev` persisting to var/temporal.db,
with the Web UI on 8233 and the project's search attributes registered. Then migrations, the first
superadmin, the worker and the API. The addresses a second shell needs go to var/dev.env.

Exchange rates: unless FX_RATES_URL / FX_RATES_HISTORY_URL are set, the worker imports var/fx-rates.xml, the
sample ECB file (domain/fx/samples/) re-dated to the working days up to today, so an entry in USD, GBP, JPY, CHF,
SEK, PLN or DKK can be submitted today without reaching the ECB.

`make reset` (`python -m core.devstack reset [--yes]`) wipes the development data: database, Temporal state,
files and mail together, since an entry id reused after a partial wipe would meet its old workflow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dotenv import dotenv_values

from core.settings import PROJECT_ROOT, dev_audit_key
from core.temporal import search_attribute_flags
from workflows.contracts import SEARCH_ATTRIBUTES

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


def port_free(port: int) -> bool:
    """Whether we could listen on 127.0.0.1:port (as uvicorn and Temporal will, with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_taken(port: int, setting: str, what: str) -> SystemExit:
    return SystemExit(
        f"port {port} ({setting}) is taken by another program, so {what} cannot listen there. "
        f"Stop that program, or set {setting} to a free port (in .env or the environment)."
    )


def is_temporal(address: str) -> bool:
    """Whether a Temporal server answers on `address` (a port may be held by anything)."""
    command = [str(BIN / "temporal"), "operator", "cluster", "health", "--address", address]
    try:
        result = subprocess.run([*command, "--command-timeout", "5s"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and "SERVING" in result.stdout


def check_ports(env: dict[str, str]) -> None:
    """Before starting anything: every port `make dev` listens on must be free, and a program already on the
    Temporal port must be a Temporal server (reused, as documented), not something we would talk to blindly."""
    if not port_free(API_PORT):
        raise port_taken(API_PORT, "API_PORT", "the API")
    metrics = int(env.get("WORKER_METRICS_PORT") or "9464")
    if not port_free(metrics):
        raise port_taken(metrics, "WORKER_METRICS_PORT", "the worker's metrics")
    business = int(env.get("WORKER_BUSINESS_METRICS_PORT") or "9465")
    if business and not port_free(business):
        raise port_taken(business, "WORKER_BUSINESS_METRICS_PORT", "the worker's business metrics")
    if env.get("TEMPORAL_ADDRESS"):
        return
    if port_in_use(TEMPORAL_PORT):
        if not is_temporal(f"127.0.0.1:{TEMPORAL_PORT}"):
            raise SystemExit(
                f"port {TEMPORAL_PORT} (TEMPORAL_PORT) is taken by a program that is not a Temporal server. "
                "Stop it, or set TEMPORAL_PORT to a free port (in .env or the environment)."
            )
    elif not port_free(TEMPORAL_UI_PORT):
        raise port_taken(TEMPORAL_UI_PORT, "TEMPORAL_UI_PORT", "the Temporal Web UI")


@contextlib.contextmanager
def dev_lock() -> Iterator[IO[str] | None]:
    """Held while `make dev` runs: a second one, and `make reset`, can tell. Yields None when it is taken.
    The kernel drops the lock when the process ends, however it ends."""
    VAR.mkdir(parents=True, exist_ok=True)
    handle = (VAR / "dev.lock").open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield handle
    finally:
        handle.close()


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
    pairs = search_attribute_flags(SEARCH_ATTRIBUTES)[1::2]  # ["EntryKind=Keyword", ...]
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
    if port_in_use(TEMPORAL_PORT):  # a Temporal server: check_ports refused anything else
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
        *search_attribute_flags(SEARCH_ATTRIBUTES),
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
    if not env.get("AUDIT_HMAC_KEY"):  # the audit chain's key, persistent like the data it keys
        env["AUDIT_HMAC_KEY"] = dev_audit_key(VAR / "audit_hmac_key").decode()
    dev_rates_urls(env, dt.date.today())
    return env


FX_SAMPLE = PROJECT_ROOT / "domain" / "fx" / "samples" / "eurofxref-hist-90d.xml"
_DAY = re.compile(r'time="\d{4}-\d{2}-\d{2}"')


def working_days_back(today: dt.date, count: int) -> list[dt.date]:
    """`count` working days (Monday to Friday), newest first, ending with today when it is one."""
    days: list[dt.date] = []
    day = today
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    return days


def write_dev_rates(today: dt.date, sample: Path = FX_SAMPLE) -> Path:
    """var/fx-rates.xml: the sample's days (newest first, as in the ECB's files) moved onto the working days up to
    `today`, so the development stack has current rates (made-up ones, for development only)."""
    text = sample.read_text()
    days = iter(working_days_back(today, len(_DAY.findall(text))))
    VAR.mkdir(parents=True, exist_ok=True)
    path = VAR / "fx-rates.xml"
    path.write_text(_DAY.sub(lambda _: f'time="{next(days).isoformat()}"', text))
    return path


def dev_rates_urls(env: dict[str, str], today: dt.date) -> None:
    """Point the worker's exchange-rate import at the re-dated sample, unless the user set a URL of their own."""
    if env.get("FX_RATES_URL") and env.get("FX_RATES_HISTORY_URL"):
        return
    url = write_dev_rates(today).as_uri()
    env.setdefault("FX_RATES_URL", url)
    env.setdefault("FX_RATES_HISTORY_URL", url)


def stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in reversed(children):
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


# What a second shell needs to reach this system (`set -a; . var/dev.env; set +a`), then run cli.py, alembic or
# the README's walkthrough against it. Not SECRET_KEY: nothing run from there needs to sign tokens. The audit key
# yes: cli.py verify-audit checks the chain with it, and whatever a CLI command audits is chained with it.
SECOND_SHELL = (
    "APP_ENV",
    "AUDIT_HMAC_KEY",
    "DATABASE_URL",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_UI_URL",
    "STORAGE_DIR",
    "MAIL_DIR",
    "PUBLIC_BASE_URL",
)


def write_dev_env(env: dict[str, str]) -> Path:
    path = VAR / "dev.env"
    lines = [
        "# Written by `make dev` for a second shell: set -a; . var/dev.env; set +a",
        *(f"{name}={shlex.quote(env[name])}" for name in SECOND_SHELL if env.get(name)),
        "# The API's base URL, as the README's walkthrough reads it.",
        f"API={shlex.quote(f'http://127.0.0.1:{API_PORT}/api/v1')}",
    ]
    # Readable by its owner only, from its first byte: a DATABASE_URL may carry a password.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file keeps its mode through O_TRUNC
        handle.write("\n".join(lines) + "\n")
    return path


def run() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    with dev_lock() as lock:
        if lock is None:
            raise SystemExit(f"make dev is already running on {VAR}; stop it first (Ctrl-C in its shell)")
        return _run(lock)


def _run(lock: IO[str]) -> int:
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    (VAR / "mail").mkdir(exist_ok=True)
    (VAR / "storage").mkdir(exist_ok=True)
    env = dev_environment()
    check_ports(env)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = embedded_database()
    env.setdefault("TEMPORAL_NAMESPACE", "default")

    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if not env.get("TEMPORAL_ADDRESS"):
            env["TEMPORAL_ADDRESS"] = start_temporal(children, env["TEMPORAL_NAMESPACE"])
        say("applying migrations")
        subprocess.run([str(BIN / "alembic"), "upgrade", "heads"], env=env, check=True, cwd=PROJECT_ROOT)
        subprocess.run([sys.executable, "cli.py", "create-superadmin"], env=env, check=True, cwd=PROJECT_ROOT)
        # A chart of accounts to close months with from the start (made once: never over one in use).
        subprocess.run([sys.executable, "cli.py", "seed-accounts"], env=env, check=True, cwd=PROJECT_ROOT)
        # Before the API answers, so whoever sees it up (a person, a test) finds the file there already.
        dev_env = write_dev_env(env)
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
        say(f"  Temporal     {env['TEMPORAL_ADDRESS']}  (namespace {env['TEMPORAL_NAMESPACE']})")
        say(f"  Temporal UI  {env['TEMPORAL_UI_URL']}")
        say(f"  Database     {env['DATABASE_URL']}")
        say(f"  Mail         {env['MAIL_DIR']} (.eml files)" if not env.get("SMTP_HOST") else "  Mail         SMTP")
        say(f"  Files        {env['STORAGE_DIR']}" if not env.get("AWS_BUCKET_NAME") else "  Files        S3")
        say(f"a second shell (cli.py, alembic, the README's curl walkthrough): set -a; . {dev_env}; set +a")
        say("Ctrl-C stops everything; data stays in var/ (make reset wipes it)")
        while not stopping:
            if any(child.poll() is not None for child in children):
                say("a process exited; stopping the rest")
                break
            time.sleep(0.5)
    finally:
        say("stopping")
        stop(children)
    return 0


# --- make reset -------------------------------------------------------------------------------------------------

# The development data, all of it together (and only it: DEV_VAR_DIR may point at a folder with other things).
# The secret key goes too: a token it signed would name a user id that a new user may now hold. So does the audit
# key: the chain it keyed goes with the database.
DEV_DATA = (
    *("pgdata", "temporal.db", "temporal.db-wal", "temporal.db-shm", "temporal.db-journal"),
    *("storage", "mail", "dev.env", "secret_key", "audit_hmac_key", "temporal.log", "fx-rates.xml"),
)


def _postgres_running(pgdata: Path) -> int | None:
    """The pid of a PostgreSQL still running on `pgdata` (a `make dev` that was killed), if any."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def reset(assume_yes: bool) -> int:
    configured = [name for name in ("DATABASE_URL", "TEMPORAL_ADDRESS") if _runner_setting(name, "")]
    if configured:
        raise SystemExit(
            f"{' and '.join(configured)} set: make reset wipes only the embedded database and Temporal, together, "
            "and would leave the configured one with the other's state gone. Reset those yourself."
        )
    if not VAR.is_dir():
        say(f"nothing to reset: {VAR} does not exist")
        return 0
    with dev_lock() as lock:
        if lock is None:
            raise SystemExit("make dev is running: stop it first (Ctrl-C in its shell), then make reset")
        if port_in_use(TEMPORAL_PORT):
            raise SystemExit(
                f"a Temporal server that make dev did not start listens on 127.0.0.1:{TEMPORAL_PORT} "
                "(TEMPORAL_PORT); make dev reuses it, so its workflows would outlive the wiped database and attach "
                "to new entries that reuse their ids. Stop that server (and wipe its data) first."
            )
        postgres = _postgres_running(VAR / "pgdata")
        if postgres is not None:
            raise SystemExit(f"PostgreSQL (pid {postgres}) still runs on {VAR / 'pgdata'}: stop it first")
        present = [VAR / name for name in DEV_DATA if (VAR / name).exists()]
        if not present:
            say(f"nothing to reset in {VAR}")
            return 0
        say("this deletes the development data: database, Temporal state, files, mail, secret and audit keys:")
        for path in present:
            say(f"  {path}")
        if not assume_yes:
            try:
                answer = input("[dev] type yes to delete them (make reset FORCE=1 does not ask): ")
            except EOFError:
                answer = ""
            if answer.strip().lower() != "yes":
                say("nothing deleted")
                return 1
        for path in present:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        say("development data wiped; make dev starts afresh (and prints a new superadmin password)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["reset"]:
        return reset(assume_yes="--yes" in args[1:])
    if args:
        raise SystemExit("usage: python -m core.devstack [reset [--yes]]")
    return run()


if __name__ == "__main__":
    sys.exit(main())
