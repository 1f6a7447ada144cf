"""The bench says what it measured: a data set of another size than asked is refused (saying how to rebuild) or,
asked to, rebuilt; its label is the size counted in the database; the load leaves the same indexes a migrated
database has; and a database holding anything but the bench's users is never dropped."""

from __future__ import annotations

import psycopg
import pytest

from domain.dashboard.aggregates import AGGREGATED_STATUSES
from tests.bench.generate import DataSetMismatch, ensure_bench_dataset
from tests.services import admin_database_url, migrate, scratch_database

# Each index by what it is (a rebuilt partial index deparses its predicate's casts differently, the same index).
COUNTED = ", ".join(f"'{status.value}'" for status in AGGREGATED_STATUSES)
GROUPED = (
    "SELECT owner_id, kind, date_trunc('month', entry_date)::date, category, status, count(*), sum(base_amount) "
    f"FROM entries WHERE status IN ({COUNTED}) GROUP BY 1, 2, 3, 4, 5"
)
STORED = "SELECT owner_id, kind, month, category, status, entry_count, amount_total FROM dashboard_entry_totals"
INDEXES = (
    "SELECT i.relname, t.relname, x.indkey::text, x.indisunique, x.indpred IS NOT NULL, x.indexprs IS NOT NULL, "
    "x.indnkeyatts FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
    "WHERE t.relnamespace = 'public'::regnamespace ORDER BY i.relname"
)


def _indexes(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(row) for row in conn.execute(INDEXES).fetchall()]


def _count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_a_data_set_of_another_size_is_refused_or_rebuilt_and_labelled_as_counted() -> None:
    with scratch_database(admin_database_url(), "finance_bench_test") as url:
        migrate(url)
        migrated = _indexes(url)

        first = ensure_bench_dataset(url, entries=3_000, users=60)
        assert (first.built, first.entries, first.users, first.label) == (True, 3_000, 60, "3,000 entries")
        assert _count(url, "SELECT count(*) FROM entries") == 3_000
        assert _indexes(url) == migrated  # dropped for the load, built again after it, the same

        again = ensure_bench_dataset(url, entries=3_000, users=60)
        assert (again.built, again.entries) == (False, 3_000)

        with pytest.raises(DataSetMismatch, match=r"holds 3,000 entries .* not the 5,000 .*--rebuild"):
            ensure_bench_dataset(url, entries=5_000, users=60)
        assert _count(url, "SELECT count(*) FROM entries") == 3_000  # refused: nothing touched

        rebuilt = ensure_bench_dataset(url, entries=5_000, users=60, rebuild=True)
        assert (rebuilt.built, rebuilt.entries, rebuilt.label) == (True, 5_000, "5,000 entries")
        assert _count(url, "SELECT count(*) FROM entries") == 5_000
        # The dashboard's totals equal a GROUP BY over the entries they count.
        assert _count(url, f"SELECT count(*) FROM (({GROUPED}) EXCEPT ({STORED})) missing") == 0


def test_a_database_with_other_users_is_never_dropped() -> None:
    with scratch_database(admin_database_url(), "finance_bench_test") as url:
        migrate(url)
        ensure_bench_dataset(url, entries=1_000, users=60)
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO users (email, username, full_name, password_hash, role, is_active, is_verified) "
                "VALUES ('real@example.com', 'real', 'Real Person', 'x', 'superadmin', true, true)"
            )
        with pytest.raises(DataSetMismatch, match="not a bench database of its own"):
            ensure_bench_dataset(url, entries=2_000, users=60, rebuild=True)
        assert _count(url, "SELECT count(*) FROM entries") == 1_000
        assert _count(url, "SELECT count(*) FROM users WHERE username = 'real'") == 1
