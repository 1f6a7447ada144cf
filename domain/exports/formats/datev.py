"""DATEV's booking batch: the DATEV format's "Buchungsstapel" (EXTF, header version 700, category 21, format
version 13), as DATEV documents it on developer.datev.de (DATEV-Format > Header, > Buchungsstapel, and the sample
file `EXTF_Buchungsstapel.csv` there).

The file: line 1 the header record (31 fields, `HEADER_FIELDS`), line 2 the 125 column names (`COLUMNS`, as the
sample file writes them), then one row per booking. Semicolon separated; text in double quotes (a quote doubled, no
line breaks); numbers bare with a decimal comma and no thousands separator; Windows-1252 (a character it lacks
becomes "?"); CRLF line ends. Columns this export does not fill are left empty.

The header: "EXTF"; 700; 21; "Buchungsstapel"; 13; created (the closing's `closed_at` in UTC, YYYYMMDDHHMMSSFFF,
never the time of the export: a second batch of the closing is byte-identical); imported (empty); origin "RE";
exported by and imported by (empty); consultant and client number (DATEV_CONSULTANT_NUMBER, DATEV_CLIENT_NUMBER);
the fiscal year's first day (DATEV_FISCAL_YEAR_START_MONTH); the G/L account length (DATEV_ACCOUNT_LENGTH); the
batch's period (the month's first and last day); its label ("Journals YYYY-MM closing N"); dictation initials
(empty); booking type 1 (financial accounting); accounting purpose 0; fixed 0 (not locked: the adviser reviews and
locks it); the currency (the base currency); five fields DATEV reserves; the chart of accounts
(DATEV_CHART_OF_ACCOUNTS); and the last four, reserved or for DATEV's own use.

A DATEV booking names an account (Konto) and a contra account (Gegenkonto) and whether the amount is a debit or a
credit of the account (Soll/Haben-Kennzeichen S or H); a journal of ours has any number of lines. Mapped so:

- a journal with exactly one credit line: each debit line is a booking "line's account S, contra the credit line's
  account" (an expense and its tax against the payable; both sides single: one booking);
- otherwise, with exactly one debit line: each credit line is a booking "line's account H, contra the debit line's
  account" (a receivable against revenue and tax);
- otherwise (several lines on both sides): each line is a booking against DATEV_CLEARING_ACCOUNT, S for a debit and
  H for a credit, so the clearing account nets to zero within the journal. Without that setting such a journal
  refuses the export, naming it.

So every booking's amount is one of our lines', and each journal's accounts move in DATEV exactly as in its lines.
A booking's amount (Umsatz, always positive) is in the base currency. A line in another currency is booked in it
when DATEV can hold that: Umsatz the original amount, WKZ Umsatz its currency, Kurs DATEV's rate (units of the
currency for one unit of the base currency, the inverse of ours, six places, between 1 and 9999 as DATEV's field
allows), Basis-Umsatz the base amount and WKZ Basis-Umsatz the base currency; otherwise it is booked in the base
currency. Belegdatum is the journal's date as DDMM (the header's period gives the year); Belegfeld 1 the journal's
number (the characters DATEV allows, at most 36); Buchungstext the line's description, else the journal's (60
characters, one that starts like a spreadsheet formula written as text); KOST1 the cost center (letters, digits and
spaces, 36 characters); BU-Schlüssel the key DATEV_TAX_KEYS maps the line's tax code to, else empty: the journals
hold their tax on lines of their own, and a key would make DATEV compute it again.

Refused, naming the journal: an account code that is not digits or is longer than the account length plus one (a
personal account's length), a date outside the month, an amount DATEV's fields cannot hold, more than 99,999
bookings (DATEV's limit for one batch), and a DATEV export without the consultant and client numbers.
"""

from __future__ import annotations

import re
from datetime import UTC, date
from decimal import Decimal
from typing import BinaryIO

from domain.exports.rendering import ExportContext, ExportRefused, Renderer, in_places, one_line, with_amounts
from domain.ledger.repository import FrozenJournal, JournalLineRow
from domain.reports.renderers import spreadsheet_text

