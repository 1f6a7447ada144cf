"""Report rendering costs: CSV and XLSX at 100,000 ledger rows and a 1,000-row PDF, with peak memory.

Two levels, both real code paths:
- `render_timings()`: the renderers alone on generated rows (no database), the figures the GUIDE quotes.
- `database_timings(database_url, rows)`: `rows` entries inserted into a database, then the real generate
  activity (server-side cursor -> renderer -> storage) timed per format.

    python -m tests.bench.reports [--rows 100000] [--pdf-rows 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.reports.datasets import Ledger, Row
from domain.reports.renderers import ReportMeta, open_renderer
from domain.reports.schemas import ReportFormat

BATCH = 2000
CURRENCIES = ("USD", "EUR", "GBP")
RATES = (Decimal(1), Decimal("1.085"), Decimal("1.272"))  # to USD, each quantized to cents below


def ledger_rows(count: int, start: date = date(2024, 1, 1)) -> Iterator[Row]:
    """`count` ledger rows shaped like the database's (id, date, kind, ..., amount, trail), deterministic."""
    for n in range(count):
        kind = "expense" if n % 3 else "revenue"
        yield (
            n + 1,
            start + timedelta(days=n % 365),
            kind,
            f"category-{n % 12}",
            f"party-{n % 97}",
            f"entry number {n} for the benchmark",
            f"user{n % 50}",
            "approved" if n % 5 else "pending",
            Decimal(n % 100_000) + Decimal("0.99"),
            CURRENCIES[n % 3],  # a third each in dollars, euros and pounds, as the approval bench
            ((Decimal(n % 100_000) + Decimal("0.99")) * RATES[n % 3]).quantize(Decimal("0.01")),
            f"L1 approved by manager{n % 7} on 2024-01-02",
        )


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def render_one(fmt: ReportFormat, rows: int, folder: Path) -> dict[str, Any]:
    """Render `rows` ledger rows in `fmt`; seconds, bytes and this process's peak RSS after it."""
    meta = ReportMeta(
        report_id="bench",
        title="Entries ledger",
        report_type="ledger",
        period_from=date(2024, 1, 1),
        period_to=date(2024, 12, 31),
        scope="All entries (organisation-wide)",
        generated_at=datetime.now(UTC),
        basis=Ledger.basis,
        currency="USD",
    )
    path = folder / f"bench-{rows}.{fmt.value}"
    began = time.perf_counter()
    renderer = open_renderer(fmt, path, meta, Ledger.columns)
    batch: list[Row] = []
    total = Decimal("0.00")
    for row in ledger_rows(rows):
        batch.append(row)
        total += row[10]  # type: ignore[operator]  # the base amount
        if len(batch) == BATCH:
            renderer.write(batch)
            batch = []
    renderer.write(batch)
    renderer.finish([("Total", *[None] * 9, total, None)], None)
    seconds = time.perf_counter() - began
    return {
        "format": fmt.value,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds) if seconds else None,
        "bytes": path.stat().st_size,
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }


def render_timings(rows: int = 100_000, pdf_rows: int = 1_000) -> list[dict[str, Any]]:
    """CSV, JSON and XLSX at `rows`, PDF at `pdf_rows` (the renderers only)."""
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as folder:
        return [
            render_one(ReportFormat.CSV, rows, Path(folder)),
            render_one(ReportFormat.JSON, rows, Path(folder)),
            render_one(ReportFormat.XLSX, rows, Path(folder)),
            render_one(ReportFormat.PDF, pdf_rows, Path(folder)),
        ]


