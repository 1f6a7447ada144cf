"""Each golden file read back as its importer would read it (the csv module with the format's dialect and encoding):
the columns exactly as the product documents them, every journal balancing, the dates and decimals of the format,
and the encoding (DATEV: Windows-1252, so a euro sign and an umlaut survive and the file is not UTF-8)."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

from tests.exports import month
from tests.exports.test_golden import golden

# Written out here from the products' documentation, not imported from the code under test.
JOURNAL_CSV_COLUMNS = [
    "journal", "date", "line", "account_code", "account_name", "debit", "credit", "currency", "rate", "base_debit",
    "base_credit", "base_currency", "tax_code", "cost_center", "counterparty", "description", "line_description",
    "link", "approved_by", "approved_at", "audit_hash",
]  # fmt: skip
XERO_COLUMNS = [
    "*Narration", "*Date", "Description", "*AccountCode", "*TaxRate", "*Amount", "TrackingName1", "TrackingOption1",
    "TrackingName2", "TrackingOption2",
]  # fmt: skip
QUICKBOOKS_COLUMNS = [
    "Journal No", "Journal Date", "Account Name", "Debits", "Credits", "Description", "Name", "Currency", "Location",
    "Class",
]  # fmt: skip
# The column line of DATEV's sample EXTF_Buchungsstapel.csv (developer.datev.de, DATEV-Format), format version 13.
DATEV_COLUMNS = (
    "Umsatz (ohne Soll/Haben-Kz);Soll/Haben-Kennzeichen;WKZ Umsatz;Kurs;Basis-Umsatz;WKZ Basis-Umsatz;Konto;"
    "Gegenkonto (ohne BU-Schlüssel);BU-Schlüssel;Belegdatum;Belegfeld 1;Belegfeld 2;Skonto;Buchungstext;"
    "Postensperre;Diverse Adressnummer;Geschäftspartnerbank;Sachverhalt;Zinssperre;Beleglink;"
    "Beleginfo - Art 1;Beleginfo - Inhalt 1;Beleginfo - Art 2;Beleginfo - Inhalt 2;Beleginfo - Art 3;"
    "Beleginfo - Inhalt 3;Beleginfo - Art 4;Beleginfo - Inhalt 4;Beleginfo - Art 5;Beleginfo - Inhalt 5;"
    "Beleginfo - Art 6;Beleginfo - Inhalt 6;Beleginfo - Art 7;Beleginfo - Inhalt 7;Beleginfo - Art 8;"
    "Beleginfo - Inhalt 8;KOST1 - Kostenstelle;KOST2 - Kostenstelle;Kost-Menge;EU-Land u. UStID (Bestimmung);"
    "EU-Steuersatz (Bestimmung);Abw. Versteuerungsart;Sachverhalt L+L;Funktionsergänzung L+L;"
    "BU 49 Hauptfunktionstyp;BU 49 Hauptfunktionsnummer;BU 49 Funktionsergänzung;"
    + "".join(f"Zusatzinformation - Art {n};Zusatzinformation- Inhalt {n};" for n in range(1, 21))
    + "Stück;Gewicht;Zahlweise;Forderungsart;Veranlagungsjahr;Zugeordnete Fälligkeit;Skontotyp;Auftragsnummer;"
    "Buchungstyp;USt-Schlüssel (Anzahlungen);EU-Land (Anzahlungen);Sachverhalt L+L (Anzahlungen);"
    "EU-Steuersatz (Anzahlungen);Erlöskonto (Anzahlungen);Herkunft-Kz;Buchungs GUID;KOST-Datum;"
    "SEPA-Mandatsreferenz;Skontosperre;Gesellschaftername;Beteiligtennummer;Identifikationsnummer;Zeichnernummer;"
    "Postensperre bis;Bezeichnung SoBil-Sachverhalt;Kennzeichen SoBil-Buchung;Festschreibung;Leistungsdatum;"
    "Datum Zuord. Steuerperiode;Fälligkeit;Generalumkehr (GU);Steuersatz;Land;Abrechnungsreferenz;BVV-Position;"
    "EU-Land u. UStID (Ursprung);EU-Steuersatz (Ursprung);Abw. Skontokonto"
).split(";")

TWO_PLACES = re.compile(r"^-?\d+\.\d{2}$")


def utf8_rows(data: bytes) -> list[list[str]]:
    assert not data.startswith(b"\xef\xbb\xbf"), "no byte-order mark"
    text = data.decode("utf-8")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", ""), "CRLF line ends only"
    return list(csv.reader(io.StringIO(text, newline="")))


def expected_nets() -> dict[str, dict[str, Decimal]]:
    """Per journal number, each account's net (debit minus credit) in the base currency, from the source data."""
    nets: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for journal in month.JOURNALS:
        for line in journal.lines:
            if line.base_amount:
                nets[journal.number][line.account_code] += line.debit - line.credit
    return {number: dict(accounts) for number, accounts in nets.items()}


