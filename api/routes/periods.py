"""`/periods`: closing a month (accountants and up) freezes its journals and locks the entries dated in it;
reopening it is for admins. `/journals`: a month's balanced journals (accountants and up)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.deps import Authorize, Grant, ServicesDep, TxDep, read_only
from api.listing import listing_of
from domain.ledger import books, months, periods
from domain.ledger.books import LedgerTerms
from domain.ledger.schemas import ClosedOut, JournalOut, JournalPage, PeriodOut, PeriodPage, ReopenIn
from domain.pagination import Cursor, Pager

router = APIRouter(prefix="/periods", tags=["ledger"])
journals_router = APIRouter(prefix="/journals", tags=["ledger"])

Read = Annotated[Grant, Depends(Authorize("period", "read"))]
Close = Annotated[Grant, Depends(Authorize("period", "close"))]
Reopen = Annotated[Grant, Depends(Authorize("period", "reopen"))]
ReadJournals = Annotated[Grant, Depends(Authorize("journal", "read"))]
Month = Annotated[str, Path(pattern=months.PATTERN, description="YYYY-MM", examples=["2026-11"])]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


@router.get("", summary="The months closed at least once, the latest first")
@read_only
async def list_periods(
    tx: TxDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(PeriodOut, identity=("month",)))],
    limit: Limit = 100,
    offset: Offset = 0,
) -> PeriodPage:
    """A month not listed is open and was never closed."""
    return await periods.list_periods(tx, limit, offset, cursor)


@router.post("/{month}/close", summary="Close a month")
async def close_period(month: Month, tx: TxDep, services: ServicesDep, grant: Close) -> ClosedOut:
    """Freezes the month's journals (a new closing each time it is closed) and from then on refuses to create, edit,
    submit or decide any entry dated in it (409 "the period YYYY-MM is closed"), whoever asks. 409 while entries
    dated in it wait on a decision or on changes (their count), when it is closed already or has not begun, or
    when the mapping lacks an account its journals need (named)."""
    terms = LedgerTerms.of(services.settings)
    return await periods.close(tx, months.parse(month), grant.user, terms, grant.audit)


@router.post("/{month}/reopen", summary="Reopen a closed month (admins)")
async def reopen_period(month: Month, body: ReopenIn, tx: TxDep, grant: Reopen) -> PeriodOut:
    """The reason is audited. The journals the closings froze stay (their exports stay reproducible); closing the
    month again freezes a new closing."""
    return await periods.reopen(tx, months.parse(month), grant.user, body.reason, grant.audit)


@journals_router.get("", summary="A month's balanced journals, in the base currency")
@read_only
async def list_journals(
    tx: TxDep,
    services: ServicesDep,
    grant: ReadJournals,
    month: Annotated[str, Query(pattern=months.PATTERN, description="YYYY-MM", examples=["2026-11"])],
    cursor: Annotated[Cursor, Depends(listing_of(JournalOut, identity=("number",)))],
    limit: Limit = 100,
    offset: Offset = 0,
) -> JournalPage:
    """A closed month: the journals its last closing froze. An open one: computed now from the approved entries,
    invoices, payments and credit notes (409 naming any account the mapping lacks for them)."""
    terms = LedgerTerms.of(services.settings)
    return await books.journal_page(tx.sql, months.parse(month), terms, Pager(limit, offset, cursor))
