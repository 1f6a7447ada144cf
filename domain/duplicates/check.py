"""The possible-duplicate check at an expense's submit: the rule, written once.

An expense is marked a possible duplicate of another entry when
(a) `similar`: the other is an expense of the same owner, pending, returned for changes or approved (see
    repository.COUNTED_STATUSES), dated at most `date_tolerance_days` before or after this one but never more than
    `window_days` before it, whose base amount differs from this one's by at most `amount_tolerance_percent` percent
    of THIS expense's base amount (|other - this| <= this x percent / 100, the edge included), and whose vendor is at
    least `vendor_similarity` alike (pg_trgm's similarity of both names lower-cased, the threshold included). An
    expense without a vendor, or another without one, is never `similar`: nothing says they were bought from the
    same seller (the same receipt still finds them); or
(b) `same_receipt`: any other entry, of anyone and in any state, carries a stored receipt with the same SHA-256 as
    one of this entry's stored receipts.

It runs in the submit's own transaction (the first submit and every resubmission: the transitions call it, whoever
submits), after the rate is locked (it compares base amounts), before the audit row, which carries what it found.
It warns and never blocks, nor waits: an entry another transaction holds at that instant (its own submit, an edit)
is passed over (repository.MARK). So two duplicates submitted at the same moment may not see each other (neither is
committed when the other looks); a resubmission of either checks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from core.settings import Settings
from core.sql import Sql
from domain.duplicates import repository
from domain.duplicates.repository import DuplicateRow, Probe
from domain.models.rows import EntryRow

EXPENSE = "expense"


@dataclass(frozen=True)
class DuplicateRules:
    """The thresholds of the check (DUPLICATE_* settings; these defaults are the settings' own)."""

    enabled: bool = True
    date_tolerance_days: int = 3
    window_days: int = 90
    amount_tolerance_percent: Decimal = Decimal("1")
    vendor_similarity: float = 0.6

    def probe(self, entry: EntryRow) -> Probe:
        day, amount = entry.entry_date, entry.base_amount
        lowest = highest = None
        if amount is not None:
            # |other - this| <= this x percent / 100, as the range it allows. Exact: NUMERIC(19, 4) times a percent
            # with four places stays within Decimal's 28 digits, and dividing by 100 only moves the point.
            edge = amount * self.amount_tolerance_percent / 100
            lowest, highest = amount - edge, amount + edge
        return Probe(
            entry_id=entry.id,
            owner_id=entry.owner_id,
            vendor=entry.vendor,
            date_from=day - timedelta(days=min(self.date_tolerance_days, self.window_days)),
            date_to=day + timedelta(days=self.date_tolerance_days),
            amount_from=lowest,
            amount_to=highest,
            similarity=self.vendor_similarity,
            similar=entry.vendor is not None and amount is not None,
        )


def rules_from(settings: Settings) -> DuplicateRules:
    found = settings.duplicates
    return DuplicateRules(
        enabled=found.check_enabled,
        date_tolerance_days=found.date_tolerance_days,
        window_days=found.window_days,
        amount_tolerance_percent=found.amount_tolerance_percent,
        vendor_similarity=found.vendor_similarity,
    )


@dataclass(frozen=True)
class Findings:
    """The entry's possible duplicates after a check, and the ids of those this check found (the others are earlier
    findings dismissed since, which it no longer finds)."""

    rows: tuple[DuplicateRow, ...] = ()
    found_ids: frozenset[int] = frozenset()

    def for_audit(self) -> list[dict[str, Any]]:
        """What the check found, as the submit's audit row carries it."""
        return [
            {
                "id": row.id,
                "other_entry_id": row.other_entry_id,
                "reason": row.reason,
                "details": row.details,
                **({"dismissed": True} if row.dismissed_at is not None else {}),
            }
            for row in self.rows
            if row.id in self.found_ids
        ]


async def check_expense(sql: Sql, entry: EntryRow, rules: DuplicateRules) -> Findings:
    """Mark the submitted expense's possible duplicates (after its rate is locked, before the audit row). Off, it
    writes nothing and answers with the findings kept from earlier checks."""
    if entry.kind != EXPENSE:
        return Findings()
    if not rules.enabled:
        return Findings(tuple(await repository.of_entry(sql, entry.id)))
    marked = await repository.mark(sql, rules.probe(entry))
    return Findings(tuple(row for row, _ in marked), frozenset(row.id for row, found in marked if found))


_REASON_WORDS = {repository.SIMILAR: "similar", repository.SAME_RECEIPT: "same receipt"}


def summary_of(changes: dict[str, Any]) -> str | None:
    """The trail's words for the possible duplicates an audit row records (a submit's, or a dismissal's)."""
    found = changes.get("possible_duplicates")
    if isinstance(found, list) and found:
        named = ", ".join(
            f"entry {item.get('other_entry_id')} ({_REASON_WORDS.get(str(item.get('reason')), item.get('reason'))})"
            for item in found
            if isinstance(item, dict)
        )
        return f"{len(found)} possible duplicate{'' if len(found) == 1 else 's'}: {named}"
    dismissed = changes.get("duplicate")
    if isinstance(dismissed, dict):
        reason = _REASON_WORDS.get(str(dismissed.get("reason")), dismissed.get("reason"))
        return f"dismissed the possible duplicate entry {dismissed.get('other_entry_id')} ({reason})"
    return None
