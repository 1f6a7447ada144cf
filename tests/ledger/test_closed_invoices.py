"""A closed month refuses every change to what its invoice journals are made of, through the API, the workflows'
activities and straight SQL alike: issuing (numbering) an invoice dated in it, a payment dated in it, a credit note
or a late fee or a void on one of its days, a recurring run dated in it, and any change to a numbered invoice's
booked fields or lines, or to a payment or credit note of the month. Each is a 409 "the period YYYY-MM is closed"
(LC409 in SQL) that changed nothing; the same change goes through in an open month and once the month is reopened.
A close racing such a write waits for it and counts it, as it does an entry's.

The months: this one (credit notes, late fees and voids are dated now) and the one before (an invoice or a payment
may be dated in it)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.invoices import InvoiceActivities
from activities.recurring_invoices import RecurringInvoiceActivities
from core.engine import WorkflowEngine
from domain.ledger import months
from tests.approvals.conftest import Team
from tests.invoices.conftest import approved_invoice, create_customer, create_invoice, decide, invoice_of, submit
from tests.invoices.test_payments import credit, pay, sent_invoice
from tests.invoices.test_recurring import approved_recurring, run_invoices
from tests.ledger.conftest import THIS_MONTH, TODAY, close, journals, scalar
from workflows.contracts import LateFee, RecurringRunJob, ReminderStep, RemindJob, recurring_schedule_id

LAST_MONTH_DAY = TODAY.replace(day=1) - timedelta(days=1)
LAST_MONTH = months.label(LAST_MONTH_DAY)


def refused_as_closed(response: httpx.Response, month: str = THIS_MONTH) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("invalid_state", f"the period {month} is closed")
    if error["details"] is not None:  # a decision's refusal crosses the workflow as its message alone
        assert error["details"] == {"reason": "period_closed", "period": month}


async def refused_in_sql(database_url: str, month: str, statement: str, *params: Any) -> None:
    """`statement`, run by hand on a connection of its own (as an operator would), is refused by the database."""
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        with pytest.raises(psycopg.Error) as raised:
            await connection.execute(statement, params)
    assert raised.value.sqlstate == "LC409", raised.value
    assert raised.value.diag.message_primary == f"the period {month} is closed"


async def rows(deps: ActivityDeps, query: str) -> list[tuple[Any, ...]]:
    async with deps.db.transaction() as tx:
        return await tx.sql.all(query)


async def reopen(http: httpx.AsyncClient, team: Team, month: str = THIS_MONTH) -> None:
    response = await http.post(f"/api/v1/periods/{month}/reopen", json={"reason": "late correction"},
                               headers=team.admin.headers)  # fmt: skip
    assert response.status_code == 200, response.text


async def closed(http: httpx.AsyncClient, team: Team, month: str = THIS_MONTH) -> None:
    response = await close(http, team.accountant, month)
    assert response.status_code == 200, response.text


async def test_an_invoice_dated_in_a_closed_month_is_issued_only_once_the_month_reopens(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None, database_url: str
) -> None:
    customer = await create_customer(client, team.accountant)
    first = await create_invoice(client, team.accountant, customer["id"])
    draft = await create_invoice(client, team.accountant, customer["id"])
    await closed(client, team)  # nothing waits on approval yet (an invoice that did would hold the close)
    pending = await submit(client, team.accountant, first["id"])  # a draft is in no journal: submitted as ever

    # Its approval would number it: refused, and nothing taken (no number, no audit row, still waiting).
    refused_as_closed(await decide(client, team.admin, pending["approval_request_id"], "approve"))
    now = await invoice_of(client, team.accountant, pending["id"])
    assert (now["status"], now["number"]) == ("pending_approval", None)
    assert await scalar(activity_deps, "SELECT count(*) FROM invoice_sequences") == 0
    assert await scalar(activity_deps, "SELECT count(*) FROM audit_log WHERE action = 'invoice.issued'") == 0
    # A draft is in no journal: it is edited and submitted in the closed month as ever...
    edited = await client.patch(f"/api/v1/invoices/{draft['id']}", json={"notes": "changed in a closed month"},
                                headers={**team.accountant.headers, "If-Match": f'"{draft["version"]}"'})  # fmt: skip
    assert edited.status_code == 200, edited.text
    assert (await submit(client, team.accountant, draft["id"]))["status"] == "pending_approval"
    # ... but numbered by hand, straight through SQL, it is refused all the same.
    await refused_in_sql(database_url, THIS_MONTH, "UPDATE invoices SET number = 'INV-HAND-1', number_year = 2000 "
                         "WHERE id = %s", draft["id"])  # fmt: skip
    # Dated in an open month, an invoice is issued as ever.
    earlier = await approved_invoice(client, team.accountant, team.admin, customer["id"],
                                     issue_date=LAST_MONTH_DAY.isoformat())  # fmt: skip
    assert earlier["number"] == f"INV-{LAST_MONTH_DAY.year}-0001"

    await reopen(client, team)
    approved = await decide(client, team.admin, pending["approval_request_id"], "approve")
    assert approved.status_code == 200, approved.text
    issued = await invoice_of(client, team.accountant, pending["id"])
    assert issued["number"] is not None and issued["status"] in ("approved", "sent")


async def test_a_payment_dated_in_a_closed_month_is_refused_and_one_in_an_open_month_settles_as_ever(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None, database_url: str
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"], issue_date=LAST_MONTH_DAY.isoformat())
    early = await pay(client, team, invoice["id"], "100.00", paid_on=LAST_MONTH_DAY.isoformat())
    assert early.status_code == 201, early.text
    await closed(client, team, LAST_MONTH)
    payments = "SELECT count(*) FROM invoice_payments"

    refused_as_closed(await pay(client, team, invoice["id"], "50.00", paid_on=LAST_MONTH_DAY.isoformat()), LAST_MONTH)
    assert (await invoice_of(client, team.accountant, invoice["id"]))["amount_paid"] == "100.00"
    assert await scalar(activity_deps, payments) == 1
    assert await scalar(activity_deps, "SELECT count(*) FROM entries WHERE kind = 'revenue'") == 1
    # The invoice was issued in the closed month: paid or credited today, in an open month, it settles as ever.
    today = await pay(client, team, invoice["id"], "50.00")
    assert today.status_code == 201, today.text
    assert (await credit(client, team, invoice["id"], "8.50")).status_code == 201
    now = await invoice_of(client, team.accountant, invoice["id"])
    assert (now["amount_paid"], now["amount_credited"]) == ("150.00", "8.50")
    # Whoever writes: the closed month's payment changed or deleted, today's moved into the month, one recorded in it.
    await refused_in_sql(database_url, LAST_MONTH, "UPDATE invoice_payments SET reference = 'edited' WHERE id = %s",
                         early.json()["id"])  # fmt: skip
    await refused_in_sql(database_url, LAST_MONTH, "DELETE FROM invoice_payments WHERE id = %s", early.json()["id"])
    await refused_in_sql(database_url, LAST_MONTH, "UPDATE invoice_payments SET paid_on = %s WHERE id = %s",
                         LAST_MONTH_DAY, today.json()["id"])  # fmt: skip
    recorded = ("INSERT INTO invoice_payments (invoice_id, amount, paid_on, fx_rate, rate_source, base_amount, "
                "booked_base, fx_difference, created_by_id) VALUES (%s, 1, %s, 1, 'base', 1, 1, 0, %s)")  # fmt: skip
    await refused_in_sql(database_url, LAST_MONTH, recorded, invoice["id"], LAST_MONTH_DAY, team.accountant.id)
    assert await scalar(activity_deps, payments) == 2
    assert await scalar(activity_deps, "SELECT reference FROM invoice_payments WHERE id = %s", early.json()["id"]) == ""

    await reopen(client, team, LAST_MONTH)
    again = await pay(client, team, invoice["id"], "50.00", paid_on=LAST_MONTH_DAY.isoformat())
    assert again.status_code == 201, again.text


async def test_a_credit_note_on_a_day_of_a_closed_month_is_refused_until_it_reopens(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None, database_url: str
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    await closed(client, team)

    refused_as_closed(await credit(client, team, invoice["id"], "100.00"))
    now = await invoice_of(client, team.accountant, invoice["id"])
    assert (now["amount_credited"], now["balance_due"]) == ("0.00", "1508.50")
    assert await scalar(activity_deps, "SELECT count(*) FROM credit_notes") == 0
    await refused_in_sql(database_url, THIS_MONTH, "INSERT INTO credit_notes (invoice_id, number, amount, reason, "
                         "created_by_id) VALUES (%s, 'CN-HAND-1', 10, 'by hand', %s)", invoice["id"],
                         team.accountant.id)  # fmt: skip

    await reopen(client, team)
    noted = await credit(client, team, invoice["id"], "100.00")
    assert noted.status_code == 201, noted.text
    assert noted.json()["number"] == f"CN-{TODAY.year}-0001"  # the refused one took no number
    # Closed again, the credit note and its split are frozen with the month.
    await closed(client, team)
    note_id = noted.json()["id"]
    await refused_in_sql(database_url, THIS_MONTH, "UPDATE credit_notes SET reason = 'edited' WHERE id = %s", note_id)
    await refused_in_sql(database_url, THIS_MONTH, "UPDATE credit_note_taxes SET net = net - 1, tax = tax + 1 "
                         "WHERE credit_note_id = %s AND tax_rate = 19", note_id)  # fmt: skip
    await refused_in_sql(database_url, THIS_MONTH, "DELETE FROM credit_notes WHERE id = %s", note_id)
    listed = await client.get(f"/api/v1/invoices/{invoice['id']}/credit-notes", headers=team.accountant.headers)
    assert listed.json()["items"] == [noted.json()]


async def test_a_void_in_a_closed_month_is_refused_and_a_numbered_invoice_keeps_its_booked_fields(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None, database_url: str
) -> None:
    customer = await create_customer(client, team.accountant)
    earlier = await sent_invoice(client, team, activity_deps, customer["id"], issue_date=LAST_MONTH_DAY.isoformat())
    current = await sent_invoice(client, team, activity_deps, customer["id"])
    await closed(client, team, LAST_MONTH)
    frozen = (await journals(client, team.accountant, LAST_MONTH)).json()

    # Issued in the closed month, voided today: the void books in this month, the closed one keeps its journal.
    voided = await client.post(f"/api/v1/invoices/{earlier['id']}/void", json={"reason": "wrong customer"},
                               headers=team.accountant.headers)  # fmt: skip
    assert voided.status_code == 200, voided.text
    assert (await journals(client, team.accountant, LAST_MONTH)).json() == frozen
    this_month = await journals(client, team.accountant)
    assert f"{earlier['number']}-VOID" in [journal["number"] for journal in this_month.json()["items"]]

    await closed(client, team)
    void = f"/api/v1/invoices/{current['id']}/void"
    refused_as_closed(await client.post(void, json={"reason": "too late"}, headers=team.accountant.headers))
    assert (await invoice_of(client, team.accountant, current["id"]))["status"] == "sent"
    # Straight through SQL: the void, each booked field, a line, the invoice deleted.
    other = await create_customer(client, team.accountant, name="Globex")
    for change, value in (("voided_at", datetime.now(UTC)), ("customer_id", other["id"]), ("owner_id", team.admin.id),
                          ("issue_date", LAST_MONTH_DAY), ("fx_rate", 2), ("currency", "EUR"), ("number", None),
                          ("approved_at", None)):  # fmt: skip
        statement = f"UPDATE invoices SET {change} = %s WHERE id = %s"
        await refused_in_sql(database_url, THIS_MONTH, statement, value, current["id"])
    await refused_in_sql(database_url, THIS_MONTH, "UPDATE invoice_lines SET description = 'edited' WHERE invoice_id "
                         "= %s", current["id"])  # fmt: skip
    await refused_in_sql(database_url, THIS_MONTH, "DELETE FROM invoices WHERE id = %s", current["id"])
    # What no journal reads moves freely (its notes, its settlement).
    async with activity_deps.db.transaction() as tx:
        await tx.sql.run("UPDATE invoices SET notes = 'noted in a closed month' WHERE id = %s", (current["id"],))
    assert (await invoice_of(client, team.accountant, current["id"]))["notes"] == "noted in a closed month"

    await reopen(client, team)
    voided = await client.post(void, json={"reason": "too late"}, headers=team.accountant.headers)
    assert voided.status_code == 200 and voided.json()["status"] == "void", voided.text


async def test_a_late_fee_in_a_closed_month_fails_for_good_and_is_charged_once_the_month_reopens(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None, database_url: str
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    await closed(client, team)
    activities = InvoiceActivities(activity_deps)
    fee = ReminderStep(offset_days=8, template="invoice_overdue", late_fee=LateFee(kind="fixed", amount=Decimal(25)))
    job = RemindJob(invoice_id=invoice["id"], step=1, reminder=fee, now=datetime.now(UTC))
    written = ("SELECT (SELECT count(*) FROM invoice_lines), (SELECT count(*) FROM invoice_reminders), "
               "(SELECT count(*) FROM invoice_emails)")  # fmt: skip
    before = await rows(activity_deps, written)

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(activities.remind, job)
    assert (raised.value.message, raised.value.non_retryable) == (f"the period {THIS_MONTH} is closed", True)
    assert await rows(activity_deps, written) == before  # no fee, no reminder row, no email
    assert (await invoice_of(client, team.accountant, invoice["id"]))["total"] == "1508.50"
    # A reminder without a fee books nothing: it goes out in a closed month.
    reminder = RemindJob(invoice_id=invoice["id"], step=2, reminder=fee.model_copy(update={"late_fee": None}),
                         now=datetime.now(UTC))  # fmt: skip
    assert (await ActivityEnvironment().run(activities.remind, reminder)).late_fee is None
    charged_by_hand = (
        "INSERT INTO invoice_lines (invoice_id, position, kind, description, quantity, unit_price, tax_rate, net, tax, "
        "reminder_step) VALUES (%s, 99, 'late_fee', 'by hand', 1, 5, 0, 5, 0, 9)"
    )
    await refused_in_sql(database_url, THIS_MONTH, charged_by_hand, invoice["id"])

    await reopen(client, team)
    charged = await ActivityEnvironment().run(activities.remind, job)
    assert charged.late_fee == Decimal("25.00")
    assert (await invoice_of(client, team.accountant, invoice["id"]))["total"] == "1533.50"


async def test_a_recurring_run_dated_in_a_closed_month_fails_for_good(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    """The run of tomorrow (its month closed by hand: it may be next month, which the API does not close yet)."""
    customer = await create_customer(client, team.accountant)
    tomorrow = TODAY + timedelta(days=1)
    active = await approved_recurring(client, team, customer["id"], frequency="monthly", starts_on=tomorrow.isoformat())
    engine = WorkflowEngine(activity_deps.settings.temporal, temporal_client)
    activities = RecurringInvoiceActivities(replace(activity_deps, engine=engine))
    job = RecurringRunJob(recurring_id=active["id"], run_on=tomorrow, workflow_id="recurring-run-closed-month")
    try:
        async with activity_deps.db.transaction() as tx:
            await tx.sql.run("INSERT INTO periods (month, status, closings) VALUES (%s, 'closed', 1)",
                             (tomorrow.replace(day=1),))  # fmt: skip
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(activities.run, job)
        assert (raised.value.message, raised.value.non_retryable) == (
            f"the period {months.label(tomorrow)} is closed", True,
        )  # fmt: skip
        assert await run_invoices(activity_deps, active["id"]) == []
        assert await scalar(activity_deps, "SELECT runs FROM recurring_invoices WHERE id = %s", active["id"]) == 0

        async with activity_deps.db.transaction() as tx:
            await tx.sql.run("UPDATE periods SET status = 'open'")
        ran = await ActivityEnvironment().run(activities.run, job)
        assert ran.created and ran.number is not None
    finally:
        await engine.delete_schedule(recurring_schedule_id(active["id"]))


async def test_a_close_waits_for_an_invoice_write_under_way_in_its_month_and_counts_it(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None, database_url: str
) -> None:
    """A credit note written by hand and not yet committed holds the month's lock: the close waits for it, then
    freezes its journal; a credit note after the close is refused."""
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    async with await psycopg.AsyncConnection.connect(database_url) as in_flight:
        cursor = await in_flight.execute(
            "INSERT INTO credit_notes (invoice_id, number, amount, reason, created_by_id) "
            "VALUES (%s, 'CN-HAND-1', 10, 'by hand', %s) RETURNING id",
            (invoice["id"], team.accountant.id),
        )
        row = await cursor.fetchone()
        assert row is not None
        note_id = row[0]
        await in_flight.execute(
            "INSERT INTO credit_note_taxes (credit_note_id, tax_rate, net, tax) VALUES (%s, 0, 10, 0)", (note_id,)
        )
        closing = asyncio.ensure_future(close(client, team.accountant))
        await asyncio.sleep(0.5)
        assert not closing.done(), "the close did not wait for the credit note under way"
        await in_flight.commit()
        answer = await asyncio.wait_for(closing, 10)
    assert answer.status_code == 200, answer.text
    frozen = (await journals(client, team.accountant)).json()
    assert "CN-HAND-1" in [journal["number"] for journal in frozen["items"]]
    refused_as_closed(await credit(client, team, invoice["id"], "10.00"))


async def test_an_invoice_waiting_on_approval_holds_the_close_of_its_month(
    client: httpx.AsyncClient, team: Team, chart: None
) -> None:
    """Its approval would book it in the month: the close waits for the decision, as for an entry."""
    customer = await create_customer(client, team.accountant)
    invoice = await create_invoice(client, team.accountant, customer["id"])
    submitted = await submit(client, team.accountant, invoice["id"])
    refused = await close(client, team.accountant)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {
        "reason": "decisions_pending", "pending": 1, "entries": 0, "invoices": 1,
    }  # fmt: skip
    assert "1 invoice waiting on a decision" in refused.json()["error"]["message"]
    assert (await decide(client, team.admin, submitted["approval_request_id"], "approve")).status_code == 200
    assert (await close(client, team.accountant)).status_code == 200
