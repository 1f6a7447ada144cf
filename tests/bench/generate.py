"""The dashboard's benchmark data set: 1,000 users in a manager tree and 1,000,000 entries over five years, with their
approval requests and steps, loaded with COPY in one transaction (so it is either all there or not at all), and the
dashboard totals filled by one GROUP BY (what `entry_status_changed` would have built, entry by entry).

    python -m tests.bench.generate [DATABASE_URL] [--entries 1000000] [--users 1000]

Bench users are named `bench-0000` ... (`bench-0000` is the admin at the root); they cannot log in (no usable
password hash): the benchmark mints their access tokens with the API's secret.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from domain.analytics import aggregates as analytics
from tests.services import migrate, with_database

ROOT_USERNAME = "bench-0000"
EXPENSE_CATEGORIES = [
    "travel", "meals", "software", "hardware", "office", "training",
    "marketing", "consulting", "telecom", "rent", "utilities", "insurance",
]  # fmt: skip
REVENUE_CATEGORIES = ["product sales", "services", "licences", "support", "consulting fees"]
YEARS = 5
# A third of the entries in other currencies than the base (USD): their rate, locked at submit, as units of USD per
# unit, from the ECB's 1 EUR = 1.0850 USD = 0.8530 GBP (cross rates kept to 12 places, as the books keep them).
CURRENCIES = ["USD", "EUR", "GBP"]
PER_EUR = {"USD": "1.0850", "GBP": "0.8530"}
TO_USD = {"USD": "1", "EUR": "1.085000000000", "GBP": "1.271981242673"}
CHUNK = 20_000  # rows per COPY write
# Statuses the dashboard totals count (domain.dashboard.aggregates.AGGREGATED_STATUSES).
AGGREGATED = "('pending', 'approved', 'rejected', 'withdrawn', 'expired')"
FINAL = {"approved", "rejected", "withdrawn", "expired"}


@dataclass
class BenchUser:
    id: int
    username: str
    role: str
    manager_id: int | None
    favourite: list[str]
    sells: bool


def plain_url(url: str) -> str:
    """A libpq URL, whatever SQLAlchemy driver suffix the caller used."""
    scheme, _, rest = url.partition("://")
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def _tree(first_id: int, count: int, rng: random.Random) -> list[BenchUser]:
    """An admin at the root; accountants and vice presidents under them; directors, team leads, then employees."""
    users: list[BenchUser] = []

    def add(role: str, manager: int | None) -> BenchUser:
        n = len(users)
        user = BenchUser(
            id=first_id + n,
            username=f"bench-{n:04d}",
            role=role,
            manager_id=manager,
            favourite=rng.sample(EXPENSE_CATEGORIES, 3),
            sells=rng.random() < 0.1,
        )
        users.append(user)
        return user

    root = add("admin", None)
    budget = count - 1
    accountants = [add("accountant", root.id) for _ in range(min(5, max(budget // 200, 1)))]
    budget -= len(accountants)
    levels: list[list[BenchUser]] = [[root]]
    for width in (5, 5, 5):  # vice presidents, directors, team leads: five reports each
        parents = levels[-1]
        if budget < len(parents) * width * 2:
            break
        level = [add("manager", parent.id) for parent in parents for _ in range(width)]
        budget -= len(level)
        levels.append(level)
    leads = levels[-1]
    for i in range(budget):
        add("employee", leads[i % len(leads)].id)
    return users


def _lines(rows: Iterator[tuple[object, ...]]) -> Iterator[bytes]:
    buffer: list[str] = []
    for row in rows:
        buffer.append("\t".join(r"\N" if value is None else str(value) for value in row))
        if len(buffer) >= CHUNK:
            yield ("\n".join(buffer) + "\n").encode()
            buffer.clear()
    if buffer:
        yield ("\n".join(buffer) + "\n").encode()


def _copy(cur: psycopg.Cursor[object], table: str, columns: str, rows: Iterator[tuple[object, ...]]) -> None:
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for chunk in _lines(rows):
            copy.write(chunk)


def _status(age_days: float, rng: random.Random) -> str:
    roll = rng.random()
    if age_days > 60:  # old entries are settled
        for status, share in (("approved", 0.88), ("rejected", 0.05), ("withdrawn", 0.03), ("expired", 0.01)):
            if roll < share:
                return status
            roll -= share
        return "draft"
    for status, share in (
        ("pending", 0.25), ("approved", 0.50), ("draft", 0.10), ("changes_requested", 0.04), ("rejected", 0.06),
    ):  # fmt: skip
        if roll < share:
            return status
        roll -= share
    return "withdrawn"


def _stamp(moment: datetime) -> str:
    return moment.isoformat()


def store_recent_rates(conn: psycopg.Connection, days: int = 10) -> None:
    """The ECB rates of the last `days` days, so that a submit today finds a rate for each bench currency."""
    today = date.today()
    conn.execute(
        "INSERT INTO fx_rates (currency, rate_date, rate, source) "
        "SELECT c.currency, d::date, c.rate, 'ecb' FROM unnest(%s::text[], %s::numeric[]) AS c(currency, rate), "
        "generate_series(%s::date, %s::date, interval '1 day') AS d ON CONFLICT DO NOTHING",
        (list(PER_EUR), list(PER_EUR.values()), today - timedelta(days=days), today),
    )


class DataSetMismatch(RuntimeError):
    """The bench database holds a data set of another size than the one asked for."""


@dataclass(frozen=True)
class DataSet:
    """The data set a run measured: its size as counted in the database, never as asked for."""

    entries: int
    users: int
    built: bool
    seconds: float

    @property
    def label(self) -> str:
        return f"{self.entries:,} entries"


def _present(url: str) -> tuple[int, int, int]:
    """Bench users, bench entries, and users that are not the bench's (0 in a database of its own)."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT (SELECT count(*) FROM users WHERE username LIKE 'bench-%'), "
            "(SELECT count(*) FROM entries e JOIN users u ON u.id = e.owner_id WHERE u.username LIKE 'bench-%'), "
            "(SELECT count(*) FROM users WHERE username NOT LIKE 'bench-%')"
        ).fetchone()
    assert found is not None
    return int(found[0]), int(found[1]), int(found[2])


