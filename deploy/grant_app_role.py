"""Give the application its own PostgreSQL login, one that owns nothing: run after `alembic upgrade heads`, as the
tables' owner (DATABASE_URL), by compose's one-shot `migrate` service. Idempotent: run it after every upgrade.

    APP_DB_USER=finance_app APP_DB_PASSWORD=... python deploy/grant_app_role.py

Why a second role: the owner of a table may ALTER or DROP it, disable its triggers and TRUNCATE it, so an API or
worker connected as the owner could switch off the audit log's append-only triggers. The application's role may
read and write rows, nothing more:
- SELECT, INSERT, UPDATE, DELETE on every table, except audit_log (SELECT and INSERT only: append-only even
  without its triggers) and alembic_version (SELECT: the schema's version is the migrations' to change);
- USAGE and SELECT on the sequences (nextval for ids; pg_dump reads each sequence's position);
- the same on tables and sequences the owner creates later (ALTER DEFAULT PRIVILEGES);
- CREATEDB, for the weekly restore drill, which restores the latest backup into a scratch database of its own,
  checks it and drops it. A database it creates is its own; CREATEDB gives it no power over this one.
The backups run pg_dump as this role, which needs SELECT on everything it dumps: granted above.
"""

from __future__ import annotations

import os
import sys

import psycopg
from psycopg import sql


def grant(owner_url: str, role: str, password: str) -> None:
    app = sql.Identifier(role)
    scheme, separator, rest = owner_url.partition("://")
    libpq_url = scheme.split("+", 1)[0] + separator + rest  # postgresql+psycopg:// as the app writes it
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        database = sql.Identifier(conn.info.dbname)
        owner = sql.Identifier(conn.info.user)
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(app))
        # The password follows the environment, so changing APP_DB_PASSWORD and re-running takes effect.
        conn.execute(
            sql.SQL("ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEROLE NOBYPASSRLS CREATEDB PASSWORD {}").format(
                app, sql.Literal(password)
            )
        )
        statements = [
            "GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {app}",
            "GRANT USAGE ON SCHEMA public TO {app}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
            "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {app}",
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {app}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public"
            " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app}",
        ]
        for statement in statements:
            conn.execute(sql.SQL(statement).format(database=database, owner=owner, app=app))


def main() -> int:
    owner_url = os.environ.get("DATABASE_URL", "")
    role = os.environ.get("APP_DB_USER", "finance_app")
    password = os.environ.get("APP_DB_PASSWORD", "")
    if not owner_url or not password:
        print("grant_app_role: set DATABASE_URL (the tables' owner) and APP_DB_PASSWORD", file=sys.stderr)
        return 2
    grant(owner_url, role, password)
    print(f"grant_app_role: {role} may read and write rows, and owns nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
