"""The in-app notification endpoints and the email preferences, as a user sees them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from activities.deps import ActivityDeps
from domain.models import AuditLog
from domain.notifications.service import notify

pytestmark = pytest.mark.usefixtures("database_url")
BASE = "/api/v1/notifications"


async def _notify(deps: ActivityDeps, user_id: int, title: str, **fields: object) -> int:
    async with deps.db.transaction() as tx:
        created = await notify(tx.sql, user_id=user_id, event_type="entry_approved", title=title, **fields)  # type: ignore[arg-type]
        await tx.commit()
        return created


async def test_list_count_and_mark_read(client, make_user, activity_deps: ActivityDeps) -> None:
    user = await make_user("employee")
    ids = [await _notify(activity_deps, user.id, f"N{i}", link=f"/entries/{i}") for i in range(3)]

    page = (await client.get(BASE, params={"limit": 2}, headers=user.headers)).json()
    assert [item["id"] for item in page["items"]] == [ids[2], ids[1]]  # newest first
    assert page["total"] == 3 and page["limit"] == 2
    assert page["items"][0]["link"] == "/entries/2" and page["items"][0]["read_at"] is None
    second = (await client.get(BASE, params={"limit": 2, "offset": 2}, headers=user.headers)).json()
    assert [item["id"] for item in second["items"]] == [ids[0]]
    assert (await client.get(f"{BASE}/unread-count", headers=user.headers)).json() == {"unread": 3}

    marked = await client.post(f"{BASE}/{ids[1]}/read", headers=user.headers)
    assert marked.status_code == 200 and marked.json()["read_at"] is not None
    assert (await client.post(f"{BASE}/{ids[1]}/read", headers=user.headers)).status_code == 200  # harmless twice
    assert (await client.get(f"{BASE}/unread-count", headers=user.headers)).json() == {"unread": 2}
    unread = (await client.get(BASE, params={"unread": "true"}, headers=user.headers)).json()
    assert {item["id"] for item in unread["items"]} == {ids[0], ids[2]} and unread["total"] == 2

    assert (await client.post(f"{BASE}/read-all", headers=user.headers)).json() == {"marked_read": 2}
    assert (await client.get(f"{BASE}/unread-count", headers=user.headers)).json() == {"unread": 0}

    async with activity_deps.db.transaction() as tx:
        actions = (await tx.session.scalars(select(AuditLog.action).where(AuditLog.actor_id == user.id))).all()
    assert sorted(actions) == ["notification.read", "notification.read_all"]  # the repeated mark wrote nothing


async def test_a_user_never_sees_or_marks_another_users_notification(client, make_user, activity_deps) -> None:
    alice = await make_user("employee")
    bob = await make_user("admin")  # even an admin cannot reach someone else's notifications
    alices = await _notify(activity_deps, alice.id, "For Alice only")

    assert (await client.get(BASE, headers=bob.headers)).json()["total"] == 0
    assert (await client.get(f"{BASE}/unread-count", headers=bob.headers)).json() == {"unread": 0}
    response = await client.post(f"{BASE}/{alices}/read", headers=bob.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (await client.post(f"{BASE}/read-all", headers=bob.headers)).json() == {"marked_read": 0}
    assert (await client.get(f"{BASE}/unread-count", headers=alice.headers)).json() == {"unread": 1}
    assert (await client.post(f"{BASE}/999999/read", headers=alice.headers)).status_code == 404


async def test_bad_input_is_a_clear_4xx(client, make_user) -> None:
    user = await make_user("employee")
    assert (await client.get(BASE, params={"limit": 101}, headers=user.headers)).status_code == 422
    assert (await client.get(BASE, params={"offset": -1}, headers=user.headers)).status_code == 422
    assert (await client.post(f"{BASE}/abc/read", headers=user.headers)).status_code == 422
    assert (await client.get(BASE)).status_code == 401


async def test_preferences_read_and_partial_update(client, make_user) -> None:
    user = await make_user("employee")
    url = "/api/v1/users/me/notification-preferences"
    initial = (await client.get(url, headers=user.headers)).json()
    assert all(initial["email"].values()) and "entry_submitted" in initial["email"]
    assert "otp_code" not in initial["email"] and initial["always_emailed"] == ["otp_code"]

    updated = await client.put(url, json={"email": {"approval_reminder": False}}, headers=user.headers)
    assert updated.status_code == 200
    again = await client.put(url, json={"email": {"report_ready": False}}, headers=user.headers)
    email = again.json()["email"]
    assert email["approval_reminder"] is False and email["report_ready"] is False and email["entry_submitted"] is True
    assert (await client.get(url, headers=user.headers)).json()["email"] == email

    unknown = await client.put(url, json={"email": {"lottery_win": True}}, headers=user.headers)
    assert unknown.status_code == 422 and "lottery_win" in unknown.text
    extra = await client.put(url, json={"email": {}, "sms": {}}, headers=user.headers)
    assert extra.status_code == 422
    not_bool = await client.put(url, json={"email": {"report_ready": "maybe"}}, headers=user.headers)
    assert not_bool.status_code == 422
