"""Our own balanced journal CSV: every line of every journal, in the original currency and in the base currency,
with what an auditor follows it back by (the link to the entry, who approved it and when, the audit hash).

The columns are ours (issue 27 names them): the journal (its number, e.g. EXP-42 or INV-2026-0001), its date, the
line number, the account's code and name, the line's debit and credit in its original currency, that currency, the
rate (base units of one unit of it), the base debit and credit and the base currency, the tax code, the cost center,
the counterparty, the journal's description and the line's, the link to the entry, who approved it and when
(ISO 8601, UTC) and the audit hash. UTF-8 without a byte-order mark, comma separated, a header row, CRLF line ends
(RFC 4180). Both sides of a line are written, the empty one as zero, so a column sums as it stands; text a person
typed that starts like a spreadsheet formula is written as text (`spreadsheet_text`, the rule of every CSV export).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from typing import BinaryIO

from domain.exports.rendering import ExportContext, Renderer, in_places, one_line, utf8_csv
from domain.ledger.repository import FrozenJournal, JournalLineRow
from domain.money import minor_units, rate_str
from domain.reports.renderers import spreadsheet_text

COLUMNS = (
    "journal",
    "date",
    "line",
    "account_code",
    "account_name",
    "debit",
    "credit",
    "currency",
    "rate",
    "base_debit",
    "base_credit",
    "base_currency",
    "tax_code",
    "cost_center",
    "counterparty",
    "description",
    "line_description",
    "link",
    "approved_by",
    "approved_at",
    "audit_hash",
)
# The places an original amount is written with when its currency has no ISO 4217 minor units (what the column holds).
_STORED_PLACES = 4


def _places(currency: str) -> int:
    units = minor_units(currency)
    return units if units is not None else _STORED_PLACES


def _utc(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else ""


def _text(value: str) -> str:
    return spreadsheet_text(one_line(value))


class JournalCsv(Renderer):
    format = "journal_csv"
    label = "journals"

    def __init__(self, context: ExportContext, out: BinaryIO) -> None:
        super().__init__(context, out)
        self.text = utf8_csv(out)
        self.rows = csv.writer(self.text, lineterminator="\r\n")
        self.rows.writerow(COLUMNS)
        self.base_places = _places(context.base_currency)

    def journal(self, journal: FrozenJournal) -> None:
        for line in journal.lines:
            self.rows.writerow(self._row(journal, line))

    def _row(self, journal: FrozenJournal, line: JournalLineRow) -> list[str]:
        places = _places(line.currency)
        original = in_places(line.original_amount, places, journal, "its currency")
        zero = in_places(Decimal(0), places, journal, "its currency")
        base = self.base_places
        return [
            journal.number,
            journal.journal_date.isoformat(),
            str(line.line_no),
            line.account_code,
            _text(line.account_name),
            original if line.is_debit else zero,
            zero if line.is_debit else original,
            line.currency,
            rate_str(line.rate),
            in_places(line.debit, base, journal, "the base currency"),
            in_places(line.credit, base, journal, "the base currency"),
            self.context.base_currency,
            line.tax_code,
            _text(line.cost_center),
            _text(journal.counterparty),
            _text(journal.description),
            _text(line.description),
            journal.link,
            _text(journal.approved_by),
            _utc(journal.approved_at),
            journal.audit_hash,
        ]

    def finish(self) -> None:
        self.text.flush()
        self.text.detach()
