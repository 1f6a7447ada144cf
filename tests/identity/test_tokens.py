"""Tokens: forged or misused JWTs are refused; logout, demotion and refresh replay take effect at once."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import select, update

from activities.deps import ActivityDeps
from core.security import InvalidToken, decode_token, issue_token
from core.settings import Settings
from domain.models import AuditLog, RefreshToken, User
from tests.conftest import MakeUser
from tests.identity.conftest import Org, bearer, tokens

ME = "/api/v1/users/me"


def _claims(settings: Settings, user_id: int, **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": str(user_id),
        "typ": "access",
        "ver": 0,
        "jti": uuid.uuid4().hex,
        "iss": settings.auth.jwt_issuer,
        "aud": settings.auth.jwt_audience,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    claims.update(overrides)
    return claims


def _flip_signature_byte(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return ".".join([header, payload, signature[:middle] + flipped + signature[middle + 1 :]])


@pytest.mark.parametrize("attack", ["alg_none", "flipped_byte", "expired", "wrong_audience", "wrong_key", "refresh"])
async def test_forged_or_misused_tokens_are_401(
    attack: str, client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    user = await make_user("superadmin")
    assert (await client.get(ME, headers=user.headers)).status_code == 200
    key = settings.auth.secret_key
    if attack == "alg_none":
        token = jwt.encode(_claims(settings, user.id), key=None, algorithm="none")
    elif attack == "flipped_byte":
        token = _flip_signature_byte(user.token)
    elif attack == "expired":
        past = datetime.now(UTC) - timedelta(minutes=30)
        token = jwt.encode(
            _claims(settings, user.id, iat=int(past.timestamp()), exp=int(past.timestamp()) + 60), key, "HS256"
        )
    elif attack == "wrong_audience":
        token = jwt.encode(_claims(settings, user.id, aud="someone-else"), key, "HS256")
    elif attack == "wrong_key":
        token = jwt.encode(_claims(settings, user.id), "another-secret-of-at-least-32-bytes!!", "HS256")
    else:
        token, _ = issue_token(
            settings.auth, user_id=user.id, token_type="refresh", token_version=0, lifetime=timedelta(days=1)
        )
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_logout_ends_the_session_on_the_next_request(client: httpx.AsyncClient, org: Org) -> None:
    session = await tokens(client, org.employee.username)
    other_device = await tokens(client, org.employee.username)
    assert (await client.get(ME, headers=bearer(session["access_token"]))).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=bearer(session["access_token"]))).status_code == 204
    assert (await client.get(ME, headers=bearer(session["access_token"]))).status_code == 401
    gone = await client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert gone.status_code == 401
    # Another device's access token is outdated too, but its refresh token carries on.
    assert (await client.get(ME, headers=bearer(other_device["access_token"]))).status_code == 401
    renewed = await client.post("/api/v1/auth/refresh", json={"refresh_token": other_device["refresh_token"]})
    assert renewed.status_code == 200
    assert (await client.get(ME, headers=bearer(renewed.json()["access_token"]))).status_code == 200


async def test_logout_everywhere_ends_every_session(client: httpx.AsyncClient, org: Org) -> None:
    first = await tokens(client, org.employee.username)
    second = await tokens(client, org.employee.username)
    out = await client.post("/api/v1/auth/logout", json={"everywhere": True}, headers=bearer(first["access_token"]))
    assert out.status_code == 204
    for session in (first, second):
        refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert refreshed.status_code == 401


async def test_demotion_takes_effect_on_the_next_request(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    team = f"/api/v1/users/{org.manager.id}/team"
    assert (await client.get(team, headers=org.manager.headers)).status_code == 200
    for report in (org.employee, org.other_employee):  # a manager keeps the role while people report to them
        moved = await client.patch(
            f"/api/v1/users/{report.id}", json={"manager_id": org.other_manager.id}, headers=org.admin.headers
        )
        assert moved.status_code == 200
    demoted = await client.patch(
        f"/api/v1/users/{org.manager.id}", json={"role": "employee"}, headers=org.admin.headers
    )
    assert demoted.status_code == 200, demoted.text
    # The token minted under the old role stops working; a new sign-in carries only the new role.
    assert (await client.get(team, headers=org.manager.headers)).status_code == 401
    fresh = await tokens(client, org.manager.username)
    assert (await client.get(team, headers=bearer(fresh["access_token"]))).status_code == 403

    # Even a role changed behind the API's back (no token version bump) applies: roles are read per request.
    async with activity_deps.db.transaction() as tx:
        await tx.session.execute(update(User).where(User.id == org.other_manager.id).values(role="employee"))
    other_team = f"/api/v1/users/{org.other_manager.id}/team"
    assert (await client.get(other_team, headers=org.other_manager.headers)).status_code == 403


async def test_deactivation_takes_effect_on_the_next_request(client: httpx.AsyncClient, org: Org) -> None:
    session = await tokens(client, org.employee.username)
    assert (await client.delete(f"/api/v1/users/{org.employee.id}", headers=org.admin.headers)).status_code == 204
    assert (await client.get(ME, headers=bearer(session["access_token"]))).status_code == 401
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refreshed.status_code == 401


async def test_refresh_rotates_and_a_replay_revokes_the_family(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    first = await tokens(client, org.employee.username)
    second = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert (await client.get(ME, headers=bearer(second.json()["access_token"]))).status_code == 200

    replay = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    # The thief replayed first's token; the legitimate holder of the newer one is cut off too.
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert after.status_code == 401
    async with activity_deps.db.transaction() as tx:
        live = (
            await tx.session.scalars(
                select(RefreshToken).where(RefreshToken.user_id == org.employee.id, RefreshToken.revoked_at.is_(None))
            )
        ).all()
        replays = (await tx.session.scalars(select(AuditLog).where(AuditLog.action == "auth.refresh_replayed"))).all()
    assert live == []
    assert len(replays) == 1 and replays[0].resource_id == str(org.employee.id)


async def test_an_access_token_is_not_a_refresh_token(client: httpx.AsyncClient, org: Org) -> None:
    session = await tokens(client, org.employee.username)
    refused = await client.post("/api/v1/auth/refresh", json={"refresh_token": session["access_token"]})
    assert refused.status_code == 401


def test_a_token_expires_even_after_it_was_accepted(settings: Settings) -> None:
    """Verified tokens are remembered (core/security.py); their expiry is checked on every use all the same."""
    # `exp` is whole seconds (cut, not rounded): a one-second token may have expired by its first use on a busy host.
    token, _ = issue_token(
        settings.auth, user_id=1, token_type="access", token_version=0, lifetime=timedelta(seconds=2)
    )
    assert decode_token(settings.auth, token, "access").user_id == 1
    time.sleep(2.1)
    with pytest.raises(InvalidToken, match="expired"):
        decode_token(settings.auth, token, "access")
