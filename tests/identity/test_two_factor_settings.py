"""Turning two-factor sign-in on and off through the API, always with the current password (a stolen access
token alone changes nothing), audited; the emailed code arrives as a rendered HTML + text mail; a replayed
authenticator code does not use up the emailed code's tries."""

from __future__ import annotations

from email import message_from_bytes, policy

import httpx
import pyotp
from sqlalchemy import select

from activities.deps import ActivityDeps
from core.settings import Settings
from domain.models import AuditLog, OtpCode, User
from tests.conftest import PASSWORD, MakeUser
from tests.conftest import TestUser as Member
from tests.identity.conftest import latest_code, login

AUTH = "/api/v1/auth"
PROOF = {"current_password": PASSWORD}
WRONG = {"current_password": "not-the-password"}


async def _stored(activity_deps: ActivityDeps, user: Member) -> User:
    async with activity_deps.db.transaction() as tx:
        stored = await tx.session.get(User, user.id)
        assert stored is not None
        return stored


async def _actions(activity_deps: ActivityDeps, user: Member) -> list[tuple[str, dict]]:
    async with activity_deps.db.transaction() as tx:
        rows = (
            await tx.session.scalars(select(AuditLog).where(AuditLog.resource_id == str(user.id)).order_by(AuditLog.id))
        ).all()
        return [(row.action, row.changes) for row in rows]


async def test_email_two_factor_is_switched_on_with_the_password_and_then_required(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, activity_deps: ActivityDeps
) -> None:
    user = await make_user("employee")
    assert (await client.post(f"{AUTH}/otp/email", json={}, headers=user.headers)).status_code == 422
    refused = await client.post(f"{AUTH}/otp/email", json=WRONG, headers=user.headers)
    assert refused.status_code == 422 and "current_password" in refused.json()["error"]["message"]
    assert (await _stored(activity_deps, user)).otp_enabled is False

    enabled = await client.post(f"{AUTH}/otp/email", json=PROOF, headers=user.headers)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json() == {"otp_enabled": True, "methods": ["email"]}
    assert (await client.post(f"{AUTH}/otp/email", json=PROOF, headers=user.headers)).status_code == 409

    challenge = (await login(client, user.username)).json()
    assert challenge["otp_required"] is True and challenge["methods"] == ["email"]
    assert (await client.post(f"{AUTH}/generate-otp", json={"otp_token": challenge["otp_token"]})).status_code == 200
    code = latest_code(settings, user.email)
    signed_in = await client.post(f"{AUTH}/login/otp", json={"otp_token": challenge["otp_token"], "code": code})
    assert signed_in.status_code == 200 and "access_token" in signed_in.json()

    actions = await _actions(activity_deps, user)
    assert ("auth.otp_change_refused", {"change": "email_enable"}) in actions
    assert ("auth.otp_enabled", {"method": "email"}) in actions


async def test_two_factor_is_switched_off_with_the_password(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    user = await make_user("employee")
    assert (await client.post(f"{AUTH}/otp/disable", json=PROOF, headers=user.headers)).status_code == 409
    setup = await client.post(f"{AUTH}/otp/setup", json=PROOF, headers=user.headers)
    totp = pyotp.TOTP(setup.json()["secret"])
    verify = {"code": totp.now(), **PROOF}
    assert (await client.post(f"{AUTH}/otp/verify", json=verify, headers=user.headers)).status_code == 200
    assert (await login(client, user.username)).json()["otp_required"] is True

    assert (await client.post(f"{AUTH}/otp/disable", json=WRONG, headers=user.headers)).status_code == 422
    assert (await login(client, user.username)).json().get("otp_required") is True, "a wrong password changes nothing"

    disabled = await client.post(f"{AUTH}/otp/disable", json=PROOF, headers=user.headers)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json() == {"otp_enabled": False, "methods": []}
    stored = await _stored(activity_deps, user)
    assert (stored.otp_enabled, stored.otp_secret, stored.otp_last_step) == (False, None, None)
    assert "access_token" in (await login(client, user.username)).json()  # the password alone signs in again

    actions = await _actions(activity_deps, user)
    assert ("auth.otp_change_refused", {"change": "disable"}) in actions
    assert ("auth.otp_disabled", {"methods": ["totp", "email"]}) in actions


async def test_a_stolen_access_token_alone_cannot_enrol_an_authenticator(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    victim = await make_user("employee")
    for body in (None, {}, WRONG):
        setup = await client.post(f"{AUTH}/otp/setup", json=body, headers=victim.headers)
        assert setup.status_code == 422 and "secret" not in setup.text
    assert (await _stored(activity_deps, victim)).otp_secret is None

    # Even with a secret pending from the victim's own setup, confirming it needs the password too.
    setup = await client.post(f"{AUTH}/otp/setup", json=PROOF, headers=victim.headers)
    code = pyotp.TOTP(setup.json()["secret"]).now()
    without = await client.post(f"{AUTH}/otp/verify", json={"code": code}, headers=victim.headers)
    assert without.status_code == 422
    wrong = await client.post(f"{AUTH}/otp/verify", json={"code": code, **WRONG}, headers=victim.headers)
    assert wrong.status_code == 422
    assert (await _stored(activity_deps, victim)).otp_enabled is False


async def test_the_emailed_code_is_a_rendered_mail_with_html_and_text(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, activity_deps: ActivityDeps
) -> None:
    user = await make_user("employee", otp_enabled=True, full_name="Ada Lovelace")
    challenge = (await login(client, user.username)).json()
    await client.post(f"{AUTH}/generate-otp", json={"otp_token": challenge["otp_token"]})
    code = latest_code(settings, user.email)

    messages = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in settings.smtp.mail_dir.glob("otp-*")]
    (message,) = [m for m in messages if m["To"] == user.email]
    assert message["Subject"] == "Your sign-in code"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None, "a text and an HTML part"
    assert code in text.get_content() and "Hello Ada Lovelace" in text.get_content()
    assert code in html.get_content() and "<html" in html.get_content()
    assert "10 minutes" in text.get_content()
    async with activity_deps.db.transaction() as tx:
        hashes = (await tx.session.scalars(select(OtpCode.code_hash).where(OtpCode.user_id == user.id))).all()
    assert hashes and all(code not in stored for stored in hashes)


async def test_a_replayed_authenticator_code_does_not_use_up_the_emailed_codes_tries(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    user = await make_user("employee")
    setup = await client.post(f"{AUTH}/otp/setup", json=PROOF, headers=user.headers)
    totp = pyotp.TOTP(setup.json()["secret"])
    used = totp.now()
    assert (
        await client.post(f"{AUTH}/otp/verify", json={"code": used, **PROOF}, headers=user.headers)
    ).status_code == 200

    otp_token = (await login(client, user.username)).json()["otp_token"]
    await client.post(f"{AUTH}/generate-otp", json={"otp_token": otp_token})
    emailed = latest_code(settings, user.email)
    if emailed == used:  # one in a million: the replay would be the emailed code itself
        await client.post(f"{AUTH}/generate-otp", json={"otp_token": otp_token})
        emailed = latest_code(settings, user.email)
    for _ in range(5):  # as many as would kill the emailed code if each counted as a wrong guess
        replay = await client.post(f"{AUTH}/login/otp", json={"otp_token": otp_token, "code": used})
        assert replay.status_code == 401
    signed_in = await client.post(f"{AUTH}/login/otp", json={"otp_token": otp_token, "code": emailed})
    assert signed_in.status_code == 200, signed_in.text