def _recreate(url: str) -> None:
    """Drop the bench database and make it again, empty (its own database: checked by the caller)."""
    name = url.rsplit("/", 1)[1].partition("?")[0]
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def ensure_bench_dataset(
    database_url: str, entries: int = 1_000_000, users: int = 1_000, rebuild: bool = False
) -> DataSet:
    """The data set of `entries` entries and `users` users: the one the database holds when it is that size, else
    built. A data set of another size is refused (DataSetMismatch, saying how to rebuild) unless `rebuild`, which
    drops and recreates the database: only a database that holds nothing but bench users."""
    url = plain_url(database_url)
    migrate(url)
    found_users, found_entries, others = _present(url)
    if found_users and (found_users, found_entries) == (users, entries):
        return DataSet(found_entries, found_users, built=False, seconds=0.0)
    if found_users:
        if not rebuild:
            raise DataSetMismatch(
                f"the bench database holds {found_entries:,} entries and {found_users:,} users, not the {entries:,} "
                f"and {users:,} asked for: add --rebuild to drop and rebuild it at that size, or point "
                "BENCH_DATABASE_URL at another database"
            )
        if others:
            raise DataSetMismatch(
                f"{url.rsplit('/', 1)[1]} holds {others} users besides the bench's: it is not a bench database of "
                "its own, so it is not dropped; point BENCH_DATABASE_URL at one"
            )
        _recreate(url)
        migrate(url)
    started = time.monotonic()
    _build(url, entries, users, random.Random(8))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "VACUUM ANALYZE users, entries, approval_requests, approval_steps, dashboard_entry_totals, "
            "dashboard_owner_totals, dashboard_category_totals, dashboard_currency_totals, "
            "dashboard_approval_decisions, dashboard_escalations, analytics_step_cycles, analytics_step_totals, "
            "analytics_step_histogram, analytics_request_outcomes, analytics_counterparty_totals, "
            "analytics_expense_weeks"
        )
        # Write the bulk load's dirty pages out now: otherwise the checkpoint that follows it competes with the
        # first section timed after it (the read path's p95 went 19 -> 35 ms in a run that built the data set).
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass  # a role without pg_checkpoint: the figures right after a build are then less steady
    found_users, found_entries, _ = _present(url)
    return DataSet(found_entries, found_users, built=True, seconds=round(time.monotonic() - started, 1))


