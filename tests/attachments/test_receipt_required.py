"""A receipt is required above RECEIPT_REQUIRED_ABOVE (a base-currency amount) at submit, and at a resubmission
after changes (checked by the workflow's activity, with the worker's setting): 422 naming the threshold. At or
below it, or with a stored receipt, the submit goes through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import AttachmentSettings, Settings
from tests.approvals.conftest import Team, create_expense
from tests.attachments.conftest import PNG, attachment_rows, own_stack, upload

THRESHOLD = Decimal("100.00")


@pytest.fixture
async def api(settings: Settings, temporal_client: Client, team: Team) -> AsyncIterator[httpx.AsyncClient]:
    async with own_stack(
        settings, temporal_client, attachments=AttachmentSettings(receipt_required_above=THRESHOLD)
    ) as http:
        yield http


async def _submit(api: httpx.AsyncClient, team: Team, entry_id: int) -> httpx.Response:
    return await api.post(f"/api/v1/expenses/{entry_id}/submit", headers=team.employee.headers)


async def _status(api: httpx.AsyncClient, team: Team, entry_id: int) -> str:
    response = await api.get(f"/api/v1/expenses/{entry_id}", headers=team.employee.headers)
    return str(response.json()["status"])


def _names_the_threshold(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "100" in error["message"] and "RECEIPT_REQUIRED_ABOVE" in error["message"]


async def test_above_the_threshold_without_a_receipt_the_submit_is_refused(api: httpx.AsyncClient, team: Team) -> None:
    entry = await create_expense(api, team.employee, "100.01")
    refused = await _submit(api, team, entry["id"])
    _names_the_threshold(refused)
    assert refused.json()["error"]["details"]["threshold"] == "100.00"
    assert await _status(api, team, entry["id"]) == "draft"
    assert (await upload(api, team.employee, entry["id"], "taxi.png", PNG)).status_code == 201
    accepted = await _submit(api, team, entry["id"])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "pending"


async def test_at_or_below_the_threshold_no_receipt_is_needed(api: httpx.AsyncClient, team: Team) -> None:
    for amount in ("100.00", "99.99"):
        entry = await create_expense(api, team.employee, amount)
        response = await _submit(api, team, entry["id"])
        assert response.status_code == 200, response.text


async def test_a_resubmission_above_the_threshold_needs_a_receipt_too(
    api: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    entry = await create_expense(api, team.employee, "80.00")
    submitted = await _submit(api, team, entry["id"])
    assert submitted.status_code == 200, submitted.text
    returned = await api.post(
        f"/api/v1/expenses/{entry['id']}/request-changes",
        json={"comment": "the hotel too"},
        headers=team.manager.headers,
    )
    assert returned.status_code == 200, returned.text
    current = await api.get(f"/api/v1/expenses/{entry['id']}", headers=team.employee.headers)
    edited = await api.patch(
        f"/api/v1/expenses/{entry['id']}",
        json={"amount": "180.00"},
        headers={**team.employee.headers, "If-Match": current.headers["etag"]},
    )
    assert edited.status_code == 200, edited.text
    _names_the_threshold(await _submit(api, team, entry["id"]))
    assert await _status(api, team, entry["id"]) == "changes_requested"
    assert (await upload(api, team.employee, entry["id"], "hotel.png", PNG)).status_code == 201
    assert [row["status"] for row in await attachment_rows(activity_deps, entry["id"])] == ["stored"]
    resubmitted = await _submit(api, team, entry["id"])
    assert resubmitted.status_code == 200, resubmitted.text
    assert resubmitted.json()["status"] == "pending"


async def test_without_a_threshold_nothing_is_required(
    client: httpx.AsyncClient, team: Team, settings: Settings
) -> None:
    """The default (unset): the session's app submits a large expense without a receipt."""
    assert settings.attachments.receipt_required_above is None
    entry = await create_expense(client, team.employee, "5000.00")
    response = await client.post(f"/api/v1/expenses/{entry['id']}/submit", headers=team.employee.headers)
    assert response.status_code == 200, response.text
