"""A credit note reverses its share of the invoice's tax: its amount split between net and tax per tax rate in the
invoice's proportions. Properties over random invoices (rates 0 to 100%, JPY without minor units, BHD with three):
the parts add up to the amount exactly, none is negative or passes what the invoice charged at its rate, the
remainder of rounding lands on the largest share, and an invoice credited in full (in one credit note or several)
reverses exactly its tax.
Then over HTTP: the split in the answer and the list, in the ledger (Dr revenue, Dr tax, Cr receivable), and a split
that does not add up refused by the database."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import httpx
import psycopg
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from activities.deps import ActivityDeps
from domain.invoices.credit_notes import TaxPart, split_by_tax_rate
from domain.invoices.totals import line_amounts
from domain.money import in_minor_units, minor_units
from tests.approvals.conftest import Team
from tests.invoices.conftest import create_customer
from tests.invoices.test_payments import credit, sent_invoice
from tests.ledger.conftest import chart  # noqa: F401 - a fixture, used by name (usefixtures)

CURRENCIES = ("USD", "EUR", "JPY", "BHD")
RATES = [Decimal(0), Decimal("5.5"), Decimal(7), Decimal(19), Decimal(20), Decimal(100)]


@dataclass(frozen=True)
class Line:
    tax_rate: Decimal
    net: Decimal
    tax: Decimal


def unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-(minor_units(currency) or 0))


@st.composite
def invoices(draw: st.DrawFn) -> tuple[str, list[Line]]:
    """An invoice's lines as the service prices them (net and tax rounded half-up per line)."""
    currency = draw(st.sampled_from(CURRENCIES))
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        price = Decimal(draw(st.integers(0, 10**9))) * unit(currency)
        rate = draw(st.sampled_from(RATES))
        amounts = line_amounts(Decimal(draw(st.integers(1, 20))), price, rate, currency)
        lines.append(Line(rate, amounts.net, amounts.tax))
    assume(sum(line.net + line.tax for line in lines) > 0)
    return currency, lines


def by_rate(lines: Iterable[Line | TaxPart]) -> dict[Decimal, tuple[Decimal, Decimal]]:
    """(net, tax) per tax rate, of the rates with anything charged."""
    found: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for line in lines:
        net, tax = found.get(line.tax_rate, (Decimal(0), Decimal(0)))
        found[line.tax_rate] = (net + line.net, tax + line.tax)
    return {rate: amounts for rate, amounts in found.items() if sum(amounts) > 0}


@settings(max_examples=500, deadline=None)
@given(invoice=invoices(), data=st.data())
def test_the_split_adds_up_to_the_amount_and_never_passes_the_invoice_at_a_rate(
    invoice: tuple[str, list[Line]], data: st.DataObject
) -> None:
    currency, lines = invoice
    charged = by_rate(lines)
    total = sum((net + tax for net, tax in charged.values()), Decimal(0))
    units = int(total / unit(currency))
    # Anywhere, and often within a few minor units of the total, where the rounding is tightest.
    n = data.draw(st.one_of(st.integers(1, units), st.integers(max(1, units - 5), units)))
    amount = n * unit(currency)
    parts = split_by_tax_rate(amount, lines, currency)

    assert sum((part.net + part.tax for part in parts), Decimal(0)) == amount
    assert [part.tax_rate for part in parts] == sorted({part.tax_rate for part in parts})
    for part in parts:
        net, tax = charged[part.tax_rate]
        assert part.net + part.tax > 0 and part.net >= 0 and part.tax >= 0
        assert in_minor_units(part.net, currency) == part.net and in_minor_units(part.tax, currency) == part.tax
        assert part.net <= net and part.tax <= tax
        # In proportion: within a minor unit per rate of the exact share.
        exact = amount * (net + tax) / total
        assert abs(part.net + part.tax - exact) < len(charged) * unit(currency)
    # Each share is rounded down but the largest, which takes the remainder (unless it is full: then the next).
    shares = {part.tax_rate: part.net + part.tax for part in parts}
    largest = min(charged, key=lambda rate: (-sum(charged[rate]), rate))
    for rate, (net, tax) in charged.items():
        floor = (amount * (net + tax) / total).quantize(unit(currency), rounding=ROUND_DOWN)
        if rate != largest and shares.get(largest) != sum(charged[largest]):
            assert shares.get(rate, Decimal(0)) == floor, (rate, shares, charged)
    # The order of the lines does not matter.
    shuffled = list(lines)
    random.Random(n).shuffle(shuffled)
    assert split_by_tax_rate(amount, shuffled, currency) == parts