STAGING = """
CREATE TEMP TABLE bench_staging (
    id bigint, kind text, amount numeric(19, 4), currency text, fx_rate numeric(28, 12), category text,
    entry_date date, owner_id bigint, status text,
    request_id bigint, submitted_at timestamptz, decided_at timestamptz, created_at timestamptz,
    approver_id bigint, escalated_to bigint
) ON COMMIT DROP
"""
# From the staging rows: requests first (entries point at them), then entries, then steps (an escalated step, when
# there was one, before the step that decided).
FROM_STAGING = [
    """
    INSERT INTO approval_requests (id, subject_kind, entry_id, title, justification, amount, requester_id, status,
        workflow_id, policy_version, chain, round, submitted_at, decided_at, created_at, updated_at, currency,
        original_amount, fx_rate, rate_date, rate_source)
    SELECT request_id, kind, id, category, '', round(amount * fx_rate, 2), owner_id, status,
        'bench-approval-' || kind || '-' || id, 'bench', '[]', 1, submitted_at, decided_at, created_at,
        coalesce(decided_at, submitted_at), currency, amount, fx_rate, entry_date,
        CASE WHEN currency = 'USD' THEN 'base' ELSE 'ecb' END
    FROM bench_staging WHERE request_id IS NOT NULL
    """,
    """
    INSERT INTO entries (id, kind, amount, currency, category, description, entry_date, source, vendor, owner_id,
        status, workflow_id, approval_request_id, version, submitted_at, decided_at, created_at, updated_at,
        base_currency, fx_rate, rate_date, rate_source, base_amount)
    SELECT id, kind, amount, currency, category, '', entry_date,
        CASE WHEN kind = 'revenue' THEN 'customer' END, CASE WHEN kind = 'expense' THEN 'vendor' END, owner_id,
        status, CASE WHEN request_id IS NOT NULL THEN 'bench-approval-' || kind || '-' || id END, request_id, 1,
        submitted_at, decided_at, created_at, coalesce(decided_at, submitted_at, created_at),
        CASE WHEN request_id IS NOT NULL THEN 'USD' END, CASE WHEN request_id IS NOT NULL THEN fx_rate END,
        CASE WHEN request_id IS NOT NULL THEN entry_date END,
        CASE WHEN request_id IS NULL THEN NULL WHEN currency = 'USD' THEN 'base' ELSE 'ecb' END,
        CASE WHEN request_id IS NOT NULL THEN round(amount * fx_rate, 2) END
    FROM bench_staging ORDER BY id
    """,
    """
    INSERT INTO approval_steps (request_id, sequence, round, level, approver_id, status, remind_at, escalate_at,
        decided_at, created_at, updated_at, opened_at)
    SELECT request_id, 1, 1, 1, approver_id, 'escalated', submitted_at + interval '48 hours',
        submitted_at + interval '120 hours', submitted_at + (decided_at - submitted_at) / 2, submitted_at,
        submitted_at + (decided_at - submitted_at) / 2, submitted_at
    FROM bench_staging WHERE request_id IS NOT NULL AND escalated_to IS NOT NULL
    """,
    """
    INSERT INTO approval_steps (request_id, sequence, round, level, approver_id, status, remind_at, escalate_at,
        decided_at, created_at, updated_at, opened_at)
    SELECT request_id, 1 + (escalated_to IS NOT NULL)::int, 1, 1 + (escalated_to IS NOT NULL)::int,
        coalesce(escalated_to, approver_id), status, submitted_at + interval '48 hours',
        submitted_at + interval '120 hours', decided_at, submitted_at, coalesce(decided_at, submitted_at),
        CASE WHEN escalated_to IS NULL THEN submitted_at ELSE submitted_at + (decided_at - submitted_at) / 2 END
    FROM bench_staging WHERE request_id IS NOT NULL
    """,
    f"""
    INSERT INTO dashboard_entry_totals (owner_id, kind, month, category, status, entry_count, amount_total)
    SELECT owner_id, kind, date_trunc('month', entry_date)::date, category, status, count(*),
        sum(round(amount * fx_rate, 2))
    FROM bench_staging WHERE status IN {AGGREGATED}
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT ON CONSTRAINT pk_dashboard_entry_totals DO UPDATE SET
        entry_count = dashboard_entry_totals.entry_count + excluded.entry_count,
        amount_total = dashboard_entry_totals.amount_total + excluded.amount_total
    """,
    f"""
    INSERT INTO dashboard_owner_totals (owner_id, status, month, kind, entry_count, amount_total)
    SELECT owner_id, status, date_trunc('month', entry_date)::date, kind, count(*),
        sum(round(amount * fx_rate, 2))
    FROM bench_staging WHERE status IN {AGGREGATED}
    GROUP BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT pk_dashboard_owner_totals DO UPDATE SET
        entry_count = dashboard_owner_totals.entry_count + excluded.entry_count,
        amount_total = dashboard_owner_totals.amount_total + excluded.amount_total
    """,
    f"""
    INSERT INTO dashboard_category_totals (status, month, kind, category, entry_count, amount_total)
    SELECT status, date_trunc('month', entry_date)::date, kind, category, count(*),
        sum(round(amount * fx_rate, 2))
    FROM bench_staging WHERE status IN {AGGREGATED}
    GROUP BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT pk_dashboard_category_totals DO UPDATE SET
        entry_count = dashboard_category_totals.entry_count + excluded.entry_count,
        amount_total = dashboard_category_totals.amount_total + excluded.amount_total
    """,
    f"""
    INSERT INTO dashboard_currency_totals (owner_id, month, kind, status, currency, entry_count, original_total,
        base_total)
    SELECT owner_id, date_trunc('month', entry_date)::date, kind, status, currency, count(*), sum(amount),
        sum(round(amount * fx_rate, 2))
    FROM bench_staging WHERE status IN {AGGREGATED}
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT ON CONSTRAINT pk_dashboard_currency_totals DO UPDATE SET
        entry_count = dashboard_currency_totals.entry_count + excluded.entry_count,
        original_total = dashboard_currency_totals.original_total + excluded.original_total,
        base_total = dashboard_currency_totals.base_total + excluded.base_total
    """,
    # What the approval tables' triggers (off during the load) would have counted, row by row.
    """
    INSERT INTO dashboard_approval_decisions (month, status, bucket, requests)
    SELECT dashboard_month(decided_at), status, coalesce(dashboard_cycle_bucket(decided_at - submitted_at), -1),
        count(*)
    FROM bench_staging WHERE request_id IS NOT NULL AND status IN ('approved', 'rejected') AND decided_at IS NOT NULL
    GROUP BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT pk_dashboard_approval_decisions DO UPDATE SET
        requests = dashboard_approval_decisions.requests + excluded.requests
    """,
    """
    INSERT INTO dashboard_escalations (requester_id, month, escalations)
    SELECT owner_id, dashboard_month(submitted_at + (decided_at - submitted_at) / 2), count(*)
    FROM bench_staging WHERE request_id IS NOT NULL AND escalated_to IS NOT NULL
    GROUP BY 1, 2
    ON CONFLICT ON CONSTRAINT pk_dashboard_escalations DO UPDATE SET
        escalations = dashboard_escalations.escalations + excluded.escalations
    """,
]


