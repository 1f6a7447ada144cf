"""Users in a manager tree: visibility (BOLA), mass assignment, role grants, cycles, deactivation."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from activities.deps import ActivityDeps
from domain.models import AuditLog, User
from tests.identity.conftest import Org

USERS = "/api/v1/users"


def _new_user(n: int, role: str, manager_id: int) -> dict[str, object]:
    return {
        "email": f"new{n}@example.com",
        "username": f"new{n}",
        "full_name": f"New {n}",
        "password": "a-fine-password",
        "role": role,
        "manager_id": manager_id,
    }


async def _stored(activity_deps: ActivityDeps, user_id: int) -> User:
    async with activity_deps.db.transaction() as tx:
        user = await tx.session.get(User, user_id)
        assert user is not None
        return user


async def test_a_manager_sees_their_subtree_and_nobody_else(client: httpx.AsyncClient, org: Org) -> None:
    assert (await client.get(f"{USERS}/{org.employee.id}", headers=org.manager.headers)).status_code == 200
    outside = await client.get(f"{USERS}/{org.outsider.id}", headers=org.manager.headers)
    assert outside.status_code == 404 and outside.json()["error"]["code"] == "not_found"
    assert (await client.get(f"{USERS}/{org.outsider.id}/team", headers=org.manager.headers)).status_code == 404
    assert (await client.get(f"{USERS}/{org.admin.id}", headers=org.manager.headers)).status_code == 404
    team = await client.get(f"{USERS}/{org.manager.id}/team", headers=org.manager.headers)
    assert {member["id"] for member in team.json()["items"]} == {org.employee.id, org.other_employee.id}
    # The admin sees the whole tree below them, at every depth.
    tree = await client.get(f"{USERS}/{org.admin.id}/team", headers=org.admin.headers)
    below_admin = [org.manager, org.accountant, org.employee, org.other_employee, org.other_manager, org.outsider]
    assert {member["id"] for member in tree.json()["items"]} == {u.id for u in below_admin}


async def test_an_employee_cannot_read_change_or_remove_a_colleague(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    colleague = f"{USERS}/{org.other_employee.id}"
    assert (await client.get(colleague, headers=org.employee.headers)).status_code == 404
    assert (await client.get(f"{USERS}/{org.employee.id}", headers=org.employee.headers)).status_code == 200
    # Changing or removing users is an admin permission: an employee is refused on their role, before any user is
    # looked up. 403 is right here, and leaks nothing: it is the same answer for a colleague, for someone outside
    # their team and for an id nobody has (checked below), so it tells nothing about who exists. Reading (allowed to
    # everyone, within their visibility) is where a target outside one's view must answer 404, as above.
    patched = await client.patch(colleague, json={"full_name": "Hacked"}, headers=org.employee.headers)
    assert patched.status_code == 403
    assert (await client.delete(colleague, headers=org.employee.headers)).status_code == 403
    for target in (org.outsider.id, 999_999):
        unknown = await client.patch(f"{USERS}/{target}", json={"full_name": "x"}, headers=org.employee.headers)
        assert (unknown.status_code, unknown.json()["error"]["message"]) == (
            patched.status_code,
            patched.json()["error"]["message"],
        )
        assert (await client.delete(f"{USERS}/{target}", headers=org.employee.headers)).status_code == 403
    stored = await _stored(activity_deps, org.other_employee.id)
    assert stored.full_name != "Hacked" and stored.is_active


async def test_patch_me_refuses_role_manager_and_status(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    for smuggled in ({"role": "superadmin"}, {"manager_id": None}, {"is_active": False}, {"token_version": 0}):
        answer = await client.patch(f"{USERS}/me", json={"full_name": "Me", **smuggled}, headers=org.employee.headers)
        assert answer.status_code == 422, smuggled
    stored = await _stored(activity_deps, org.employee.id)
    assert (stored.role, stored.manager_id, stored.is_active) == ("employee", org.manager.id, True)
    assert stored.full_name != "Me"
    renamed = await client.patch(f"{USERS}/me", json={"full_name": "  Me Myself "}, headers=org.employee.headers)
    assert renamed.status_code == 200 and renamed.json()["full_name"] == "Me Myself"
    no_current = await client.patch(f"{USERS}/me", json={"password": "a-new-password"}, headers=org.employee.headers)
    assert no_current.status_code == 422


async def test_roles_are_granted_only_below_ones_own(client: httpx.AsyncClient, org: Org) -> None:
    cases = [
        (org.admin, "manager", 201),
        (org.admin, "accountant", 201),
        (org.admin, "admin", 403),
        (org.admin, "superadmin", 403),
        (org.superadmin, "admin", 201),
        (org.superadmin, "superadmin", 403),
    ]
    for n, (granter, role, expected) in enumerate(cases):
        answer = await client.post(f"{USERS}/", json=_new_user(n, role, org.admin.id), headers=granter.headers)
        assert answer.status_code == expected, (granter.role, role, answer.text)
    promote = await client.patch(f"{USERS}/{org.manager.id}", json={"role": "admin"}, headers=org.admin.headers)
    assert promote.status_code == 403
    peer = await client.patch(f"{USERS}/{org.admin.id}", json={"full_name": "x"}, headers=org.admin.headers)
    assert peer.status_code == 403  # that is the admin themselves: /users/me is the way


async def test_every_new_user_needs_an_active_manager(client: httpx.AsyncClient, org: Org) -> None:
    body = _new_user(1, "employee", org.manager.id)
    missing = {k: v for k, v in body.items() if k != "manager_id"}
    assert (await client.post(f"{USERS}/", json=missing, headers=org.admin.headers)).status_code == 422
    nobody = await client.post(f"{USERS}/", json={**body, "manager_id": 999999}, headers=org.admin.headers)
    assert nobody.status_code == 422
    created = await client.post(f"{USERS}/", json=body, headers=org.admin.headers)
    assert created.status_code == 201
    assert (await client.post(f"{USERS}/", json=body, headers=org.admin.headers)).status_code == 409
    unmanaged = await client.patch(f"{USERS}/{org.employee.id}", json={"manager_id": None}, headers=org.admin.headers)
    assert unmanaged.status_code == 422


async def test_a_manager_chain_cannot_loop(client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps) -> None:
    # A team lead under the manager; the manager would report to them: a cycle (through two managers, since only
    # managers and up may have reports at all).
    lead = await client.post(f"{USERS}/", json=_new_user(90, "manager", org.manager.id), headers=org.admin.headers)
    assert lead.status_code == 201
    loop = await client.patch(
        f"{USERS}/{org.manager.id}", json={"manager_id": lead.json()["id"]}, headers=org.admin.headers
    )
    assert loop.status_code == 422 and "cycle" in loop.json()["error"]["message"]
    own = await client.patch(
        f"{USERS}/{org.manager.id}", json={"manager_id": org.manager.id}, headers=org.admin.headers
    )
    assert own.status_code == 422 and "cycle" in own.json()["error"]["message"]
    assert (await _stored(activity_deps, org.manager.id)).manager_id == org.admin.id
    moved = await client.patch(
        f"{USERS}/{org.employee.id}", json={"manager_id": org.other_manager.id}, headers=org.admin.headers
    )
    assert moved.status_code == 200 and moved.json()["manager_id"] == org.other_manager.id


async def test_deactivation_never_of_oneself_and_audited(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    assert (await client.delete(f"{USERS}/{org.admin.id}", headers=org.admin.headers)).status_code == 422
    assert (await client.delete(f"{USERS}/{org.superadmin.id}", headers=org.admin.headers)).status_code == 403
    assert (await client.delete(f"{USERS}/{org.employee.id}", headers=org.admin.headers)).status_code == 204
    listed = await client.get(f"{USERS}/", params={"is_active": "false"}, headers=org.admin.headers)
    assert [user["id"] for user in listed.json()["items"]] == [org.employee.id]
    async with activity_deps.db.transaction() as tx:
        actions = (
            await tx.session.scalars(select(AuditLog.action).where(AuditLog.resource_id == str(org.employee.id)))
        ).all()
    assert "user.deactivated" in actions


async def test_list_filters_and_pages(client: httpx.AsyncClient, org: Org) -> None:
    employees = await client.get(f"{USERS}/", params={"role": "employee", "limit": 2}, headers=org.admin.headers)
    body = employees.json()
    assert body["total"] == 3 and len(body["items"]) == 2 and body["limit"] == 2
    by_manager = await client.get(f"{USERS}/", params={"manager_id": org.manager.id}, headers=org.admin.headers)
    assert {u["id"] for u in by_manager.json()["items"]} == {org.employee.id, org.other_employee.id}
    assert (await client.get(f"{USERS}/", params={"limit": 101}, headers=org.admin.headers)).status_code == 422
    assert (await client.get(f"{USERS}/", params={"role": "pirate"}, headers=org.admin.headers)).status_code == 422
    assert "password_hash" not in body["items"][0] and "otp_secret" not in body["items"][0]
