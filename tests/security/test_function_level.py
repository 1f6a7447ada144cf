"""OWASP API5 (broken function-level authorization): every route refuses every role its permission excludes.

The expectation for /admin routes is written down independently of the policy: only admins and superadmins get
past the permission check there, and some routes only superadmins.
"""

from __future__ import annotations

import re

import httpx
import pytest

from api.app import api_routes, dependency_calls
from api.deps import Authorize, Public
from core.authz import KNOWN_ROLES
from tests.conftest import MakeUser

LOWER_THAN_ADMIN = ("employee", "accountant", "manager")


def _declared(route: object) -> Authorize | Public:
    for call in dependency_calls(route.dependant):  # type: ignore[attr-defined]
        if isinstance(call, Authorize | Public):
            return call
    raise AssertionError(f"route {route} declares no permission")


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _routes(app: object) -> list[tuple[str, str, Authorize]]:
    found = []
    for route in api_routes(app):  # type: ignore[arg-type]
        permission = _declared(route)
        if isinstance(permission, Authorize):
            for method in sorted(route.methods - {"HEAD"}):
                found.append((method, route.path, permission))
    return found


async def test_every_denied_role_gets_403_on_every_route(
    app: object, client: httpx.AsyncClient, make_user: MakeUser, app_services: object
) -> None:
    users = {role: await make_user(role) for role in KNOWN_ROLES}
    authorizer = app_services.authorizer  # type: ignore[attr-defined]
    checked = 0
    for method, path, permission in _routes(app):
        for role, user in users.items():
            if authorizer.allows(role, permission.resource, permission.action):
                continue
            response = await client.request(method, _concrete(path), headers=user.headers, json={})
            assert response.status_code == 403, f"{role} {method} {path}: {response.status_code} {response.text}"
            checked += 1
    assert checked > 50


async def test_admin_routes_refuse_every_role_below_admin(
    app: object, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    admin_routes = [(m, p) for m, p, _ in _routes(app) if p.startswith("/api/v1/admin")]
    assert len(admin_routes) >= 6
    for role in LOWER_THAN_ADMIN:
        user = await make_user(role)
        for method, path in admin_routes:
            response = await client.request(method, _concrete(path), headers=user.headers, json={})
            assert response.status_code == 403, f"{role} {method} {path}: {response.status_code}"


@pytest.mark.parametrize("path", ["/api/v1/admin/policies/reload", "/api/v1/admin/backups"])
async def test_superadmin_only_routes_refuse_admins(client: httpx.AsyncClient, make_user: MakeUser, path: str) -> None:
    admin = await make_user("admin")
    response = await client.post(path, headers=admin.headers, json={})
    assert response.status_code == 403


async def test_every_protected_route_refuses_anonymous_callers(app: object, client: httpx.AsyncClient) -> None:
    for method, path, _ in _routes(app):
        response = await client.request(method, _concrete(path), json={})
        assert response.status_code == 401, f"anonymous {method} {path}: {response.status_code}"
        assert response.headers.get("www-authenticate") == "Bearer"