def analytics_rebuild() -> list[str]:
    """The analytics tables (migration 0017) rebuilt from the base tables, as their triggers (off during the load)
    would have kept them: the statements their consistency check compares with."""
    statements = [
        "TRUNCATE analytics_step_cycles, analytics_step_totals, analytics_step_histogram, analytics_request_outcomes, "
        "analytics_counterparty_totals, analytics_expense_weeks",
        f"INSERT INTO analytics_step_cycles (step_id, {analytics.FACT_COLUMNS}) "
        f"SELECT step_id, {analytics.FACT_COLUMNS} FROM ({analytics.STEP_FACTS}) f",
    ]
    for table, keys, values, expected in analytics.expected_aggregates():
        statements.append(f"INSERT INTO {table} ({keys}, {values}) SELECT {keys}, {values} FROM ({expected}) e")
    return statements


def _staging_rows(
    people: list[BenchUser], entry_count: int, first_entry: int, first_request: int, rng: random.Random
) -> Iterator[tuple[object, ...]]:
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()
    first_day = date(today.year - YEARS, today.month, 1)
    span_days = (today - first_day).days
    by_id = {u.id: u for u in people}
    fallback_approver = people[1].id
    request_id = first_request
    for entry_id in range(first_entry, first_entry + entry_count):
        owner = people[rng.randrange(len(people))]
        revenue = rng.random() < (0.6 if owner.sells else 0.03)
        day = first_day + timedelta(days=rng.randrange(span_days + 1))
        status = _status((today - day).days, rng)
        if revenue:
            kind, category = "revenue", rng.choice(REVENUE_CATEGORIES)
            cents = min(int(math.exp(rng.gauss(math.log(250_000), 1.0))), 90_000_000) + 1
        else:
            kind = "expense"
            category = rng.choice(owner.favourite) if rng.random() < 0.8 else rng.choice(EXPENSE_CATEGORIES)
            cents = min(int(math.exp(rng.gauss(math.log(12_000), 1.0))), 9_000_000) + 1
        created = min(
            datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400)), now
        )
        request = submitted = decided = approver = escalated_to = None
        if status != "draft":
            request = request_id
            request_id += 1
            submitted = min(created + timedelta(minutes=rng.randrange(1, 240)), now)
            if status in FINAL:
                decided = min(submitted + timedelta(hours=math.exp(rng.gauss(math.log(20), 1.1))), now)
            approver = owner.manager_id or fallback_approver
            if decided is not None and rng.random() < 0.05:
                escalated_to = by_id[approver].manager_id or fallback_approver
        currency = CURRENCIES[entry_id % len(CURRENCIES)]
        yield (
            entry_id, kind, f"{cents // 100}.{cents % 100:02d}", currency, TO_USD[currency], category,
            day.isoformat(), owner.id, status, request,
            _stamp(submitted) if submitted else None, _stamp(decided) if decided else None, _stamp(created),
            approver, escalated_to,
        )  # fmt: skip


