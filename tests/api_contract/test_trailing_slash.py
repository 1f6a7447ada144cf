"""The product README's paths answer as written, and with the trailing slash the other way, with no redirect.

The list is the README's "Key Endpoints" section, as the seed wrote it. Each path is called both ways, as a role
that may use it, on a resource of its own for each call (an approval decides once), over a real socket.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest

from api.trailing_slash import other_form
from tests.api_contract.conftest import Team
from tests.conftest import PASSWORD, TestUser

# The seed's README, "Key Endpoints", in its order and its form.
README_ENDPOINTS = [
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/generate-otp",
    "GET /api/v1/users/me",
    "GET /api/v1/users/",
    "POST /api/v1/users/",
    "GET /api/v1/revenue/",
    "POST /api/v1/revenue/",
    "POST /api/v1/revenue/{id}/approve",
    "GET /api/v1/expenses/",
    "POST /api/v1/expenses/",
    "POST /api/v1/expenses/{id}/approve",
    "GET /api/v1/approvals/",
    "POST /api/v1/approvals/",
    "POST /api/v1/approvals/{id}/approve",
    "GET /api/v1/reports/",
    "POST /api/v1/reports/",
    "POST /api/v1/reports/{id}/download",
    "GET /api/v1/dashboard/overview",
    "GET /api/v1/dashboard/kpi",
]
_unique = itertools.count(1)


@dataclass
class Call:
    user: TestUser | None  # None: anonymous
    id: object = None  # fills {id}
    body: dict[str, Any] | None = None


Prepare = Callable[[httpx.AsyncClient, Team], Awaitable[Call]]


def _entry(kind: str) -> dict[str, Any]:
    body = {"amount": "120.00", "currency": "USD", "category": "travel", "entry_date": date.today().isoformat()}
    return {**body, "vendor": "Rail Co"} if kind == "expenses" else {**body, "source": "Client Co"}


async def _created(http: httpx.AsyncClient, user: TestUser, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _approve_entry(kind: str) -> Prepare:
    async def prepare(http: httpx.AsyncClient, team: Team) -> Call:
        entry = await _created(http, team.employee, f"/api/v1/{kind}/", _entry(kind))
        submitted = await http.post(f"/api/v1/{kind}/{entry['id']}/submit", headers=team.employee.headers)
        assert submitted.json()["status"] == "pending", submitted.text
        return Call(team.manager, entry["id"], {"comment": "fine"})

    return prepare


async def _approve_request(http: httpx.AsyncClient, team: Team) -> Call:
    body = {"title": "New laptop", "amount": "2400.00", "justification": "the old one died"}
    request = await _created(http, team.employee, "/api/v1/approvals/", body)
    return Call(team.manager, request["id"], {})


_REPORT = {"type": "ledger", "format": "csv", "period": {"from": f"{date.today():%Y-%m}-01", "to": str(date.today())}}


async def _completed_report(http: httpx.AsyncClient, team: Team) -> Call:
    accepted = await http.post("/api/v1/reports/", json=_REPORT, headers=team.employee.headers)
    assert accepted.status_code == 202, accepted.text
    for _ in range(300):
        status = (await http.get(accepted.json()["status_url"], headers=team.employee.headers)).json()["status"]
        if status != "queued" and status != "running":
            break
        await asyncio.sleep(0.1)
    assert status == "completed"
    return Call(team.employee, accepted.json()["id"])


def _as(role: str, body: Callable[[Team], dict[str, Any]] | None = None) -> Prepare:
    async def prepare(http: httpx.AsyncClient, team: Team) -> Call:
        user = None if role == "anonymous" else getattr(team, role)
        return Call(user, body=body(team) if body else None)

    return prepare


def _newcomer(team: Team) -> dict[str, Any]:
    n = next(_unique)
    return {"email": f"new{n}@example.com", "username": f"new{n}", "full_name": "New", "password": "long-enough"}


# How to call each path as a role that may, and what it answers (the status the handler gives, so a miss that
# fell through to "no such route" cannot pass).
CASES: dict[str, tuple[Prepare, int]] = {
    "POST /api/v1/auth/login": (_as("anonymous", lambda t: {"username": t.employee.email, "password": PASSWORD}), 200),
    "POST /api/v1/auth/register": (_as("anonymous", _newcomer), 201),
    "POST /api/v1/auth/generate-otp": (_as("anonymous", lambda t: {"otp_token": "not-a-sign-in-token"}), 401),
    "GET /api/v1/users/me": (_as("employee"), 200),
    "GET /api/v1/users/": (_as("admin"), 200),
    "POST /api/v1/users/": (
        _as("admin", lambda t: {**_newcomer(t), "role": "employee", "manager_id": t.manager.id}),
        201,
    ),
    "GET /api/v1/revenue/": (_as("employee"), 200),
    "POST /api/v1/revenue/": (_as("employee", lambda t: _entry("revenue")), 201),
    "POST /api/v1/revenue/{id}/approve": (_approve_entry("revenue"), 200),
    "GET /api/v1/expenses/": (_as("employee"), 200),
    "POST /api/v1/expenses/": (_as("employee", lambda t: _entry("expenses")), 201),
    "POST /api/v1/expenses/{id}/approve": (_approve_entry("expenses"), 200),
    "GET /api/v1/approvals/": (_as("manager"), 200),
    "POST /api/v1/approvals/": (_as("employee", lambda t: {"title": "Desk", "justification": "standing"}), 201),
    "POST /api/v1/approvals/{id}/approve": (_approve_request, 200),
    "GET /api/v1/reports/": (_as("employee"), 200),
    "POST /api/v1/reports/": (_as("employee", lambda t: _REPORT), 202),
    "POST /api/v1/reports/{id}/download": (_completed_report, 200),
    "GET /api/v1/dashboard/overview": (_as("employee"), 200),
    "GET /api/v1/dashboard/kpi": (_as("employee"), 200),
}


def test_every_readme_endpoint_has_a_case() -> None:
    assert list(CASES) == README_ENDPOINTS


def _documented_form(path: str) -> str:
    return path.replace("{id}", "{}")


def test_the_document_lists_each_readme_path_once_in_the_readmes_form(document: dict[str, Any]) -> None:
    shapes: dict[str, list[str]] = {}
    for path in document["paths"]:
        shapes.setdefault(re.sub(r"\{[^}]*\}", "{}", path), []).append(path)
    for endpoint in README_ENDPOINTS:
        method, path = endpoint.split(" ")
        shape = _documented_form(path)
        assert shape in shapes, f"{endpoint}: not in the document as written"
        assert other_form(shape) not in shapes, f"{endpoint}: the document lists both forms"
        assert method.lower() in document["paths"][shapes[shape][0]], endpoint


@pytest.mark.parametrize("endpoint", README_ENDPOINTS)
async def test_both_forms_answer_without_a_redirect(endpoint: str, live: httpx.AsyncClient, team: Team) -> None:
    method, path = endpoint.split(" ")
    prepare, expected = CASES[endpoint]
    answers = []
    for form in (path, other_form(path)):
        call = await prepare(live, team)
        url = form.replace("{id}", str(call.id))
        headers = call.user.headers if call.user else {}
        response = await live.request(method, url, json=call.body, headers=headers)
        answers.append((url, response.status_code, response.text[:300]))
    assert [status for _, status, _ in answers] == [expected, expected], answers


async def test_a_path_that_exists_in_neither_form_is_still_a_404(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/no-such-thing", "/api/v1/no-such-thing/"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    for path in ("/api/v1/users/me", "/api/v1/users/me/"):  # there, but not for this method: the same 405
        assert (await client.delete(path)).status_code == 405, path