ENCODING = "cp1252"
HEADER_FIELDS = 31
COLUMNS = (
    "Umsatz (ohne Soll/Haben-Kz)",
    "Soll/Haben-Kennzeichen",
    "WKZ Umsatz",
    "Kurs",
    "Basis-Umsatz",
    "WKZ Basis-Umsatz",
    "Konto",
    "Gegenkonto (ohne BU-Schlüssel)",
    "BU-Schlüssel",
    "Belegdatum",
    "Belegfeld 1",
    "Belegfeld 2",
    "Skonto",
    "Buchungstext",
    "Postensperre",
    "Diverse Adressnummer",
    "Geschäftspartnerbank",
    "Sachverhalt",
    "Zinssperre",
    "Beleglink",
    *(f"Beleginfo - {kind} {n}" for n in range(1, 9) for kind in ("Art", "Inhalt")),
    "KOST1 - Kostenstelle",
    "KOST2 - Kostenstelle",
    "Kost-Menge",
    "EU-Land u. UStID (Bestimmung)",
    "EU-Steuersatz (Bestimmung)",
    "Abw. Versteuerungsart",
    "Sachverhalt L+L",
    "Funktionsergänzung L+L",
    "BU 49 Hauptfunktionstyp",
    "BU 49 Hauptfunktionsnummer",
    "BU 49 Funktionsergänzung",
    # As DATEV's sample file spells them: "Zusatzinformation - Art 1", then "Zusatzinformation- Inhalt 1".
    *(name for n in range(1, 21) for name in (f"Zusatzinformation - Art {n}", f"Zusatzinformation- Inhalt {n}")),
    "Stück",
    "Gewicht",
    "Zahlweise",
    "Forderungsart",
    "Veranlagungsjahr",
    "Zugeordnete Fälligkeit",
    "Skontotyp",
    "Auftragsnummer",
    "Buchungstyp",
    "USt-Schlüssel (Anzahlungen)",
    "EU-Land (Anzahlungen)",
    "Sachverhalt L+L (Anzahlungen)",
    "EU-Steuersatz (Anzahlungen)",
    "Erlöskonto (Anzahlungen)",
    "Herkunft-Kz",
    "Buchungs GUID",
    "KOST-Datum",
    "SEPA-Mandatsreferenz",
    "Skontosperre",
    "Gesellschaftername",
    "Beteiligtennummer",
    "Identifikationsnummer",
    "Zeichnernummer",
    "Postensperre bis",
    "Bezeichnung SoBil-Sachverhalt",
    "Kennzeichen SoBil-Buchung",
    "Festschreibung",
    "Leistungsdatum",
    "Datum Zuord. Steuerperiode",
    "Fälligkeit",
    "Generalumkehr (GU)",
    "Steuersatz",
    "Land",
    "Abrechnungsreferenz",
    "BVV-Position",
    "EU-Land u. UStID (Ursprung)",
    "EU-Steuersatz (Ursprung)",
    "Abw. Skontokonto",
)
assert len(COLUMNS) == 125, len(COLUMNS)
_AT = {name: index for index, name in enumerate(COLUMNS)}

MAX_BOOKINGS = 99_999  # DATEV's limit for one booking batch
MAX_UMSATZ = Decimal("9999999999.99")  # Umsatz and Basis-Umsatz: at most ten digits before the comma
KURS_PLACES = Decimal("0.000001")
KURS_RANGE = (Decimal(1), Decimal("9999.999999"))  # DATEV's Kurs: 1 to 4 digits before the comma, never 0
_BELEGFELD = re.compile(r"[^A-Za-z0-9$&%*+\-/]")  # the characters DATEV allows in Belegfeld 1
_KOST = re.compile(r"[^\w ]")


def quoted(text: str) -> str:
    """A DATEV text field: in double quotes, a quote doubled."""
    return '"' + text.replace('"', '""') + '"'


def amount(value: Decimal, journal: FrozenJournal) -> str:
    """A DATEV amount: positive, two places, a decimal comma ("1234,50")."""
    if value > MAX_UMSATZ:
        raise ExportRefused(
            f"journal {journal.number}: {value} is more than a DATEV amount holds", journal=journal.number
        )
    return in_places(value, 2, journal, "a DATEV amount").replace(".", ",")


def cp1252(text: str) -> str:
    """The text as Windows-1252 will carry it (a character it lacks becomes "?"), before it is trimmed to a length."""
    return text.encode(ENCODING, errors="replace").decode(ENCODING)


def fiscal_year_start(month: date, start_month: int) -> date:
    """The first day of the fiscal year the month is in."""
    return date(month.year if month.month >= start_month else month.year - 1, start_month, 1)


