"""Values the database cannot store (ids beyond 64 bits, NUL characters, numbers out of range) are the client's
fault: 422 with a message on every route, never a 500, and nothing is stored."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from activities.deps import ActivityDeps
from domain.models import Entry
from tests.conftest import MakeUser
from tests.security.test_owasp_objects import EXPENSE

BEYOND_BIGINT = 10**20


async def _entries(deps: ActivityDeps) -> int:
    async with deps.db.transaction() as tx:
        return int(await tx.session.scalar(select(func.count()).select_from(Entry)) or 0)


async def test_ids_and_offsets_beyond_64_bits_answer_422(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    answers = {
        "entry": await client.get(f"/api/v1/expenses/{BEYOND_BIGINT}", headers=admin.headers),
        "owner filter": await client.get(f"/api/v1/expenses/?owner_id={BEYOND_BIGINT}", headers=admin.headers),
        "offset": await client.get(f"/api/v1/expenses/?offset={BEYOND_BIGINT}", headers=admin.headers),
        "user": await client.get(f"/api/v1/users/{BEYOND_BIGINT}", headers=admin.headers),
        "notification": await client.post(f"/api/v1/notifications/{BEYOND_BIGINT}/read", headers=admin.headers),
    }
    for what, response in answers.items():
        assert response.status_code == 422, (what, response.text)
        assert response.json()["error"]["message"], what


async def test_nul_characters_answer_422_and_store_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    owner = await make_user("employee")
    body = {**EXPENSE, "description": "taxi\u0000"}
    created = await client.post("/api/v1/expenses/", json=body, headers=owner.headers)
    assert created.status_code == 422, created.text
    assert "NUL" in created.json()["error"]["message"]  # entry texts are checked at the edge
    assert await _entries(activity_deps) == 0

    # Elsewhere the database's refusal is the rule that answers.
    login = await client.post("/api/v1/auth/login", json={"username": "a\u0000b", "password": "whatever-123"})
    assert login.status_code == 422, login.text
    assert "cannot be stored" in login.json()["error"]["message"]
