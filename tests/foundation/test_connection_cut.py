"""A database connection cut underneath the API while a request holds it (a failover, a restart, an operator's
pg_terminate_backend): that request answers 503 saying what happened and to try again, never a 500, whether the
statement that met the cut was a plain one or the ORM's; and the very next request gets a live connection."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from api.errors import install_error_handlers
from core.db import Database, Tx
from core.settings import DatabaseSettings

_INSERT = "INSERT INTO sent_emails (message_id, recipients, subject, sent_at) VALUES (%s, 'a@example.com', 'cut', %s)"


async def _cut_own_connection(tx: Tx, database_url: str) -> None:
    """What a failover does to the request: its backend is gone before its next statement."""
    pid = int(await tx.sql.scalar("SELECT pg_backend_pid()"))
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def app_on(db: Database, database_url: str) -> FastAPI:
    """A route that writes a row and reads, its connection cut in between when asked (`?cut=true`)."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/probe/{how}/{key}")
    async def probe(how: str, key: str, cut: bool = False) -> dict[str, int]:
        async with db.transaction() as tx:
            await tx.sql.run(_INSERT, (key, datetime.now(UTC)))
            if cut:
                await _cut_own_connection(tx, database_url)
            if how == "orm":
                value = (await tx.session.execute(text("SELECT count(*) FROM sent_emails"))).scalar_one()
            else:
                value = await tx.sql.scalar("SELECT count(*) FROM sent_emails")
        return {"rows": int(value)}

    return app


def _stored(database_url: str, key: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM sent_emails WHERE message_id = %s", (key,)).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("how", ["sql", "orm"])
async def test_a_connection_cut_mid_request_is_a_503_and_the_next_request_succeeds(database_url: str, how: str) -> None:
    db = Database.connect(DatabaseSettings(url=database_url, pool_size=2, max_overflow=0))  # as the API's: pre-ping
    transport = httpx.ASGITransport(app=app_on(db, database_url), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.post(f"/probe/{how}/before")).status_code == 200
            cut = await http.post(f"/probe/{how}/cut", params={"cut": "true"})
            assert cut.status_code == 503, cut.text
            assert cut.headers["retry-after"] == "1"
            assert cut.json()["error"]["code"] == "service_unavailable"
            assert "connection to the database was lost" in cut.json()["error"]["message"]
            assert "try again" in cut.json()["error"]["message"]
            after = await http.post(f"/probe/{how}/after")
            assert after.status_code == 200, after.text
    finally:
        await db.dispose()
    # As the answer said: the cut request's row was not kept; the others were.
    assert [_stored(database_url, key) for key in ("before", "cut", "after")] == [1, 0, 1]
