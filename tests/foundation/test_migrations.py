"""The Alembic chain builds the models' schema from empty, and goes back down cleanly."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from core.settings import to_psycopg_url
from domain.models import Base
from tests.services import admin_database_url, alembic_config, migrate, scratch_database


@pytest.fixture
def empty_database() -> str:
    with scratch_database(admin_database_url(), "finance_migrate") as url:
        yield url


def test_upgrade_matches_models_and_downgrade_empties(empty_database: str) -> None:
    migrate(empty_database)
    engine = create_engine(to_psycopg_url(empty_database))
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"

    command.downgrade(alembic_config(empty_database), "base")
    with psycopg.connect(empty_database) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        ).fetchall()
    assert tables == []


def test_audit_log_refuses_update_and_delete(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_log (action, resource_type, changes, prev_hash, hash) "
            "VALUES ('test.row', 'test', '{}', repeat('0', 64), repeat('a', 64))"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_log SET action = 'forged'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE audit_log")
        assert conn.execute("SELECT action FROM audit_log").fetchall() == [("test.row",)]
