"""What the formats refuse, and the rules beyond the golden month: a journal that does not balance, what DATEV's
fields cannot hold, DATEV's tax keys, and Xero's 300 lines per file."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from core.settings import ExportSettings
from domain.exports.rendering import ExportRefused
from domain.ledger.repository import FrozenJournal, JournalLineRow
from tests.exports import month

FORMATS = ("journal_csv", "xero", "quickbooks", "datev")
EXPENSE = month.JOURNALS[0]  # EXP-101: two debits against one credit


def with_lines(journal: FrozenJournal, *lines: JournalLineRow) -> FrozenJournal:
    return replace(journal, lines=lines)


def line(
    no: int, code: str, debit: str, credit: str, currency: str = "EUR", original: str | None = None
) -> JournalLineRow:
    amount = Decimal(original or (debit if Decimal(debit) else credit))
    return JournalLineRow(0, no, code, f"Account {code}", Decimal(debit), Decimal(credit), currency, amount,
                          Decimal(1), "", "", "")  # fmt: skip


@pytest.mark.parametrize("export_format", FORMATS)
def test_a_journal_that_does_not_balance_is_refused(export_format: str) -> None:
    broken = with_lines(EXPENSE, line(1, "4670", "100.00", "0"), line(2, "1600", "0", "99.99"))
    with pytest.raises(ExportRefused, match="EXP-101 does not balance"):
        month.rendered(export_format, month.context((broken,)), (broken,))


@pytest.mark.parametrize("export_format", ["xero", "quickbooks", "datev"])
def test_an_amount_with_more_places_than_the_format_holds_is_refused_not_rounded(export_format: str) -> None:
    fine = with_lines(EXPENSE, line(1, "4670", "100.005", "0"), line(2, "1600", "0", "100.005"))
    with pytest.raises(ExportRefused, match="more than 2 decimal places"):
        month.rendered(export_format, month.context((fine,)), (fine,))


@pytest.mark.parametrize(("code", "why"), [("EXP-TRAVEL", "not a DATEV account"), ("123456", "not a DATEV account")])
def test_datev_refuses_an_account_that_is_not_a_datev_account(code: str, why: str) -> None:
    journal = with_lines(EXPENSE, line(1, code, "10.00", "0"), line(2, "1600", "0", "10.00"))
    with pytest.raises(ExportRefused, match=why):
        month.rendered("datev", month.context((journal,)), (journal,))
    longer = ExportSettings(**{**month.SETTINGS.model_dump(), "datev_account_length": 5})
    if code.isdigit():  # a sixth digit is a personal account's length once G/L accounts have five
        assert month.rendered("datev", month.context((journal,), settings=longer), (journal,))


def test_datev_needs_the_clearing_account_for_several_lines_on_both_sides() -> None:
    payment = month.JOURNALS[4]  # PAY-56
    without = ExportSettings(**{**month.SETTINGS.model_dump(), "datev_clearing_account": ""})
    with pytest.raises(ExportRefused, match="PAY-56 .*DATEV_CLEARING_ACCOUNT"):
        month.rendered("datev", month.context((payment,), settings=without), (payment,))


def test_datev_needs_the_consultant_and_client_numbers() -> None:
    without = ExportSettings(**{**month.SETTINGS.model_dump(), "datev_client_number": None})
    with pytest.raises(ExportRefused, match="DATEV_CLIENT_NUMBER"):
        month.rendered("datev", month.context(settings=without))


def test_datev_refuses_a_journal_dated_outside_the_month() -> None:
    late = replace(EXPENSE, journal_date=date(2026, 4, 1))
    with pytest.raises(ExportRefused, match="outside the batch's month 2026-03"):
        month.rendered("datev", month.context((late,)), (late,))


def test_datev_writes_the_bu_key_a_tax_code_is_mapped_to() -> None:
    keyed = ExportSettings(**{**month.SETTINGS.model_dump(), "datev_tax_keys": {"VAT19": "9"}})
    text = month.rendered("datev", month.context((EXPENSE,), settings=keyed), (EXPENSE,)).decode("cp1252")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))[2:]
    assert [row[8] for row in rows] == ["9", "9"]  # both lines carry VAT19
    with pytest.raises(ValidationError, match="1 to 4 digits"):
        ExportSettings(datev_tax_keys={"VAT19": "nine"})


def test_a_fiscal_year_starting_in_july_starts_the_year_before_a_march_batch() -> None:
    july = ExportSettings(**{**month.SETTINGS.model_dump(), "datev_fiscal_year_start_month": 7})
    header = month.rendered("datev", month.context(settings=july)).split(b"\r\n")[0].decode("cp1252").split(";")
    assert header[12] == "20250701"


def many_journals(count: int) -> tuple[FrozenJournal, ...]:
    return tuple(replace(EXPENSE, id=n, number=f"EXP-{n:04d}", source_id=n) for n in range(1, count + 1))


def test_xero_splits_a_month_over_300_lines_into_files_that_never_split_a_journal() -> None:
    journals = many_journals(120)  # 360 lines
    data = month.rendered("xero", month.context(journals), journals)
    assert data == month.rendered("xero", month.context(journals), journals)  # the archive's bytes are stable too
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert names == ["xero_manual_journals_2026-03_part-001.csv", "xero_manual_journals_2026-03_part-002.csv"]
    seen: list[str] = []
    for name in names:
        header, *rows = list(csv.reader(io.StringIO(archive.read(name).decode("utf-8"), newline="")))
        assert header[0] == "*Narration" and len(rows) <= 300
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for row in rows:
            sums[row[0]] += Decimal(row[5])
        assert all(total == 0 for total in sums.values())
        seen += list(sums)
    assert len(seen) == len(set(seen)) == 120  # every journal once, whole, in one file
    small = many_journals(100)  # exactly 300 lines: one CSV
    assert month.rendered("xero", month.context(small), small).startswith(b"*Narration,")


@pytest.mark.parametrize("export_format", ["xero", "quickbooks", "datev"])
def test_a_journal_without_an_amount_books_nothing_in_the_products(export_format: str) -> None:
    nothing = with_lines(month.JOURNALS[4], line(1, "4990", "0", "0"), line(2, "1400", "0", "0"))
    header_only = month.rendered(export_format, month.context((), lines=0), ())
    assert month.rendered(export_format, month.context((nothing,)), (nothing,)) == header_only
