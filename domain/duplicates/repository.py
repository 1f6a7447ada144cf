"""Every statement on `entry_duplicates`, in plain SQL on the transaction's connection; rows come back as
`DuplicateRow`s.

The check at submit is ONE statement (`mark`): it finds the similar expenses of the same owner and the entries
carrying one of this entry's receipts, records what is new, forgets what no longer matches (unless dismissed) and
answers with the entry's rows as they now stand, in one round trip on the submit's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.sql import Sql, columns

SIMILAR = "similar"
SAME_RECEIPT = "same_receipt"
# The other expenses that may make this one a duplicate: live claims, and the paid. A draft is nobody's claim yet,
# and a withdrawn, rejected or expired one will never be paid (the owner files it again, rightly).
COUNTED_STATUSES = ("pending", "changes_requested", "approved")


@dataclass(frozen=True)
class DuplicateRow:
    id: int
    entry_id: int
    other_entry_id: int
    reason: str
    details: dict[str, Any]
    dismissed_by_id: int | None
    dismissed_at: datetime | None
    dismiss_reason: str | None
    created_at: datetime


DUPLICATE = columns(DuplicateRow, "d")


@dataclass(frozen=True)
class Probe:
    """What one check looks for, already worked out from the entry and the thresholds (domain/duplicates/check.py).
    `similar` False skips rule (a) (the entry has no vendor, or no base amount)."""

    entry_id: int
    owner_id: int
    vendor: str | None
    date_from: date
    date_to: date
    amount_from: Decimal | None
    amount_to: Decimal | None
    similarity: float
    similar: bool

    def params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# Recording a duplicate checks that the other entry is there (the foreign key takes its KEY SHARE lock). An entry
# another transaction holds (its own submit or an edit, FOR UPDATE) would make this one wait, and two expenses
# submitted at once, each the other's duplicate, would wait on each other: so each match takes that lock itself,
# passing over an entry held elsewhere (SKIP LOCKED). A warning missed in that instant is the concurrent submit's
# caveat (domain/duplicates/check.py).

# (a) Another expense of the same owner dated in [date_from, date_to] (the index ix_entries_kind_owner_date: kind,
# owner_id, entry_date), counted, with a base amount in [amount_from, amount_to] (exact decimals), and a vendor at
# least `similarity` alike. The amounts are compared first, being cheaper (PostgreSQL orders a scan's filters by
# their cost); the threshold as real, the type similarity() answers in, so that a pair exactly at it (6 of 10
# trigrams shared: 0.6) matches.
_SIMILAR = f"""
SELECT o.id AS other_entry_id, '{SIMILAR}'::text AS reason, jsonb_build_object(
    'amount', o.base_amount::text, 'currency', o.base_currency, 'date', o.entry_date, 'vendor', o.vendor,
    'status', o.status, 'similarity', round(similarity(lower(o.vendor), lower(%(vendor)s))::numeric, 4)) AS details
FROM entries o
WHERE %(similar)s AND o.kind = 'expense' AND o.owner_id = %(owner_id)s
  AND o.entry_date BETWEEN %(date_from)s AND %(date_to)s AND o.id <> %(entry_id)s
  AND o.status IN ({", ".join(f"'{status}'" for status in COUNTED_STATUSES)})
  AND o.base_amount BETWEEN %(amount_from)s AND %(amount_to)s
  AND similarity(lower(o.vendor), lower(%(vendor)s)) >= %(similarity)s::real
FOR KEY SHARE OF o SKIP LOCKED"""

# (b) Any other entry, of anyone, in any state, with a stored receipt whose SHA-256 one of this entry's stored
# receipts has (ix_attachments_entry_id, then ix_attachments_sha256): one row per other entry. An entry without a
# receipt costs one index probe that finds nothing.
_SHARED = """
SELECT o.entry_id, min(a.sha256) AS sha256, count(DISTINCT a.sha256) AS receipts
FROM attachments a
JOIN attachments o ON o.sha256 = a.sha256 AND o.sha256 IS NOT NULL AND o.entry_id <> a.entry_id
  AND o.status = 'stored'
