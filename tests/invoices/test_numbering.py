"""Invoice numbers are gap-free per year: concurrent approvals never share or skip one, and a rolled-back issue gives
its number back."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx

from activities.deps import ActivityDeps
from domain.invoices import numbering
from tests.approvals.conftest import Team
from tests.invoices.conftest import create_customer, create_invoice, decide, invoice_of, submit


async def test_twenty_concurrent_approvals_take_twenty_consecutive_numbers(
    client: httpx.AsyncClient, team: Team
) -> None:
    customer = await create_customer(client, team.accountant)
    invoices = [await create_invoice(client, team.accountant, customer["id"]) for _ in range(20)]
    requests = [(await submit(client, team.accountant, invoice["id"]))["approval_request_id"] for invoice in invoices]
    answers = await asyncio.gather(*(decide(client, team.admin, request_id, "approve") for request_id in requests))
    assert [answer.status_code for answer in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
    numbers = sorted([(await invoice_of(client, team.accountant, invoice["id"]))["number"] for invoice in invoices])
    year = date.today().year
    assert numbers == [f"INV-{year}-{n:04d}" for n in range(1, 21)]


async def test_a_rolled_back_issue_leaves_no_gap(activity_deps: ActivityDeps) -> None:
    async with activity_deps.db.transaction() as tx:
        assert await numbering.next_number(tx.sql, numbering.INVOICE, 2031) == "INV-2031-0001"

    class Abandoned(Exception):
        pass

    try:
        async with activity_deps.db.transaction() as tx:
            assert await numbering.next_number(tx.sql, numbering.INVOICE, 2031) == "INV-2031-0002"
            raise Abandoned  # the transaction rolls back
    except Abandoned:
        pass
    async with activity_deps.db.transaction() as tx:
        assert await numbering.next_number(tx.sql, numbering.INVOICE, 2031) == "INV-2031-0002"
        # Series and years count apart.
        assert await numbering.next_number(tx.sql, numbering.CREDIT_NOTE, 2031) == "CN-2031-0001"
        assert await numbering.next_number(tx.sql, numbering.INVOICE, 2032) == "INV-2032-0001"
