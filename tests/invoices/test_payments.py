"""Payments and credit notes on a sent invoice, end to end over HTTP: partial payments then paid, the revenue each
payment books (and the dashboard showing it), overpayments refused, Idempotency-Key, realized FX gains and losses,
concurrent payments on one row lock, credit notes numbered CN-YYYY-NNNN, and a sent invoice that is never edited.

Sending is the invoice workflow's: the tests wait for the approved invoice to be sent (`sent_invoice`).
Expected figures are worked out by hand in the comments, not by the code under test.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from activities.deps import ActivityDeps
from tests.approvals.conftest import Team
from tests.fx.test_entries import store_rates, working_day
from tests.invoices.conftest import (
    approved_invoice,
    audit_actions,
    create_customer,
    create_invoice,
    eventually,
    invoice_of,
)
from workflows.contracts import invoice_workflow_id

TODAY = datetime.now(UTC).date()


async def sent_invoice(
    http: httpx.AsyncClient, team: Team, deps: ActivityDeps, customer_id: int, **fields: Any
) -> dict[str, Any]:
    """An invoice approved, then sent by its workflow (its PDF rendered and mailed)."""
    invoice = await approved_invoice(http, team.accountant, team.admin, customer_id, **fields)

    async def sent() -> bool:
        return (await invoice_of(http, team.accountant, invoice["id"]))["status"] == "sent"

    assert await eventually(sent, 30), "the invoice was not sent"
    return await invoice_of(http, team.accountant, invoice["id"])


async def pay(
    http: httpx.AsyncClient, team: Team, invoice_id: int, amount: str, *, key: str | None = None, **fields: Any
) -> httpx.Response:
    body = {"amount": amount, "paid_on": TODAY.isoformat(), **fields}
    headers = {**team.accountant.headers, **({"Idempotency-Key": key} if key else {})}
    return await http.post(f"/api/v1/invoices/{invoice_id}/payments", json=body, headers=headers)


async def credit(
    http: httpx.AsyncClient, team: Team, invoice_id: int, amount: str, reason: str = "discount agreed", **headers: str
) -> httpx.Response:
    body = {"amount": amount, "reason": reason}
    return await http.post(
        f"/api/v1/invoices/{invoice_id}/credit-notes", json=body, headers={**team.accountant.headers, **headers}
    )


async def payments_of(http: httpx.AsyncClient, team: Team, invoice_id: int) -> list[dict[str, Any]]:
    response = await http.get(f"/api/v1/invoices/{invoice_id}/payments", headers=team.accountant.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def revenue_entries(deps: ActivityDeps) -> list[tuple[Any, ...]]:
    async with deps.db.transaction() as tx:
        return await tx.sql.all(
            "SELECT id, status, amount, currency, base_amount, category, source, owner_id, entry_date FROM entries "
            "WHERE kind = 'revenue' ORDER BY id"
        )


async def dashboard_revenue(http: httpx.AsyncClient, team: Team) -> str:
    response = await http.get("/api/v1/dashboard/overview", headers=team.admin.headers)
    assert response.status_code == 200, response.text
    return response.json()["current"]["revenue"]  # type: ignore[no-any-return]


async def signals_of(temporal_client: Client, workflow_id: str) -> list[str]:
    history = await temporal_client.get_workflow_handle(workflow_id).fetch_history()
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def workflow_started(temporal_client: Client, workflow_id: str) -> bool:
    try:
        await temporal_client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return True


async def test_two_partial_payments_then_paid_book_the_revenue(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    assert (invoice["total"], invoice["balance_due"], invoice["currency"]) == ("1508.50", "1508.50", "USD")
    assert await dashboard_revenue(client, team) == "0.00"

    first = await pay(client, team, invoice["id"], "500.00", reference="bank 001")
    assert first.status_code == 201, first.text
    assert (first.json()["amount"], first.json()["fx_rate"], first.json()["rate_source"]) == ("500.00", "1", "base")
    assert (first.json()["base_amount"], first.json()["booked_base"], first.json()["fx_difference"]) == (
        "500.00", "500.00", "0.00",
    )  # fmt: skip
    now = await invoice_of(client, team.accountant, invoice["id"])
    assert (now["status"], now["amount_paid"], now["balance_due"], now["paid_at"]) == (
        "partially_paid", "500.00", "1008.50", None,
    )  # fmt: skip

    second = await pay(client, team, invoice["id"], "408.50")
    assert second.status_code == 201, second.text
    now = await invoice_of(client, team.accountant, invoice["id"])
    assert (now["status"], now["amount_paid"], now["balance_due"]) == ("partially_paid", "908.50", "600.00")

    workflow_id = invoice_workflow_id(invoice["id"])
    assert await eventually(lambda: workflow_started(temporal_client, workflow_id))
    last = await pay(client, team, invoice["id"], "600.00")
    assert last.status_code == 201, last.text
    paid = await invoice_of(client, team.accountant, invoice["id"])
    assert (paid["status"], paid["amount_paid"], paid["balance_due"]) == ("paid", "1508.50", "0.00")
    assert paid["paid_at"] is not None

    # Each payment booked an approved revenue entry of its own amount, from the customer, owned by the invoice's owner.
    payments = await payments_of(client, team, invoice["id"])
    assert [p["amount"] for p in payments] == ["500.00", "408.50", "600.00"]
    assert payments[0]["reference"] == "bank 001"
    booked = await revenue_entries(activity_deps)
    assert [row[0] for row in booked] == [p["entry_id"] for p in payments]
    assert [(row[1], str(row[2]), row[3], str(row[4]), row[5], row[6], row[7], row[8]) for row in booked] == [
        ("approved", f"{amount}00", "USD", f"{amount}00", "Invoices", "Acme GmbH", team.accountant.id, TODAY)
        for amount in ("500.00", "408.50", "600.00")
    ]
    entry = await client.get(f"/api/v1/revenue/{payments[0]['entry_id']}", headers=team.accountant.headers)
    assert entry.status_code == 200, entry.text
    assert (entry.json()["status"], entry.json()["amount"], entry.json()["base_amount"]) == (
        "approved", "500.00", "500.00",
    )  # fmt: skip
    assert paid["number"] in entry.json()["description"] and "bank 001" in entry.json()["description"]

    # The dashboard's maintained totals follow the entries: the period's revenue is what was paid.
    assert await dashboard_revenue(client, team) == "1508.50"
    actions = await audit_actions(activity_deps, invoice["id"])
    assert actions.count("invoice.payment_recorded") == 3
    # The paid invoice's workflow is told it closed (its reminders end).
    assert await eventually(lambda: _has_signal(temporal_client, workflow_id, "closed"))
    # A paid invoice takes no further payment.
    again = await pay(client, team, invoice["id"], "1.00")
    assert again.status_code == 409, again.text
    assert "paid" in again.json()["error"]["message"]


async def _has_signal(temporal_client: Client, workflow_id: str, name: str) -> bool:
    return name in await signals_of(temporal_client, workflow_id)


async def test_an_overpayment_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    over = await pay(client, team, invoice["id"], "1508.51")
    assert over.status_code == 422, over.text
    assert "1508.50" in over.json()["error"]["message"]
    for amount in ("10.001", "0", "-5.00"):
        refused = await pay(client, team, invoice["id"], amount)
        assert refused.status_code == 422, (amount, refused.text)
    assert (await pay(client, team, invoice["id"], "1000.00")).status_code == 201
    over = await pay(client, team, invoice["id"], "508.51")
    assert over.status_code == 422, over.text
    assert "508.50" in over.json()["error"]["message"]

    now = await invoice_of(client, team.accountant, invoice["id"])
    assert (now["status"], now["amount_paid"], now["balance_due"]) == ("partially_paid", "1000.00", "508.50")
    assert [p["amount"] for p in await payments_of(client, team, invoice["id"])] == ["1000.00"]
    assert len(await revenue_entries(activity_deps)) == 1
    assert (await audit_actions(activity_deps, invoice["id"])).count("invoice.payment_recorded") == 1


async def test_the_same_idempotency_key_makes_one_payment(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    # At once: the second request waits on the first one's claim of the key, then answers its answer.
    first, second = await asyncio.gather(
        pay(client, team, invoice["id"], "100.00", key="pay-1"), pay(client, team, invoice["id"], "100.00", key="pay-1")
    )
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert first.json() == second.json()
    later = await pay(client, team, invoice["id"], "100.00", key="pay-1")
    assert later.status_code == 201 and later.json() == first.json()
    assert later.headers.get("Idempotent-Replayed") == "true"
    other = await pay(client, team, invoice["id"], "200.00", key="pay-1")
    assert other.status_code == 422, other.text

    assert [p["id"] for p in await payments_of(client, team, invoice["id"])] == [first.json()["id"]]
    now = await invoice_of(client, team.accountant, invoice["id"])
    assert (now["amount_paid"], now["balance_due"]) == ("100.00", "1408.50")
    assert len(await revenue_entries(activity_deps)) == 1


async def test_a_foreign_payment_realizes_the_fx_gain_or_loss_against_the_locked_rate(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    # Books in USD (the settings' default). 1 EUR = 1.0850 USD on the issue date: the invoice locks 1.085.
    friday = working_day()
    await store_rates(activity_deps, friday, {"USD": "1.0850"})
    later = friday + timedelta(days=7)
    await store_rates(activity_deps, later, {"USD": "1.0900"})
    customer = await create_customer(client, team.accountant, currency="EUR")
    lines = [{"description": "Licence", "quantity": "1", "unit_price": "1000.00", "tax_rate": "0"}]
    invoice = await sent_invoice(client, team, activity_deps, customer["id"], issue_date=friday.isoformat(),
                                 lines=lines)  # fmt: skip
    assert (invoice["currency"], invoice["total"], invoice["fx_rate"], invoice["base_total"]) == (
        "EUR", "1000.00", "1.085", "1085.00",
    )  # fmt: skip

    # 333.33 EUR at the bank's 1.0999: 366.629667 -> 366.63 USD; at the locked 1.085: 361.66305 -> 361.66; gain 4.97.
    gain = await pay(client, team, invoice["id"], "333.33", paid_on=later.isoformat(), fx_rate="1.0999")
    assert gain.status_code == 201, gain.text
    assert {k: gain.json()[k] for k in ("fx_rate", "rate_source", "base_currency", "base_amount", "booked_base",
                                        "fx_difference")} == {  # fmt: skip
        "fx_rate": "1.0999", "rate_source": "payment", "base_currency": "USD", "base_amount": "366.63",
        "booked_base": "361.66", "fx_difference": "4.97",
    }  # fmt: skip
    # 366.67 EUR at 1.0421: 382.106807 -> 382.11; at 1.085: 397.83695 -> 397.84; a loss of 15.73.
    loss = await pay(client, team, invoice["id"], "366.67", paid_on=later.isoformat(), fx_rate="1.0421")
    assert loss.status_code == 201, loss.text
    assert (loss.json()["base_amount"], loss.json()["booked_base"], loss.json()["fx_difference"]) == (
        "382.11", "397.84", "-15.73",
    )  # fmt: skip
    # No rate sent and none stored within the stale limit before the payment date: 422 naming currency and date.
    stale = friday - timedelta(days=30)
    missing = await pay(client, team, invoice["id"], "300.00", paid_on=stale.isoformat())
    assert missing.status_code == 422, missing.text
    assert "EUR" in missing.json()["error"]["message"] and stale.isoformat() in missing.json()["error"]["message"]
    # No rate sent: the stored one of the payment date, 1.09. 300.00 x 1.09 = 327.00; x 1.085 = 325.50; gain 1.50.
    stored = await pay(client, team, invoice["id"], "300.00", paid_on=later.isoformat())
    assert stored.status_code == 201, stored.text
    assert (stored.json()["fx_rate"], stored.json()["rate_source"], stored.json()["fx_difference"]) == (
        "1.09", "ecb", "1.50",
    )  # fmt: skip

    paid = await invoice_of(client, team.accountant, invoice["id"])
    assert (paid["status"], paid["amount_paid"]) == ("paid", "1000.00")
    # The revenue is booked at the locked rate: its base amounts add up to the invoice's base total.
    booked = await revenue_entries(activity_deps)
    assert [(str(row[2]), row[3], str(row[4])) for row in booked] == [
        ("333.3300", "EUR", "361.6600"), ("366.6700", "EUR", "397.8400"), ("300.0000", "EUR", "325.5000"),
    ]  # fmt: skip
    async with activity_deps.db.transaction() as tx:
        changes = await tx.sql.scalar(
            "SELECT changes FROM audit_log WHERE action = 'invoice.payment_recorded' ORDER BY id LIMIT 1"
        )
    assert (changes["locked_rate"], changes["fx_difference"], changes["fx"]["source"]) == (
        "1.085000000000", "4.97", "payment",
    )  # fmt: skip


async def test_a_rate_is_only_sent_for_an_invoice_in_another_currency(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    refused = await pay(client, team, invoice["id"], "100.00", fx_rate="1.2")
    assert refused.status_code == 422, refused.text
    assert "fx_rate" in refused.json()["error"]["message"]
    future = await pay(client, team, invoice["id"], "100.00", paid_on=(TODAY + timedelta(days=5)).isoformat())
    assert future.status_code == 422, future.text
    assert await payments_of(client, team, invoice["id"]) == []


async def test_only_a_sent_invoice_takes_a_payment(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    draft = await create_invoice(client, team.accountant, customer["id"])
    refused = await pay(client, team, draft["id"], "10.00")
    assert refused.status_code == 409, refused.text
    assert "draft" in refused.json()["error"]["message"]
    approved = await approved_invoice(client, team.accountant, team.admin, customer["id"])
    voided = await client.post(f"/api/v1/invoices/{approved['id']}/void", json={"reason": "wrong customer"},
                               headers=team.accountant.headers)  # fmt: skip
    assert voided.status_code == 200, voided.text
    for invoice_id, status in ((approved["id"], "void"), (draft["id"], "draft")):
        refused = await pay(client, team, invoice_id, "10.00")
        assert refused.status_code == 409, refused.text
        assert status in refused.json()["error"]["message"]
        noted = await credit(client, team, invoice_id, "10.00")
        assert noted.status_code == 409, noted.text
    assert await revenue_entries(activity_deps) == []


async def test_concurrent_payments_that_together_overpay_land_only_while_they_fit(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    # Four payments of 500.00 on a balance of 1508.50: three fit, whichever order the row lock gives them.
    answers = await asyncio.gather(*(pay(client, team, invoice["id"], "500.00") for _ in range(4)))
    assert sorted(answer.status_code for answer in answers) == [201, 201, 201, 422], [a.text for a in answers]
    refused = next(answer for answer in answers if answer.status_code == 422)
    assert "8.50" in refused.json()["error"]["message"]
    now = await invoice_of(client, team.accountant, invoice["id"])
    assert (now["status"], now["amount_paid"], now["balance_due"]) == ("partially_paid", "1500.00", "8.50")
    assert len(await payments_of(client, team, invoice["id"])) == 3
    assert len(await revenue_entries(activity_deps)) == 3


async def test_credit_notes_are_numbered_bounded_and_settle_the_balance(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    year = TODAY.year
    first = await credit(client, team, invoice["id"], "100.00", **{"Idempotency-Key": "cn-1"})
    assert first.status_code == 201, first.text
    assert (first.json()["number"], first.json()["amount"], first.json()["reason"]) == (
        f"CN-{year}-0001", "100.00", "discount agreed",
    )  # fmt: skip
    repeat = await credit(client, team, invoice["id"], "100.00", **{"Idempotency-Key": "cn-1"})
    assert repeat.status_code == 201 and repeat.json() == first.json()
    now = await invoice_of(client, team.accountant, invoice["id"])
    assert (now["status"], now["amount_credited"], now["balance_due"]) == ("sent", "100.00", "1408.50")

    over = await credit(client, team, invoice["id"], "1408.51")
    assert over.status_code == 422, over.text
    assert "1408.50" in over.json()["error"]["message"]
    no_reason = await credit(client, team, invoice["id"], "10.00", reason="  ")
    assert no_reason.status_code == 422, no_reason.text

    assert (await pay(client, team, invoice["id"], "408.50")).status_code == 201
    settling = await credit(client, team, invoice["id"], "1000.00", reason="returned goods")
    assert settling.status_code == 201, settling.text
    assert settling.json()["number"] == f"CN-{year}-0002"  # the refused ones took no number
    settled = await invoice_of(client, team.accountant, invoice["id"])
    assert (settled["status"], settled["amount_paid"], settled["amount_credited"], settled["balance_due"]) == (
        "paid", "408.50", "1100.00", "0.00",
    )  # fmt: skip
    assert settled["paid_at"] is not None
    after = await credit(client, team, invoice["id"], "1.00")
    assert after.status_code == 409, after.text

    listed = await client.get(f"/api/v1/invoices/{invoice['id']}/credit-notes", headers=team.accountant.headers)
    assert [(n["number"], n["amount"]) for n in listed.json()["items"]] == [
        (f"CN-{year}-0001", "100.00"), (f"CN-{year}-0002", "1000.00"),
    ]  # fmt: skip
    assert (await audit_actions(activity_deps, invoice["id"])).count("invoice.credited") == 2
    # Credit notes book no revenue (cash basis): only the payment did.
    assert [str(row[2]) for row in await revenue_entries(activity_deps)] == ["408.5000"]


async def test_payments_are_read_within_the_invoices_visibility(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    assert (await pay(client, team, invoice["id"], "10.00")).status_code == 201
    # The accountant reports to the admin: a manager elsewhere in the tree does not see the invoice at all.
    for path in ("payments", "credit-notes"):
        hidden = await client.get(f"/api/v1/invoices/{invoice['id']}/{path}", headers=team.manager.headers)
        assert hidden.status_code == 404, hidden.text
    seen = await client.get(f"/api/v1/invoices/{invoice['id']}/payments", headers=team.admin.headers)
    assert [p["amount"] for p in seen.json()["items"]] == ["10.00"]


async def test_a_sent_invoice_refuses_edits_and_deletes(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    headers = {**team.accountant.headers, "If-Match": f'"{invoice["version"]}"'}
    edited = await client.patch(f"/api/v1/invoices/{invoice['id']}", json={"notes": "changed"}, headers=headers)
    assert edited.status_code == 409, edited.text
    assert "credit note" in edited.json()["error"]["message"]
    deleted = await client.delete(f"/api/v1/invoices/{invoice['id']}", headers=team.accountant.headers)
    assert deleted.status_code == 409, deleted.text
    now = await invoice_of(client, team.accountant, invoice["id"])
    assert (now["status"], now["notes"], now["version"], now["total"]) == (
        "sent", invoice["notes"], invoice["version"], "1508.50",
    )  # fmt: skip
