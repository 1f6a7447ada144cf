"""One table: every identity route and method, for every role and for anonymous callers, the expected status.

A second test fails when the app has an identity route the table does not list.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.app import api_routes
from tests.conftest import PASSWORD
from tests.identity.conftest import Org

ROLES = ("anonymous", "employee", "accountant", "manager", "admin", "superadmin")
IDENTITY_MODULES = {"api.routes.auth", "api.routes.users", "api.routes.admin_policies"}
_unique = itertools.count(1)

Body = dict[str, Any] | Callable[[Org], dict[str, Any]] | None


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # {other}: an employee in the manager's team; {team_root}: that manager
    body: Body
    expected: tuple[int, int, int, int, int, int]  # in ROLES order

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _registration(_: Org) -> dict[str, Any]:
    n = next(_unique)
    return {"email": f"reg{n}@example.com", "username": f"reg{n}", "full_name": "Reg", "password": "long-enough"}


def _new_employee(org: Org) -> dict[str, Any]:
    n = next(_unique)
    return {
        "email": f"made{n}@example.com",
        "username": f"made{n}",
        "full_name": "Made",
        "password": "long-enough",
        "role": "employee",
        "manager_id": org.manager.id,
    }


ALL = (200, 200, 200, 200, 200)
TABLE = [
    # public: the same answer whoever asks
    Case("POST", "/api/v1/auth/register", _registration, (201, 201, 201, 201, 201, 201)),
    Case("POST", "/api/v1/auth/login", {"username": "nobody", "password": "wrong-pass"}, (401,) * 6),
    Case("POST", "/api/v1/auth/login/otp", {"otp_token": "x", "code": "123456"}, (401,) * 6),
    Case("POST", "/api/v1/auth/generate-otp", {"otp_token": "x"}, (401,) * 6),
    Case("POST", "/api/v1/auth/refresh", {"refresh_token": "x"}, (401,) * 6),
    # signed in: any role
    Case("POST", "/api/v1/auth/logout", None, (401, 204, 204, 204, 204, 204)),
    Case("POST", "/api/v1/auth/otp/setup", {"current_password": PASSWORD}, (401, *ALL)),
    Case(
        "POST",
        "/api/v1/auth/otp/verify",
        {"code": "123456", "current_password": PASSWORD},
        (401, 409, 409, 409, 409, 409),
    ),
    Case("POST", "/api/v1/auth/otp/email", {"current_password": PASSWORD}, (401, *ALL)),
    Case("POST", "/api/v1/auth/otp/disable", {"current_password": PASSWORD}, (401, 409, 409, 409, 409, 409)),
    Case(
        "POST",
        "/api/v1/auth/change-password",
        {"current_password": PASSWORD, "new_password": "another-password"},
        (401, *ALL),
    ),
    Case("GET", "/api/v1/users/me", None, (401, *ALL)),
    Case("PATCH", "/api/v1/users/me", {"full_name": "Renamed"}, (401, *ALL)),
    # within one's visibility: employees and accountants see only themselves, managers their team
    Case("GET", "/api/v1/users/{other}", None, (401, 404, 404, 200, 200, 200)),
    Case("GET", "/api/v1/users/{team_root}/team", None, (401, 403, 403, 200, 200, 200)),
    # admin and up
    Case("GET", "/api/v1/users/", None, (401, 403, 403, 403, 200, 200)),
    Case("POST", "/api/v1/users/", _new_employee, (401, 403, 403, 403, 201, 201)),
    Case("PATCH", "/api/v1/users/{other}", {"full_name": "Changed"}, (401, 403, 403, 403, 200, 200)),
    Case("DELETE", "/api/v1/users/{other}", None, (401, 403, 403, 403, 204, 204)),
    # superadmin only
    Case("POST", "/api/v1/admin/policies/reload", None, (401, 403, 403, 403, 403, 200)),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", TABLE, ids=lambda case: case.id)
async def test_permission_matrix(case: Case, role: str, client: httpx.AsyncClient, org: Org) -> None:
    path = case.path.format(other=org.other_employee.id, team_root=org.manager.id)
    body = case.body(org) if callable(case.body) else case.body
    headers = {} if role == "anonymous" else org.by_role(role).headers
    response = await client.request(case.method, path, json=body, headers=headers)
    expected = case.expected[ROLES.index(role)]
    assert response.status_code == expected, f"{role} {case.id}: {response.status_code} {response.text[:300]}"


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_identity_route_is_in_the_table(app: Any) -> None:
    listed = {(case.method, _shape(case.path)) for case in TABLE}
    routes = {
        (method, _shape(route.path))
        for route in api_routes(app)
        if getattr(route, "endpoint", None) is not None and route.endpoint.__module__ in IDENTITY_MODULES
        for method in route.methods
    }
    assert routes, "no identity routes found"
    assert routes - listed == set(), "routes missing from the permission table"
    assert listed - routes == set(), "the table lists routes the app does not have"