WHERE a.entry_id = %(entry_id)s AND a.status = 'stored'
GROUP BY o.entry_id"""
_SAME_RECEIPT = f"""
SELECT e.id AS other_entry_id, '{SAME_RECEIPT}'::text AS reason, jsonb_build_object(
    'sha256', s.sha256, 'receipts', s.receipts,
    'amount', coalesce(e.base_amount, e.amount)::text, 'currency', coalesce(e.base_currency, e.currency),
    'date', e.entry_date, 'vendor', e.vendor, 'status', e.status) AS details
FROM shared s JOIN entries e ON e.id = s.entry_id
FOR KEY SHARE OF e SKIP LOCKED"""

_SAME = "f.other_entry_id = d.other_entry_id AND f.reason = d.reason"

# Data-modifying CTEs see the table as it was when the statement began: the rows inserted now come back through
# RETURNING, the rows kept from earlier checks from the table, less those deleted now.
MARK = f"""
WITH alike AS ({_SIMILAR}
), shared AS ({_SHARED}
), same_receipt AS ({_SAME_RECEIPT}
), found AS (
    SELECT * FROM alike UNION ALL SELECT * FROM same_receipt
), added AS (
    INSERT INTO entry_duplicates (entry_id, other_entry_id, reason, details)
    SELECT %(entry_id)s, other_entry_id, reason, details FROM found
    ON CONFLICT (entry_id, other_entry_id, reason) DO NOTHING
    RETURNING {columns(DuplicateRow)}
), cleared AS (
    DELETE FROM entry_duplicates d WHERE d.entry_id = %(entry_id)s AND d.dismissed_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM found f WHERE {_SAME})
    RETURNING d.id
)
SELECT *, true FROM added
UNION ALL
SELECT {DUPLICATE}, EXISTS (SELECT 1 FROM found f WHERE {_SAME}) FROM entry_duplicates d
WHERE d.entry_id = %(entry_id)s AND d.id NOT IN (SELECT id FROM cleared)
ORDER BY 1"""


async def mark(sql: Sql, probe: Probe) -> list[tuple[DuplicateRow, bool]]:
    """Record what the check finds for the entry (new rows; a row found before stays, dismissed or not), drop the
    undismissed rows it no longer finds, and answer with every row of the entry and whether this check found it."""
    rows = await sql.all(MARK, probe.params())
    return [(DuplicateRow(*values[:-1]), bool(values[-1])) for values in rows]


_OF_ENTRY = f"SELECT {DUPLICATE} FROM entry_duplicates d WHERE d.entry_id = %s ORDER BY d.id"


async def of_entry(sql: Sql, entry_id: int) -> list[DuplicateRow]:
    return [DuplicateRow(*values) for values in await sql.all(_OF_ENTRY, (entry_id,))]


def open_count_of(entry_id: str) -> str:
    """The query of how many possible duplicates of an entry nobody has dismissed; `entry_id` is SQL (a column)."""
    return f"SELECT count(*) FROM entry_duplicates WHERE entry_id = {entry_id} AND dismissed_at IS NULL"


_DISMISS = (
    "UPDATE entry_duplicates d SET dismissed_by_id = %s, dismissed_at = %s, dismiss_reason = %s "
    f"WHERE d.id = %s AND d.entry_id = %s AND d.dismissed_at IS NULL RETURNING {DUPLICATE}"
)
_ONE = f"SELECT {DUPLICATE} FROM entry_duplicates d WHERE d.id = %s AND d.entry_id = %s"


async def dismiss(
    sql: Sql, duplicate_id: int, entry_id: int, by_id: int, at: datetime, reason: str
) -> DuplicateRow | None:
    """Dismiss the entry's row; None when it is not the entry's, or was dismissed already (a concurrent dismissal
    waits on the row's lock, then finds it dismissed)."""
    return await sql.row(DuplicateRow, _DISMISS, (by_id, at, reason, duplicate_id, entry_id))


async def one(sql: Sql, duplicate_id: int, entry_id: int) -> DuplicateRow | None:
    return await sql.row(DuplicateRow, _ONE, (duplicate_id, entry_id))
