"""A request the database aborts to resolve a conflict with another (a deadlock, a serialisation failure) is a 503
with Retry-After that says nothing was changed, never a 500; any other database error stays unexpected."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from activities.deps import ActivityDeps
from api.errors import install_error_handlers

RAISE = "DO $$ BEGIN RAISE EXCEPTION 'probe' USING ERRCODE = %s; END $$"


def app_raising(deps: ActivityDeps) -> FastAPI:
    """A route whose transaction the database aborts with the SQLSTATE asked for (as PostgreSQL itself would)."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/probe/{sqlstate}")
    async def probe(sqlstate: str) -> dict[str, str]:
        async with deps.db.transaction() as tx:
            await tx.sql.run("CREATE TEMP TABLE probe_kept (id int)")
            await tx.sql.run(RAISE.replace("%s", f"'{sqlstate}'"))
        return {"status": "kept"}

    return app


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
async def test_a_deadlock_or_serialisation_failure_is_a_503_to_try_again(
    activity_deps: ActivityDeps, sqlstate: str
) -> None:
    transport = httpx.ASGITransport(app=app_raising(activity_deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post(f"/probe/{sqlstate}")
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert "nothing was changed, try again" in response.json()["error"]["message"]


async def test_another_database_error_is_not_dressed_up(activity_deps: ActivityDeps) -> None:
    transport = httpx.ASGITransport(app=app_raising(activity_deps), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/probe/23505")  # unique_violation: a bug to look at, not a conflict
    assert response.status_code == 500
