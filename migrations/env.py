"""Alembic environment: the URL comes from core.settings (or `-x url=...`), the metadata from domain.models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from core.settings import DatabaseSettings, to_psycopg_url
from domain.models import Base
from migrations.numbering import next_revision_id

target_metadata = Base.metadata


def _numbered(_context, _revision, directives) -> None:  # type: ignore[no-untyped-def]
    """A new revision (`alembic revision --autogenerate`) takes the next number of the chain, not a random id."""
    if not directives:
        return
    script = directives[0]
    wanted = next_revision_id(context.script)
    if script.rev_id != wanted:
        print(f"  revision id {wanted}, the next in the numbered chain (not {script.rev_id})")
        script.rev_id = wanted


def _url() -> str:
    override = context.get_x_argument(as_dictionary=True).get("url")
    if override:
        return to_psycopg_url(override)
    configured = context.config.get_main_option("sqlalchemy.url")
    if configured:
        return to_psycopg_url(configured)
    settings = DatabaseSettings()
    if not settings.url:
        raise SystemExit("DATABASE_URL is not set")
    return settings.session_async_url  # DDL and its locks belong on a session of their own (DATABASE_DIRECT_URL)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        process_revision_directives=_numbered,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        process_revision_directives=_numbered,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
