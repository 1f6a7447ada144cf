"""The live stream over real HTTP (uvicorn on a free port): pushes, privacy, replay and heartbeats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from activities.deps import ActivityDeps
from api.routes import notifications as notification_routes
from domain.notifications.service import notify
from tests.approvals.conftest import Team, expense_body

pytestmark = pytest.mark.usefixtures("database_url")
STREAM = "/api/v1/notifications/stream"


class EventReader:
    """Parses the SSE wire format from a streaming httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, wait: float = 10.0) -> dict[str, str]:
        """The next event or comment block, as {field: value} (comments under ":")."""
        block: dict[str, str] = {}
        async with asyncio.timeout(wait):
            async for line in self.lines:
                if line == "":
                    if block:
                        return block
                    continue
                name, _, value = line.partition(":")
                block[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    async def next_notification(self, wait: float = 10.0) -> tuple[int, dict[str, object]]:
        while True:
            block = await self.next(wait)
            if block.get("event") == "notification":
                return int(block["id"]), json.loads(block["data"])


@asynccontextmanager
async def open_stream(api_url: str, headers: dict[str, str]) -> AsyncIterator[EventReader]:
    async with httpx.AsyncClient(base_url=api_url, timeout=httpx.Timeout(10.0, read=None)) as http:
        async with http.stream("GET", STREAM, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = EventReader(response)
            # The first block is the retry hint, sent once the stream is subscribed to the database feed.
            assert "retry" in await reader.next()
            yield reader


async def _notify(deps: ActivityDeps, user_id: int, title: str) -> int:
    # Another session, as a worker or another API request would do it.
    async with deps.db.transaction() as tx:
        created = await notify(tx.sql, user_id=user_id, event_type="entry_submitted", title=title)
        await tx.commit()
        return created


async def test_stream_pushes_a_notification_created_elsewhere_to_its_user_only(
    api_url: str, make_user, activity_deps: ActivityDeps
) -> None:
    alice = await make_user("employee")
    bob = await make_user("employee")
    async with open_stream(api_url, alice.headers) as alice_events, open_stream(api_url, bob.headers) as bob_events:
        await _notify(activity_deps, bob.id, "For Bob")
        created = await _notify(activity_deps, alice.id, "Expense #5 waits for you")

        event_id, payload = await alice_events.next_notification()
        assert event_id == created and payload["id"] == created
        assert payload["title"] == "Expense #5 waits for you" and payload["read_at"] is None
        # Bob's stream got Bob's notification, and Alice's stream never saw it (hers came first).
        _, bobs = await bob_events.next_notification()
        assert bobs["title"] == "For Bob"


async def test_an_employees_submission_over_http_reaches_the_managers_open_stream(api_url: str, team: Team) -> None:
    """The whole path: the employee's HTTP submit starts the workflow, the worker's activity writes the notification
    in its own transaction, PostgreSQL NOTIFY wakes the API's feed and the manager's open stream gets it; the
    manager's approval then reaches the employee's stream the same way."""
    async with (
        open_stream(api_url, team.manager.headers) as manager_events,
        open_stream(api_url, team.employee.headers) as employee_events,
        httpx.AsyncClient(base_url=api_url, timeout=30) as http,
    ):
        created = await http.post("/api/v1/expenses/", json=expense_body("88.20"), headers=team.employee.headers)
        assert created.status_code == 201, created.text
        entry_id = created.json()["id"]
        submitted = await http.post(f"/api/v1/expenses/{entry_id}/submit", headers=team.employee.headers)
        assert submitted.status_code == 200, submitted.text

        event_id, pushed = await manager_events.next_notification()
        assert pushed["event_type"] == "entry_submitted" and pushed["id"] == event_id
        assert pushed["data"]["entry_id"] == entry_id  # type: ignore[index]
        assert "waits for your approval" in str(pushed["title"]) and pushed["read_at"] is None
        # What the stream pushed is the stored notification the manager's list shows.
        listed = (await http.get("/api/v1/notifications", headers=team.manager.headers)).json()
        assert [item["id"] for item in listed["items"]] == [event_id]

        approved = await http.post(f"/api/v1/expenses/{entry_id}/approve", json={}, headers=team.manager.headers)
        assert approved.status_code == 200, approved.text
        # The employee's stream saw nothing of the manager's notice: its first event is its own approval notice.
        _, outcome = await employee_events.next_notification()
        assert outcome["event_type"] == "entry_approved" and outcome["data"]["entry_id"] == entry_id  # type: ignore[index]


async def test_reconnect_with_last_event_id_replays_what_was_missed(
    api_url: str, make_user, activity_deps: ActivityDeps
) -> None:
    user = await make_user("employee")
    first = await _notify(activity_deps, user.id, "seen before the disconnect")
    missed = [await _notify(activity_deps, user.id, f"missed {i}") for i in range(2)]

    headers = {**user.headers, "Last-Event-ID": str(first)}
    async with open_stream(api_url, headers) as events:
        replayed = [await events.next_notification() for _ in missed]
        assert [event_id for event_id, _ in replayed] == missed
        live = await _notify(activity_deps, user.id, "live again")
        assert (await events.next_notification())[0] == live

    # Without Last-Event-ID a new stream starts from now: nothing old is pushed again.
    async with open_stream(api_url, user.headers) as events:
        newest = await _notify(activity_deps, user.id, "after connecting")
        assert (await events.next_notification())[0] == newest


async def test_a_reconnect_before_the_first_notice_loses_nothing(
    api_url: str, make_user, activity_deps: ActivityDeps
) -> None:
    """The first block says where the stream starts, so a client cut off before any notice reached it (its API
    process killed, say) can still say where it was, and gets what was created while it was away."""
    user = await make_user("employee")
    older = await _notify(activity_deps, user.id, "before connecting")
    async with httpx.AsyncClient(base_url=api_url, timeout=httpx.Timeout(10.0, read=None)) as http:
        async with http.stream("GET", STREAM, headers=user.headers) as response:
            first = await EventReader(response).next()
    assert first["retry"] == str(notification_routes.RETRY_MILLISECONDS)
    assert first["id"] == str(older)  # where it starts: after what existed, which is not pushed again
    missed = await _notify(activity_deps, user.id, "while disconnected")

    async with open_stream(api_url, {**user.headers, "Last-Event-ID": first["id"]}) as events:
        assert (await events.next_notification())[0] == missed


@pytest.mark.xfail(
    strict=True,
    raises=TimeoutError,  # the stream never sends it
    reason="known loss, not fixed yet: a reconnect replays only ids above Last-Event-ID, and ids are drawn at insert, "
    "not in commit order (docs/reliability.md, 'Several processes, one truth')",
)
async def test_a_notice_committed_after_a_newer_one_still_reaches_a_reconnecting_stream(
    api_url: str, make_user, activity_deps: ActivityDeps
) -> None:
    """Two workers' transactions: the first draws a notification's id, the second draws a higher one and commits
    first; the stream delivers the higher one, the client is cut off, and the first commits. Reconnecting with the
    id it last saw, the client must still get the first notice (the list has it)."""
    user = await make_user("employee")
    async with activity_deps.db.transaction() as slow:
        older = await notify(slow.sql, user_id=user.id, event_type="entry_submitted", title="drawn first")
        async with open_stream(api_url, user.headers) as events:
            newer = await _notify(activity_deps, user.id, "committed first")
            assert (await events.next_notification())[0] == newer
    # The slow transaction has committed now, after the client saw `newer` and went away.
    async with open_stream(api_url, {**user.headers, "Last-Event-ID": str(newer)}) as events:
        assert (await events.next_notification(wait=3))[0] == older


async def test_heartbeats_keep_an_idle_stream_alive(api_url: str, make_user, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notification_routes, "HEARTBEAT_SECONDS", 0.2)
    user = await make_user("employee")
    async with open_stream(api_url, user.headers) as events:
        assert await events.next(wait=5) == {"": "heartbeat"}
        assert await events.next(wait=5) == {"": "heartbeat"}


async def test_stream_needs_a_token_and_a_sane_last_event_id(api_url: str, make_user) -> None:
    user = await make_user("employee")
    async with httpx.AsyncClient(base_url=api_url) as http:
        assert (await http.get(STREAM)).status_code == 401
        bad = await http.get(STREAM, headers={**user.headers, "Last-Event-ID": "drop table"})
        assert bad.status_code == 422


async def test_the_feed_closes_its_listening_connection_when_the_last_stream_ends(api_url: str, app, make_user) -> None:
    user = await make_user("employee")
    async with open_stream(api_url, user.headers):
        feed = app.state.notification_feed
        assert feed.subscriber_count == 1
    async with asyncio.timeout(5):
        while feed.subscriber_count:  # noqa: ASYNC110 - polling the feed's state is the point
            await asyncio.sleep(0.05)
        while feed._listener is not None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
