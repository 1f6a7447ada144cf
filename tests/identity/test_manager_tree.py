"""The manager tree stays sound: only managers and up have reports, nobody is left under an inactive manager or
one demoted below manager, and the first superadmin's configured password follows the password rule."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from activities.deps import ActivityDeps
from domain.models import AuditLog, User
from domain.users.bootstrap import BootstrapRefused, ensure_superadmin
from tests.identity.conftest import Org

USERS = "/api/v1/users"


def _new_user(n: int, manager_id: int, role: str = "employee") -> dict[str, object]:
    return {
        "email": f"tree{n}@example.com",
        "username": f"tree{n}",
        "full_name": f"Tree {n}",
        "password": "a-fine-password",
        "role": role,
        "manager_id": manager_id,
    }


async def _manager_of(activity_deps: ActivityDeps, user_id: int) -> int | None:
    async with activity_deps.db.transaction() as tx:
        user = await tx.session.get(User, user_id)
        assert user is not None
        return user.manager_id


async def test_only_managers_and_up_can_be_named_a_manager(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    for n, not_a_manager in enumerate((org.employee, org.accountant)):
        created = await client.post(f"{USERS}/", json=_new_user(n, not_a_manager.id), headers=org.admin.headers)
        assert created.status_code == 422, created.text
        assert "a manager must be one of: admin, manager, superadmin" in created.json()["error"]["message"]
    # The employee-manages-a-manager case: refused, the tree unchanged.
    moved = await client.patch(
        f"{USERS}/{org.other_manager.id}", json={"manager_id": org.employee.id}, headers=org.admin.headers
    )
    assert moved.status_code == 422
    assert await _manager_of(activity_deps, org.other_manager.id) == org.admin.id
    for n, manager in enumerate((org.manager, org.admin, org.superadmin), start=10):
        created = await client.post(f"{USERS}/", json=_new_user(n, manager.id), headers=org.admin.headers)
        assert created.status_code == 201, (manager.role, created.text)


async def test_a_manager_with_active_reports_is_not_deactivated_until_they_are_moved(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    refused = await client.delete(f"{USERS}/{org.manager.id}", headers=org.admin.headers)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["message"].startswith("2 active people report to user") and error["details"]["active_reports"] == 2
    via_patch = await client.patch(f"{USERS}/{org.manager.id}", json={"is_active": False}, headers=org.admin.headers)
    assert via_patch.status_code == 409
    me = await client.get(f"{USERS}/me", headers=org.manager.headers)
    assert me.status_code == 200, "the refused deactivation left the manager signed in"

    for report in (org.employee, org.other_employee):
        moved = await client.patch(
            f"{USERS}/{report.id}", json={"manager_id": org.other_manager.id}, headers=org.admin.headers
        )
        assert moved.status_code == 200
    assert (await client.delete(f"{USERS}/{org.manager.id}", headers=org.admin.headers)).status_code == 204
    async with activity_deps.db.transaction() as tx:
        actions = (
            await tx.session.scalars(select(AuditLog.action).where(AuditLog.resource_id == str(org.manager.id)))
        ).all()
    assert "user.deactivated" in actions


async def test_inactive_reports_do_not_hold_their_manager(client: httpx.AsyncClient, org: Org) -> None:
    for report in (org.employee, org.other_employee):
        assert (await client.delete(f"{USERS}/{report.id}", headers=org.admin.headers)).status_code == 204
    assert (await client.delete(f"{USERS}/{org.manager.id}", headers=org.admin.headers)).status_code == 204
    # Bringing a report back under a manager who has left is refused; with a new manager in the same call, fine.
    back = await client.patch(f"{USERS}/{org.employee.id}", json={"is_active": True}, headers=org.admin.headers)
    assert back.status_code == 422 and "manager_id" in back.json()["error"]["message"]
    back = await client.patch(
        f"{USERS}/{org.employee.id}",
        json={"is_active": True, "manager_id": org.other_manager.id},
        headers=org.admin.headers,
    )
    assert back.status_code == 200 and back.json()["is_active"] is True


async def test_a_manager_with_reports_is_not_demoted_below_manager(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    demoted = await client.patch(f"{USERS}/{org.manager.id}", json={"role": "employee"}, headers=org.admin.headers)
    assert demoted.status_code == 409 and "2 active people" in demoted.json()["error"]["message"]
    assert (await client.get(f"{USERS}/me", headers=org.manager.headers)).json()["role"] == "manager"
    # Without reports (the other manager's only one moved away), the demotion goes through.
    await client.patch(f"{USERS}/{org.outsider.id}", json={"manager_id": org.manager.id}, headers=org.admin.headers)
    demoted = await client.patch(
        f"{USERS}/{org.other_manager.id}", json={"role": "accountant"}, headers=org.admin.headers
    )
    assert demoted.status_code == 200 and demoted.json()["role"] == "accountant"


@pytest.mark.parametrize("password", ["short", "x" * 129])
async def test_first_superadmin_password_follows_the_password_rule(activity_deps: ActivityDeps, password: str) -> None:
    async with activity_deps.db.transaction() as tx:
        with pytest.raises(BootstrapRefused, match=r"FIRST_SUPERADMIN_PASSWORD refused: .* 8 to 128 characters"):
            await ensure_superadmin(tx, email="root@example.com", password=password, bcrypt_rounds=4)
        assert await tx.session.scalar(select(User).where(User.email == "root@example.com")) is None


async def test_first_superadmin_accepts_a_128_character_password(activity_deps: ActivityDeps) -> None:
    async with activity_deps.db.transaction() as tx:
        result = await ensure_superadmin(tx, email="root@example.com", password="p" * 128, bcrypt_rounds=4)
    assert result.created and result.generated_password is None
