"""The exchange rates people read and set: the list (`GET /fx/rates`) and manual rates (`POST /fx/rates`).

Imported rates arrive by the ECB import (domain/fx/imports.py); which rate a submit locks is domain/fx/rates.py.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from core.db import Tx
from core.sql import Sql
from domain.audit.service import AuditContext, record
from domain.errors import ValidationFailed
from domain.fx import rates
from domain.fx.rates import EUR, Terms
from domain.fx.schemas import EARLIEST, ManualRateIn, ManualRateOut, RateFilters, RatePage, RateRow
from domain.models import User
from domain.money import is_currency, rate_str
from domain.pagination import Cursor, Keyset, Pager

_COLUMNS = (
    "f.id, f.currency, f.rate_date, f.rate, f.source, f.note, f.created_by_id, f.created_at, "
    "NOT (f.source = 'ecb' AND EXISTS (SELECT 1 FROM fx_rates m WHERE m.currency = f.currency "
    "AND m.rate_date = f.rate_date AND m.source = 'manual')) AS in_effect"
)
_NAMES = ("id", "currency", "rate_date", "rate", "source", "note", "created_by_id", "created_at", "in_effect")


def _check_dates(first: date | None, last: date | None) -> None:
    # Each day is already within the business range (domain/dates.py); a range reaching past today is harmless.
    if first is not None and last is not None and first > last:
        raise ValidationFailed("date_from must not be after date_to", field="date_from")


async def _rows(sql: Sql, terms: Terms, where: str, params: dict[str, Any], page: str = "") -> list[RateRow]:
    query = f"SELECT {_COLUMNS} FROM fx_rates f WHERE {where} ORDER BY f.rate_date DESC, f.currency, f.source {page}"
    found = [RateRow.model_validate(dict(zip(_NAMES, values, strict=True))) for values in await sql.all(query, params)]
    # What each day's rates come to in the base currency (the rate a submit on that day would lock).
    asked = {(row.currency, terms.base, row.rate_date) for row in found}
    to_base = await rates.rates_on(sql, asked, terms.max_stale_days) if asked else {}
    for row in found:
        rate = to_base.get((row.currency, terms.base, row.rate_date))
        row.to_base = rate.rate if rate is not None and row.in_effect else None
    return found


# The newest day first, then by currency and source (unique together): the key a cursor holds. The order mixes
# directions, so the condition after a key is written out below rather than as one row comparison.
KEYSET = Keyset("fx-rates", ("f.rate_date", "f.currency", "f.source"), (date, str, str))
_AFTER = (
    "(f.rate_date < %(after_day)s OR (f.rate_date = %(after_day)s AND (f.currency, f.source) > "
    "(%(after_currency)s, %(after_source)s)))"
)


async def list_rates(sql: Sql, terms: Terms, filters: RateFilters, cursor: Cursor | None = None) -> RatePage:
    _check_dates(filters.date_from, filters.date_to)
    pager = Pager(filters.limit, filters.offset, cursor)
    conditions = ["true"]
    params: dict[str, Any] = {"limit": pager.fetch, "offset": filters.offset}
    for column, name, operator in (
        ("currency", "currency", "="),
        ("source", "source", "="),
        ("rate_date", "date_from", ">="),
        ("rate_date", "date_to", "<="),
    ):
        value = getattr(filters, name)
        if value is not None:
            conditions.append(f"f.{column} {operator} %({name})s")
            params[name] = value
    where = " AND ".join(conditions)
    total = int(await sql.scalar(f"SELECT count(*) FROM fx_rates f WHERE {where}", params))
    after = pager.key(KEYSET)
    if after is not None:
        where = f"{where} AND {_AFTER}"
        params.update(after_day=after[0], after_currency=after[1], after_source=after[2])
    items = await _rows(sql, terms, where, params, "LIMIT %(limit)s OFFSET %(offset)s") if total else []
    page, next_cursor = pager.cut(KEYSET, items, lambda row: (row.rate_date, row.currency, row.source))
    return RatePage(
        items=page,
        base_currency=terms.base,
        total=total,
        limit=filters.limit,
        offset=pager.page_offset,
        next_cursor=next_cursor,
    )


_UPSERT = (
    "INSERT INTO fx_rates (currency, rate_date, rate, source, note, created_by_id) "
    "VALUES (%s, %s, %s, 'manual', %s, %s) "
    "ON CONFLICT ON CONSTRAINT uq_fx_rates_currency_rate_date_source DO UPDATE SET rate = excluded.rate, "
    "note = excluded.note, created_by_id = excluded.created_by_id, created_at = now() RETURNING id"
)


async def set_manual_rate(
    tx: Tx, terms: Terms, user: User, body: ManualRateIn, today: date, context: AuditContext
) -> ManualRateOut:
    """Set (or replace) the manual rate of a currency on a day, audited with what it overrides or replaces."""
    if body.currency == EUR:
        raise ValidationFailed(
            "EUR is the reference of every rate (1 EUR = rate units of a currency)", field="currency"
        )
    if not is_currency(body.currency):
        raise ValidationFailed(f"{body.currency} is not an ISO 4217 currency with minor units", field="currency")
    if not EARLIEST <= body.rate_date <= today:
        raise ValidationFailed(f"rate_date must be between {EARLIEST} and today", field="rate_date")
    same_day = "f.currency = %(currency)s AND f.rate_date = %(day)s"
    before = {row.source: row for row in await _rows(tx.sql, terms, same_day, {"currency": body.currency,
                                                                               "day": body.rate_date})}  # fmt: skip
    rate_id = await tx.sql.scalar(_UPSERT, (body.currency, body.rate_date, body.rate, body.note or None, user.id))
    now = {row.source: row for row in await _rows(tx.sql, terms, same_day, {"currency": body.currency,
                                                                            "day": body.rate_date})}  # fmt: skip
    manual, imported, replaced = now["manual"], now.get("ecb"), before.get("manual")
    changes: dict[str, Any] = {
        "currency": body.currency,
        "rate_date": body.rate_date.isoformat(),
        "rate": [rate_str(replaced.rate) if replaced else None, rate_str(body.rate)],
        "note": body.note,
    }
    if imported is not None:
        changes["overrides_ecb_rate"] = rate_str(imported.rate)
    await record(tx.sql, context, "fx_rate.set_manually", "fx_rate", rate_id, changes)
    return ManualRateOut(**manual.model_dump(), overrides=imported, replaced=replaced)
