"""Xero's manual journal import CSV (Accounting > Manual Journals > Import).

The columns are those of Xero's template, as Xero's help documents them ("Add or post multiple manual journals",
help.xero.com/int/ManualJournalsImport): Narration, Date, Description, AccountCode, TaxRate, Amount, TrackingName1,
TrackingOption1, TrackingName2, TrackingOption2; the downloaded template marks the mandatory ones with an asterisk
(`*Narration`, `*Date`, `*AccountCode`, `*TaxRate`, `*Amount`), and so does this file. As documented there:

- rows with the same Narration and Date become one journal, so each journal's narration starts with its number
  (unique within a closing) and is the same on all its rows;
- Date is dd/mm/yyyy;
- AccountCode is the code, not the name;
- TaxRate is the name of a tax rate of the organisation (mandatory): XERO_TAX_RATES maps our tax codes to those
  names, and a line without a mapped code gets XERO_NO_TAX_RATE. Xero computes tax from it on top of the amount,
  while our journals hold their tax on lines of their own: map a code only where that is what the books want;
- Amount is signed, a debit positive and a credit negative, so each journal's amounts sum to zero;
- at most 300 lines per file: a month with more is a ZIP of numbered CSV files of at most 300 lines each, a journal
  never split between two (Xero imports each file on its own).

The cost center goes in TrackingOption1 under the tracking category XERO_TRACKING_CATEGORY (none when it is empty).
UTF-8 without a byte-order mark, comma separated, CRLF line ends. Lines without an amount book nothing and are left
out; text a person typed that starts like a spreadsheet formula is written as text.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC
from typing import BinaryIO

from domain.exports.rendering import (
    ExportContext,
    ExportRefused,
    Renderer,
    in_places,
    one_line,
    utf8_csv,
    with_amounts,
)
from domain.ledger.repository import FrozenJournal, JournalLineRow
from domain.reports.renderers import spreadsheet_text

COLUMNS = (
    "*Narration",
    "*Date",
    "Description",
    "*AccountCode",
    "*TaxRate",
    "*Amount",
    "TrackingName1",
    "TrackingOption1",
    "TrackingName2",
    "TrackingOption2",
)
LINES_PER_FILE = 300  # Xero's limit for one import file


def narration(journal: FrozenJournal) -> str:
    return spreadsheet_text(one_line(f"{journal.number} {journal.description}"))


class XeroManualJournals(Renderer):
    format = "xero"
    label = "xero_manual_journals"

    def __init__(self, context: ExportContext, out: BinaryIO) -> None:
        super().__init__(context, out)
        self.split = context.lines > LINES_PER_FILE
        self.parts: zipfile.ZipFile | None = None
        self.part: list[list[str]] = []
        self.parts_written = 0
        if self.split:
            self.parts = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED)
        else:
            self.text = utf8_csv(out)
            self.rows = csv.writer(self.text, lineterminator="\r\n")
            self.rows.writerow(COLUMNS)

    @property
    def content_type(self) -> str:
        return "application/zip" if self.split else "text/csv; charset=utf-8"

    @property
    def extension(self) -> str:
        return "zip" if self.split else "csv"

    def journal(self, journal: FrozenJournal) -> None:
        rows = [self._row(journal, line) for line in with_amounts(journal)]
        if not self.split:
            self.rows.writerows(rows)
            return
        if len(rows) > LINES_PER_FILE:
            raise ExportRefused(
                f"journal {journal.number} has {len(rows)} lines; Xero imports at most {LINES_PER_FILE} in one file",
                journal=journal.number,
            )
        if len(self.part) + len(rows) > LINES_PER_FILE:
            self._write_part()
        self.part.extend(rows)

    def _row(self, journal: FrozenJournal, line: JournalLineRow) -> list[str]:
        settings = self.context.settings
        signed = line.debit if line.is_debit else -line.credit
        category = settings.xero_tracking_category if line.cost_center else ""
        return [
            narration(journal),
            journal.journal_date.strftime("%d/%m/%Y"),
            spreadsheet_text(one_line(line.description or journal.description)),
            line.account_code,
            settings.xero_tax_rates.get(line.tax_code, settings.xero_no_tax_rate),
            in_places(signed, 2, journal, "Xero's Amount"),
            category,
            spreadsheet_text(one_line(line.cost_center)) if category else "",
            "",
            "",
        ]

    def _write_part(self) -> None:
        assert self.parts is not None
        self.parts_written += 1
        buffer = io.StringIO(newline="")
        rows = csv.writer(buffer, lineterminator="\r\n")
        rows.writerow(COLUMNS)
        rows.writerows(self.part)
        name = f"{self.label}_{self.context.month_label}_part-{self.parts_written:03d}.csv"
        # Fixed metadata (the closing's time, a Unix mode, no compression), so the archive's bytes depend on the
        # journals alone.
        stamp = self.context.closed_at.astimezone(UTC)
        entry = zipfile.ZipInfo(name, date_time=(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, 0))
        entry.create_system = 3
        entry.external_attr = 0o644 << 16
        entry.compress_type = zipfile.ZIP_STORED
        self.parts.writestr(entry, buffer.getvalue().encode("utf-8"))
        self.part = []

    def finish(self) -> None:
        if self.parts is None:
            self.text.flush()
            self.text.detach()
            return
        if self.part or not self.parts_written:
            self._write_part()
        self.parts.close()
