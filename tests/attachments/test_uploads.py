"""Uploading receipts: each allowed type is kept with its size, type and SHA-256; whatever is refused (too large, a
type that is not a receipt, a name that disagrees with the content, someone else's entry) leaves no row and no
file. Over real HTTP, through the body-size middleware."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from activities.deps import ActivityDeps
from core.settings import Settings
from tests.approvals.conftest import Team, audit_count, create_expense, submitted_expense
from tests.attachments.conftest import (
    ELF,
    EXE,
    PDF,
    PNG,
    TEXT,
    VALID,
    attachment_rows,
    path_of,
    receipt_files,
    upload,
)


@pytest.mark.parametrize("extension", sorted(VALID))
async def test_each_receipt_type_is_kept_with_its_type_size_and_hash(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings, extension: str
) -> None:
    content, content_type = VALID[extension]
    entry = await create_expense(client, team.employee)
    response = await upload(client, team.employee, entry["id"], f"receipt.{extension.upper()}", content)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["content_type"] == content_type
    assert body["size_bytes"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["status"] == "stored"
    [row] = await attachment_rows(activity_deps, entry["id"])
    assert (settings.storage.local_dir / row["storage_key"]).read_bytes() == content
    assert await audit_count(activity_deps, "attachment.added", entry["id"]) == 1
    download = await client.get(body["download_url"], headers=team.employee.headers)
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"].startswith(content_type)
    assert download.headers["content-disposition"].startswith("attachment;")


async def _refused(
    client: httpx.AsyncClient,
    team: Team,
    deps: ActivityDeps,
    settings: Settings,
    filename: str,
    content: bytes,
    *,
    entry_id: int | None = None,
) -> httpx.Response:
    """Upload and return the answer, after checking that nothing was kept: no row, no file, no audit row."""
    if entry_id is None:
        entry_id = (await create_expense(client, team.employee))["id"]
    before = receipt_files(settings.storage.local_dir)
    response = await upload(client, team.employee, entry_id, filename, content)
    assert await attachment_rows(deps) == []
    assert receipt_files(settings.storage.local_dir) == before
    assert await audit_count(deps, "attachment.added") == 0
    return response


async def test_a_pdf_named_png_is_refused_naming_both(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    response = await _refused(client, team, activity_deps, settings, "receipt.png", PDF)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "PDF" in message and ".png" in message


async def test_a_png_named_pdf_is_refused(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    response = await _refused(client, team, activity_deps, settings, "receipt.pdf", PNG)
    assert response.status_code == 422
    assert "PNG" in response.json()["error"]["message"]


@pytest.mark.parametrize("program", [ELF, EXE], ids=["elf", "windows-exe"])
async def test_an_executable_named_pdf_is_refused(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings, program: bytes
) -> None:
    response = await _refused(client, team, activity_deps, settings, "invoice.pdf", program)
    assert response.status_code == 422, response.text
    assert "executable" in response.json()["error"]["message"]


@pytest.mark.parametrize("filename", ["receipt.txt", "receipt.pdf"])
async def test_a_text_file_is_refused_whatever_its_name(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings, filename: str
) -> None:
    response = await _refused(client, team, activity_deps, settings, filename, TEXT)
    assert response.status_code == 422, response.text


async def test_a_file_over_the_limit_is_refused_with_413_and_nothing_is_kept(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    limit = settings.attachments.max_bytes
    exactly = PDF + b"\n" * (limit - len(PDF))
    entry = await create_expense(client, team.employee)
    over = await _refused(client, team, activity_deps, settings, "big.pdf", exactly + b"\n", entry_id=entry["id"])
    assert over.status_code == 413, over.text
    assert str(limit) in over.json()["error"]["message"]
    # At the limit it passes: the default 10 MiB goes through the body-size middleware (MAX_BODY_BYTES is 1 MB).
    assert settings.max_body_bytes < limit
    at_limit = await upload(client, team.employee, entry["id"], "big.pdf", exactly)
    assert at_limit.status_code == 201, at_limit.text
    assert at_limit.json()["size_bytes"] == limit


async def test_a_body_far_over_the_limit_is_cut_off_by_the_middleware(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    """A declared length beyond the file cap and its framing is refused before a byte is read."""
    entry = await create_expense(client, team.employee)
    huge = PDF + b"\n" * (settings.attachments.max_bytes + 100_000)
    response = await _refused(client, team, activity_deps, settings, "huge.pdf", huge, entry_id=entry["id"])
    assert response.status_code == 413


async def test_another_teams_entry_is_404_and_nothing_is_kept(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings, make_user: object
) -> None:
    outsider = await make_user("employee", manager=team.peer)  # type: ignore[operator]
    foreign = await create_expense(client, outsider)
    response = await _refused(client, team, activity_deps, settings, "receipt.pdf", PDF, entry_id=foreign["id"])
    assert response.status_code == 404
    # A revenue entry is not an expense: not found on this collection either.
    revenue = await client.post(
        "/api/v1/revenue/",
        json={"amount": "10.00", "category": "sales", "entry_date": "2026-01-05", "source": "Acme"},
        headers=team.employee.headers,
    )
    assert revenue.status_code == 201
    response = await _refused(client, team, activity_deps, settings, "receipt.pdf", PDF, entry_id=revenue.json()["id"])
    assert response.status_code == 404


async def test_only_the_owner_uploads_and_only_while_the_entry_can_change(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    entry = await create_expense(client, team.employee)
    by_manager = await client.post(path_of(entry["id"]), files={"file": ("r.pdf", PDF)}, headers=team.manager.headers)
    assert by_manager.status_code == 403
    pending = await submitted_expense(client, team.employee)
    response = await _refused(client, team, activity_deps, settings, "receipt.pdf", PDF, entry_id=pending["id"])
    assert response.status_code == 409
    assert "pending" in response.json()["error"]["message"]


async def test_the_count_per_entry_is_limited(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, settings: Settings
) -> None:
    entry = await create_expense(client, team.employee)
    limit = settings.attachments.max_per_entry
    for n in range(limit):
        response = await upload(client, team.employee, entry["id"], f"r{n}.png", PNG)
        assert response.status_code == 201, response.text
    before = receipt_files(settings.storage.local_dir)
    response = await upload(client, team.employee, entry["id"], "one-more.png", PNG)
    assert response.status_code == 409
    assert str(limit) in response.json()["error"]["message"]
    assert len(await attachment_rows(activity_deps, entry["id"])) == limit
    assert receipt_files(settings.storage.local_dir) == before


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"other": ("r.pdf", PDF)}, "unexpected part"),
        ({"file": ("r.pdf", PDF), "extra": ("r2.pdf", PDF)}, "one"),
    ],
)
async def test_a_body_of_another_shape_is_a_clear_422(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, files: dict, expected: str
) -> None:
    entry = await create_expense(client, team.employee)
    response = await client.post(path_of(entry["id"]), files=files, headers=team.employee.headers)
    assert response.status_code == 422, response.text
    assert expected in response.json()["error"]["message"]
    not_multipart = await client.post(path_of(entry["id"]), content=PDF, headers=team.employee.headers)
    assert not_multipart.status_code == 422
    assert await attachment_rows(activity_deps) == []


async def test_a_filename_with_folders_keeps_only_its_name(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    entry = await create_expense(client, team.employee)
    response = await upload(client, team.employee, entry["id"], "..\\..\\C:\\tmp\\Quittung März.pdf", PDF)
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "Quittung März.pdf"
    download = await client.get(response.json()["download_url"], headers=team.employee.headers)
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"Quittung M_rz.pdf\"; filename*=UTF-8''Quittung%20M%C3%A4rz.pdf"
    )
