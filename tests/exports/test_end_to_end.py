"""A month closed and exported end to end, as a finance team does it: entries approved (one in a foreign currency),
an invoice with two tax rates approved and sent by its workflow, paid in two parts and credited, the month closed
over HTTP, then each format exported by its workflow, read back as its importer reads it (every journal balances,
every journal of the closing is there), and exported again byte for byte under a new number.

Books in EUR with the DATEV numbers set (tests/exports/month.py's settings); the journals are the ledger's own,
written by the close, not fixtures."""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict
from decimal import Decimal

import httpx

from activities.deps import ActivityDeps
from domain.audit.service import SYSTEM
from domain.ledger.standard_chart import seed
from tests.approvals.conftest import Team
from tests.exports.test_api import made
from tests.exports.test_readback import comma, datev_table, utf8_rows
from tests.fx.test_entries import store_rates
from tests.invoices.conftest import create_customer
from tests.invoices.test_payments import credit, pay, sent_invoice
from tests.ledger.conftest import THIS_MONTH, TODAY, act, close, created

FORMATS = ("journal_csv", "xero", "quickbooks", "datev")


async def a_month_of_business(api: httpx.AsyncClient, team: Team, deps: ActivityDeps) -> None:
    async with deps.db.transaction() as tx:
        assert await seed(tx, deps.settings.invoices.revenue_category, SYSTEM) is not None
    await store_rates(deps, TODAY, {"USD": "1.0850"})  # the ECB's: 1 EUR = 1.085 USD
    for amount, currency in (("120.00", "EUR"), ("99.99", "USD")):
        expense = await created(api, team.employee, amount=amount, currency=currency, category="Travel")
        assert (await act(api, team.employee, expense, "submit")).status_code == 200
        assert (await act(api, team.manager, expense, "approve")).status_code == 200
    revenue = await created(api, team.employee, "revenue", amount="50.00", currency="EUR", category="grants")
    assert (await act(api, team.employee, revenue, "submit", kind="revenue")).status_code == 200
    assert (await act(api, team.manager, revenue, "approve", kind="revenue")).status_code == 200

    customer = await create_customer(api, team.accountant, currency="EUR")
    lines = [{"description": "Consulting", "quantity": "3", "unit_price": "333.33", "tax_rate": "19"},
             {"description": "Books", "quantity": "1", "unit_price": "45.55", "tax_rate": "7"}]  # fmt: skip
    invoice = await sent_invoice(api, team, deps, customer["id"], lines=lines)
    assert invoice["total"] == "1238.73"
    assert (await pay(api, team, invoice["id"], "600.00")).status_code == 201
    assert (await pay(api, team, invoice["id"], "300.00")).status_code == 201
    assert (await credit(api, team, invoice["id"], "100.00")).status_code == 201


Nets = dict[str, dict[str, Decimal]]  # per journal, each account's net (debit minus credit) in the base currency


def journal_csv_nets(data: bytes) -> Nets:
    header, *rows = utf8_rows(data)
    nets: Nets = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        record = dict(zip(header, row, strict=True))
        nets[record["journal"]][record["account_code"]] += Decimal(record["base_debit"]) - Decimal(
            record["base_credit"]
        )
    return nets


def xero_nets(data: bytes) -> Nets:
    if data.startswith(b"PK"):  # over 300 lines: an archive of files that never split a journal
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = [archive.read(name) for name in sorted(archive.namelist())]
    else:
        parts = [data]
    nets: Nets = defaultdict(lambda: defaultdict(Decimal))
    for part in parts:
        header, *rows = utf8_rows(part)
        for row in rows:
            record = dict(zip(header, row, strict=True))
            nets[record["*Narration"].split(" ")[0]][record["*AccountCode"]] += Decimal(record["*Amount"])
    return nets


def quickbooks_nets(data: bytes) -> Nets:
    header, *rows = utf8_rows(data)
    nets: Nets = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        record = dict(zip(header, row, strict=True))
        nets[record["Journal No"]][record["Account Name"]] += Decimal(record["Debits"] or 0) - Decimal(
            record["Credits"] or 0
        )
    return nets


def datev_nets(data: bytes) -> Nets:
    """Each booking moves its account one way and its contra account the other by the same amount."""
    _, columns, rows = datev_table(data)
    at = {name: index for index, name in enumerate(columns)}
    nets: Nets = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        foreign = row[at["Kurs"]] != ""
        base = comma(row[at["Basis-Umsatz" if foreign else "Umsatz (ohne Soll/Haben-Kz)"]])
        signed = base if row[at["Soll/Haben-Kennzeichen"]] == "S" else -base
        journal = nets[row[at["Belegfeld 1"]]]
        journal[row[at["Konto"]]] += signed
        journal[row[at["Gegenkonto (ohne BU-Schlüssel)"]]] -= signed
    return nets


def moved(nets: Nets) -> Nets:
    """The accounts each journal moves (a zero line, or a clearing account netting out, moves nothing)."""
    return {journal: {account: net for account, net in accounts.items() if net} for journal, accounts in nets.items()}


READ_BACK = {"journal_csv": journal_csv_nets, "xero": xero_nets, "quickbooks": quickbooks_nets, "datev": datev_nets}


async def test_a_month_of_business_closes_and_every_format_exports_balanced_and_again_byte_for_byte(
    api: httpx.AsyncClient, team: Team, exports_deps: ActivityDeps
) -> None:
    await a_month_of_business(api, team, exports_deps)
    closed = await close(api, team.accountant, THIS_MONTH)
    assert closed.status_code == 200, closed.text
    journals = closed.json()["journals"]
    assert closed.json()["debit_total"] == closed.json()["credit_total"]
    # two expenses, a revenue entry, the invoice, two payments and a credit note
    assert journals == 7, closed.json()

    for export_format in FORMATS:
        first, data = await made(api, team.accountant, export_format, month=THIS_MONTH)
        assert first["journals"] == journals and first["closing"] == 1
        nets = READ_BACK[export_format](data)
        assert len(nets) == journals, (export_format, sorted(nets))
        assert all(sum(accounts.values()) == 0 for accounts in nets.values()), (export_format, nets)
        if export_format == "journal_csv":
            ours = moved(nets)
        elif export_format != "quickbooks":  # QuickBooks names accounts; Xero and DATEV carry our codes
            assert moved(nets) == ours, export_format

        again, same = await made(api, team.accountant, export_format, month=THIS_MONTH)
        assert again["number"] > first["number"]
        assert same == data and again["sha256"] == first["sha256"], export_format
