"""A month's journals over the whole stack, each line worked out by hand: an expense in EUR at its locked rate, a
revenue entry, an invoice with two tax rates and a late fee (and the cent its line-by-line conversion leaves to the
rounding account), a payment with an FX gain and one with a loss, a credit note reversing its share of each tax
rate. Then the month closes and the frozen journals read the same.

Books in USD; 1 EUR = 1.0850 USD today (stored as the ECB's rate, so the cross rate EUR -> USD is 1.085)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from activities.deps import ActivityDeps
from domain.audit.service import SYSTEM
from domain.invoices.document import Seller
from domain.invoices.reminders import remind
from tests.approvals.conftest import Team
from tests.fx.test_entries import store_rates
from tests.invoices.conftest import create_customer
from tests.invoices.test_payments import credit, pay, sent_invoice
from tests.ledger.conftest import THIS_MONTH, TODAY, act, close, created, journals
from tests.mobile.conftest import walk
from workflows.contracts import LateFee, ReminderStep

Row = tuple[str, str, str, str, str, str, str]


def lines_of(journal: dict[str, Any]) -> list[Row]:
    return [(line["account_code"], line["debit"], line["credit"], line["currency"], line["original_amount"],
             line["rate"], line["tax_code"]) for line in journal["lines"]]  # fmt: skip


async def hash_of(deps: ActivityDeps, action: str, resource: str, resource_id: int, **changes: int) -> str:
    condition = "".join(f" AND changes->>'{name}' = %s" for name in changes)
    async with deps.db.transaction() as tx:
        found = await tx.sql.scalar(
            "SELECT hash FROM audit_log WHERE action = %s AND resource_type = %s AND resource_id = %s"
            f"{condition} ORDER BY id DESC LIMIT 1",
            (action, resource, str(resource_id), *(str(value) for value in changes.values())),
        )
    assert found
    return str(found)


async def name_of(deps: ActivityDeps, user_id: int) -> tuple[str, str]:
    async with deps.db.transaction() as tx:
        row = await tx.sql.one("SELECT full_name, username FROM users WHERE id = %s", (user_id,))
    assert row is not None
    return str(row[0]), str(row[1])


async def test_each_source_books_its_balanced_journal_and_the_close_freezes_them(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None
) -> None:
    accountant = team.accountant
    accounts = await client.get("/api/v1/accounts", params={"type": "liability"}, headers=accountant.headers)
    tax = next(item for item in accounts.json()["items"] if item["code"] == "2200")
    assert (await client.patch(f"/api/v1/accounts/{tax['id']}", json={"tax_code": "UST"},
                               headers=accountant.headers)).status_code == 200  # fmt: skip
    await store_rates(activity_deps, TODAY, {"USD": "1.0850"})

    # An expense of 99.99 EUR: 99.99 x 1.085 = 108.48915 -> 108.49 USD, locked at its submit.
    expense = await created(client, team.employee, amount="99.99", currency="EUR", category="Travel")
    assert (await act(client, team.employee, expense, "submit")).status_code == 200
    assert (await act(client, team.manager, expense, "approve")).json()["base_amount"] == "108.49"
    revenue = await created(client, team.employee, "revenue", amount="50.00", source="Grant Co", category="grants")
    assert (await act(client, team.employee, revenue, "submit", kind="revenue")).status_code == 200
    assert (await act(client, team.manager, revenue, "approve", kind="revenue")).status_code == 200

    # The invoice: 3 x 333.33 = 999.99 at 19% (tax 189.9981 -> 190.00) and 45.55 at 7% (3.1885 -> 3.19): 1238.73 EUR.
    customer = await create_customer(client, accountant, currency="EUR")
    lines = [{"description": "Consulting", "quantity": "3", "unit_price": "333.33", "tax_rate": "19"},
             {"description": "Books", "quantity": "1", "unit_price": "45.55", "tax_rate": "7"}]  # fmt: skip
    invoice = await sent_invoice(client, team, activity_deps, customer["id"], lines=lines)
    assert (invoice["total"], invoice["base_total"]) == ("1238.73", "1344.02")  # 1344.022050
    # A late fee of 10.04 EUR (reminder 2): 1248.77 EUR, base total 1248.77 x 1.085 = 1354.91545 -> 1354.92.
    step = ReminderStep(
        offset_days=3, template="invoice_overdue", late_fee=LateFee(kind="fixed", amount=Decimal("10.04"))
    )
    async with activity_deps.db.transaction() as tx:
        seller = Seller.from_settings(activity_deps.settings.invoices)
        await remind(tx.sql, invoice["id"], 2, step, datetime.now(UTC), seller, SYSTEM)

    # 600.00 EUR at the bank's 1.0999 = 659.94; at the locked 1.085 = 651.00: a gain of 8.94.
    gain = await pay(client, team, invoice["id"], "600.00", fx_rate="1.0999")
    assert gain.json()["fx_difference"] == "8.94", gain.text
    # 300.00 EUR at 1.0421 = 312.63; at 1.085 = 325.50: a loss of 12.87.
    loss = await pay(client, team, invoice["id"], "300.00", fx_rate="1.0421")
    assert loss.json()["fx_difference"] == "-12.87", loss.text
    # A credit note of 100.00 EUR: 108.50 USD at the locked rate. Split by tax rate in the invoice's proportions
    # (of 1248.77 gross: 19% 1189.99, 7% 48.74, untaxed fee 10.04): 95.29, 3.90 and 0.80 rounded down, the cent
    # left over to the largest, 19%: 95.30. Its tax 95.30 x 190.00 / 1189.99 = 15.2157 -> 15.22 (net 80.08); at 7%
    # 3.90 x 3.19 / 48.74 = 0.2552 -> 0.26 (net 3.64).
    note = await credit(client, team, invoice["id"], "100.00")
    assert note.status_code == 201, note.text
    assert (note.json()["net"], note.json()["tax"], note.json()["by_tax_rate"]) == ("84.52", "15.48", [
        {"tax_rate": "0", "net": "0.80", "tax": "0.00"}, {"tax_rate": "7", "net": "3.64", "tax": "0.26"},
        {"tax_rate": "19", "net": "80.08", "tax": "15.22"},
    ])  # fmt: skip

    computed = await journals(client, accountant)
    assert computed.status_code == 200, computed.text
    page = computed.json()
    by_number = {journal["number"]: journal for journal in page["items"]}
    number = invoice["number"]
    pay_gain, pay_loss = f"PAY-{gain.json()['id']}", f"PAY-{loss.json()['id']}"
    # Dated today, all of them: entries first, then the invoice, the payments and the credit note, each by id. The
    # revenue entries the payments booked are not journals of their own (the invoice and its payments are).
    assert list(by_number) == [f"EXP-{expense['id']}", f"REV-{revenue['id']}", number, pay_gain, pay_loss,
                               note.json()["number"]]  # fmt: skip
    assert lines_of(by_number[f"EXP-{expense['id']}"]) == [
        ("6100", "108.49", "0.00", "EUR", "99.99", "1.085", ""),
        ("2000", "0.00", "108.49", "EUR", "99.99", "1.085", ""),
    ]
    assert lines_of(by_number[f"REV-{revenue['id']}"]) == [
        ("1000", "50.00", "0.00", "USD", "50.00", "1", ""),
        ("4900", "0.00", "50.00", "USD", "50.00", "1", ""),
    ]
    # Each line converted on its own: 999.99 -> 1084.98915 -> 1084.99; 45.55 -> 49.42175 -> 49.42; the fee
    # 10.04 -> 10.8934 -> 10.89; tax 3.19 -> 3.46115 -> 3.46; tax 190.00 -> 206.15. They add up to 1354.91, a cent
    # short of the receivable (the total converted once): the cent goes to rounding.
    assert lines_of(by_number[number]) == [
        ("1200", "1354.92", "0.00", "EUR", "1248.77", "1.085", ""),
        ("4000", "0.00", "1084.99", "EUR", "999.99", "1.085", ""),
        ("4000", "0.00", "49.42", "EUR", "45.55", "1.085", ""),
        ("4000", "0.00", "10.89", "EUR", "10.04", "1.085", ""),
        ("2200", "0.00", "3.46", "EUR", "3.19", "1.085", "UST"),
        ("2200", "0.00", "206.15", "EUR", "190.00", "1.085", "UST"),
        ("7900", "0.00", "0.01", "USD", "0.01", "1", ""),
    ]
    assert lines_of(by_number[pay_gain]) == [
        ("1000", "659.94", "0.00", "EUR", "600.00", "1.0999", ""),
        ("1200", "0.00", "651.00", "EUR", "600.00", "1.085", ""),
        ("7100", "0.00", "8.94", "USD", "8.94", "1", ""),
    ]
    assert lines_of(by_number[pay_loss]) == [
        ("1000", "312.63", "0.00", "EUR", "300.00", "1.0421", ""),
        ("1200", "0.00", "325.50", "EUR", "300.00", "1.085", ""),
        ("7200", "12.87", "0.00", "USD", "12.87", "1", ""),
    ]
    assert lines_of(by_number[note.json()["number"]]) == [
        # Each part converted on its own: 0.80 -> 0.868 -> 0.87; 3.64 -> 3.9494 -> 3.95; 80.08 -> 86.8868 -> 86.89;
        # tax 0.26 -> 0.2821 -> 0.28; 15.22 -> 16.5137 -> 16.51. They add up to 108.50: no rounding line.
        ("4000", "0.87", "0.00", "EUR", "0.80", "1.085", ""),
        ("4000", "3.95", "0.00", "EUR", "3.64", "1.085", ""),
        ("4000", "86.89", "0.00", "EUR", "80.08", "1.085", ""),
        ("2200", "0.28", "0.00", "EUR", "0.26", "1.085", "UST"),
        ("2200", "16.51", "0.00", "EUR", "15.22", "1.085", "UST"),
        ("1200", "0.00", "108.50", "EUR", "100.00", "1.085", ""),
    ]
    # 108.49 + 50.00 + 1354.92 + 659.94 + 312.63 + 12.87 + 108.50 = 2607.35 on either side.
    assert (page["status"], page["closing"], page["debit_total"], page["credit_total"]) == (
        "open", None, "2607.35", "2607.35",
    )  # fmt: skip

    # What each journal carries besides its amounts.
    manager, manager_username = await name_of(activity_deps, team.manager.id)
    admin, admin_username = await name_of(activity_deps, team.admin.id)
    accountant_name, _ = await name_of(activity_deps, accountant.id)
    spent = by_number[f"EXP-{expense['id']}"]
    assert {k: spent[k] for k in ("source_kind", "source_id", "journal_date", "counterparty", "approved_by", "link",
                                  "audit_hash")} == {  # fmt: skip
        "source_kind": "entry", "source_id": expense["id"], "journal_date": TODAY.isoformat(),
        "counterparty": "Rail Co", "approved_by": manager, "link": f"/api/v1/expenses/{expense['id']}",
        "audit_hash": await hash_of(activity_deps, "approval.approved", "entry", expense["id"]),
    }  # fmt: skip
    assert {line["cost_center"] for line in spent["lines"]} == {manager_username}  # the employee's team
    issued = by_number[number]
    assert (issued["counterparty"], issued["approved_by"], issued["link"], issued["audit_hash"]) == (
        "Acme GmbH", admin, f"/api/v1/invoices/{invoice['id']}",
        await hash_of(activity_deps, "invoice.issued", "invoice", invoice["id"]),
    )  # fmt: skip
    assert {line["cost_center"] for line in issued["lines"]} == {admin_username}  # the accountant's team
    paid = by_number[pay_gain]
    assert (paid["approved_by"], paid["journal_date"], paid["link"], paid["audit_hash"]) == (
        accountant_name, TODAY.isoformat(), f"/api/v1/invoices/{invoice['id']}/payments",
        await hash_of(activity_deps, "invoice.payment_recorded", "invoice", invoice["id"],
                      payment_id=gain.json()["id"]),
    )  # fmt: skip

    # By cursor, the same journals in the same order; a cursor into the open month's pages is refused once the
    # month is closed (its journals are then the closing's).
    walked, pages = await walk(client, f"/api/v1/journals?month={THIS_MONTH}", accountant, 4, key="number")
    assert (walked, pages) == ([journal["number"] for journal in page["items"]], 2)
    first_open = await journals(client, accountant, limit=4)
    open_cursor = first_open.json()["next_cursor"]

    closed = await close(client, accountant, THIS_MONTH)
    assert closed.status_code == 200, closed.text
    stale = await journals(client, accountant, limit=4, cursor=open_cursor)
    assert stale.status_code == 422 and "another list" in stale.text, stale.text
    walked, _ = await walk(client, f"/api/v1/journals?month={THIS_MONTH}", accountant, 4, key="number")
    assert walked == [journal["number"] for journal in page["items"]]
    assert (closed.json()["journals"], closed.json()["lines"], closed.json()["debit_total"]) == (6, 23, "2607.35")
    frozen = await journals(client, accountant)
    assert (frozen.json()["status"], frozen.json()["closing"]) == ("closed", 1)
    assert frozen.json()["items"] == page["items"]
    assert (frozen.json()["debit_total"], frozen.json()["credit_total"]) == ("2607.35", "2607.35")
    second = await journals(client, accountant, limit=2, offset=2)
    assert [journal["number"] for journal in second.json()["items"]] == [number, pay_gain]
