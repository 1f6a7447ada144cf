"""One table: every route and method of the app, for every role and for anonymous callers, the expected status.

The statuses are written here by hand, from what each role is meant to be able to do; they are never computed
from policies/policy.csv, so an edit of the policy (or of a route's declared permission) that changes who may do
what fails this test until the table agrees. A second test fails when the app has a route the table does not
list, or the table lists one the app no longer has.

Routes that act on a resource are called on one that does not exist (404), or with a body that does not validate
(422): a forbidden role must get 403, since authorization runs before the lookup and before body validation. Where
the answer of an allowed role also depends on details that are not about authorization (idempotency keys,
If-Match, workflow state), the table says REACHED: neither 401 nor 403, and no server error. Nothing here starts a
workflow.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.app import api_routes
from api.deps import AppServices
from core.engine import WorkflowEngine
from core.settings import TemporalSettings
from tests.conftest import PASSWORD
from tests.identity.conftest import Org

ROLES = ("anonymous", "employee", "accountant", "manager", "admin", "superadmin")
REACHED = -1  # past authorization: the exact answer depends on a resource the matrix does not build
MISSING = 999_999
MISSING_UUID = "00000000-0000-4000-8000-000000000000"
_unique = itertools.count(1)

Expected = tuple[int, int, int, int, int, int]  # in ROLES order
Body = dict[str, Any] | Callable[[Org], dict[str, Any]] | None


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # {other}: an employee in the manager's team; {team_root}: that manager; {missing}: no such id
    expected: Expected
    body: Body = None
    temporal_down: bool = False  # the route starts a workflow: Temporal unreachable makes an allowed call a 503
    streams: bool = False  # an endless response: only its status line is read

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


# Row shapes, in ROLES order. Written out, not derived from the policy.
def everyone(status: int) -> Expected:
    return (status,) * 6


def signed_in(status: int) -> Expected:
    return (401, status, status, status, status, status)


def admins(status: int) -> Expected:
    return (401, 403, 403, 403, status, status)


def superadmin_only(status: int) -> Expected:
    return (401, 403, 403, 403, 403, status)


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


PROOF = {"current_password": PASSWORD}


def _entry_cases(kind: str) -> list[Case]:
    base = f"/api/v1/{kind}"
    one = f"{base}/{{missing}}"
    return [
        Case("POST", f"{base}/", signed_in(422), {}),  # every role files entries; an empty body is invalid
        Case("GET", f"{base}/", signed_in(200)),
        Case("GET", one, signed_in(404)),
        Case("PATCH", one, signed_in(REACHED), {"description": "x"}),
        Case("DELETE", one, signed_in(404)),
        Case("POST", f"{one}/submit", signed_in(REACHED)),
        # Deciding is open to every role: whether one is the current approver is the workflow's rule, not a role's.
        Case("POST", f"{one}/approve", signed_in(REACHED), {}),
        Case("POST", f"{one}/reject", signed_in(REACHED), {"reason": "no"}),
        Case("POST", f"{one}/request-changes", signed_in(REACHED), {"comment": "fix"}),
        Case("POST", f"{one}/withdraw", signed_in(REACHED)),
        Case("GET", f"{one}/history", signed_in(404)),
    ]


TABLE: list[Case] = [
    # --- health and metrics: for load balancers and scrapers, the same for everyone ---
    Case("GET", "/health", everyone(200)),
    Case("GET", "/health/ready", everyone(200)),
    Case("GET", "/metrics", everyone(200)),
    # --- sign-in: public, the same answer whoever asks ---
    Case("POST", "/api/v1/auth/register", everyone(201), _registration),
    Case("POST", "/api/v1/auth/login", everyone(401), {"username": "nobody", "password": "wrong-pass"}),
    Case("POST", "/api/v1/auth/login/otp", everyone(401), {"otp_token": "x", "code": "123456"}),
    Case("POST", "/api/v1/auth/generate-otp", everyone(401), {"otp_token": "x"}),
    Case("POST", "/api/v1/auth/refresh", everyone(401), {"refresh_token": "x"}),
    # --- one's own account: any signed-in role ---
    Case("POST", "/api/v1/auth/logout", signed_in(204)),
    Case("POST", "/api/v1/auth/otp/setup", signed_in(200), PROOF),
    Case("POST", "/api/v1/auth/otp/verify", signed_in(409), {"code": "123456", **PROOF}),  # no setup started
    Case("POST", "/api/v1/auth/otp/email", signed_in(200), PROOF),
    Case("POST", "/api/v1/auth/otp/disable", signed_in(409), PROOF),  # two-factor is not on
    Case("POST", "/api/v1/auth/change-password", signed_in(200), {**PROOF, "new_password": "another-password"}),
    Case("GET", "/api/v1/users/me", signed_in(200)),
    Case("PATCH", "/api/v1/users/me", signed_in(200), {"full_name": "Renamed"}),
    Case("PUT", "/api/v1/users/me/delegate", signed_in(422), {}),
    Case("GET", "/api/v1/users/me/delegate", signed_in(404)),  # none in force
    Case("DELETE", "/api/v1/users/me/delegate", signed_in(404)),  # none to end
    Case("GET", "/api/v1/users/me/notification-preferences", signed_in(200)),
    Case("PUT", "/api/v1/users/me/notification-preferences", signed_in(200), {"email": {}}),
    # --- users within one's visibility: employees and accountants see only themselves, managers their team ---
    Case("GET", "/api/v1/users/{other}", (401, 404, 404, 200, 200, 200)),
    Case("GET", "/api/v1/users/{team_root}/team", (401, 403, 403, 200, 200, 200)),
    # --- managing users: admin and up ---
    Case("GET", "/api/v1/users/", admins(200)),
    Case("POST", "/api/v1/users/", admins(201), _new_employee),
    Case("PATCH", "/api/v1/users/{other}", admins(200), {"full_name": "Changed"}),
    Case("DELETE", "/api/v1/users/{other}", admins(204)),
    # --- revenue and expense entries: every role files its own and sees what its visibility allows ---
    *_entry_cases("revenue"),
    *_entry_cases("expenses"),
    # --- receipts on expenses: `entry update` to add and remove (the owner's, checked after), `entry read` to see ---
    Case("POST", "/api/v1/expenses/{missing}/attachments", signed_in(404), {}),
    Case("POST", "/api/v1/expenses/{missing}/attachments/uploads", signed_in(422), {}),
    Case("POST", "/api/v1/expenses/{missing}/attachments/{missing}/complete", signed_in(404)),
    Case("GET", "/api/v1/expenses/{missing}/attachments", signed_in(404)),
    Case("GET", "/api/v1/expenses/{missing}/attachments/{missing}", signed_in(404)),
    Case("DELETE", "/api/v1/expenses/{missing}/attachments/{missing}", signed_in(404)),
    # --- possible duplicates of an expense: dismissing is open to every role past authorization; whether one
    # decides on the expense (or reads every entry) is the dismissal's own rule ---
    Case("POST", "/api/v1/expenses/{missing}/duplicates/{missing}/dismiss", signed_in(404), {"reason": "x"}),
    # --- approvals: an inbox for everyone; generic requests may be opened by anyone ---
    Case("GET", "/api/v1/approvals/", signed_in(200)),
    Case("POST", "/api/v1/approvals/", signed_in(422), {}),
    Case("GET", "/api/v1/approvals/{missing}", signed_in(404)),
    Case("POST", "/api/v1/approvals/{missing}/approve", signed_in(REACHED), {}),
    Case("POST", "/api/v1/approvals/{missing}/reject", signed_in(REACHED), {"reason": "no"}),
    Case("POST", "/api/v1/approvals/{missing}/request-changes", signed_in(REACHED), {"comment": "fix"}),
    Case("POST", "/api/v1/approvals/{missing}/withdraw", signed_in(REACHED)),
    Case("POST", "/api/v1/approvals/{missing}/resubmit", signed_in(REACHED), {}),
    # --- notifications: one's own ---
    Case("GET", "/api/v1/notifications", signed_in(200)),
    Case("GET", "/api/v1/notifications/unread-count", signed_in(200)),
    Case("POST", "/api/v1/notifications/read-all", signed_in(200)),
    Case("POST", "/api/v1/notifications/{missing}/read", signed_in(404)),
    Case("GET", "/api/v1/notifications/stream", signed_in(200), streams=True),
    # --- reports: anyone requests and reads their own; schedules are for admins ---
    Case("POST", "/api/v1/reports/", signed_in(422), {}),
    Case("GET", "/api/v1/reports/", signed_in(200)),
    Case("GET", f"/api/v1/reports/{MISSING_UUID}", signed_in(404)),
    Case("GET", f"/api/v1/reports/{MISSING_UUID}/download", signed_in(404)),
    Case("POST", f"/api/v1/reports/{MISSING_UUID}/download", signed_in(404)),
    Case("POST", "/api/v1/reports/schedules", admins(422), {}),
    Case("GET", "/api/v1/reports/schedules", admins(200)),
    Case("GET", "/api/v1/reports/schedules/{missing}", admins(404)),
    Case("PATCH", "/api/v1/reports/schedules/{missing}", admins(404), {"name": "x"}),
    Case("DELETE", "/api/v1/reports/schedules/{missing}", admins(404)),
    Case("POST", "/api/v1/reports/schedules/{missing}/pause", admins(404)),
    Case("POST", "/api/v1/reports/schedules/{missing}/resume", admins(404)),
    Case("POST", "/api/v1/reports/schedules/{missing}/trigger", admins(404)),
    # --- report templates: everyone lists, reads and runs them; accountants and up create, revise and archive ---
    Case("GET", "/api/v1/report-templates", signed_in(200)),
    Case("GET", "/api/v1/report-templates/{missing}", signed_in(404)),
    Case("GET", "/api/v1/report-templates/{missing}/versions", signed_in(404)),
    Case("GET", "/api/v1/report-templates/{missing}/versions/{missing}", signed_in(404)),
    Case("POST", "/api/v1/report-templates", (401, 403, 422, 403, 422, 422), {}),
    Case("PATCH", "/api/v1/report-templates/{missing}", (401, 403, 404, 403, 404, 404), {"name": "x"}),
    Case("DELETE", "/api/v1/report-templates/{missing}", (401, 403, 404, 403, 404, 404)),
    Case("POST", "/api/v1/report-templates/{missing}/runs", signed_in(422), {}),
    # --- exchange rates: everyone reads them; accountants and up set manual ones ---
    Case("GET", "/api/v1/fx/rates", signed_in(200)),
    Case("POST", "/api/v1/fx/rates", (401, 403, 422, 403, 422, 422), {}),
    # --- budgets: everyone reads the ones they may see (404 for others); accountants and up create and revise ---
    Case("GET", "/api/v1/budgets", signed_in(200)),
    Case("GET", "/api/v1/budgets/{missing}", signed_in(404)),
    Case("GET", "/api/v1/budgets/{missing}/versions", signed_in(404)),
    Case("POST", "/api/v1/budgets", (401, 403, 422, 403, 422, 422), {}),
    Case("PATCH", "/api/v1/budgets/{missing}", (401, 403, 404, 403, 404, 404), {"name": "x"}),
    # --- customers: accountants and up keep them ---
    Case("GET", "/api/v1/customers", (401, 403, 200, 403, 200, 200)),
    Case("GET", "/api/v1/customers/{missing}", (401, 403, 404, 403, 404, 404)),
    Case("POST", "/api/v1/customers", (401, 403, 422, 403, 422, 422), {}),
    Case("PATCH", "/api/v1/customers/{missing}", (401, 403, 404, 403, 404, 404), {"name": "x"}),
    # --- invoices: accountants and up make, submit and void them; managers read their team's; employees nothing ---
    Case("GET", "/api/v1/invoices", (401, 403, 200, 200, 200, 200)),
    Case("GET", "/api/v1/invoices/{missing}", (401, 403, 404, 404, 404, 404)),
    Case("POST", "/api/v1/invoices", (401, 403, 422, 403, 422, 422), {}),
    Case("PATCH", "/api/v1/invoices/{missing}", (401, 403, 404, 403, 404, 404), {"notes": "x"}),
    Case("DELETE", "/api/v1/invoices/{missing}", (401, 403, 404, 403, 404, 404)),
    Case("POST", "/api/v1/invoices/{missing}/submit", (401, 403, 404, 403, 404, 404)),
    Case("POST", "/api/v1/invoices/{missing}/withdraw", (401, 403, 404, 403, 404, 404)),
    Case("POST", "/api/v1/invoices/{missing}/void", (401, 403, 422, 403, 422, 422), {}),
    # --- recurring invoices: as invoices (cancel is the `void` right) ---
    Case("GET", "/api/v1/recurring-invoices", (401, 403, 200, 200, 200, 200)),
    Case("GET", "/api/v1/recurring-invoices/{missing}", (401, 403, 404, 404, 404, 404)),
    Case("POST", "/api/v1/recurring-invoices", (401, 403, 422, 403, 422, 422), {}),
    Case("POST", "/api/v1/recurring-invoices/{missing}/submit", (401, 403, 404, 403, 404, 404)),
    Case("POST", "/api/v1/recurring-invoices/{missing}/cancel", (401, 403, 404, 403, 404, 404)),
    # --- payments and credit notes: accountants and up record them; whoever sees the invoice reads them ---
    Case("POST", "/api/v1/invoices/{missing}/payments", (401, 403, 422, 403, 422, 422), {}),
    Case("GET", "/api/v1/invoices/{missing}/payments", (401, 403, 404, 404, 404, 404)),
    Case("POST", "/api/v1/invoices/{missing}/credit-notes", (401, 403, 422, 403, 422, 422), {}),
    Case("GET", "/api/v1/invoices/{missing}/credit-notes", (401, 403, 404, 404, 404, 404)),
    Case("GET", "/api/v1/invoices/{missing}/pdf", (401, 403, 404, 404, 404, 404)),
    # --- journal exports: accountants and up (the whole ledger); managers and employees nothing ---
    Case("POST", "/api/v1/exports", (401, 403, 422, 403, 422, 422), {}),
    Case("GET", "/api/v1/exports", (401, 403, 200, 403, 200, 200)),
    Case("GET", "/api/v1/exports/{missing}", (401, 403, 404, 403, 404, 404)),
    Case("GET", "/api/v1/exports/{missing}/download", (401, 403, 404, 403, 404, 404)),
    # --- the ledger: accountants and up keep the chart of accounts and its mapping, read journals and close months;
    # only admins reopen one. A month that is no YYYY-MM ({missing}) is 422, a missing month or reason too ---
    Case("GET", "/api/v1/accounts", (401, 403, 200, 403, 200, 200)),
    Case("POST", "/api/v1/accounts", (401, 403, 422, 403, 422, 422), {}),
    Case("GET", "/api/v1/accounts/{missing}", (401, 403, 404, 403, 404, 404)),
    Case("PATCH", "/api/v1/accounts/{missing}", (401, 403, 404, 403, 404, 404), {"name": "x"}),
    Case("GET", "/api/v1/accounts/mappings", (401, 403, 200, 403, 200, 200)),
    Case("PUT", "/api/v1/accounts/mappings", (401, 403, 422, 403, 422, 422), {}),
    Case("GET", "/api/v1/periods", (401, 403, 200, 403, 200, 200)),
    Case("POST", "/api/v1/periods/{missing}/close", (401, 403, 422, 403, 422, 422)),
    Case("POST", "/api/v1/periods/{missing}/reopen", (401, 403, 403, 403, 422, 422), {"reason": "x"}),
    Case("GET", "/api/v1/journals", (401, 403, 422, 403, 422, 422)),
    # --- dashboard: everyone, scoped to their visibility ---
    Case("GET", "/api/v1/dashboard/overview", signed_in(200)),
    Case("GET", "/api/v1/dashboard/kpi", signed_in(200)),
    # receivables: whoever may read invoices (employees may not), scoped to the invoices they may see
    Case("GET", "/api/v1/dashboard/receivables", (401, 403, 200, 200, 200, 200)),
    # --- analytics (issue 29): as the dashboard, scoped to their visibility ---
    Case("GET", "/api/v1/analytics/trends", signed_in(200)),
    Case("GET", "/api/v1/analytics/approvals", signed_in(200)),
    Case("GET", "/api/v1/analytics/budgets", signed_in(200)),
    Case("GET", "/api/v1/analytics/receivables", (401, 403, 200, 200, 200, 200)),
    Case("GET", "/api/v1/analytics/cash-forecast", signed_in(200)),
    # --- audit: admins read it, only the superadmin verifies the chain ---
    Case("GET", "/api/v1/admin/audit", admins(200)),
    Case("GET", "/api/v1/admin/audit/verify", superadmin_only(200)),
    # --- superadmin only: policies and backups ---
    Case("POST", "/api/v1/admin/policies/reload", superadmin_only(200)),
    Case("POST", "/api/v1/admin/policies/preview", superadmin_only(422), {}),
    Case("POST", "/api/v1/admin/backups", superadmin_only(503), temporal_down=True),
    Case("GET", "/api/v1/admin/backups", superadmin_only(200)),
    Case("GET", "/api/v1/admin/backups/{missing}", superadmin_only(404)),
    Case("POST", "/api/v1/admin/backups/{missing}/drill", superadmin_only(404), temporal_down=True),
]


async def _stream_status(app: Any, path: str, headers: dict[str, str]) -> int:
    """The status of an endless response (httpx's ASGI transport would wait for its end): run the app until it
    starts the response, then disconnect."""
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    disconnect = asyncio.Event()
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and not started.done():
            started.set_result(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("203.0.113.7", 50000),
        "server": ("testserver", 80),
        "app": app,
    }
    task = asyncio.create_task(app(scope, receive, send))
    try:
        return await asyncio.wait_for(asyncio.shield(started), timeout=10)
    finally:
        disconnect.set()
        try:
            await asyncio.wait_for(task, timeout=5)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()


def _acceptable(expected: int, status: int) -> bool:
    if expected == REACHED:
        return status not in (401, 403) and status < 500
    return status == expected


@pytest.mark.parametrize("case", TABLE, ids=lambda case: case.id)
async def test_permission_matrix(
    case: Case, client: httpx.AsyncClient, app: Any, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.temporal_down:
        services: AppServices = app.state.services
        monkeypatch.setattr(services, "engine", WorkflowEngine(TemporalSettings(address="127.0.0.1:1")))
    path = case.path.format(other=org.other_employee.id, team_root=org.manager.id, missing=MISSING)
    wrong: list[str] = []
    for role, expected in zip(ROLES, case.expected, strict=True):
        headers = {} if role == "anonymous" else org.by_role(role).headers
        if case.streams:
            status, text = await _stream_status(app, path, headers), ""
        else:
            body = case.body(org) if callable(case.body) else case.body
            content = None if body is None else json.dumps(body)
            if content is not None:
                headers = {**headers, "Content-Type": "application/json"}
            response = await client.request(case.method, path, content=content, headers=headers)
            status, text = response.status_code, response.text[:200]
        if not _acceptable(expected, status):
            want = "past authorization" if expected == REACHED else str(expected)
            wrong.append(f"{role}: {status}, expected {want} {text}")
    assert not wrong, f"{case.id}:\n  " + "\n  ".join(wrong)


def _shape(path: str) -> str:
    path = path.replace(MISSING_UUID, "{}")
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_route_is_in_the_table(app: Any) -> None:
    listed = [(case.method, _shape(case.path)) for case in TABLE]
    assert len(listed) == len(set(listed)), "a route is listed twice"
    routes = {(method, _shape(route.path)) for route in api_routes(app) for method in route.methods}
    assert len(routes) > 80, "the app's routes were not found"
    assert routes - set(listed) == set(), "routes missing from the permission table"
    assert set(listed) - routes == set(), "the table lists routes the app does not have"