def test_journal_csv_reads_back_balanced_with_every_line() -> None:
    header, *rows = utf8_rows(golden("journal_csv"))
    assert header == JOURNAL_CSV_COLUMNS
    assert len(rows) == month.LINES  # every line, the zero one too
    by_journal: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_journal[row[0]].append(dict(zip(header, row, strict=True)))
    assert list(by_journal) == [journal.number for journal in month.JOURNALS]  # date, then number
    for number, lines in by_journal.items():
        debit = sum(Decimal(line["base_debit"]) for line in lines)
        credit = sum(Decimal(line["base_credit"]) for line in lines)
        assert debit == credit > 0, number
        assert [int(line["line"]) for line in lines] == sorted(int(line["line"]) for line in lines)
        for line in lines:
            assert TWO_PLACES.match(line["base_debit"]) and TWO_PLACES.match(line["base_credit"])
            date.fromisoformat(line["date"])
    usd = by_journal["EXP-102"][0]
    assert (usd["debit"], usd["currency"], usd["rate"], usd["base_debit"]) == ("100.00", "USD", "0.92", "92.00")
    jpy = by_journal["PAY-55"][0]
    assert (jpy["debit"], jpy["currency"]) == ("1000000", "JPY")  # in the currency's own places
    approved = by_journal["EXP-101"][0]
    assert approved["approved_by"] == "Doe, Jane" and approved["approved_at"] == "2026-03-04T16:45:00Z"
    assert approved["link"] == "/api/v1/expenses/101" and approved["audit_hash"] == "a1" * 32
    assert "Müller" in approved["counterparty"]
    assert by_journal["INV-2026-0007"][0]["description"] == "Invoice INV-2026-0007 consulting March"  # one line
    assert by_journal["CN-2026-0002"][0]["line_description"].startswith("'=HYPERLINK(")  # text, not a formula


def test_xero_reads_back_with_signed_amounts_summing_to_zero_per_narration() -> None:
    header, *rows = utf8_rows(golden("xero"))
    assert header == XERO_COLUMNS
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    narrations: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        record = dict(zip(header, row, strict=True))
        assert TWO_PLACES.match(record["*Amount"]) and Decimal(record["*Amount"]) != 0
        assert record["*AccountCode"] and record["*TaxRate"]
        datetime.strptime(record["*Date"], "%d/%m/%Y")
        sums[(record["*Narration"], record["*Date"])] += Decimal(record["*Amount"])
        narrations[record["*Narration"].split(" ")[0]].add(record["*Narration"])
    assert all(total == 0 for total in sums.values()), sums
    assert len(sums) == len(month.JOURNALS)  # one journal per narration and date
    assert all(len(found) == 1 for found in narrations.values())
    assert len(rows) == month.LINES - 1  # the zero line books nothing
    first = dict(zip(header, rows[0], strict=True))
    assert (first["*Date"], first["*Amount"], first["TrackingName1"], first["TrackingOption1"]) == (
        "03/03/2026",
        "84.03",
        "Cost Center",
        "Sales",
    )
    credit = dict(zip(header, rows[2], strict=True))
    assert credit["*Amount"] == "-100.00"
    revenue = [dict(zip(header, row, strict=True)) for row in rows if row[3] == "8400"]
    assert {line["*TaxRate"] for line in revenue} == {"20% (VAT on Income)"}