async def database_timings(database_url: str, rows: int = 100_000, pdf_rows: int = 1_000) -> list[dict[str, Any]]:
    """Insert `rows` entries into the (migrated, disposable) database, then time the real generate activity."""
    import secrets
    import uuid

    from sqlalchemy import text
    from temporalio.testing import ActivityEnvironment

    from activities.deps import ActivityDeps
    from activities.reports import ReportActivities
    from core.authz import Authorizer
    from core.db import Database
    from core.mail import FileTransport
    from core.settings import DatabaseSettings, Settings, StorageSettings
    from core.storage import LocalStorage
    from domain.models import Report, User

    with tempfile.TemporaryDirectory(prefix="bench-reports-db-") as folder:
        settings = Settings(db=DatabaseSettings(url=database_url), storage=StorageSettings(local_dir=Path(folder)))
        deps = ActivityDeps(
            settings=settings,
            db=Database.connect(settings.db),
            authorizer=Authorizer(settings.policy_dir),
            storage=LocalStorage(Path(folder)),
            mail=FileTransport(Path(folder) / "mail", "bench@localhost"),
        )
        async with deps.db.transaction() as tx:
            owner = User(
                email=f"bench-{secrets.token_hex(4)}@example.com",
                username=f"bench-{secrets.token_hex(4)}",
                full_name="Bench Owner",
                password_hash="x",
                role="admin",
            )
            tx.session.add(owner)
            await tx.session.flush()
            await tx.session.execute(
                text(
                    "INSERT INTO entries (kind, amount, currency, category, description, entry_date, owner_id, status,"
                    " version, base_currency, fx_rate, rate_date, rate_source, base_amount)"
                    " SELECT kind, amount, currency, category, description, entry_date, owner_id, 'approved', 1, 'USD',"
                    " rate, entry_date, CASE WHEN currency = 'USD' THEN 'base' ELSE 'ecb' END, round(amount * rate, 2)"
                    " FROM (SELECT CASE WHEN n % 3 = 0 THEN 'revenue' ELSE 'expense' END AS kind,"
                    " (n % 100000) + 0.99 AS amount, (ARRAY['USD', 'EUR', 'GBP'])[n % 3 + 1] AS currency,"
                    " (ARRAY[1, 1.085, 1.271981242673])[n % 3 + 1] AS rate, 'category-' || (n % 12) AS category,"
                    " 'entry ' || n AS description, DATE '2030-01-01' + (n % 365) AS entry_date, :owner AS owner_id"
                    " FROM generate_series(1, CAST(:rows AS integer)) AS n) AS made"
                ),
                {"owner": owner.id, "rows": rows},
            )
        results = []
        activities = ReportActivities(deps)
        pdf_days = max(1, -(-pdf_rows * 365 // max(rows, 1)))  # rows spread evenly over 2030: at least pdf_rows
        for fmt, days in (("csv", 365), ("xlsx", 365), ("pdf", pdf_days)):
            end = date(2030, 1, 1) + timedelta(days=days - 1)
            report_id = uuid.uuid4()
            async with deps.db.transaction() as tx:
                tx.session.add(
                    Report(
                        id=report_id,
                        requested_by_id=owner.id,
                        type="ledger",
                        format=fmt,
                        period_from=date(2030, 1, 1),
                        period_to=end,
                        filters={},
                        scope={"kind": "owners", "viewer_id": owner.id, "owner_ids": [owner.id]},
                        status="queued",
                        workflow_id=f"report-{report_id}",
                    )
                )
            began = time.perf_counter()
            result = await ActivityEnvironment().run(activities.generate_report, str(report_id))
            seconds = time.perf_counter() - began
            results.append(
                {
                    "format": fmt,
                    "rows": result.rows,
                    "seconds": round(seconds, 2),
                    "bytes": result.size_bytes,
                    "status": result.status,
                    "peak_rss_mib": round(_peak_rss_mib(), 1),
                }
            )
        await deps.db.dispose()
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pdf-rows", type=int, default=1_000)
    parser.add_argument("--database-url", default="", help="also time the generate activity against this database")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"renderers": render_timings(args.rows, args.pdf_rows)}
    if args.database_url:
        figures["activity"] = asyncio.run(database_timings(args.database_url, args.rows, args.pdf_rows))
    json.dump(figures, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
