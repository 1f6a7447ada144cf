"""The database settings an operator writes for a pooler and a replica: one rule for prepared statements, a
direct URL required where LISTEN would otherwise go through a transaction pooler, and the fallbacks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import DatabasePooler, DatabaseSettings

POOLED = "postgresql://app@pgbouncer:6432/finance"
DIRECT = "postgresql://app@db:5432/finance"


@pytest.fixture(autouse=True)
def _only_these_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_POOLER", "DATABASE_PREPARED_STATEMENTS", "DATABASE_DIRECT_URL", "DATABASE_READ_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", POOLED)


def test_a_transaction_pooler_without_a_direct_url_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOLER", "transaction")
    with pytest.raises(ValidationError, match="DATABASE_POOLER=transaction needs DATABASE_DIRECT_URL"):
        DatabaseSettings(_env_file=None)  # type: ignore[call-arg]


def test_behind_a_transaction_pooler_nothing_is_prepared_and_sessions_go_direct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_POOLER", "transaction")
    monkeypatch.setenv("DATABASE_DIRECT_URL", DIRECT)
    settings = DatabaseSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.pooler == DatabasePooler.TRANSACTION and not settings.prepares_statements
    assert settings.async_url == "postgresql+psycopg://app@pgbouncer:6432/finance"
    assert settings.session_async_url == "postgresql+psycopg://app@db:5432/finance"
    # PgBouncer >= 1.21 with max_prepared_statements keeps protocol-level prepared statements: the operator says so.
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "true")
    assert DatabaseSettings(_env_file=None).prepares_statements  # type: ignore[call-arg]


def test_without_a_pooler_statements_are_prepared_and_everything_uses_database_url() -> None:
    settings = DatabaseSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.pooler == DatabasePooler.NONE and settings.prepares_statements
    assert settings.session_url == POOLED
    assert settings.replica() is None  # no DATABASE_READ_URL: the reads stay on the primary


def test_the_replica_takes_the_primarys_pool_settings_and_pooler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOLER", "transaction")
    monkeypatch.setenv("DATABASE_DIRECT_URL", DIRECT)
    monkeypatch.setenv("DATABASE_READ_URL", "postgresql://app@replica-bouncer:6432/finance")
    monkeypatch.setenv("DATABASE_POOL_SIZE", "4")
    replica = DatabaseSettings(_env_file=None).replica()  # type: ignore[call-arg]
    assert replica is not None
    assert replica.async_url == "postgresql+psycopg://app@replica-bouncer:6432/finance"
    assert replica.pool_size == 4 and not replica.prepares_statements
