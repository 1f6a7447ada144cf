"""QuickBooks Online's journal entry import CSV (Settings > Import data > Journal entries).

Intuit's help ("Import journal entries", quickbooks.intuit.com/learn-support) lists what the file holds: Journal No.,
Journal Date, Account Name, Description, Debits, Credits; Name, which QuickBooks asks for on an Accounts Payable or
Accounts Receivable line; and Class and Location once class and location tracking are on. The header row is that of
Intuit's sample file: Journal No, Journal Date, Account Name, Debits, Credits, Description, Name, Currency, Location,
Class (the import screen then maps each column to its field). As documented there:

- rows with the same Journal No are one journal entry, whose debits must equal its credits;
- Account Name is the account's name (the import wants account numbers turned off; a sub-account as
  `Parent:Sub`, which a chart keeps as its name);
- Journal Date is MM/DD/YYYY, the date format of QuickBooks Online's US import;
- a debit line leaves Credits blank and a credit line Debits.

Name is the journal's counterparty, on every line of the journal (QuickBooks needs it on the A/P and A/R ones, and
the file does not know which accounts those are); Currency is the base currency the amounts are in; Class is the
line's cost center; Location stays empty. UTF-8 without a byte-order mark, comma separated, CRLF line ends. Lines
without an amount book nothing and are left out; text a person typed that starts like a spreadsheet formula is
written as text.
"""

from __future__ import annotations

import csv
from typing import BinaryIO

from domain.exports.rendering import ExportContext, Renderer, in_places, one_line, utf8_csv, with_amounts
from domain.ledger.repository import FrozenJournal, JournalLineRow
from domain.reports.renderers import spreadsheet_text

COLUMNS = (
    "Journal No",
    "Journal Date",
    "Account Name",
    "Debits",
    "Credits",
    "Description",
    "Name",
    "Currency",
    "Location",
    "Class",
)


class QuickBooksJournalEntries(Renderer):
    format = "quickbooks"
    label = "quickbooks_journal_entries"

    def __init__(self, context: ExportContext, out: BinaryIO) -> None:
        super().__init__(context, out)
        self.text = utf8_csv(out)
        self.rows = csv.writer(self.text, lineterminator="\r\n")
        self.rows.writerow(COLUMNS)

    def journal(self, journal: FrozenJournal) -> None:
        for line in with_amounts(journal):
            self.rows.writerow(self._row(journal, line))

    def _row(self, journal: FrozenJournal, line: JournalLineRow) -> list[str]:
        amount = in_places(line.base_amount, 2, journal, "QuickBooks' Debits and Credits")
        return [
            journal.number,
            journal.journal_date.strftime("%m/%d/%Y"),
            spreadsheet_text(one_line(line.account_name)),
            amount if line.is_debit else "",
            "" if line.is_debit else amount,
            spreadsheet_text(one_line(line.description or journal.description)),
            spreadsheet_text(one_line(journal.counterparty)),
            self.context.base_currency,
            "",
            spreadsheet_text(one_line(line.cost_center)),
        ]

    def finish(self) -> None:
        self.text.flush()
        self.text.detach()
