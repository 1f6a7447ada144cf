"""Retention: keep the newest backup of each of the last N days and of each of the last M months."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Candidate:
    id: int
    taken_at: datetime  # timezone-aware


def select_to_prune(
    backups: Iterable[Candidate], keep_daily: int, keep_monthly: int, timezone: str = "UTC"
) -> list[int]:
    """The ids to delete. Walking newest first, a backup is kept when it is the newest of its day and fewer than
    `keep_daily` days are kept so far, or the newest of its month and fewer than `keep_monthly` months are kept.
    Days and months are calendar ones in `timezone`. The newest backup is always kept (keep_daily >= 1)."""
    zone = ZoneInfo(timezone)
    kept_days: set[date] = set()
    kept_months: set[tuple[int, int]] = set()
    prune: list[int] = []
    for backup in sorted(backups, key=lambda b: (b.taken_at, b.id), reverse=True):
        local = backup.taken_at.astimezone(zone)
        day, month = local.date(), (local.year, local.month)
        keep = False
        if day not in kept_days and len(kept_days) < keep_daily:
            kept_days.add(day)
            keep = True
        if month not in kept_months and len(kept_months) < keep_monthly:
            kept_months.add(month)
            keep = True
        if not keep:
            prune.append(backup.id)
    return prune
