"""A database migrated by its owner, and the application's own role on it as deploy/grant_app_role.py sets it up
(as compose's `migrate` service does): for tests that run the app as a role that owns nothing."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from sqlalchemy.engine import make_url

from core.settings import PROJECT_ROOT
from tests.services import admin_database_url, migrate, scratch_database

GRANT_SCRIPT = PROJECT_ROOT / "deploy" / "grant_app_role.py"


@dataclass(frozen=True)
class AppDatabase:
    owner_url: str
    app_url: str
    role: str
    password: str


def grant_app_role(owner_url: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
    """Run the script as the migrate service does: a process of its own, configured by its environment."""
    env = dict(os.environ, DATABASE_URL=owner_url, APP_DB_USER=role, APP_DB_PASSWORD=password)
    return subprocess.run([sys.executable, str(GRANT_SCRIPT)], env=env, capture_output=True, text=True, check=True)


@contextlib.contextmanager
def app_database(prefix: str = "finance_role") -> Iterator[AppDatabase]:
    admin = admin_database_url()
    role = f"finance_app_{secrets.token_hex(4)}"  # roles are the whole server's: one per use
    password = secrets.token_urlsafe(24)
    try:
        with scratch_database(admin, prefix) as owner_url:
            migrate(owner_url)
            grant_app_role(owner_url, role, password)
            app_url = make_url(owner_url).set(username=role, password=password)
            yield AppDatabase(owner_url, app_url.render_as_string(hide_password=False), role, password)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            # A restore drill's scratch database would belong to the role; the drill drops its own.
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