LOADED = ("entries", "approval_requests", "approval_steps")


def _secondary_indexes(cur: psycopg.Cursor[tuple[object, ...]], tables: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of each index on `tables` that backs no constraint."""
    rows = cur.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = ANY(%s) "
        "AND t.relnamespace = 'public'::regnamespace "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY i.relname",
        (list(tables),),
    ).fetchall()
    return [(str(name), str(definition)) for name, definition in rows]


def _build(url: str, entry_count: int, user_count: int, rng: random.Random) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = off")
        cur.execute("SET LOCAL work_mem = '256MB'")
        # Row triggers off for the bulk load (the dashboard's approval counters are filled by GROUP BY below, and the
        # rows are consistent by construction, so the foreign-key triggers have nothing to catch).
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute("LOCK TABLE users, entries, approval_requests, approval_steps IN SHARE ROW EXCLUSIVE MODE")
        next_ids = {}
        for table in ("users", "entries", "approval_requests"):
            row = cur.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()
            assert row is not None
            next_ids[table] = int(row[0])
        people = _tree(next_ids["users"], user_count, rng)
        _copy(
            cur,
            "users",
            "id, email, username, full_name, password_hash, role, manager_id, is_active, is_verified",
            (
                (u.id, f"{u.username}@bench.example", u.username, f"Bench {u.role.title()} {u.username[6:]}",
                 "!bench-no-login", u.role, u.manager_id, "t", "t")
                for u in people
            ),
        )  # fmt: skip
        cur.execute(STAGING)
        _copy(
            cur,
            "bench_staging",
            "id, kind, amount, currency, fx_rate, category, entry_date, owner_id, status, request_id, submitted_at, "
            "decided_at, "
            "created_at, approver_id, escalated_to",
            _staging_rows(people, entry_count, next_ids["entries"], next_ids["approval_requests"], rng),
        )
        # The loaded tables' indexes are built after the load, each in one sort, rather than kept up row by row
        # (at 10,000,000 entries the INSERT into live indexes took over 30 minutes). Those that back a constraint
        # (primary keys, unique keys) stay: the rows go in by id, so they only ever append.
        cur.execute("SET LOCAL maintenance_work_mem = '1GB'")
        rebuilt = _secondary_indexes(cur, LOADED)
        for name, _ in rebuilt:
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        for statement in FROM_STAGING:
            cur.execute(statement)
        for _, definition in rebuilt:
            cur.execute(definition)
        for statement in analytics_rebuild():
            cur.execute(statement)
        for table in ("users", "entries", "approval_requests", "approval_steps"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()


def bench_viewers(database_url: str) -> dict[str, int]:
    """One viewer per kind of scope: the admin (everyone), an accountant, a vice president (~200 people below),
    a director (~40), a team lead (~8) and an employee."""
    with psycopg.connect(plain_url(database_url)) as conn:
        rows = conn.execute(
            "SELECT u.id, u.role, (SELECT count(*) FROM users r WHERE r.manager_id = u.id) AS reports, "
            "m.manager_id IS NULL AS under_root FROM users u LEFT JOIN users m ON m.id = u.manager_id "
            "WHERE u.username LIKE 'bench-%' ORDER BY u.id"
        ).fetchall()
    viewers: dict[str, int] = {}
    for user_id, role, reports, under_root in rows:
        if role == "admin":
            viewers.setdefault("admin (everyone)", user_id)
        elif role == "accountant":
            viewers.setdefault("accountant (everyone)", user_id)
        elif role == "manager" and under_root:
            viewers.setdefault("vice president (subtree)", user_id)
        elif role == "manager" and reports == 5:
            viewers.setdefault("director (subtree)", user_id)
        elif role == "manager":
            viewers.setdefault("team lead (subtree)", user_id)
        else:
            viewers.setdefault("employee (own)", user_id)
    return viewers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.generate")
    parser.add_argument("database_url", nargs="?", default="")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild a data set of another size")
    args = parser.parse_args(argv)
    if args.database_url:
        url = args.database_url
    else:
        from tests.bench.stack import bench_database_url

        url = bench_database_url()
    try:
        print(ensure_bench_dataset(url, args.entries, args.users, rebuild=args.rebuild))
    except DataSetMismatch as mismatch:
        print(mismatch, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