class DatevBuchungsstapel(Renderer):
    format = "datev"
    label = "EXTF_Buchungsstapel"  # DATEV imports a file whose name starts with EXTF_

    def __init__(self, context: ExportContext, out: BinaryIO) -> None:
        super().__init__(context, out)
        settings = context.settings
        if not settings.datev_ready:
            raise ExportRefused("a DATEV export needs DATEV_CONSULTANT_NUMBER and DATEV_CLIENT_NUMBER to be set")
        self.bookings = 0
        self._line(self.header())
        self._line(";".join(COLUMNS))

    @property
    def content_type(self) -> str:
        return "text/csv; charset=windows-1252"

    def header(self) -> str:
        context, settings = self.context, self.context.settings
        created = context.closed_at.astimezone(UTC)
        fields = [
            quoted("EXTF"),
            "700",
            "21",
            quoted("Buchungsstapel"),
            "13",
            created.strftime("%Y%m%d%H%M%S") + f"{created.microsecond // 1000:03d}",
            "",
            quoted("RE"),
            quoted(""),
            quoted(""),
            str(settings.datev_consultant_number),
            str(settings.datev_client_number),
            fiscal_year_start(context.month, settings.datev_fiscal_year_start_month).strftime("%Y%m%d"),
            str(settings.datev_account_length),
            context.month.strftime("%Y%m%d"),
            context.last_day.strftime("%Y%m%d"),
            quoted(f"Journals {context.month_label} closing {context.closing}"[:30]),
            quoted(""),
            "1",
            "0",
            "0",
            quoted(context.base_currency),
            "",
            quoted(""),
            "",
            "",
            quoted(settings.datev_chart_of_accounts),
            "",
            "",
            quoted(""),
            quoted(""),
        ]
        assert len(fields) == HEADER_FIELDS
        return ";".join(fields)

    def journal(self, journal: FrozenJournal) -> None:
        if not self.context.month <= journal.journal_date <= self.context.last_day:
            raise ExportRefused(
                f"journal {journal.number} is dated {journal.journal_date}, outside the batch's month "
                f"{self.context.month_label}",
                journal=journal.number,
            )
        for line, contra, side in self.bookings_of(journal):
            self.bookings += 1
            if self.bookings > MAX_BOOKINGS:
                raise ExportRefused(f"the month holds more than {MAX_BOOKINGS} bookings, DATEV's limit for a batch")
            self._line(";".join(self._row(journal, line, contra, side)))

    def bookings_of(self, journal: FrozenJournal) -> list[tuple[JournalLineRow, str, str]]:
        """(the line booked, the contra account, S or H) for each booking of the journal (see the module's
        docstring)."""
        lines = with_amounts(journal)
        if not lines:
            return []
        debits = [line for line in lines if line.is_debit]
        credits = [line for line in lines if not line.is_debit]
        if len(credits) == 1:
            return [(line, credits[0].account_code, "S") for line in debits]
        if len(debits) == 1:
            return [(line, debits[0].account_code, "H") for line in credits]
        clearing = self.context.settings.datev_clearing_account
        if not clearing:
            raise ExportRefused(
                f"journal {journal.number} has several debit and several credit lines: DATEV books it against "
                "DATEV_CLEARING_ACCOUNT, which is not set",
                journal=journal.number,
            )
        return [(line, clearing, "S" if line.is_debit else "H") for line in lines]

    def _account(self, code: str, journal: FrozenJournal) -> str:
        longest = self.context.settings.datev_account_length + 1
        if not (code.isascii() and code.isdigit() and len(code) <= longest):
            raise ExportRefused(
                f"journal {journal.number}: account {code!r} is not a DATEV account (digits, at most {longest}: "
                "DATEV_ACCOUNT_LENGTH plus one)",
                journal=journal.number,
                account=code,
            )
        return code

    def _row(self, journal: FrozenJournal, line: JournalLineRow, contra: str, side: str) -> list[str]:
        fields = [""] * len(COLUMNS)
        base = self.context.base_currency
        fields[_AT["Umsatz (ohne Soll/Haben-Kz)"]] = amount(line.base_amount, journal)
        fields[_AT["WKZ Umsatz"]] = quoted(base)
        kurs = self._kurs(line, journal)
        if kurs is not None:
            fields[_AT["Umsatz (ohne Soll/Haben-Kz)"]] = amount(line.original_amount, journal)
            fields[_AT["WKZ Umsatz"]] = quoted(line.currency)
            fields[_AT["Kurs"]] = kurs
            fields[_AT["Basis-Umsatz"]] = amount(line.base_amount, journal)
            fields[_AT["WKZ Basis-Umsatz"]] = quoted(base)
        fields[_AT["Soll/Haben-Kennzeichen"]] = quoted(side)
        fields[_AT["Konto"]] = self._account(line.account_code, journal)
        fields[_AT["Gegenkonto (ohne BU-Schlüssel)"]] = self._account(contra, journal)
        fields[_AT["BU-Schlüssel"]] = quoted(self.context.settings.datev_tax_keys.get(line.tax_code, ""))
        fields[_AT["Belegdatum"]] = journal.journal_date.strftime("%d%m")
        fields[_AT["Belegfeld 1"]] = quoted(_BELEGFELD.sub("", journal.number)[:36])
        fields[_AT["Belegfeld 2"]] = quoted("")
        fields[_AT["Buchungstext"]] = quoted(
            cp1252(spreadsheet_text(one_line(line.description or journal.description)))[:60]
        )
        fields[_AT["KOST1 - Kostenstelle"]] = quoted(_KOST.sub("", cp1252(line.cost_center))[:36])
        fields[_AT["KOST2 - Kostenstelle"]] = quoted("")
        return fields

    def _kurs(self, line: JournalLineRow, journal: FrozenJournal) -> str | None:
        """DATEV's rate for a line in another currency than the base, or None when the line is booked in the base
        currency (it is in it, or DATEV's fields cannot hold its original amount or rate)."""
        if line.currency == self.context.base_currency or line.rate <= 0 or line.original_amount <= 0:
            return None
        kurs = (Decimal(1) / line.rate).quantize(KURS_PLACES)
        low, high = KURS_RANGE
        fits_two_places = line.original_amount == line.original_amount.quantize(Decimal("0.01"))
        if not (low <= kurs <= high) or not fits_two_places or line.original_amount > MAX_UMSATZ:
            return None
        return format(kurs, "f").replace(".", ",")

    def finish(self) -> None:
        """Nothing is buffered: each line is written as it is made."""

    def _line(self, text: str) -> None:
        self.out.write(text.encode(ENCODING, errors="replace") + b"\r\n")
