"""The check at submit, at the edges of each threshold: amount (1% of THIS expense's base amount), date (3 days),
window (90 days back), vendor similarity (0.6, pg_trgm), owner, status, and the same receipt anywhere."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from activities.deps import ActivityDeps
from core.settings import Settings
from domain.duplicates import repository
from domain.duplicates.check import DuplicateRules, check_expense, rules_from
from tests.conftest import MakeUser
from tests.duplicates.conftest import DAY, expense, found, found_ids, receipt, rolled_back, similarity

SHA_A = "a" * 64
SHA_B = "b" * 64


def test_the_defaults_are_the_settings_defaults(settings: Settings) -> None:
    assert rules_from(settings) == DuplicateRules()
    assert DuplicateRules() == DuplicateRules(True, 3, 90, Decimal("1"), 0.6)


@pytest.mark.parametrize(
    ("this", "other", "matched"),
    [
        ("100.00", "101.00", True),  # exactly 1% above
        ("100.00", "101.01", False),  # a cent beyond
        ("100.00", "99.00", True),  # exactly 1% below
        ("100.00", "98.99", False),
        ("101.00", "100.00", True),  # 1.00 is within 1% of 101.00 (1.01): the percent is of THIS expense's amount
        ("99.00", "100.00", False),  # 1.00 is beyond 1% of 99.00 (0.99)
        ("12345.67", "12469.12", True),  # 123.45 <= 123.4567
        ("12345.67", "12469.13", False),
    ],
)
async def test_amounts_within_one_percent_of_this_expense(
    this: str, other: str, matched: bool, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    owner = await make_user("employee")
    async with rolled_back(activity_deps) as sql:
        earlier = await expense(sql, owner.id, other)
        submitted = await expense(sql, owner.id, this)
        assert await found(sql, submitted) == ({(earlier.id, "similar")} if matched else set())


CENT = Decimal("0.01")


@hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    units=st.integers(min_value=100, max_value=5 * 10**6),
    aligned=st.booleans(),
    side=st.sampled_from([1, -1]),
    cents_off=st.integers(min_value=-3, max_value=3),
    percent=st.sampled_from([Decimal("1"), Decimal("0.5"), Decimal("2.5")]),
)
async def test_amounts_around_the_tolerance(
    units: int,
    aligned: bool,
    side: int,
    cents_off: int,
    percent: Decimal,
    activity_deps: ActivityDeps,
    make_user: MakeUser,
) -> None:
    """Other amounts a few cents either side of the edge, above or below this one. `aligned`: this amount is whole
    even units, so its edge falls on a cent and the other amount can sit exactly on it."""
    base = Decimal(2 * units) if aligned else Decimal(units) / 100
    edge = base * percent / 100
    other = base + side * edge.quantize(CENT, ROUND_DOWN) + Decimal(cents_off) / 100
    expected = abs(other - base) <= edge
    event("within the tolerance" if expected else "beyond it")
    event("exactly at the edge" if abs(other - base) == edge else "off the edge")
    owner = await make_user("employee")
    async with rolled_back(activity_deps) as sql:
        earlier = await expense(sql, owner.id, str(other))
        submitted = await expense(sql, owner.id, str(base))
        rules = DuplicateRules(amount_tolerance_percent=percent)
        assert (earlier.id in await found_ids(sql, submitted, rules)) is expected


@pytest.mark.parametrize(("days", "matched"), [(0, True), (3, True), (4, False), (-3, True), (-4, False)])
async def test_dates_within_three_days_either_side(
    days: int, matched: bool, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    owner = await make_user("employee")
    async with rolled_back(activity_deps) as sql:
        other = await expense(sql, owner.id, day=DAY + timedelta(days=days))
        submitted = await expense(sql, owner.id)
        assert (other.id in await found_ids(sql, submitted)) is matched


@pytest.mark.parametrize(("days", "matched"), [(-90, True), (-91, False), (100, True), (101, False)])
async def test_the_window_caps_how_far_back_the_check_looks(
    days: int, matched: bool, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    """With a tolerance wider than the window (100 days), the window (90) bounds the look back; an expense dated
    after this one is bound by the tolerance alone."""
    owner = await make_user("employee")
    rules = DuplicateRules(date_tolerance_days=100, window_days=90)
    async with rolled_back(activity_deps) as sql:
        other = await expense(sql, owner.id, day=DAY + timedelta(days=days))
        submitted = await expense(sql, owner.id)
        assert (other.id in await found_ids(sql, submitted, rules)) is matched


@pytest.mark.parametrize(
    ("mine", "theirs", "threshold", "expected_similarity", "matched"),
    [
        ("Uber", "Uber BV", 0.6, 0.625, True),  # just above
        ("Shell", "Shell Oil", 0.6, 0.6, True),  # exactly at (6 of 10 trigrams): at or above matches
        ("Starbucks", "Starbucks Coffee", 0.6, 0.5882353, False),  # just below
        ("Amazon", "Amazon EU", 0.7, 0.7, True),  # exactly at 0.7, which float4 rounds below the float8 0.7
        ("Amazon", "Amazon EU", 0.71, 0.7, False),
        ("RAIL CO", "rail co", 0.6, 1.0, True),  # case does not matter
        ("Rail Co", "Rail Company", 0.6, 0.5, False),
    ],
)
async def test_vendor_similarity_at_the_threshold(
    mine: str,
    theirs: str,
    threshold: float,
    expected_similarity: float,
    matched: bool,
    activity_deps: ActivityDeps,
    make_user: MakeUser,
) -> None:
    owner = await make_user("employee")
    async with rolled_back(activity_deps) as sql:
        assert await similarity(sql, mine, theirs) == pytest.approx(expected_similarity, abs=1e-6)
        other = await expense(sql, owner.id, vendor=theirs)
        submitted = await expense(sql, owner.id, vendor=mine)
        rules = DuplicateRules(vendor_similarity=threshold)
        assert (other.id in await found_ids(sql, submitted, rules)) is matched


@pytest.mark.parametrize(("mine", "theirs"), [(None, "Rail Co"), ("Rail Co", None), (None, None)])
async def test_without_a_vendor_nothing_is_similar(
    mine: str | None, theirs: str | None, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    owner = await make_user("employee")
    async with rolled_back(activity_deps) as sql:
        await expense(sql, owner.id, vendor=theirs)
        submitted = await expense(sql, owner.id, vendor=mine)
        assert await found(sql, submitted) == set()


async def test_only_the_owners_own_live_expenses_count(activity_deps: ActivityDeps, make_user: MakeUser) -> None:
    owner, someone_else = await make_user("employee"), await make_user("employee")
    async with rolled_back(activity_deps) as sql:
        counted = [await expense(sql, owner.id, status=status) for status in repository.COUNTED_STATUSES]
        for status in ("draft", "withdrawn", "rejected", "expired"):
            await expense(sql, owner.id, status=status)
        await expense(sql, someone_else.id)
        await expense(sql, owner.id, kind="revenue")
        submitted = await expense(sql, owner.id)
        assert await found(sql, submitted) == {(entry.id, "similar") for entry in counted}
        assert set(repository.COUNTED_STATUSES) == {"pending", "changes_requested", "approved"}


async def test_the_same_receipt_anywhere(activity_deps: ActivityDeps, make_user: MakeUser) -> None:
    owner, someone_else = await make_user("employee"), await make_user("employee")
    async with rolled_back(activity_deps) as sql:
        theirs = await expense(sql, someone_else.id, "55.00", vendor="Elsewhere", status="draft")  # any state
        twice = await expense(sql, someone_else.id, "10.00", vendor=None, status="approved")
        uploading = await expense(sql, someone_else.id, "10.00")
        unrelated = await expense(sql, someone_else.id, "10.00")
        submitted = await expense(sql, owner.id, "99.00", vendor="Somewhere")
        await receipt(sql, submitted.id, SHA_A, owner.id)
        await receipt(sql, submitted.id, SHA_B, owner.id)
        await receipt(sql, theirs.id, SHA_A, someone_else.id)
        await receipt(sql, twice.id, SHA_A, someone_else.id)
        await receipt(sql, twice.id, SHA_B, someone_else.id)
        await receipt(sql, uploading.id, SHA_A, someone_else.id, status="pending")  # not stored yet: not checked
        await receipt(sql, unrelated.id, "c" * 64, someone_else.id)
        findings = await check_expense(sql, submitted, DuplicateRules())
        by_other = {row.other_entry_id: row for row in findings.rows}
        assert set(by_other) == {theirs.id, twice.id}
        assert {row.reason for row in findings.rows} == {"same_receipt"}
        assert by_other[theirs.id].details["sha256"] == SHA_A
        assert by_other[theirs.id].details["status"] == "draft"
        assert by_other[twice.id].details["receipts"] == 2  # one row per other entry, however many receipts match


async def test_a_recheck_keeps_what_still_matches_and_drops_what_no_longer_does(
    activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    owner = await make_user("employee")
    async with rolled_back(activity_deps) as sql:
        hundred = await expense(sql, owner.id, "100.00")
        dismissed = await expense(sql, owner.id, "100.50")
        two_hundred = await expense(sql, owner.id, "200.00")
        submitted = await expense(sql, owner.id, "100.00")
        first = await check_expense(sql, submitted, DuplicateRules())
        assert {row.other_entry_id for row in first.rows} == {hundred.id, dismissed.id}
        row = next(row for row in first.rows if row.other_entry_id == dismissed.id)
        assert await repository.dismiss(sql, row.id, submitted.id, owner.id, row.created_at, "two trips") is not None
        again = await check_expense(sql, submitted, DuplicateRules())  # nothing changed: the same rows, kept
        assert [r.id for r in again.rows] == [r.id for r in first.rows]
        await sql.run("UPDATE entries SET amount = 200, base_amount = 200 WHERE id = %s", (submitted.id,))
        changed = replace(submitted, amount=Decimal(200), base_amount=Decimal(200))
        after = await check_expense(sql, changed, DuplicateRules())
        rows = {r.other_entry_id: r for r in after.rows}
        assert set(rows) == {two_hundred.id, dismissed.id}  # the dismissed one stays, as the trail of its dismissal
        assert rows[dismissed.id].dismissed_at is not None and rows[dismissed.id].id not in after.found_ids
        assert after.found_ids == {rows[two_hundred.id].id}


async def test_off_by_setting_the_check_writes_nothing(activity_deps: ActivityDeps, make_user: MakeUser) -> None:
    owner = await make_user("employee")
    async with rolled_back(activity_deps) as sql:
        other = await expense(sql, owner.id)
        submitted = await expense(sql, owner.id)
        await receipt(sql, other.id, SHA_A, owner.id)
        await receipt(sql, submitted.id, SHA_A, owner.id)
        off = await check_expense(sql, submitted, DuplicateRules(enabled=False))
        assert off.rows == () and await repository.of_entry(sql, submitted.id) == []
        assert await found(sql, submitted) == {(other.id, "similar"), (other.id, "same_receipt")}  # on, it would


async def test_the_check_reads_the_owner_and_date_index(activity_deps: ActivityDeps, make_user: MakeUser) -> None:
    """Among many expenses of many owners, rule (a) is a range scan of ix_entries_kind_owner_date."""
    owners = [(await make_user("employee")).id for _ in range(8)]
    owner = owners[0]
    async with rolled_back(activity_deps) as sql:
        await sql.run(
            "INSERT INTO entries (kind, owner_id, amount, currency, category, description, entry_date, vendor, "
            "status, version, base_currency, fx_rate, rate_date, rate_source, base_amount) "
            "SELECT 'expense', (%s::bigint[])[1 + n %% 8], 10 + n %% 500, 'USD', 'travel', '', %s::date - n %% 700, "
            "'Vendor ' || n %% 50, 'approved', 1, 'USD', 1, %s::date, 'base', 10 + n %% 500 "
            "FROM generate_series(1, 8000) n",
            (owners, DAY, DAY),
        )
        await sql.run("ANALYZE entries")
        submitted = await expense(sql, owner)
        probe = DuplicateRules().probe(submitted)
        plan = await sql.all(f"EXPLAIN (FORMAT JSON) {repository.MARK}", probe.params())
        text = json.dumps(plan)
        assert "ix_entries_kind_owner_date" in text, text


async def test_an_entry_another_transaction_holds_is_passed_over_not_waited_on(
    activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    """Two expenses submitted at once, each the other's duplicate, would each wait on the other's row lock (recording
    a duplicate checks the other entry is there): the check passes over an entry another transaction holds."""
    owner, someone_else = await make_user("employee"), await make_user("employee")
    async with activity_deps.db.transaction() as tx:
        similar = await expense(tx.sql, owner.id)
        theirs = await expense(tx.sql, someone_else.id, "42.00", vendor="Elsewhere", status="draft")
        mine = await expense(tx.sql, owner.id)
        await receipt(tx.sql, theirs.id, SHA_A, someone_else.id)
        await receipt(tx.sql, mine.id, SHA_A, owner.id)
    async with activity_deps.db.transaction() as holder:  # as their own submit (or an edit) holds them
        await holder.sql.run("SELECT 1 FROM entries WHERE id = ANY(%s) FOR UPDATE", ([similar.id, theirs.id],))
        async with rolled_back(activity_deps) as sql:
            await sql.run("SET LOCAL lock_timeout = '3s'")  # waiting would fail here, not hang the suite
            assert await found(sql, mine) == set()
    async with rolled_back(activity_deps) as sql:
        assert await found(sql, mine) == {(similar.id, "similar"), (theirs.id, "same_receipt")}
