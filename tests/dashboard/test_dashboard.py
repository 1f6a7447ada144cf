"""The dashboard's numbers equal a brute-force recomputation from the tables, for every role's scope; status changes
move them at once; the maintained totals equal a GROUP BY over the entries whatever happens to the entries."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select, text

from activities.deps import ActivityDeps
from core.db import Database, create_engine
from core.settings import DatabaseSettings
from domain.dashboard.aggregates import totals_mismatches
from domain.dashboard.service import add_months, change_percent
from domain.models import Entry
from tests.conftest import MakeUser
from tests.conftest import TestUser as Member
from tests.dashboard.conftest import BruteForce, Org, insert_random_data

PERIODS = {"month": 1, "quarter": 3, "year": 12}


def _period_start(period: str, today: date) -> date:
    if period == "month":
        return today.replace(day=1)
    if period == "quarter":
        return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    return date(today.year, 1, 1)


def expected_overview(brute: BruteForce, viewer: Member, period: str, now: datetime) -> dict[str, Any]:
    scope = brute.scope(viewer)
    span = PERIODS[period]
    start = _period_start(period, now.date())
    end, previous_start = add_months(start, span), add_months(start, -span)
    current, previous = brute.totals(scope, start, end), brute.totals(scope, previous_start, start)
    change = {
        key: change_percent(Decimal(current[key]), Decimal(previous[key])) for key in ("revenue", "expenses", "net")
    }
    return {
        "current": current,
        "previous": previous,
        "change_percent": change,
        "pending": brute.pending(scope),
        "approvals": brute.approvals(viewer, scope, now),
        "recent_ids": brute.recent(scope),
    }


def expected_kpi(brute: BruteForce, viewer: Member, months: int, now: datetime) -> dict[str, Any]:
    scope = brute.scope(viewer)
    end = add_months(now.date(), 1)
    start = add_months(end, -months)
    series = []
    for offset in range(months):
        month = add_months(start, offset)
        totals = brute.totals(scope, month, add_months(month, 1))
        series.append({k: totals[k] for k in ("revenue", "expenses", "net")} | {"month": month.strftime("%Y-%m")})
    window = (datetime.combine(start, datetime.min.time(), UTC), datetime.combine(end, datetime.min.time(), UTC))
    return {
        "start": start.isoformat(),
        "end": (end - timedelta(days=1)).isoformat(),
        "series": series,
        "totals": brute.totals(scope, start, end),
        "pending": brute.pending(scope),
        "top_categories": brute.top_categories(scope, start, end),
        "top_spenders": None if viewer.role == "employee" else brute.top_spenders(scope, start, end),
        **brute.approval_stats(scope, *window),
    }


async def test_every_number_equals_brute_force_for_each_scope(
    org: Org, activity_deps: ActivityDeps, client: httpx.AsyncClient, database_url: str
) -> None:
    async with activity_deps.db.transaction() as tx:
        await insert_random_data(tx, org, random.Random(20261124))
    brute = BruteForce(database_url)
    now = datetime.now(UTC)
    assert any(e["status"] == "approved" for e in brute.entries) and any(
        s["status"] == "escalated" for s in brute.steps
    )

    viewers = {
        "employee": (org.e1, "own"),
        "manager of a team": (org.mid, "team"),
        "manager of managers": (org.top, "team"),
        "manager of another team": (org.other, "team"),
        "accountant": (org.accountant, "all"),
        "admin": (org.admin, "all"),
    }
    seen_totals = set()
    for label, (viewer, scope_name) in viewers.items():
        for period in PERIODS:
            response = await client.get(f"/api/v1/dashboard/overview?period={period}", headers=viewer.headers)
            assert response.status_code == 200, response.text
            body = response.json()
            expected = expected_overview(brute, viewer, period, now)
            assert body["scope"] == scope_name and body["period"] == period and body["base_currency"] == "USD"
            assert [e["id"] for e in body["recent_entries"]] == expected.pop("recent_ids"), (label, period)
            actual = {key: body[key] for key in expected}
            assert actual == expected, (label, period)
            seen_totals.add(body["current"]["expenses"])
        for months in (1, 12, 27):
            response = await client.get(f"/api/v1/dashboard/kpi?months={months}", headers=viewer.headers)
            assert response.status_code == 200, response.text
            body = response.json()
            expected = expected_kpi(brute, viewer, months, now)
            assert body["months"] == months and body["scope"] == scope_name
            actual = {key: body[key] for key in expected}
            assert actual == expected, (label, months)
    # The scopes really differ (the data is not degenerate): different viewers see different figures.
    assert len(seen_totals) > 3


async def test_approval_figures_stay_exact_whatever_happens_to_requests_and_steps(
    org: Org, activity_deps: ActivityDeps, client: httpx.AsyncClient, database_url: str
) -> None:
    """Decisions, resubmissions, re-dated decisions, escalations, deleted steps and deleted requests (cascading to
    their steps): the trigger-kept decision histogram and escalation counts equal a fresh count, and the exact median,
    90th percentile, approval rate and escalations still equal the brute force (everyone and a subtree)."""
    rng = random.Random(11)
    async with activity_deps.db.transaction() as tx:
        await insert_random_data(tx, org, rng, per_owner=15)
    now = datetime.now(UTC)
    async with activity_deps.db.transaction() as tx:
        requests = (await tx.session.execute(text("SELECT id, status FROM approval_requests ORDER BY id"))).all()
        for request_id, status in requests:
            roll = rng.random()
            moment = now - timedelta(days=rng.uniform(1, 400), seconds=rng.uniform(0, 86400))
            params = {"id": request_id, "at": moment}
            if status == "pending" and roll < 0.6:  # decided now
                decision = rng.choice(["approved", "rejected"])
                await tx.session.execute(
                    text("UPDATE approval_requests SET status = :s, decided_at = :at WHERE id = :id"),
                    {**params, "s": decision, "at": now - timedelta(hours=1)},
                )
                await tx.session.execute(
                    text("UPDATE approval_steps SET status = 'escalated', decided_at = :at WHERE request_id = :id"),
                    {**params, "at": now - timedelta(hours=3)},
                )
            elif status in ("approved", "rejected") and roll < 0.15:  # returned, resubmitted, pending again
                await tx.session.execute(
                    text("UPDATE approval_requests SET status = 'pending', decided_at = NULL, submitted_at = :at "
                         "WHERE id = :id"),
                    params,
                )  # fmt: skip
            elif status in ("approved", "rejected") and roll < 0.3:  # decision and submission re-dated
                await tx.session.execute(
                    text("UPDATE approval_requests SET decided_at = :at, submitted_at = :at - interval '5 hours' "
                         "WHERE id = :id"),
                    params,
                )  # fmt: skip
            elif roll < 0.38:  # a step moved, un-escalated or deleted
                step = rng.choice(["UPDATE approval_steps SET decided_at = :at", "UPDATE approval_steps SET "
                                   "status = 'pending'", "DELETE FROM approval_steps"])  # fmt: skip
                await tx.session.execute(text(f"{step} WHERE request_id = :id"), params)
            elif roll < 0.45:  # the whole request goes, its steps with it
                await tx.session.execute(
                    text("UPDATE entries SET approval_request_id = NULL WHERE approval_request_id = :id"), params
                )
                await tx.session.execute(text("DELETE FROM approval_requests WHERE id = :id"), params)
        await tx.commit()
        assert await totals_mismatches(tx.session) == []

    brute = BruteForce(database_url)
    assert sum(1 for s in brute.steps if s["status"] == "escalated") > 10
    for viewer in (org.admin, org.top):
        for months in (1, 12, 27):
            body = (await client.get(f"/api/v1/dashboard/kpi?months={months}", headers=viewer.headers)).json()
            expected = expected_kpi(brute, viewer, months, now)
            keys = ("approval_cycle_time", "approval_rate", "escalations")
            assert {key: body[key] for key in keys} == {key: expected[key] for key in keys}, (viewer.role, months)


async def test_approval_and_rejection_move_the_numbers_at_once(
    make_user: MakeUser, activity_deps: ActivityDeps, client: httpx.AsyncClient
) -> None:
    manager = await make_user("manager")
    employee = await make_user("employee", manager=manager)
    today = datetime.now(UTC).date()

    async def new_pending(kind: str, amount: str) -> int:
        async with activity_deps.db.transaction() as tx:
            entry = Entry(
                kind=kind,
                amount=Decimal(amount),
                currency="USD",
                category="travel",
                description="",
                entry_date=today,
                owner_id=employee.id,
                status="draft",
            )
            tx.session.add(entry)
            await tx.session.flush()
            entry.status = "pending"
            await tx.session.flush()
            await tx.commit()
            return entry.id

    async def decide(entry_id: int, status: str) -> None:
        async with activity_deps.db.transaction() as tx:
            entry = await tx.session.scalar(select(Entry).where(Entry.id == entry_id).with_for_update())
            assert entry is not None
            entry.status = status
            await tx.session.flush()

    async def overview(user: Member) -> dict[str, Any]:
        response = await client.get("/api/v1/dashboard/overview", headers=user.headers)
        assert response.status_code == 200
        return response.json()  # type: ignore[no-any-return]

    expense = await new_pending("expense", "120.50")
    revenue = await new_pending("revenue", "1000.00")
    before = await overview(manager)
    assert before["current"] == {**before["current"], "revenue": "0.00", "expenses": "0.00", "net": "0.00"}
    assert before["pending"] == {"revenue": "1000.00", "expenses": "120.50", "revenue_entries": 1, "expense_entries": 1}

    await decide(expense, "approved")
    for viewer in (manager, employee):
        after = await overview(viewer)
        assert (after["current"]["expenses"], after["current"]["net"]) == ("120.50", "-120.50")
        assert (after["pending"]["expenses"], after["pending"]["expense_entries"]) == ("0.00", 0)
    kpi = (await client.get("/api/v1/dashboard/kpi?months=1", headers=manager.headers)).json()
    assert kpi["series"][-1]["expenses"] == "120.50"
    assert kpi["top_categories"] == [{"category": "travel", "amount": "120.50", "entries": 1}]
    assert kpi["top_spenders"][0]["user_id"] == employee.id

    await decide(revenue, "rejected")
    after = await overview(manager)
    assert after["current"]["revenue"] == "0.00"  # a rejection never counts
    assert (after["pending"]["revenue"], after["pending"]["revenue_entries"]) == ("0.00", 0)
    assert after["current"]["net"] == "-120.50"


async def test_totals_equal_group_by_after_random_status_changes(org: Org, activity_deps: ActivityDeps) -> None:
    """Create, edit drafts, submit, return for changes, resubmit, decide, withdraw, expire, delete drafts."""
    rng = random.Random(7)
    moves = {
        "draft": ["pending", "delete", "edit"],
        "pending": ["approved", "rejected", "changes_requested", "withdrawn", "expired", "draft"],
        "changes_requested": ["pending", "withdrawn", "edit"],
    }
    ids: list[int] = []
    async with activity_deps.db.transaction() as tx:
        for step in range(400):
            if not ids or rng.random() < 0.3:
                kind = rng.choice(["expense", "revenue"])
                entry = Entry(
                    kind=kind,
                    amount=Decimal(rng.randint(1, 99999)) / 100,
                    currency="USD",
                    category=rng.choice(["a", "b", "c"]),
                    description="",
                    entry_date=date(2025, rng.randint(1, 12), rng.randint(1, 28)),
                    owner_id=rng.choice(org.everyone()).id,
                    status="draft",
                )
                tx.session.add(entry)
                await tx.session.flush()
                ids.append(entry.id)
                continue
            entry_id = rng.choice(ids)
            found = await tx.session.get(Entry, entry_id)
            assert found is not None
            choices = moves.get(found.status)
            if not choices:
                continue
            move = rng.choice(choices)
            if move == "delete":
                await tx.session.delete(found)
                ids.remove(entry_id)
            elif move == "edit":  # drafts and returned entries change amount, category and date freely
                found.amount = Decimal(rng.randint(1, 99999)) / 100
                found.category = rng.choice(["a", "b", "c"])
                found.entry_date = date(2024, rng.randint(1, 12), 1)
            else:
                found.status = move
            await tx.session.flush()
            if step % 100 == 0:
                await tx.commit()
        await tx.commit()
        statuses = set((await tx.session.scalars(select(Entry.status))).all())
        assert {"approved", "rejected", "pending", "draft"} <= statuses
        assert await totals_mismatches(tx.session) == []


async def test_concurrent_decisions_neither_deadlock_nor_lose_updates(make_user: MakeUser, database_url: str) -> None:
    """Forty transactions decide forty entries of one owner, kind, month and category at the same time."""
    owner = await make_user("employee")
    engine = create_engine(DatabaseSettings(url=database_url, pool_size=20))
    db = Database(engine)
    try:
        async with db.transaction() as tx:
            entries = [
                Entry(
                    kind="expense",
                    amount=Decimal("10.01"),
                    currency="USD",
                    category="travel",
                    description="",
                    entry_date=date(2025, 5, 5),
                    owner_id=owner.id,
                    status="pending",
                )
                for _ in range(40)
            ]
            tx.session.add_all(entries)
            await tx.session.flush()
            await tx.commit()
            ids = [entry.id for entry in entries]

        async def decide(entry_id: int, status: str) -> None:
            async with db.transaction() as tx:
                entry = await tx.session.scalar(select(Entry).where(Entry.id == entry_id).with_for_update())
                assert entry is not None
                entry.status = status
                await tx.session.flush()
                await asyncio.sleep(0.01)  # hold the row locks a moment, as a real transaction would

        await asyncio.gather(*(decide(entry_id, "approved" if i % 4 else "rejected") for i, entry_id in enumerate(ids)))
        async with db.transaction() as tx:
            assert await totals_mismatches(tx.session) == []
            rows = await tx.session.execute(select(Entry.status, Entry.id).where(Entry.owner_id == owner.id))
            assert sorted(status for status, _ in rows) == ["approved"] * 30 + ["rejected"] * 10
            result = await tx.session.execute(
                text("SELECT status, entry_count FROM dashboard_entry_totals WHERE owner_id = :o"), {"o": owner.id}
            )
            totals = {status: count for status, count in result}
            assert totals == {"approved": 30, "rejected": 10, "pending": 0}
    finally:
        await engine.dispose()


async def test_bad_parameters_are_422(org: Org, client: httpx.AsyncClient) -> None:
    headers = org.e1.headers
    assert (await client.get("/api/v1/dashboard/overview?period=week", headers=headers)).status_code == 422
    assert (await client.get("/api/v1/dashboard/kpi?months=0", headers=headers)).status_code == 422
    assert (await client.get("/api/v1/dashboard/kpi?months=61", headers=headers)).status_code == 422
    assert (await client.get("/api/v1/dashboard/kpi")).status_code == 401


def test_change_percent_against_a_negative_previous_net_keeps_the_direction() -> None:
    assert change_percent(Decimal("150.00"), Decimal("-100.00")) == "250.00"  # from a loss to a profit: up
    assert change_percent(Decimal("-150.00"), Decimal("-100.00")) == "-50.00"  # a bigger loss: down
    assert change_percent(Decimal("5.00"), Decimal("0.00")) is None