@settings(max_examples=300, deadline=None)
@given(invoice=invoices())
def test_a_credit_of_the_whole_total_reverses_exactly_the_invoices_tax(invoice: tuple[str, list[Line]]) -> None:
    currency, lines = invoice
    charged = by_rate(lines)
    total = sum((net + tax for net, tax in charged.values()), Decimal(0))
    parts = split_by_tax_rate(total, lines, currency)
    assert {part.tax_rate: (part.net, part.tax) for part in parts} == charged


@settings(max_examples=300, deadline=None)
@given(invoice=invoices(), data=st.data())
def test_an_invoice_credited_in_full_in_several_credit_notes_reverses_exactly_its_tax(
    invoice: tuple[str, list[Line]], data: st.DataObject
) -> None:
    currency, lines = invoice
    charged = by_rate(lines)
    units = int(sum((net + tax for net, tax in charged.values()), Decimal(0)) / unit(currency))
    credited: list[TaxPart] = []
    left = units
    for note in range(data.draw(st.integers(1, 6)), 0, -1):  # the last one credits what is left
        n = left if note == 1 else data.draw(st.integers(1, left))
        parts = split_by_tax_rate(n * unit(currency), lines, currency, credited)
        assert sum((part.net + part.tax for part in parts), Decimal(0)) == n * unit(currency)
        assert all(part.net >= 0 and part.tax >= 0 for part in parts)
        credited.extend(parts)
        left -= n
        # Never more net or tax at a rate than the invoice charged there, at any point.
        for rate, (net, tax) in by_rate(credited).items():
            assert net <= charged[rate][0] and tax <= charged[rate][1], (rate, credited, charged)
        if not left:
            break
    assert by_rate(credited) == charged


def test_a_split_worked_out_by_hand() -> None:
    # 10 x 120.00 at 19% (1200.00 + 228.00) and 80.50 untaxed: 1508.50. A credit of 100.00: 19% takes
    # 100 x 1428 / 1508.50 = 94.6636 -> 94.66, untaxed 100 x 80.50 / 1508.50 = 5.3364 -> 5.33; the cent left goes
    # to the largest, 19%: 94.67, its tax 94.67 x 228 / 1428 = 15.1151 -> 15.12, its net 79.55.
    lines = [Line(Decimal(19), Decimal("1200.00"), Decimal("228.00")), Line(Decimal(0), Decimal("80.50"), Decimal(0))]
    assert split_by_tax_rate(Decimal("100.00"), lines, "USD") == (
        TaxPart(Decimal(0), Decimal("5.33"), Decimal("0.00")),
        TaxPart(Decimal(19), Decimal("79.55"), Decimal("15.12")),
    )
    with pytest.raises(ValueError):
        split_by_tax_rate(Decimal("1508.51"), lines, "USD")


