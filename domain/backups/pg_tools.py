"""PostgreSQL client tools (pg_dump, pg_restore) whose major version matches the server, and how to run them.

pg_dump refuses a server newer than itself, and an older server's dump restored by a newer pg_restore works but a
newer dump does not restore with an older pg_restore: matching the server's major version avoids both traps.
Candidates, in order: settings.backups.pg_bin_dir (when set, the only candidate), the embedded PostgreSQL
(`pgserver`), the system's /usr/lib/postgresql/<major>/bin, then every directory on PATH.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


class PgToolsNotFound(RuntimeError):
    """No pg_dump/pg_restore pair matches the server's major version (the message says what was found)."""


class PgCommandFailed(RuntimeError):
    """pg_dump or pg_restore exited with an error (the message carries its stderr)."""


@dataclass(frozen=True)
class PgTools:
    pg_dump: Path
    pg_restore: Path
    major: int

    @property
    def bin_dir(self) -> Path:
        return self.pg_dump.parent


def tool_major(executable: Path) -> int | None:
    """The major version `executable --version` reports, or None when it does not run."""
    try:
        out = subprocess.run(
            [str(executable), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out)
    return int(match.group(1)) if match else None


def server_major(version_num: int | str) -> int:
    """`SHOW server_version_num` (150020, 160004) -> 15, 16."""
    return int(version_num) // 10000


def _embedded_bin_dir() -> Path | None:
    try:
        import pgserver
    except ImportError:
        return None
    path = Path(pgserver.__file__).parent / "pginstall" / "bin"
    return path if path.is_dir() else None


def candidate_dirs(pg_bin_dir: str = "") -> Iterator[Path]:
    """Where to look for the client tools (deduplicated, in order of preference)."""
    if pg_bin_dir:
        yield Path(pg_bin_dir)
        return
    seen: set[Path] = set()
    dirs: list[Path] = []
    embedded = _embedded_bin_dir()
    if embedded:
        dirs.append(embedded)
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        dirs.append(Path(found))
    dirs += [Path(entry) for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    for directory in dirs:
        resolved = directory.resolve()
        if resolved not in seen:
            seen.add(resolved)
            yield directory


def find_pg_tools(major: int, pg_bin_dir: str = "") -> PgTools:
    """The pg_dump/pg_restore pair of `major`; PgToolsNotFound names every version found and where."""
    found: list[str] = []
    for directory in candidate_dirs(pg_bin_dir):
        dump, restore = directory / "pg_dump", directory / "pg_restore"
        if not (dump.is_file() and restore.is_file()):
            continue
        dump_major, restore_major = tool_major(dump), tool_major(restore)
        if dump_major == major and restore_major == major:
            return PgTools(dump, restore, major)
        found.append(f"{directory} (pg_dump {dump_major}, pg_restore {restore_major})")
    where = f"PG_BIN_DIR={pg_bin_dir}" if pg_bin_dir else "the embedded PostgreSQL, /usr/lib/postgresql/*/bin and PATH"
    seen = "; ".join(found) if found else "none"
    raise PgToolsNotFound(
        f"no pg_dump/pg_restore for PostgreSQL {major} (the server's major version) in {where}; found: {seen}. "
        f"Install the PostgreSQL {major} client tools or set PG_BIN_DIR to their bin directory."
    )


# --- connections ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """How libpq tools reach one database: a URI without the password, and the password in the environment
    (so it never shows in the process list)."""

    uri: str
    password: str | None
    database: str

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def conninfo(self) -> str:
        """For psycopg: the URI with the password (psycopg passes it to libpq directly, not on a command line)."""
        return (
            self.uri
            if not self.password
            else str(make_url(self.uri).set(password=self.password).render_as_string(hide_password=False))
        )

    def with_database(self, name: str) -> Connection:
        url = make_url(self.uri).set(database=name)
        return Connection(url.render_as_string(hide_password=False), self.password, name)


def connection_for(url: str) -> Connection:
    """Any SQLAlchemy or libpq URL (postgresql+psycopg://, postgres://, ?host=/socket/dir) -> a libpq Connection."""
    parsed = make_url(url).set(drivername="postgresql")
    password = parsed.password
    bare = parsed.set(password=None)
    return Connection(
        bare.render_as_string(hide_password=False), str(password) if password else None, parsed.database or ""
    )


# --- commands ---------------------------------------------------------------------------------------


async def _run(argv: list[str], env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        _, stderr = await process.communicate()
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip()[-2000:]
        raise PgCommandFailed(f"{Path(argv[0]).name} exited with {process.returncode}: {message}")


async def pg_dump(tools: PgTools, source: Connection, target: Path, snapshot: str | None = None) -> None:
    """A custom-format dump of `source` into `target` (taken at `snapshot` when given)."""
    argv = [str(tools.pg_dump), "--format=custom", "--no-password", f"--file={target}"]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    argv.append(f"--dbname={source.uri}")
    await _run(argv, source.env())


async def pg_restore(tools: PgTools, archive: Path, target: Connection) -> None:
    """Restore a custom-format archive into the (empty) database `target`, all or nothing."""
    argv = [
        str(tools.pg_restore),
        "--no-password",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={target.uri}",
        str(archive),
    ]
    await _run(argv, target.env())


async def pg_restore_list(tools: PgTools, archive: Path) -> None:
    """Read the archive's table of contents: fails on a file that is not a readable custom-format dump."""
    await _run([str(tools.pg_restore), "--list", str(archive)], dict(os.environ))


_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_database_name(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"database name {name!r}: use lowercase letters, digits and _ (at most 63)")
    return name


async def create_database(server: Connection, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(server.conninfo(), autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{check_database_name(name)}"')


async def drop_database(server: Connection, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(server.conninfo(), autocommit=True) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{check_database_name(name)}" WITH (FORCE)')


async def database_exists(server: Connection, name: str) -> bool:
    async with await psycopg.AsyncConnection.connect(server.conninfo(), autocommit=True) as conn:
        cursor = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return await cursor.fetchone() is not None


async def database_has_tables(target: Connection) -> bool:
    async with await psycopg.AsyncConnection.connect(target.conninfo(), autocommit=True) as conn:
        cursor = await conn.execute("SELECT 1 FROM pg_tables WHERE schemaname = 'public' LIMIT 1")
        return await cursor.fetchone() is not None


async def server_major_of(server: Connection) -> int:
    async with await psycopg.AsyncConnection.connect(server.conninfo(), autocommit=True) as conn:
        cursor = await conn.execute("SHOW server_version_num")
        row = await cursor.fetchone()
    assert row is not None
    return server_major(row[0])
