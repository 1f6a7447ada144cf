"""Who sees an expense's receipts (everyone who may see the expense, nobody else: 404), and deleting one (the
owner, while the expense is a draft; its file goes once the deletion has committed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from activities.deps import ActivityDeps
from core.settings import Settings
from tests.approvals.conftest import Team, audit_count, create_expense
from tests.attachments.conftest import JPEG, PDF, attachment_rows, path_of, upload


async def _with_receipt(client: httpx.AsyncClient, team: Team) -> tuple[int, int]:
    entry = await create_expense(client, team.employee)
    response = await upload(client, team.employee, entry["id"], "receipt.pdf", PDF)
    assert response.status_code == 201, response.text
    return entry["id"], response.json()["id"]


async def _sees(client: httpx.AsyncClient, who: object, entry_id: int, attachment_id: int) -> tuple[int, int]:
    headers = who.headers  # type: ignore[attr-defined]
    listed = await client.get(path_of(entry_id), headers=headers)
    fetched = await client.get(path_of(entry_id, attachment_id), headers=headers)
    if listed.status_code == 200:
        assert [item["id"] for item in listed.json()["items"]] == [attachment_id]
    if fetched.status_code == 200:
        assert fetched.content == PDF
    return listed.status_code, fetched.status_code


async def test_the_owner_their_manager_and_accountants_see_the_receipts_a_peer_manager_does_not(
    client: httpx.AsyncClient, team: Team
) -> None:
    entry_id, attachment_id = await _with_receipt(client, team)
    assert await _sees(client, team.employee, entry_id, attachment_id) == (200, 200)
    assert await _sees(client, team.manager, entry_id, attachment_id) == (200, 200)
    assert await _sees(client, team.admin, entry_id, attachment_id) == (200, 200)
    assert await _sees(client, team.accountant, entry_id, attachment_id) == (200, 200)
    assert await _sees(client, team.peer, entry_id, attachment_id) == (404, 404)


async def test_an_approver_outside_the_owners_tree_sees_the_receipts_of_what_they_decide(
    client: httpx.AsyncClient, team: Team
) -> None:
    """The manager delegates to the peer manager (another team): the step goes to the peer, who then sees the
    expense and its receipts; before the submission they did not."""
    entry_id, attachment_id = await _with_receipt(client, team)
    assert await _sees(client, team.peer, entry_id, attachment_id) == (404, 404)
    now = datetime.now(UTC)
    window = {"starts": now.isoformat(), "ends": (now + timedelta(days=3)).isoformat()}
    delegated = await client.put(
        "/api/v1/users/me/delegate", json={"delegate_id": team.peer.id, **window}, headers=team.manager.headers
    )
    assert delegated.status_code == 200, delegated.text
    submitted = await client.post(f"/api/v1/expenses/{entry_id}/submit", headers=team.employee.headers)
    assert submitted.status_code == 200, submitted.text
    assert await _sees(client, team.peer, entry_id, attachment_id) == (200, 200)


async def test_a_stranger_cannot_tell_a_receipt_exists(
    client: httpx.AsyncClient, team: Team, make_user: object
) -> None:
    entry_id, attachment_id = await _with_receipt(client, team)
    stranger = await make_user("employee")  # type: ignore[operator]
    assert await _sees(client, stranger, entry_id, attachment_id) == (404, 404)
    assert (await client.get(path_of(entry_id, attachment_id + 1), headers=team.employee.headers)).status_code == 404
    other_entry = await create_expense(client, team.employee)
    wrong_entry = await client.get(path_of(other_entry["id"], attachment_id), headers=team.employee.headers)
    assert wrong_entry.status_code == 404  # an attachment is reached through its own entry only


async def test_the_owner_deletes_a_receipt_of_a_draft_and_its_file_goes(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    entry_id, attachment_id = await _with_receipt(client, team)
    [row] = await attachment_rows(activity_deps, entry_id)
    file = settings.storage.local_dir / row["storage_key"]
    assert file.is_file()
    by_manager = await client.delete(path_of(entry_id, attachment_id), headers=team.manager.headers)
    assert by_manager.status_code == 403
    deleted = await client.delete(path_of(entry_id, attachment_id), headers=team.employee.headers)
    assert deleted.status_code == 204
    assert await attachment_rows(activity_deps, entry_id) == []
    assert not file.exists()
    assert await audit_count(activity_deps, "attachment.deleted", entry_id) == 1
    again = await client.delete(path_of(entry_id, attachment_id), headers=team.employee.headers)
    assert again.status_code == 404


async def test_a_receipt_of_a_submitted_or_returned_expense_stays(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    entry_id, attachment_id = await _with_receipt(client, team)
    submitted = await client.post(f"/api/v1/expenses/{entry_id}/submit", headers=team.employee.headers)
    assert submitted.status_code == 200, submitted.text
    refused = await client.delete(path_of(entry_id, attachment_id), headers=team.employee.headers)
    assert refused.status_code == 409
    assert "draft" in refused.json()["error"]["message"]
    returned = await client.post(
        f"/api/v1/expenses/{entry_id}/request-changes", json={"comment": "which meal?"}, headers=team.manager.headers
    )
    assert returned.status_code == 200, returned.text
    # Returned for changes: another receipt may be added (the approver may have asked for it), none removed.
    added = await upload(client, team.employee, entry_id, "second.jpg", JPEG)
    assert added.status_code == 201, added.text
    refused = await client.delete(path_of(entry_id, attachment_id), headers=team.employee.headers)
    assert refused.status_code == 409
    rows = await attachment_rows(activity_deps, entry_id)
    assert len(rows) == 2
    assert all((settings.storage.local_dir / row["storage_key"]).is_file() for row in rows)


async def test_deleting_a_draft_expense_deletes_its_receipts_files(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    entry_id, _ = await _with_receipt(client, team)
    assert (await upload(client, team.employee, entry_id, "second.jpg", JPEG)).status_code == 201
    files = [settings.storage.local_dir / row["storage_key"] for row in await attachment_rows(activity_deps, entry_id)]
    assert len(files) == 2 and all(file.is_file() for file in files)
    deleted = await client.delete(f"/api/v1/expenses/{entry_id}", headers=team.employee.headers)
    assert deleted.status_code == 204
    assert await attachment_rows(activity_deps, entry_id) == []
    assert not any(file.exists() for file in files)
