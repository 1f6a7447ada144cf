"""The live stream ends with the session, over real HTTP: within moments of a logout, a deactivation, a password
change or a demotion (a database trigger announces the change to every API process), and when the access token
expires; someone else's session ending leaves it open."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import psycopg
import pytest

from activities.deps import ActivityDeps
from core.security import issue_token
from core.settings import Settings
from tests.conftest import PASSWORD
from tests.notifications.test_stream import EventReader, _notify, open_stream

pytestmark = pytest.mark.usefixtures("database_url")
PROMPTLY = 5.0  # seconds: what "at once" may take, with the heartbeat at its default 15 s


async def _ends(events: EventReader, wait: float = PROMPTLY) -> str:
    """The reason of the `session_ended` event that arrives within `wait` seconds, after which the stream closes."""
    started = time.monotonic()
    while True:
        block = await events.next(wait - (time.monotonic() - started))
        if block.get("event") == "session_ended":
            break
        assert block.get("event") != "notification", block
    with pytest.raises(AssertionError, match="the stream ended"):
        await events.next(wait)
    return str(json.loads(block["data"])["reason"])


async def test_logout_ends_the_stream(api_url: str, make_user) -> None:
    user = await make_user("employee")
    async with open_stream(api_url, user.headers) as events, httpx.AsyncClient(base_url=api_url) as http:
        assert (await http.post("/api/v1/auth/logout", headers=user.headers)).status_code == 204
        assert "signed out" in await _ends(events)
        assert (await http.get("/api/v1/notifications/stream", headers=user.headers)).status_code == 401


async def test_deactivation_by_an_admin_ends_the_stream(api_url: str, make_user) -> None:
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    async with open_stream(api_url, employee.headers) as events, httpx.AsyncClient(base_url=api_url) as http:
        deactivated = await http.delete(f"/api/v1/users/{employee.id}", headers=admin.headers)
        assert deactivated.status_code == 204, deactivated.text
        assert await _ends(events) == "your account was deactivated"


async def test_a_password_change_ends_the_stream_of_the_old_token(api_url: str, make_user) -> None:
    user = await make_user("employee")
    async with open_stream(api_url, user.headers) as events, httpx.AsyncClient(base_url=api_url) as http:
        changed = await http.post(
            "/api/v1/auth/change-password",
            json={"current_password": PASSWORD, "new_password": "a-whole-new-horse-battery"},
            headers=user.headers,
        )
        assert changed.status_code == 200, changed.text
        assert "password" in await _ends(events)
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    async with open_stream(api_url, fresh):  # the new session streams as before
        pass


async def test_a_demotion_ends_the_stream(api_url: str, make_user) -> None:
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    async with open_stream(api_url, manager.headers) as events, httpx.AsyncClient(base_url=api_url) as http:
        demoted = await http.patch(f"/api/v1/users/{manager.id}", json={"role": "employee"}, headers=admin.headers)
        assert demoted.status_code == 200, demoted.text
        assert "role" in await _ends(events)


async def test_another_users_logout_leaves_the_stream_open(
    api_url: str, make_user, activity_deps: ActivityDeps
) -> None:
    alice = await make_user("employee")
    bob = await make_user("employee")
    async with open_stream(api_url, alice.headers) as events, httpx.AsyncClient(base_url=api_url) as http:
        assert (await http.post("/api/v1/auth/logout", headers=bob.headers)).status_code == 204
        created = await _notify(activity_deps, alice.id, "still here")
        assert (await events.next_notification())[0] == created


async def test_a_logout_while_the_feed_was_reconnecting_still_ends_the_stream(
    api_url: str, app, make_user, database_url: str
) -> None:
    """The announcement is lost while the feed's listening connection is down; the resynchronisation after it
    reconnects checks the session."""
    user = await make_user("employee")
    async with open_stream(api_url, user.headers) as events, httpx.AsyncClient(base_url=api_url) as http:
        feed = app.state.notification_feed
        feed.reconnect_delay = 2.0  # the logout below certainly lands while nobody listens
        with psycopg.connect(database_url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
            ).fetchall()
        assert killed == [(True,)]
        assert (await http.post("/api/v1/auth/logout", headers=user.headers)).status_code == 204
        try:
            assert "signed out" in await _ends(events, wait=10)
        finally:
            feed.reconnect_delay = 1.0


async def test_the_stream_ends_when_the_access_token_expires(api_url: str, make_user, settings: Settings) -> None:
    user = await make_user("employee")
    token, _ = issue_token(
        settings.auth, user_id=user.id, token_type="access", token_version=0, lifetime=timedelta(seconds=2)
    )
    async with open_stream(api_url, {"Authorization": f"Bearer {token}"}) as events:
        block = await events.next(wait=PROMPTLY)
        if block == {"": "heartbeat"}:  # the wait for news ends at the expiry, then the loop says so
            block = await events.next(wait=PROMPTLY)
        assert block["event"] == "token_expired"
        with pytest.raises(AssertionError, match="the stream ended"):
            await events.next()
