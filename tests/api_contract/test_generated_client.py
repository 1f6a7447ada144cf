"""A Python client generated from the app's document (openapi-python-client) generates cleanly, imports, and does
a user's day against the real stack: sign in, file an expense, submit it, the manager approves it, then a report
of the month is requested and downloaded."""

from __future__ import annotations

import asyncio
import csv
import importlib
import io
import pkgutil
from datetime import date
from http import HTTPStatus

from tests.api_contract.conftest import PACKAGE, Generated, Team
from tests.conftest import PASSWORD, TestUser


def test_the_client_generates_without_warnings_and_imports(generated: Generated) -> None:
    assert generated.returncode == 0, generated.output
    assert "warning" not in generated.output.lower(), generated.output
    package = importlib.import_module(PACKAGE)
    modules = [info.name for info in pkgutil.walk_packages(package.__path__, f"{PACKAGE}.")]
    for name in modules:
        importlib.import_module(name)
    # Every operation of the document is a module, named by its operation id (reports-generate -> reports_generate).
    assert f"{PACKAGE}.api.reports.reports_generate" in modules
    assert f"{PACKAGE}.api.auth.auth_login" in modules


async def _signed_in(generated: Generated, api_url: str, user: TestUser) -> object:
    client_module = generated.module("client")
    login = generated.module("api.auth.auth_login")
    login_request = generated.module("models.login_request").LoginRequest
    anonymous = client_module.Client(base_url=api_url)
    answer = await login.asyncio_detailed(client=anonymous, body=login_request(username=user.email, password=PASSWORD))
    assert answer.status_code == HTTPStatus.OK, answer.content
    return client_module.AuthenticatedClient(base_url=api_url, token=answer.parsed.access_token)


async def test_a_generated_client_files_an_expense_gets_it_approved_and_downloads_a_report(
    generated: Generated, api_url: str, team: Team
) -> None:
    models = generated.module("models")
    expenses = {name: generated.module(f"api.expenses.expenses_{name}") for name in ("create", "submit", "approve")}
    expenses_get = generated.module("api.expenses.expenses_get")
    reports = {name: generated.module(f"api.reports.reports_{name}") for name in ("generate", "get", "download")}

    employee = await _signed_in(generated, api_url, team.employee)
    manager = await _signed_in(generated, api_url, team.manager)

    filed = await expenses["create"].asyncio_detailed(
        client=employee,
        body=models.ExpenseCreate(
            amount="120.00",
            currency="USD",
            category="travel",
            description="train to the client",
            entry_date=date.today(),
            vendor="Rail Co",
        ),
    )
    assert filed.status_code == HTTPStatus.CREATED, filed.content
    entry_id = filed.parsed.id
    submitted = await expenses["submit"].asyncio_detailed(entry_id, client=employee)
    assert submitted.status_code == HTTPStatus.OK, submitted.content
    assert submitted.parsed.status == models.EntryStatus.PENDING

    approved = await expenses["approve"].asyncio_detailed(
        entry_id, client=manager, body=models.ApproveBody(comment="fine by me")
    )
    assert approved.status_code == HTTPStatus.OK, approved.content
    assert approved.parsed.status == models.EntryStatus.APPROVED
    seen = await expenses_get.asyncio(entry_id, client=employee)
    assert (seen.id, seen.status, seen.amount, seen.currency) == (
        entry_id,
        models.EntryStatus.APPROVED,
        "120.00",
        "USD",
    )

    today = date.today()
    accepted = await reports["generate"].asyncio_detailed(
        client=employee,
        body=models.ReportRequest(
            type_=models.ReportType.LEDGER,
            format_=models.ReportFormat.CSV,
            period=models.Period(from_=today.replace(day=1), to=today),
        ),
    )
    assert accepted.status_code == HTTPStatus.ACCEPTED, accepted.content
    report_id = accepted.parsed.id
    for _ in range(300):
        report = await reports["get"].asyncio(report_id, client=employee)
        if report.status not in (models.ReportStatus.QUEUED, models.ReportStatus.RUNNING):
            break
        await asyncio.sleep(0.1)
    assert report.status == models.ReportStatus.COMPLETED, report.error

    download = await reports["download"].asyncio_detailed(report_id, client=employee)
    assert download.status_code == HTTPStatus.OK
    assert download.headers["content-type"].startswith("text/csv")
    assert download.content == download.parsed.payload.read()  # the client hands over the bytes as they came
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8"))))
    mine = [row for row in rows if row.get("ID") == str(entry_id)]
    assert len(mine) == 1, download.content[:500]
    assert (mine[0]["Status"], mine[0]["Amount"], mine[0]["Description"]) == (
        "approved",
        "120.00",
        "train to the client",
    )
