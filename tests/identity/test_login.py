"""Sign-in, registration and password handling, as a client sees them."""

from __future__ import annotations

import bcrypt
import httpx
import pytest
from sqlalchemy import select

from activities.deps import ActivityDeps
from domain.models import AuditLog
from tests.conftest import PASSWORD, MakeUser
from tests.identity.conftest import Org, bearer, login, tokens


async def test_login_with_json_or_the_oauth2_form_by_username_or_email(client: httpx.AsyncClient, org: Org) -> None:
    by_username = await tokens(client, org.employee.username)
    assert by_username["token_type"] == "bearer" and by_username["refresh_token"]
    form = await client.post(
        "/api/v1/auth/login",
        data={"username": org.employee.email.upper(), "password": PASSWORD, "grant_type": "password"},
    )
    assert form.status_code == 200, form.text
    me = await client.get("/api/v1/users/me", headers=bearer(form.json()["access_token"]))
    assert me.json()["id"] == org.employee.id


async def test_unknown_user_and_wrong_password_answer_alike(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[int] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(1)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    unknown = await login(client, "nobody-here", "whatever-password")
    unknown_checks = len(checks)
    wrong = await login(client, org.employee.username, "whatever-password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["error"] == wrong.json()["error"]
    # The same bcrypt work on both paths (so about the same time at production cost): no early return.
    assert unknown_checks == 1 and len(checks) == 2
    async with activity_deps.db.transaction() as tx:
        failed = (await tx.session.scalars(select(AuditLog).where(AuditLog.action == "auth.login_failed"))).all()
    assert len(failed) == 2, "each failed sign-in leaves an audit row although the request failed"


async def test_inactive_user_cannot_sign_in(client: httpx.AsyncClient, org: Org) -> None:
    assert (await client.delete(f"/api/v1/users/{org.employee.id}", headers=org.admin.headers)).status_code == 204
    assert (await login(client, org.employee.username)).status_code == 401


async def test_long_passwords_count_to_the_last_character(client: httpx.AsyncClient, org: Org) -> None:
    seventy_three_bytes = "é" * 36 + "x"  # 37 characters, 73 bytes in UTF-8: past bcrypt's 72-byte cut
    assert len(seventy_three_bytes.encode()) == 73
    longest = "p" * 127 + "!"
    for n, password in enumerate([seventy_three_bytes, longest]):
        created = await client.post(
            "/api/v1/auth/register",
            json={"email": f"long{n}@example.com", "username": f"long{n}", "full_name": "Long", "password": password},
        )
        assert created.status_code == 201, created.text
        assert (await login(client, f"long{n}", password)).status_code == 200
        # Only the last character differs: a truncating hash would accept it.
        assert (await login(client, f"long{n}", password[:-1] + "?")).status_code == 401
    too_long = await client.post(
        "/api/v1/auth/register",
        json={"email": "long9@example.com", "username": "long9", "full_name": "Long", "password": "p" * 129},
    )
    assert too_long.status_code == 422
    assert "password" in too_long.json()["error"]["message"]


async def test_registration_creates_an_employee_and_can_be_closed(
    client: httpx.AsyncClient, org: Org, app: object
) -> None:
    body = {"email": "New@Example.com", "username": "newbie", "full_name": "New Person", "password": "s3cret-enough"}
    created = await client.post("/api/v1/auth/register", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "employee" and created.json()["manager_id"] == org.superadmin.id
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 409
    smuggled = await client.post("/api/v1/auth/register", json={**body, "username": "xx2", "role": "admin"})
    assert smuggled.status_code == 422

    settings = app.state.services.settings  # type: ignore[attr-defined]
    settings.auth.allow_registration = False
    try:
        closed = await client.post("/api/v1/auth/register", json={**body, "email": "b@example.com", "username": "bee2"})
    finally:
        settings.auth.allow_registration = True
    assert closed.status_code == 403


async def test_change_password_needs_the_current_one_and_ends_other_sessions(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("employee")
    first = await tokens(client, user.username)
    wrong = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "not-my-password", "new_password": "brand-new-password"},
        headers=bearer(first["access_token"]),
    )
    assert wrong.status_code == 422
    changed = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "brand-new-password"},
        headers=bearer(first["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    assert (await client.get("/api/v1/users/me", headers=bearer(first["access_token"]))).status_code == 401
    old_refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert old_refresh.status_code == 401
    assert (await client.get("/api/v1/users/me", headers=bearer(changed.json()["access_token"]))).status_code == 200
    assert (await login(client, user.username)).status_code == 401
    assert (await login(client, user.username, "brand-new-password")).status_code == 200
