"""A small standard chart of accounts and its mapping, for a new installation (`python cli.py seed-accounts`; `make
dev` runs it): enough for every journal to find its accounts from the first close. An accountant replaces or extends
it through /api/v1/accounts; it is made only when the chart is empty, never over one in use.

Four-digit codes in the common layout (1 assets, 2 liabilities, 3 equity, 4 revenue, 6 expenses, 7 other income and
expense), which DATEV, Xero and QuickBooks all accept. No tax codes: they are the importing product's own (Xero's
`OUTPUT2`, a DATEV BU key), set on the accounts once the product is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.db import Tx
from domain.audit.service import AuditContext, record
from domain.ledger import repository as ledger
from domain.ledger.mappings import ANY, check_fits


@dataclass(frozen=True)
class Seeded:
    accounts: int
    mappings: int


ACCOUNTS = (
    ("1000", "Cash at bank", "asset"),
    ("1200", "Accounts receivable", "asset"),
    ("2000", "Accounts payable", "liability"),
    ("2200", "Sales tax payable", "liability"),
    ("3000", "Owner's equity", "equity"),
    ("4000", "Sales", "revenue"),
    ("4900", "Other revenue", "revenue"),
    ("6000", "General expenses", "expense"),
    ("6100", "Travel", "expense"),
    ("6200", "Meals and entertainment", "expense"),
    ("6300", "Office supplies", "expense"),
    ("6400", "Equipment", "expense"),
    ("6500", "Software and subscriptions", "expense"),
    ("6600", "Conferences and training", "expense"),
    ("7100", "Foreign exchange gains", "revenue"),
    ("7200", "Foreign exchange losses", "expense"),
    ("7900", "Rounding differences", "expense"),
)


def mapping(invoice_category: str) -> list[tuple[str, str, str]]:
    """(kind, key, account code). `invoice_category`: the category of the revenue a payment books
    (INVOICE_REVENUE_CATEGORY), which is also what invoices' lines are credited to (unless it is one of the expense
    categories here: invoices then book to source `*`)."""
    pairs = [
        ("payable", "", "2000"),
        ("receivable", "", "1200"),
        ("cash", "", "1000"),
        ("tax", "", "2200"),
        ("fx_gain", "", "7100"),
        ("fx_loss", "", "7200"),
        ("rounding", "", "7900"),
        ("category", "travel", "6100"),
        ("category", "meals", "6200"),
        ("category", "office", "6300"),
        ("category", "equipment", "6400"),
        ("category", "software", "6500"),
        ("category", "conferences", "6600"),
        ("category", ANY, "6000"),
        ("source", ANY, "4900"),
    ]
    invoices = invoice_category.strip().lower()
    if all(key != invoices for kind, key, _ in pairs if kind == "category"):
        pairs.append(("category", invoices, "4000"))
    return pairs


async def seed(tx: Tx, invoice_category: str, context: AuditContext) -> Seeded | None:
    """The standard chart and mapping, when there is no account yet (None: there is one, nothing is made)."""
    if await ledger.any_account(tx.sql):
        return None
    made = {}
    for code, name, account_type in ACCOUNTS:
        row = await ledger.insert_account(tx.sql, {"code": code, "name": name, "type": account_type,
                                                   "tax_code": None, "active": True})  # fmt: skip
        assert row is not None, "the chart was empty"
        made[code] = row
    pairs = mapping(invoice_category)
    for kind, key, code in pairs:
        check_fits(kind, key, made[code])
    await ledger.replace_mappings(tx.sql, [(kind, key, made[code].id) for kind, key, code in pairs])
    await record(tx.sql, context, "accounts.seeded", "account", None, {
        "accounts": [f"{code} {name} ({account_type})" for code, name, account_type in ACCOUNTS],
        "mappings": [f"{kind} {key!r} -> {code}" if key else f"{kind} -> {code}" for kind, key, code in pairs],
    })  # fmt: skip
    return Seeded(len(ACCOUNTS), len(pairs))
