"""Keyset cursors: a walk through a list sees every row once while rows are inserted between its pages; a cursor
that is changed, foreign, or sent with an offset is refused with a message; the query is a range on an index."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activities.deps import ActivityDeps
from domain.entries.repository import ListQuery, page, sort_key
from domain.invoices.service import KEYSET as INVOICES
from domain.models import EntryStatus
from tests.approvals.conftest import submit_directly
from tests.conftest import MakeUser
from tests.mobile.conftest import People, add_entries, add_notifications, walk

pytestmark = pytest.mark.usefixtures("database_url")
DAY = date(2025, 3, 1)


def entry_order(rows: list[dict[str, Any]], sort: str, descending: bool) -> list[int]:
    key = "entry_date" if sort == "date" else "amount"
    value = (lambda row: Decimal(row[key])) if key == "amount" else (lambda row: row[key])
    return [row["id"] for row in sorted(rows, key=lambda row: (value(row), row["id"]), reverse=descending)]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    days=st.lists(st.integers(0, 4), min_size=0, max_size=14),
    amounts=st.lists(st.integers(1, 5), min_size=14, max_size=14),
    inserted=st.lists(st.tuples(st.integers(0, 4), st.integers(1, 5)), max_size=6),
    limit=st.integers(1, 5),
    sort=st.sampled_from(["date", "amount"]),
    order=st.sampled_from(["asc", "desc"]),
)
async def test_a_cursor_walk_sees_every_entry_once_while_entries_arrive(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    activity_deps: ActivityDeps,
    days: list[int],
    amounts: list[int],
    inserted: list[tuple[int, int]],
    limit: int,
    sort: str,
    order: str,
) -> None:
    owner = await make_user("employee")  # a list of their own: each example starts empty
    # Few distinct dates and amounts: many ties, which only the id breaks.
    rows = [(DAY + timedelta(days=d), Decimal(amounts[n])) for n, d in enumerate(days)]
    before = await add_entries(activity_deps, owner, rows)
    arriving = list(inserted)
    added: list[int] = []

    async def insert_one() -> None:
        if arriving:
            d, amount = arriving.pop()
            added.extend(await add_entries(activity_deps, owner, [(DAY + timedelta(days=d), Decimal(amount))]))

    seen, _ = await walk(client, f"/api/v1/expenses/?sort={sort}&order={order}", owner, limit, insert_one)
    assert len(seen) == len(set(seen)), f"an entry came twice: {seen}"
    assert set(before) <= set(seen), f"missed {set(before) - set(seen)}"
    assert set(seen) <= set(before) | set(added)
    # And in the list's order: what an offset read of everything now says, minus what arrived behind the walk.
    everything = await client.get(f"/api/v1/expenses/?sort={sort}&order={order}&limit=100", headers=owner.headers)
    expected = entry_order(everything.json()["items"], sort, order == "desc")
    assert seen == [entry_id for entry_id in expected if entry_id in set(seen)]


async def test_the_last_page_hands_out_no_cursor(client: httpx.AsyncClient, people: People, activity_deps) -> None:
    await add_entries(activity_deps, people.employee, [(DAY, Decimal("10.00"))] * 4)
    seen, pages = await walk(client, "/api/v1/expenses/", people.employee, 2)
    assert len(seen) == 4 and pages == 2  # exactly two full pages: no third, empty one
    empty, pages = await walk(client, "/api/v1/revenue/", people.employee, 2)
    assert empty == [] and pages == 1


async def test_a_cursor_page_keeps_the_total_and_reports_offset_zero(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    await add_entries(activity_deps, people.employee, [(DAY + timedelta(days=n), Decimal("5.00")) for n in range(5)])
    first = (await client.get("/api/v1/expenses/?limit=2", headers=people.employee.headers)).json()
    second = await client.get(
        f"/api/v1/expenses/?limit=2&cursor={first['next_cursor']}", headers=people.employee.headers
    )
    assert second.status_code == 200
    assert second.json()["total"] == 5 and second.json()["offset"] == 0
    # Offset pages still work as they did, and agree with the cursor's.
    offset = (await client.get("/api/v1/expenses/?limit=2&offset=2", headers=people.employee.headers)).json()
    assert [item["id"] for item in offset["items"]] == [item["id"] for item in second.json()["items"]]


async def test_each_list_walks_whole_while_rows_arrive(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    """The inbox, notifications, reports and invoices: every row once, in the list's order, rows arriving."""
    # Notifications: newest first, by id.
    ids = await add_notifications(activity_deps, people.employee, 7)

    async def notify_one() -> None:
        await add_notifications(activity_deps, people.employee, 1, "late")

    seen, _ = await walk(client, "/api/v1/notifications", people.employee, 3, notify_one)
    assert seen == sorted(ids, reverse=True)  # the new ones are ahead of the cursor: not seen, nothing twice

    # The inbox: oldest waiting first; a request arriving during the walk is behind the cursor and shows up.
    for _ in range(5):
        await submit_directly(activity_deps, people.employee.id, "50.00")
    arrived: list[int] = []

    async def submit_one() -> None:
        if not arrived:
            arrived.append(await submit_directly(activity_deps, people.employee.id, "60.00"))

    inbox: list[int] = []
    cursor = None
    while True:
        url = "/api/v1/approvals/?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = (await client.get(url, headers=people.manager.headers)).json()
        inbox += [item["step_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        await submit_one()
    assert len(inbox) == len(set(inbox)) == 6
    assert inbox == sorted(inbox)  # steps were opened in id order, one per request


async def test_reports_and_invoices_walk_whole(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    async with activity_deps.db.transaction() as tx:
        await tx.sql.run(
            "INSERT INTO reports (id, type, format, period_from, period_to, filters, scope, requested_by_id, status, "
            "created_at) SELECT gen_random_uuid(), 'pnl', 'csv', '2025-01-01', '2025-01-31', '{}', '{}', %s, "
            "'queued', '2025-02-01'::timestamptz + (n / 3) * interval '1 hour' FROM generate_series(1, 8) n",
            (people.employee.id,),
        )
    seen: list[str] = []
    cursor = None
    while True:
        url = "/api/v1/reports/?limit=3" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=people.employee.headers)
        assert response.status_code == 200, response.text
        seen += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    everything = (await client.get("/api/v1/reports/?limit=100", headers=people.employee.headers)).json()["items"]
    assert seen == [item["id"] for item in everything] and len(seen) == 8  # ties on created_at included


async def test_a_changed_or_foreign_cursor_is_refused_with_a_message(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    await add_entries(activity_deps, people.employee, [(DAY, Decimal("1.00"))] * 3)
    await add_notifications(activity_deps, people.employee, 3)
    headers = people.employee.headers
    cursor = (await client.get("/api/v1/expenses/?limit=1", headers=headers)).json()["next_cursor"]
    payload, _, signature = cursor.partition(".")

    async def refused(url: str, *words: str) -> None:
        response = await client.get(url, headers=headers)
        assert response.status_code == 422, (url, response.text)
        message = response.json()["error"]["message"]
        assert all(word in message for word in words), message

    # A key changed to skip ahead, re-encoded: the signature no longer matches.
    scope, key = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps([scope, ["2000-01-01", key[1]]]).encode()).decode().rstrip("=")
    await refused(f"/api/v1/expenses/?limit=1&cursor={forged}.{signature}", "not one this list handed out")
    await refused(f"/api/v1/expenses/?limit=1&cursor={payload}", "not one this list handed out")  # unsigned
    await refused("/api/v1/expenses/?limit=1&cursor=garbage", "not one this list handed out")
    await refused("/api/v1/expenses/?limit=1&cursor=", "empty")
    # Another collection, another sort or order, another list: each a scope of its own.
    await refused(f"/api/v1/revenue/?limit=1&cursor={cursor}", "another list or sort order")
    await refused(f"/api/v1/expenses/?limit=1&sort=amount&cursor={cursor}", "another list or sort order")
    await refused(f"/api/v1/expenses/?limit=1&order=asc&cursor={cursor}", "another list or sort order")
    await refused(f"/api/v1/notifications?limit=1&cursor={cursor}", "another list or sort order")
    # With an offset (even 0): which one wins would be a guess.
    await refused(f"/api/v1/expenses/?limit=1&offset=0&cursor={cursor}", "either cursor or offset")
    # The cursor itself still works.
    assert (await client.get(f"/api/v1/expenses/?limit=1&cursor={cursor}", headers=headers)).status_code == 200


async def test_a_cursor_from_another_server_is_refused(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    from domain.pagination import CursorCodec

    foreign = CursorCodec("another server's secret, as long as ours").encode("expense:entry_date:desc", [DAY, 1])
    response = await client.get(f"/api/v1/expenses/?cursor={foreign}", headers=people.employee.headers)
    assert response.status_code == 422 and response.json()["error"]["details"]["field"] == "cursor"


def _plan(url: str, query: str, params: Any) -> str:
    with psycopg.connect(url) as connection:
        connection.execute("SET enable_seqscan = off")  # an empty table: ask what the indexes can do
        rows = connection.execute(f"EXPLAIN {query}", params).fetchall()
    return "\n".join(row[0] for row in rows)


async def test_the_keyset_condition_is_an_index_range(database_url: str) -> None:
    """The row comparison is an Index Cond on the lists' (sort, id) indexes, not a filter over every row."""
    for sort, index in (("entry_date", "ix_entries_kind_date_id"), ("amount", "ix_entries_kind_amount_id")):
        query = ListQuery(
            kind="expense", owners=None, status=None, category=None, owner_id=None, date_from=None, date_to=None,
            amount_min=None, amount_max=None, sort_column=sort, descending=True, limit=21, offset=0,
        )  # fmt: skip
        where, params = query.where()
        after, after_params = query.keyset.after((DAY if sort == "entry_date" else Decimal("10"), 5))
        plan = _plan(
            database_url,
            f"SELECT id FROM entries WHERE {where} AND {after} ORDER BY {query.keyset.order_by()} LIMIT 21",
            params | after_params,
        )
        assert index in plan and f"ROW({sort}, id) < ROW(" in plan.split("Index Cond:")[1], plan
    # An entry's own status filter keeps the range on its own index.
    status_query = ListQuery(
        kind="expense", owners=None, status=EntryStatus.APPROVED, category=None, owner_id=None, date_from=None,
        date_to=None, amount_min=None, amount_max=None, sort_column="entry_date", descending=True, limit=21, offset=0,
    )  # fmt: skip
    where, params = status_query.where()
    after, after_params = status_query.keyset.after((DAY, 5))
    plan = _plan(database_url, f"SELECT id FROM entries WHERE {where} AND {after} ORDER BY entry_date DESC, id DESC "
                 "LIMIT 21", params | after_params)  # fmt: skip
    assert "ix_entries_kind_status_date" in plan and "ROW(entry_date, id) < ROW(" in plan, plan
    # Notifications: (user_id, id).
    plan = _plan(database_url, "SELECT id FROM notifications WHERE user_id = 1 AND (id) < (500) ORDER BY id DESC", None)
    assert "ix_notifications_user_id_id" in plan and "Index Cond: ((user_id = 1) AND (id < 500))" in plan, plan
    # Invoices: the range on the issue date, the id checked on that day's rows.
    condition, values = INVOICES.after_positional((DAY, 7))
    plan = _plan(database_url, f"SELECT i.id FROM invoices i WHERE i.is_template = false AND {condition} "
                 f"ORDER BY {INVOICES.order_by()} LIMIT 21", values)  # fmt: skip
    assert "ix_invoices_issue_date" in plan and "Index Cond: (issue_date <= " in plan, plan


async def test_the_entries_repository_pages_by_key(activity_deps: ActivityDeps, people: People) -> None:
    """The repository's own walk (no HTTP): the page after a key, ties on the date broken by the id."""
    on_day = await add_entries(activity_deps, people.employee, [(DAY, Decimal("3.00"))] * 3)
    earlier = await add_entries(activity_deps, people.employee, [(DAY - timedelta(days=1), Decimal("1.00"))])
    query = ListQuery(
        kind="expense", owners=[people.employee.id], status=None, category=None, owner_id=None, date_from=None,
        date_to=None, amount_min=None, amount_max=None, sort_column="entry_date", descending=True, limit=2, offset=0,
    )  # fmt: skip
    async with activity_deps.db.transaction() as tx:
        first, total = await page(tx.sql, query)
        rest, _ = await page(tx.sql, replace(query, after=sort_key(first[-1], query)))
    assert total == 4
    assert [row.id for row in first + rest] == sorted(on_day, reverse=True) + earlier