def test_quickbooks_reads_back_with_debits_equal_to_credits_per_journal_no() -> None:
    header, *rows = utf8_rows(golden("quickbooks"))
    assert header == QUICKBOOKS_COLUMNS
    debits: dict[str, Decimal] = defaultdict(Decimal)
    credits: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        record = dict(zip(header, row, strict=True))
        assert bool(record["Debits"]) != bool(record["Credits"]), "one side per line, the other blank"
        amount = record["Debits"] or record["Credits"]
        assert TWO_PLACES.match(amount)
        datetime.strptime(record["Journal Date"], "%m/%d/%Y")
        debits[record["Journal No"]] += Decimal(record["Debits"] or 0)
        credits[record["Journal No"]] += Decimal(record["Credits"] or 0)
        assert record["Currency"] == month.BASE
    assert debits == credits
    assert list(debits) == [journal.number for journal in month.JOURNALS]
    first = dict(zip(header, rows[0], strict=True))
    assert (first["Journal Date"], first["Account Name"], first["Name"], first["Class"]) == (
        "03/03/2026",
        "Reisekosten",
        "Taxi Müller GmbH",
        "Sales",
    )


def datev_table(data: bytes) -> tuple[list[str], list[str], list[list[str]]]:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        raise AssertionError("a DATEV file is Windows-1252, not UTF-8")
    text = data.decode("cp1252")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", ""), "CRLF line ends only"
    header, columns, *rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"'))
    return header, columns, rows


def comma(value: str) -> Decimal:
    assert re.fullmatch(r"\d{1,10},\d{2}", value), value  # DATEV: positive, a decimal comma, two places
    return Decimal(value.replace(",", "."))


def test_datev_reads_back_as_a_booking_batch_that_moves_each_account_as_its_journal() -> None:
    data = golden("datev")
    header, columns, rows = datev_table(data)
    first_line = data.split(b"\r\n")[0].decode("cp1252")
    assert first_line.startswith('"EXTF";700;21;"Buchungsstapel";13;20260402081530123;;"RE";"";"";29098;55003;')
    assert len(header) == 31
    assert header[12:16] == ["20260101", "4", "20260301", "20260331"]  # fiscal year, account length, period
    assert header[21] == "EUR" and header[26] == "03"
    assert columns == DATEV_COLUMNS and len(columns) == 125
    at = {name: index for index, name in enumerate(columns)}
    legs: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    sides: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        assert len(row) == 125
        side, konto, contra = (
            row[at["Soll/Haben-Kennzeichen"]],
            row[at["Konto"]],
            row[at["Gegenkonto (ohne BU-Schlüssel)"]],
        )
        assert side in ("S", "H") and konto.isdigit() and contra.isdigit()
        assert re.fullmatch(r"(0[1-9]|[12]\d|3[01])03", row[at["Belegdatum"]])  # DDMM, in March
        umsatz = comma(row[at["Umsatz (ohne Soll/Haben-Kz)"]])
        foreign = row[at["Kurs"]] != ""
        base = comma(row[at["Basis-Umsatz"]]) if foreign else umsatz
        assert row[at["WKZ Basis-Umsatz" if foreign else "WKZ Umsatz"]] == "EUR"
        if foreign:
            kurs = Decimal(row[at["Kurs"]].replace(",", "."))
            assert abs(umsatz / kurs - base) < Decimal("0.01"), row[:6]  # Kurs: currency units per base unit
        signed = base if side == "S" else -base
        number = row[at["Belegfeld 1"]]
        legs[number][konto] += signed
        legs[number][contra] -= signed
        sides[number][side] += base
    # Each journal's accounts move exactly as its lines do; a clearing account nets to zero within its journal.
    expected = expected_nets()
    for number, accounts in legs.items():
        moved = {account: net for account, net in accounts.items() if net != 0}
        assert moved == expected[number], number
    assert list(legs) == [journal.number for journal in month.JOURNALS]
    assert sides["PAY-56"]["S"] == sides["PAY-56"]["H"] == Decimal("505.00")  # against the clearing account
    texts = {row[at["Buchungstext"]] for row in rows}
    assert "Fahrt zum Flughafen München" in texts and "Ticket 100 € (early bird)" in texts
    assert "Payment from ?? Trading" in texts  # what Windows-1252 cannot hold
    usd = next(row for row in rows if row[at["Belegfeld 1"]] == "EXP-102")
    assert usd[:6] == ["100,00", "S", "USD", "1,086957", "92,00", "EUR"]
    gbp = next(row for row in rows if row[at["Belegfeld 1"]] == "INV-2026-0007")
    assert gbp[:6] == ["1170,00", "H", "EUR", "", "", ""]  # GBP's DATEV rate (0,85) is below DATEV's range
    assert usd[at["KOST1 - Kostenstelle"]] == "MarketingEU"
