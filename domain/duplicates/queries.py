"""Reading an expense's possible duplicates, as its page, its submit's answer and its approval request show them."""

from __future__ import annotations

from core.sql import Sql
from domain.duplicates import repository
from domain.duplicates.schemas import PossibleDuplicate


async def of_entry(sql: Sql, entry_id: int) -> list[PossibleDuplicate]:
    return [PossibleDuplicate.of(row) for row in await repository.of_entry(sql, entry_id)]
