"""gzip: JSON above 1 KiB is compressed for a client that accepts it; nothing else is, and no stream waits for it."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import date
from decimal import Decimal

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from activities.deps import ActivityDeps
from api.compression import JsonGZipMiddleware, accepts_gzip
from core.settings import Settings
from domain.notifications.service import notify
from tests.mobile.conftest import People, add_entries

pytestmark = pytest.mark.usefixtures("database_url")


async def raw_get(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    """The response and the bytes that came over the wire (httpx decodes gzip for `.content`)."""
    async with client.stream("GET", url, headers=headers) as response:
        wire = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, wire


async def test_a_large_json_answer_is_gzipped_only_for_clients_that_accept_it(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    await add_entries(activity_deps, people.employee, [(date(2025, 1, 3), Decimal("33.00"))] * 10)
    url = "/api/v1/expenses/"
    zipped, wire = await raw_get(client, url, {**people.employee.headers, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["vary"]
    assert int(zipped.headers["content-length"]) == len(wire)
    plain, plain_wire = await raw_get(client, url, {**people.employee.headers, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and "Accept-Encoding" in plain.headers["vary"]
    assert gzip.decompress(wire) == plain_wire and len(wire) * 4 < len(plain_wire)
    refused, _ = await raw_get(client, url, {**people.employee.headers, "Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers
    # The ETag is the same either way (weak: one answer, two encodings).
    assert zipped.headers["etag"] == plain.headers["etag"]


async def test_a_small_answer_is_sent_as_it_is(client: httpx.AsyncClient, people: People) -> None:
    small, wire = await raw_get(client, "/api/v1/notifications/unread-count", {**people.employee.headers,
                                                                              "Accept-Encoding": "gzip"})  # fmt: skip
    assert "content-encoding" not in small.headers and json.loads(wire) == {"unread": 0}


async def test_a_streamed_download_is_not_compressed(client: httpx.AsyncClient, people: People) -> None:
    response, wire = await raw_get(client, "/api/v1/admin/audit?format=csv", {**people.admin.headers,
                                                                             "Accept-Encoding": "gzip"})  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv") and "content-encoding" not in response.headers
    assert wire.startswith(b"id,")


async def test_the_body_limit_still_refuses_a_large_body(
    client: httpx.AsyncClient, people: People, settings: Settings
) -> None:
    too_large = b"x" * (settings.max_body_bytes + 1)
    headers = {**people.employee.headers, "Accept-Encoding": "gzip", "Content-Type": "application/json"}
    response = await client.post("/api/v1/expenses/", content=too_large, headers=headers)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


async def test_the_live_stream_is_neither_compressed_nor_held_back(
    api_url: str, people: People, activity_deps: ActivityDeps
) -> None:
    """Over a real socket: the first event arrives at once, and a notification as it is created."""
    headers = {**people.employee.headers, "Accept-Encoding": "gzip"}
    timeout = httpx.Timeout(10.0, read=None)
    async with httpx.AsyncClient(base_url=api_url, timeout=timeout) as http:
        async with http.stream("GET", "/api/v1/notifications/stream", headers=headers) as response:
            assert response.status_code == 200
            assert "content-encoding" not in response.headers
            chunks = response.aiter_raw()
            async with asyncio.timeout(5):
                assert (await anext(chunks)).startswith(b"retry:")
            async with activity_deps.db.transaction() as tx:
                await notify(tx.sql, user_id=people.employee.id, event_type="entry_submitted", title="Now")
            async with asyncio.timeout(5):
                frame = await anext(chunks)
                while b"event: notification" not in frame:
                    frame += await anext(chunks)
            assert b'"title":"Now"' in frame


async def test_a_json_body_in_several_messages_passes_untouched() -> None:
    """Whatever streams (here JSON lines in two messages) flows as it comes: never buffered, never compressed."""
    sent: list[Message] = []
    part = b'{"n": 1}\n' * 200

    async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": part, "more_body": True})
        assert len(sent) == 2, "the first part was held back"
        await send({"type": "http.response.body", "body": part, "more_body": False})

    async def collect(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"accept-encoding", b"gzip")]}
    await JsonGZipMiddleware(streaming_app)(scope, receive, collect)
    assert [message.get("body") for message in sent[1:]] == [part, part]
    assert b"content-encoding" not in dict(sent[0]["headers"])


def test_accept_encoding_is_read_with_its_weights() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("br, gzip;q=0.5") and accepts_gzip("*") and accepts_gzip("GZIP")
    assert not accepts_gzip(None) and not accepts_gzip("") and not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("*;q=0") and not accepts_gzip("gzip;q=0, *")
    assert not accepts_gzip("br, deflate")