@pytest.mark.usefixtures("chart")
async def test_a_credit_note_shows_and_books_its_split_and_a_full_credit_reverses_the_tax(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    first = await credit(client, team, invoice["id"], "100.00")
    assert first.status_code == 201, first.text
    assert (first.json()["amount"], first.json()["net"], first.json()["tax"]) == ("100.00", "84.88", "15.12")
    assert first.json()["by_tax_rate"] == [
        {"tax_rate": "0", "net": "5.33", "tax": "0.00"}, {"tax_rate": "19", "net": "79.55", "tax": "15.12"},
    ]  # fmt: skip
    # The rest of the balance, 1408.50, credits the invoice in full: it takes what the first left at each rate,
    # 80.50 - 5.33 = 75.17 untaxed, 1200.00 - 79.55 = 1120.45 net and 228.00 - 15.12 = 212.88 tax at 19% (split in
    # proportion on its own, it would have taken 212.89: 1333.34 x 228 / 1428 = 212.886).
    rest = await credit(client, team, invoice["id"], "1408.50", reason="cancelled")
    assert rest.status_code == 201, rest.text
    assert rest.json()["by_tax_rate"] == [
        {"tax_rate": "0", "net": "75.17", "tax": "0.00"}, {"tax_rate": "19", "net": "1120.45", "tax": "212.88"},
    ]  # fmt: skip
    listed = await client.get(f"/api/v1/invoices/{invoice['id']}/credit-notes", headers=team.accountant.headers)
    assert listed.json()["items"] == [first.json(), rest.json()]

    # In the ledger (USD books, rate 1): Dr revenue the nets, Dr tax the taxes, Cr receivable the amount.
    month = invoice["issue_date"][:7]
    page = await client.get("/api/v1/journals", params={"month": month}, headers=team.accountant.headers)
    by_number = {journal["number"]: journal for journal in page.json()["items"]}
    rows = [
        (line["account_code"], line["debit"], line["credit"]) for line in by_number[first.json()["number"]]["lines"]
    ]
    assert rows == [("4000", "5.33", "0.00"), ("4000", "79.55", "0.00"), ("2200", "15.12", "0.00"),
                    ("1200", "0.00", "100.00")]  # fmt: skip
    # Together they reverse exactly the invoice's tax.
    tax_lines = [line for note in (first, rest) for line in by_number[note.json()["number"]]["lines"]
                 if line["account_code"] == "2200"]  # fmt: skip
    reversed_tax = sum(Decimal(line["debit"]) for line in tax_lines)
    assert reversed_tax == Decimal(invoice["tax_total"]) == Decimal("228.00")


@pytest.mark.usefixtures("chart")
async def test_a_full_credit_over_http_reverses_exactly_the_invoices_tax(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    whole = await credit(client, team, invoice["id"], invoice["total"], reason="cancelled")
    assert whole.status_code == 201, whole.text
    assert (whole.json()["net"], whole.json()["tax"]) == (invoice["subtotal"], invoice["tax_total"])
    assert whole.json()["by_tax_rate"] == [
        {"tax_rate": "0", "net": "80.50", "tax": "0.00"}, {"tax_rate": "19", "net": "1200.00", "tax": "228.00"},
    ]  # fmt: skip


async def test_a_split_that_does_not_add_up_is_refused_by_the_database(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, database_url: str
) -> None:
    customer = await create_customer(client, team.accountant)
    invoice = await sent_invoice(client, team, activity_deps, customer["id"])
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        cursor = await connection.execute(
            "INSERT INTO credit_notes (invoice_id, number, amount, reason, created_by_id) "
            "VALUES (%s, 'CN-HAND-1', 10, 'by hand', %s) RETURNING id",
            (invoice["id"], team.accountant.id),
        )
        row = await cursor.fetchone()
        assert row is not None
        await connection.execute(
            "INSERT INTO credit_note_taxes (credit_note_id, tax_rate, net, tax) VALUES (%s, 19, 8, 1)", (row[0],)
        )
        with pytest.raises(psycopg.errors.CheckViolation, match="split into parts of 9.* not its amount 10"):
            await connection.commit()
    async with activity_deps.db.transaction() as tx:
        assert await tx.sql.scalar("SELECT count(*) FROM credit_notes") == 0


async def test_a_credited_invoice_is_not_voided_and_its_rates_read_plainly(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    """A void reverses all an invoice booked: after a credit note it would reverse the credited part twice. And a
    20% rate reads "20" in the invoice's JSON, as on its PDF (not "2E+1")."""
    customer = await create_customer(client, team.accountant)
    lines = [{"description": "Audit", "quantity": "10", "unit_price": "100.00", "tax_rate": "20"}]
    invoice = await sent_invoice(client, team, activity_deps, customer["id"], lines=lines)
    assert [(line["quantity"], line["tax_rate"]) for line in invoice["lines"]] == [("10", "20")]
    assert (await credit(client, team, invoice["id"], "120.00")).status_code == 201
    voided = await client.post(
        f"/api/v1/invoices/{invoice['id']}/void", json={"reason": "wrong customer"}, headers=team.accountant.headers
    )
    assert voided.status_code == 409, voided.text
    assert "credited 120.00" in voided.json()["error"]["message"]
    again = await client.get(f"/api/v1/invoices/{invoice['id']}", headers=team.accountant.headers)
    assert (again.json()["status"], again.json()["balance_due"]) == ("sent", "1080.00")
