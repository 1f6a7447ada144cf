"""Storing the ECB's reference rates (domain/fx/ecb.py parses them) into `fx_rates` as source 'ecb'.

The whole file goes in one statement, in the caller's transaction: a day is stored whole or not at all, and a day
the parser refused is reported, never stored. Importing the same file again changes nothing; a rate the ECB
corrected since the last import replaces the stored one (and the audit row says from what to what). A manual rate of
the same day is another row (source 'manual') and keeps winning (domain/fx/rates.py).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from core.sql import Sql
from domain.audit.service import AuditContext, record
from domain.fx.ecb import Parsed
from domain.money import rate_str
from workflows.contracts import FxImportSummary

# Insert the incoming rates; on a rate already stored for the day, replace it only when the ECB changed it. Returns
# the rows written (new or corrected) with the rate they had before (NULL: new). Every CTE sees the table as it was
# before the statement, so `before` holds the old rates.
_STORE = (
    "WITH incoming AS (SELECT * FROM unnest(%s::text[], %s::date[], %s::numeric[]) AS i(currency, rate_date, rate)), "
    "before AS (SELECT f.currency, f.rate_date, f.rate FROM fx_rates f "
    "JOIN incoming i ON i.currency = f.currency AND i.rate_date = f.rate_date WHERE f.source = 'ecb'), "
    "written AS (INSERT INTO fx_rates (currency, rate_date, rate, source) "
    "SELECT currency, rate_date, rate, 'ecb' FROM incoming "
    "ON CONFLICT ON CONSTRAINT uq_fx_rates_currency_rate_date_source DO UPDATE SET rate = excluded.rate, "
    "created_at = now() WHERE fx_rates.rate <> excluded.rate RETURNING currency, rate_date, rate) "
    "SELECT w.currency, w.rate_date, w.rate, b.rate FROM written w "
    "LEFT JOIN before b ON b.currency = w.currency AND b.rate_date = w.rate_date"
)


async def store(sql: Sql, context: AuditContext, parsed: Parsed, url: str, attempt: int = 1) -> FxImportSummary:
    """Store the parsed days as ECB rates (in the caller's transaction) and audit what changed; the summary."""
    summary = FxImportSummary(url=url, refused=dict(parsed.refused), attempt=attempt)
    incoming = [(currency, day.day, rate) for day in parsed.days for currency, rate in sorted(day.rates.items())]
    written: list[tuple[Any, ...]] = []
    if incoming:
        currencies, days, rates = (list(column) for column in zip(*incoming, strict=True))
        written = await sql.all(_STORE, (currencies, days, rates))
    corrected: dict[date, dict[str, list[str]]] = defaultdict(dict)
    changed_days: set[date] = set()
    for currency, day, rate, old in written:
        changed_days.add(day)
        if old is None:
            summary.rates_inserted += 1
        else:
            summary.rates_corrected += 1
            corrected[day][currency] = [rate_str(old), rate_str(rate)]
    for day in parsed.days:
        (summary.stored if day.day in changed_days else summary.already_there).append(day.day)
    if summary.stored or summary.refused:
        changes: dict[str, Any] = {
            "url": url,
            "days_stored": [day.isoformat() for day in summary.stored],
            "days_already_there": len(summary.already_there),
            "days_refused": summary.refused,
            "rates_inserted": summary.rates_inserted,
            "rates_corrected": summary.rates_corrected,
        }
        if corrected:
            changes["corrections"] = {day.isoformat(): rates for day, rates in sorted(corrected.items())}
        await record(sql, context, "fx_rate.imported", "fx_rate", None, changes)
    return summary


async def has_recent_ecb_rates(sql: Sql, today: date, days: int) -> bool:
    """True when an ECB rate dated within the last `days` days before `today` is stored (no backfill needed)."""
    return bool(
        await sql.scalar(
            "SELECT EXISTS (SELECT 1 FROM fx_rates WHERE source = 'ecb' AND rate_date BETWEEN %s AND %s)",
            (today - timedelta(days), today),
        )
    )
