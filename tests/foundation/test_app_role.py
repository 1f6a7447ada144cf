"""In compose the API and the worker connect as a role that owns nothing (deploy/grant_app_role.py): it reads and
writes rows, and cannot switch off the audit log's protections, change the schema, or rewrite history."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.foundation.app_role import AppDatabase, app_database, grant_app_role


@pytest.fixture(scope="module")
def database() -> Iterator[AppDatabase]:
    with app_database() as created:
        yield created


def test_the_app_role_owns_nothing_and_may_write_rows(database: AppDatabase) -> None:
    with psycopg.connect(database.app_url, autocommit=True) as conn:
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user"
        ).fetchone()
        assert owned == (0,)
        with conn.transaction(force_rollback=True):
            user_id = conn.execute(
                "INSERT INTO users (email, username, full_name, password_hash, role, is_active, is_verified,"
                " otp_enabled, token_version) VALUES ('r@example.com', 'r', 'R', 'x', 'employee', true, true, false, 0)"
                " RETURNING id"
            ).fetchone()
            assert user_id is not None
            conn.execute("UPDATE users SET full_name = 'Renamed' WHERE id = %s", user_id)
            conn.execute("DELETE FROM users WHERE id = %s", user_id)
        with conn.transaction(force_rollback=True):  # the audit service's own way in: a sequence, then a row
            conn.execute("SELECT nextval(pg_get_serial_sequence('audit_log', 'id'))")
            conn.execute(
                "INSERT INTO audit_log (action, resource_type, changes, prev_hash, hash) "
                "VALUES ('test.row', 'test', '{}', repeat('0', 64), repeat('a', 64))"
            )


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
        "DROP TRIGGER audit_log_no_truncate ON audit_log",
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "DROP TABLE entries",
        "ALTER TABLE entries ADD COLUMN note text",
        "CREATE TABLE public.scratch (id int)",
        "UPDATE alembic_version SET version_num = '0000'",
    ],
)
def test_the_app_role_cannot_change_schema_or_history(database: AppDatabase, statement: str) -> None:
    with (
        psycopg.connect(database.app_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_the_app_role_may_create_a_scratch_database_for_restore_drills(database: AppDatabase) -> None:
    with psycopg.connect(database.app_url, autocommit=True) as conn:
        name = f"drill_{database.role}"
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'DROP DATABASE "{name}"')


def test_granting_again_is_harmless_and_covers_new_tables(database: AppDatabase) -> None:
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE later_feature (id bigserial PRIMARY KEY, note text)")  # as a migration would
    grant_app_role(database.owner_url, database.role, database.password)
    with psycopg.connect(database.app_url, autocommit=True) as conn:
        conn.execute("INSERT INTO later_feature (note) VALUES ('x')")
        assert conn.execute("SELECT count(*) FROM later_feature").fetchone() == (1,)
