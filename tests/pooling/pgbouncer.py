"""A private PgBouncer in transaction pooling mode in front of the test PostgreSQL: Debian's `pgbouncer` binary on a
free port, with its ini and userlist in a temporary folder (never the system service)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.services import free_port

# The server connections PgBouncer keeps per database and user: fewer than the app's pool (DATABASE_POOL_SIZE 10,
# plus overflow), so client connections take turns on them, transaction by transaction, as in production.
DEFAULT_POOL_SIZE = 2


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)), None
    )


@dataclass(frozen=True)
class PgBouncer:
    port: int
    version: str
    log: Path

    def url_for(self, database_url: str, application_name: str) -> str:
        """`database_url` reached through this PgBouncer (same database and user), as a libpq URL."""
        params = conninfo_to_dict(database_url)
        return _url(params["user"], "127.0.0.1", self.port, params["dbname"], application_name)

    def show(self, what: str) -> list[dict[str, object]]:
        """The admin console's `SHOW <what>` (POOLS, STATS, SERVERS ...), as dicts."""
        with psycopg.connect(f"host=127.0.0.1 port={self.port} dbname=pgbouncer user=postgres", autocommit=True) as c:
            cursor = c.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def direct_url(database_url: str, application_name: str) -> str:
    params = conninfo_to_dict(database_url)
    return _url(params["user"], params.get("host", "127.0.0.1"), params.get("port", 5432), params["dbname"],
                application_name)  # fmt: skip


def _url(user: str, host: str, port: object, database: str, application_name: str) -> str:
    return f"postgresql://{user}@{host}:{port}/{database}?application_name={application_name}"


def _unprivileged_user() -> str | None:
    """PgBouncer refuses to run as root: as root, it switches to this user (`-u`)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    raise RuntimeError("running as root, and no postgres or nobody user for PgBouncer to switch to")


@contextlib.contextmanager
def running_pgbouncer(binary: str, database_url: str) -> Iterator[PgBouncer]:
    """PgBouncer on a free port in transaction mode, trusting the clients (as the test PostgreSQL does)."""
    server = conninfo_to_dict(database_url)
    user = server["user"]
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o755)  # readable by the user it switches to
    try:
        (folder / "userlist.txt").write_text(f'"{user}" ""\n')
        (folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={server.get('host', '127.0.0.1')} port={server.get('port', 5432)}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {folder / 'userlist.txt'}\n"
            f"admin_users = {user}, postgres\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {DEFAULT_POOL_SIZE}\n"
            "max_client_conn = 500\n"
            "query_wait_timeout = 30\n"
        )
        for path in folder.iterdir():
            path.chmod(0o644)
        log_path = folder / "pgbouncer.log"
        switch = _unprivileged_user()
        argv = [binary, *(["-u", switch] if switch else []), str(folder / "pgbouncer.ini")]
        with log_path.open("ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=log)
        try:
            _wait_until_it_answers(process, port, user, server["dbname"], log_path)
            version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
            yield PgBouncer(port, version, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_it_answers(process: subprocess.Popen[bytes], port: int, user: str, dbname: str, log: Path) -> None:
    conninfo = make_conninfo(host="127.0.0.1", port=port, user=user, dbname=dbname, connect_timeout=2)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({process.returncode}):\n{log.read_text()}")
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
